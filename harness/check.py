"""`seqbench check`: does each implementation compute its family reference's function?

For one implementation, on fresh random weights and inputs (seeded):
  parallel   forward(x) of the implementation vs forward(x) of the reference,
  recurrent  a loop of step() over x vs the reference forward (parallel form == recurrent form),
  prefill    prefill() of the first half, then step() over the rest, vs the reference forward.
The reference runs in float64 on the CPU and in float32 (TF32 off) on a GPU; the error is the RMS
ratio, compared with the tolerance of the dtype under test (harness.numerics).

Each implementation runs inside an isolated worker (on a GPU several workers at once): a kernel that
aborts the process (a compiler assertion, a segfault) becomes a failed row with its reason,
and the other checks go on.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import asdict, dataclass
from typing import Any

import torch

from harness import registry
from harness.config import MixerConfig
from harness.interface import Implementation, dtype_name, parse_dtype, run_recurrent
from harness.numerics import rms_ratio, tolerance
from harness.worker import Worker

TESTS = ("parallel", "recurrent", "prefill")

# Small sizes: the check is about the function, not speed. Multiples of 64 suit every chunked kernel.
DEFAULT_CONFIG = {"cpu": MixerConfig(d_model=64, n_heads=4), "cuda": MixerConfig(d_model=256, n_heads=4)}
DEFAULT_SEQ_LEN = {"cpu": 64, "cuda": 256}
DEFAULT_BATCH = 2
DTYPE_PREFERENCE = {
    "cpu": (torch.float64, torch.float32),
    "cuda": (torch.bfloat16, torch.float16, torch.float32),
}
CHECK_TIMEOUTS_S = {"start": 900.0}  # first calls compile and autotune Triton kernels
GPU_WORKERS = 8  # processes checking at once on a GPU


@dataclass
class CheckRow:
    implementation: str
    family: str
    backend: str
    device: str
    dtype: str
    test: str
    rms_ratio: float
    tolerance: float
    passed: bool
    status: str  # ok | failed | error | crash | timeout | oom | unavailable
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_dtype(impl: Implementation, device: str) -> torch.dtype | None:
    for dtype in DTYPE_PREFERENCE[torch.device(device).type]:
        if dtype in impl.dtypes:
            return dtype
    return None


def reference_dtype(device: str) -> torch.dtype:
    return torch.float64 if torch.device(device).type == "cpu" else torch.float32


def compare_with_reference(
    name: str, device: str, dtype: str, config: dict[str, Any], batch: int, seq_len: int, seed: int
) -> list[dict[str, Any]]:
    """Runs inside a worker: build both mixers with shared weights and compare the three forms."""
    impl = registry.get(name)
    reference = registry.get(impl.reference_name)
    cfg = MixerConfig.from_dict(config)
    test_dtype, ref_dtype = parse_dtype(dtype), reference_dtype(device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    torch.manual_seed(seed)
    ref_mixer = reference.create(cfg).to(device=device, dtype=ref_dtype).eval()
    mixer = impl.create(cfg).to(device=device, dtype=test_dtype).eval()
    mixer.load_reference_weights(ref_mixer)

    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    x_ref = torch.randn(batch, seq_len, cfg.d_model, generator=generator, dtype=torch.float64)
    x_ref = x_ref.to(device=device, dtype=ref_dtype)
    x = x_ref.to(test_dtype)
    half = seq_len // 2

    with torch.no_grad():
        expected = ref_mixer(x_ref)
        outputs = {"parallel": lambda: mixer(x), "recurrent": lambda: run_recurrent(mixer, x)}

        def prefill_then_step() -> torch.Tensor:
            y_first, state = mixer.prefill(x[:, :half])
            rest = []
            for t in range(half, seq_len):
                y_t, state = mixer.step(x[:, t], state)
                rest.append(y_t)
            return torch.cat([y_first, torch.stack(rest, dim=1)], dim=1)

        outputs["prefill"] = prefill_then_step
        rows = []
        limit = tolerance(test_dtype)
        for test in TESTS:
            try:
                error = rms_ratio(outputs[test](), expected)
                status, reason = ("ok", "") if error <= limit else ("failed", f"rms ratio {error:.3g} > {limit:g}")
            except Exception as exc:  # one form failing must not hide the others
                error, status, reason = float("nan"), "error", f"{type(exc).__name__}: {exc}".splitlines()[0]
            rows.append(
                CheckRow(
                    impl.name,
                    impl.family,
                    impl.backend,
                    device,
                    dtype,
                    test,
                    error,
                    limit,
                    status == "ok",
                    status,
                    reason,
                ).to_dict()
            )
    return rows


def _failed_rows(impl: Implementation, device: str, dtype: str, status: str, reason: str) -> list[CheckRow]:
    return [
        CheckRow(
            impl.name, impl.family, impl.backend, device, dtype, test, float("nan"), float("nan"), False, status, reason
        )
        for test in TESTS
    ]


def run_checks(
    impls: list[Implementation],
    device: str = "cpu",
    dtypes: tuple[torch.dtype, ...] = (),
    config: MixerConfig | None = None,
    batch: int = DEFAULT_BATCH,
    seq_len: int | None = None,
    seed: int = 0,
    progress: Any = None,
    workers: int | None = None,
) -> tuple[list[CheckRow], list[tuple[Implementation, str]]]:
    """Check every implementation that can run here. Returns (rows in the order of `impls`, skipped with
    reasons). `workers` worker processes (default: one on CPU, where they would share two cores;
    GPU_WORKERS on a GPU) each take the next implementation to check until none is left: a check reads
    no clock, and on an H100 one process took 58 s for 30 implementations, one after another."""
    kind = torch.device(device).type
    config = config or DEFAULT_CONFIG[kind]
    seq_len = seq_len or DEFAULT_SEQ_LEN[kind]
    skipped: list[tuple[Implementation, str]] = []
    calls: list[tuple[Implementation, torch.dtype]] = []
    for impl in impls:
        for dtype in list(dtypes) or [default_dtype(impl, device)]:
            availability = impl.availability(device, dtype)
            if dtype is None or not availability:
                skipped.append((impl, availability.reason or f"no supported dtype on {kind}"))
            else:
                calls.append((impl, dtype))
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(calls)):
        pending.put(index)
    by_call: dict[int, list[CheckRow]] = {}

    def check_until_done() -> None:
        with Worker() as worker:
            while True:
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                impl, dtype = calls[index]
                if progress is not None:
                    progress(impl, dtype)
                by_call[index] = _check_one(worker, impl, device, dtype, config, batch, seq_len, seed)

    count = max(1, min(workers or (1 if kind == "cpu" else GPU_WORKERS), len(calls)))
    threads = [threading.Thread(target=check_until_done, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(by_call) != len(calls):  # a thread died of a bug (a job's failure is a row, never an exception)
        raise RuntimeError(f"checked {len(by_call)} of {len(calls)} implementations; see the errors above")
    rows = [row for index in sorted(by_call) for row in by_call[index]]
    return rows, skipped


def _check_one(
    worker: Worker,
    impl: Implementation,
    device: str,
    dtype: torch.dtype,
    config: MixerConfig,
    batch: int,
    seq_len: int,
    seed: int,
) -> list[CheckRow]:
    kwargs = {
        "name": impl.name,
        "device": device,
        "dtype": dtype_name(dtype),
        "config": {**config.__dict__},
        "batch": batch,
        "seq_len": seq_len,
        "seed": seed,
    }
    outcome = worker.call("harness.check:compare_with_reference", kwargs, CHECK_TIMEOUTS_S)
    if outcome.status == "ok":
        return [CheckRow(**row) for row in outcome.value]
    return _failed_rows(impl, device, dtype_name(dtype), outcome.status, outcome.reason)
