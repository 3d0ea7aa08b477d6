"""`seqbench run memory`: how much memory each implementation needs, and where it runs out.

Three kinds of rows:
  fwd / fwd_bwd  peak memory of one forward (inference, no autograd) or one training step (forward +
                 backward) above a baseline holding the weights and the input (and the output gradient),
                 at each L of the preset's `seq_lens` (fixed batch and d_model).
  frontier       then, if `frontier = true`, L keeps doubling until an out-of-memory error or
                 `max_seq_len`; every L tried is a row (the first that fails has status `oom`), and one
                 bisection between the last L that fit and the first that did not refines the frontier.
                 `oom_frontier_seq_len` (the largest L that fit) is set on every row of the job; it is
                 null when nothing ran out of memory up to `max_seq_len`.
  decode         the decoding state after a prefill of L tokens: `state_bytes_analytic` (the
                 implementation's model) and `state_bytes_measured` (bytes of the distinct tensor
                 storages the state holds: allocated capacity, e.g. a KV cache's spare slots, counts),
                 `state_bytes_used` (the part of it the state uses: a state that knows, like the
                 attention KV cache's `used_bytes()`, says; any other tensor counts whole),
                 and the peak memory of one `step` above a baseline holding that state.

How peak memory is measured:
  cuda  torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus memory_allocated() at
        the baseline: every tensor the call allocates through torch's caching allocator (the cache's
        reserved-but-free blocks do not count). One warm-up call first (autotuning allocates too).
  cpu   torch's CPU allocator keeps no statistics, and the process's peak RSS cannot be reset per call.
        The glibc heap in use (mallinfo2: uordblks + hblkhd, every arena and mmapped block) is sampled
        after every aten op through a TorchDispatchMode, forward and backward; peak minus baseline is
        the row's value. Scratch memory an op frees before returning is missed (op granularity), and
        so are allocations outside glibc malloc. Without glibc >= 2.33 the value is NaN, and
        `memory_method` says why. Measured after one warm-up call under the same mode, so the BLAS
        library's one-time buffers are in the baseline.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable
from typing import Any

from harness.execute import suite_command
from harness.interface import parse_dtype
from harness.job import Job
from harness.results import FLOAT, INT, STRING
from harness.run_options import RunOptions, resolve_suite_device
from harness.suite import Suite, SuitePlan, register
from suites import PRESETS_DIR, check_keys
from suites.grid import GRID_PRESET_KEYS, Cell, checked, job_grid

SUITE = "memory"
PEAK_TARGET = "suites.memory:measure_peak_memory"
STATE_TARGET = "suites.memory:measure_state_memory"
MODES = ("fwd", "fwd_bwd", "decode")
PRESET_KEYS = GRID_PRESET_KEYS | {"batch", "frontier", "max_seq_len", "seq_lens", "state_seq_lens"}
FRONTIER_MULTIPLE = 64  # bisected lengths are multiples of this (chunked kernels want whole chunks)


# ---------------------------------------------------------------------------------------------
# peak memory, in the worker


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _heap_in_use_function() -> Callable[[], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallinfo2 = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def in_use() -> int:
        info = mallinfo2()
        return int(info.uordblks + info.hblkhd)

    return in_use


def _cpu_peak_bytes(fn: Callable[[], Any], setup: Callable[[], Any]) -> tuple[float, str]:
    """Peak glibc heap in use above the baseline during fn(), sampled after every aten op."""
    from torch.utils._python_dispatch import TorchDispatchMode

    in_use = _heap_in_use_function()
    if in_use is None:
        return float("nan"), "cpu: not measured (needs glibc >= 2.33 for mallinfo2)"

    class PeakHeap(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.peak = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.peak = max(self.peak, in_use())
            return out

    with PeakHeap() as mode:
        fn()  # warm-up under the mode: one-time library buffers land in the baseline
        setup()
        gc.collect()
        baseline = in_use()
        mode.peak = baseline
        result = fn()
        del result
    return float(mode.peak - baseline), "cpu_heap_per_op"


def _cuda_peak_bytes(fn: Callable[[], Any], setup: Callable[[], Any], device: str) -> tuple[float, str]:
    import torch

    fn()  # warm-up: autotuning and workspace allocations
    setup()
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - baseline
    del result
    return float(peak), "cuda_max_memory_allocated"


def peak_bytes(fn: Callable[[], Any], device: str, setup: Callable[[], Any] | None = None) -> tuple[float, str]:
    """(bytes, method): peak memory of fn() above the memory held before it. fn runs twice (a warm-up,
    then the measured call); `setup` runs between them, before the baseline (e.g. dropping gradients)."""
    setup = setup or (lambda: None)
    if device.startswith("cuda"):
        return _cuda_peak_bytes(fn, setup, device)
    return _cpu_peak_bytes(fn, setup)


def _release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _peak_at(impl: Any, cfg: Any, device: str, dtype: Any, mode: str, batch: int, seq_len: int) -> dict[str, Any]:
    """One row: the peak memory of `mode` at (batch, seq_len), a fresh mixer and input each time."""
    import torch

    from suites.throughput import workload

    torch.manual_seed(0)
    mixer = impl.create(cfg).to(device=device, dtype=dtype)
    x = torch.randn(batch, seq_len, cfg.d_model, device=device, dtype=dtype)
    if mode not in ("fwd", "fwd_bwd"):
        raise ValueError(f"unknown memory mode {mode!r}")
    # The very call the throughput suite times, so that the two suites measure the same step.
    call, setup, _ = workload(mixer, x, mode, "layer")
    peak, method = peak_bytes(call, device, setup)
    return {"seq_len": seq_len, "peak_memory_bytes": peak, "memory_method": method}


def measure_peak_memory(
    implementation: str,
    device: str,
    dtype: str,
    mode: str,
    batch: int,
    seq_lens: list[int],
    config: dict[str, Any],
    frontier: bool = False,
    max_seq_len: int = 0,
    level: str = "layer",
) -> list[dict[str, Any]]:
    """Runs in a worker: peak memory at each L of `seq_lens`, then (frontier) doubling until OOM or
    `max_seq_len` and one bisection. An OOM is a row (status oom); other errors end the job."""
    from harness import registry
    from harness.config import MixerConfig
    from harness.worker import is_out_of_memory, one_line

    impl = registry.get(implementation)
    cfg = MixerConfig.from_dict(config)
    torch_dtype = parse_dtype(dtype)
    rows: list[dict[str, Any]] = []
    fitted, failed = 0, 0  # the largest L that fit, the smallest that ran out of memory

    def probe(seq_len: int, kind: str) -> bool:
        nonlocal fitted, failed
        try:
            row = _peak_at(impl, cfg, device, torch_dtype, mode, batch, seq_len)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            row = {"seq_len": seq_len, "status": "oom", "reason": one_line(f"{type(exc).__name__}: {exc}")}
            del exc
        _release(device)
        row["probe"] = kind
        rows.append(row)
        if row.get("status") == "oom":
            failed = seq_len if not failed else min(failed, seq_len)
            return False
        fitted = max(fitted, seq_len)
        return True

    for seq_len in seq_lens:
        if not probe(seq_len, "sweep"):
            break
    if frontier and not failed:
        seq_len = max(seq_lens) * 2
        while seq_len <= max_seq_len and probe(seq_len, "frontier"):
            seq_len *= 2
    if failed and fitted:
        middle = (fitted + failed) // 2 // FRONTIER_MULTIPLE * FRONTIER_MULTIPLE
        if fitted < middle < failed:
            probe(middle, "bisection")
    frontier_seq_len = fitted if failed else None
    for row in rows:
        row["oom_frontier_seq_len"] = frontier_seq_len
        row["searched_up_to_seq_len"] = max(r["seq_len"] for r in rows)
    return rows


def state_leaves(state: Any, stop_at: Callable[[Any], bool] = lambda _: False) -> list[Any]:
    """The tensors reachable from `state` (through sequences, dicts, dataclasses and plain objects), each
    object once, and the objects `stop_at` picks, which are returned as they are, not walked into."""
    import torch

    leaves: list[Any] = []
    seen_objects: set[int] = set()

    def walk(value: Any) -> None:
        if id(value) in seen_objects:
            return
        seen_objects.add(id(value))
        if isinstance(value, torch.Tensor) or stop_at(value):
            leaves.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple | set):
            for item in value:
                walk(item)
        elif hasattr(value, "__dict__"):
            for item in vars(value).values():
                walk(item)
        elif hasattr(value, "__slots__"):
            for slot in value.__slots__:
                walk(getattr(value, slot, None))

    walk(state)
    return leaves


def storage_bytes(state: Any) -> int:
    """Bytes of the distinct tensor storages reachable from `state`, each storage counted once."""
    storages = {}
    for tensor in state_leaves(state):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def used_bytes(state: Any) -> int:
    """Bytes of `state` in use: an object with a `used_bytes()` method (a KV cache with spare capacity)
    counts what it says; every other tensor's storage counts whole, once, as in `storage_bytes`. The
    analytic size then compares with this column, the allocation with `state_bytes_measured`."""
    import torch

    leaves = state_leaves(state, stop_at=lambda value: callable(getattr(value, "used_bytes", None)))
    tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
    reported = sum(int(leaf.used_bytes()) for leaf in leaves if not isinstance(leaf, torch.Tensor))
    return reported + storage_bytes(tensors)


def measure_state_memory(
    implementation: str,
    device: str,
    dtype: str,
    batch: int,
    seq_len: int,
    config: dict[str, Any],
    mode: str = "decode",
    level: str = "layer",
) -> dict[str, Any]:
    """Runs in a worker: the decoding state after a prefill of seq_len tokens, analytic vs measured,
    and the peak memory of one step above a baseline holding the state."""
    import torch

    from harness import registry
    from harness.config import MixerConfig

    impl = registry.get(implementation)
    cfg = MixerConfig.from_dict(config)
    torch_dtype = parse_dtype(dtype)
    torch.manual_seed(0)
    mixer = impl.create(cfg).to(device=device, dtype=torch_dtype).eval()
    x = torch.randn(batch, seq_len, cfg.d_model, device=device, dtype=torch_dtype)
    with torch.no_grad():
        _, state = mixer.prefill(x)
    del x
    x_t = torch.randn(batch, cfg.d_model, device=device, dtype=torch_dtype)

    def step() -> Any:
        with torch.no_grad():
            return mixer.step(x_t, state)

    peak, method = peak_bytes(step, device)
    return {
        "state_bytes_analytic": impl.state_bytes(cfg, batch, seq_len, torch_dtype),
        "state_bytes_measured": float(storage_bytes(state)),
        "state_bytes_used": float(used_bytes(state)),
        "peak_memory_bytes": peak,
        "memory_method": method,
    }


# ---------------------------------------------------------------------------------------------
# in the parent: jobs from a preset


def build_jobs(preset: dict[str, Any], options: RunOptions, device: str) -> list[Job]:
    check_keys(f"memory preset {preset['name']!r}", preset, PRESET_KEYS)
    modes = checked(options.modes or preset.get("modes", ["fwd", "fwd_bwd", "decode"]), MODES, "memory mode")
    batches = list(options.batches) or [int(preset.get("batch", 1))]
    seq_lens = sorted(options.seq_lens or preset.get("seq_lens", [256]))
    state_seq_lens = sorted(options.seq_lens or preset.get("state_seq_lens", seq_lens))
    frontier = bool(preset.get("frontier", False)) and not options.seq_lens
    max_seq_len = int(preset.get("max_seq_len", max(seq_lens)))
    timeouts = options.timeouts(preset)
    # A frontier job measures many lengths: give its measurement phase the warm-up's generous limit.
    frontier_timeouts = {"warmup": timeouts["warmup"], "measure": timeouts["warmup"]}

    def jobs_of(cell: Cell) -> list[Job]:
        impl, cell_jobs = cell.impl, []
        for batch in batches:
            for mode in modes:
                base = {"implementation": impl.name, "device": device, "dtype": cell.dtype, "mode": mode}
                if mode == "decode":
                    for seq_len in filter(cell.fits, state_seq_lens):
                        params = {**base, "batch": batch, "seq_len": seq_len, "config": cell.config}
                        cell_jobs.append(Job(SUITE, impl.name, STATE_TARGET, params, timeouts))
                    continue
                lengths = [n for n in seq_lens if cell.fits(n)]
                if not lengths:
                    continue
                params = {
                    **base,
                    "level": "layer",
                    "batch": batch,
                    "seq_lens": lengths,
                    "config": cell.config,
                    "frontier": frontier and cell.max_seq_len is None,
                    "max_seq_len": max_seq_len,
                }
                cell_jobs.append(Job(SUITE, impl.name, PEAK_TARGET, params, frontier_timeouts))
        return cell_jobs

    return job_grid(preset, options, device, jobs_of)


def plan(options: RunOptions) -> SuitePlan:
    """The jobs of the preset the options name (or the machine's default), on its device."""
    device, preset = resolve_suite_device(SUITE, options)
    return SuitePlan(SUITE, device, build_jobs(preset, options, device))


command = suite_command(
    SUITE,
    plan,
    """Peak memory of inference and training steps versus sequence length, the out-of-memory frontier,
    and decoding state bytes (analytic and measured).""",
)


SUITE_RECORD = register(
    Suite(
        name=SUITE,
        title="Memory",
        columns={
            "peak_memory_bytes": FLOAT,  # above a reset baseline; float so that "not measured" is NaN
            "state_bytes_analytic": FLOAT,
            "state_bytes_measured": FLOAT,  # allocated: whole storages, spare capacity included
            "state_bytes_used": FLOAT,  # the part in use (a KV cache's filled positions)
            "memory_method": STRING,
            "probe": STRING,
            "searched_up_to_seq_len": INT,
            "oom_frontier_seq_len": INT,
        },
        report_order=20,
        plan=plan,
        command=command,
        targets=(PEAK_TARGET, STATE_TARGET),
        page="harness.report.pages.memory",
        bench_order=20,
        presets_dir=PRESETS_DIR / SUITE,
    )
)
