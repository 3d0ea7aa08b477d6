"""`seqbench run throughput`: time per call of each implementation, and what it means in tokens/s,
TFLOP/s and GB/s, over sweeps of batch and sequence length.

Modes (what one timed call is):
  fwd       forward(x) without autograd (inference)
  fwd_bwd   forward(x) then backward of a random output gradient: one training step of the layer
  prefill   prefill(x): the parallel form that also returns the decoding state
  decode    one step(x_t, state) at context length L (the state from a prefill of L tokens); tokens/s = B / time

Levels: `layer` times the whole mixer (projections, convolutions, norms, the core); `op` times the bare
core op (`Mixer.core_call(x).run()`: attention, selective scan, SSD, ...) on inputs prepared from x, fwd
and fwd_bwd only.

Sweeps (preset [[sweeps]]): `constant_tokens` (B·L = tokens: the same work in tokens, so linear-time
mixers stay flat and quadratic ones grow with L) and `fixed_batch` (B fixed, L grows).

Derived columns, from the implementation's analytic models (`Implementation.flops` / `min_bytes`, the
`core_*` models at op level): tokens_per_second, achieved_tflops = flops / time, achieved_gbps =
min_bytes / time, and (added by the runner) their fractions of the run's measured device ceilings.
"""

from __future__ import annotations

import gc
from typing import Any

from harness.config import MixerConfig
from harness.errors import ConfigError, UserError
from harness.execute import suite_command
from harness.interface import parse_dtype
from harness.job import Job
from harness.results import BOOL, FLOAT, FLOAT_LIST, INT, STRING
from harness.run_options import RunOptions, resolve_suite_device
from harness.suite import Suite, SuitePlan, register
from harness.timing import PRESET_TIMING_KEYS
from suites import PRESETS_DIR, check_keys
from suites.grid import GRID_PRESET_KEYS, Cell, checked, job_grid

SUITE = "throughput"
TARGET = "suites.throughput:measure_throughput"
MODES = ("fwd", "fwd_bwd", "prefill", "decode")
LEVELS = ("layer", "op")
OP_MODES = ("fwd", "fwd_bwd")
PRESET_KEYS = GRID_PRESET_KEYS | {"decode_timer", "levels", "op_modes", "sweeps", "timing"}


# ---------------------------------------------------------------------------------------------
# in the worker


def _first_tensor(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def workload(mixer: Any, x: Any, mode: str, level: str) -> tuple[Any, Any, int]:
    """(fn, setup, tokens): the call to time, what to run before each rep, tokens per call."""
    import torch

    from harness.interface import CoreCall
    from harness.worker import Unavailable

    batch, seq_len, _ = x.shape
    if level == "op":
        try:
            with torch.no_grad():
                call: CoreCall = mixer.core_call(x)
        except NotImplementedError as exc:
            raise Unavailable(str(exc) or f"{type(mixer).__name__} does not expose its core op") from exc
        if mode == "fwd":

            def run_core() -> Any:
                with torch.no_grad():
                    return call.run()

            return run_core, None, batch * seq_len
        # fwd_bwd: the floating-point inputs become leaves that need gradients.
        leaves = [a.detach().requires_grad_() if _is_float_tensor(a) else a for a in call.args]
        kwargs = {k: v.detach().requires_grad_() if _is_float_tensor(v) else v for k, v in call.kwargs.items()}
        grads_of = [t for t in [*leaves, *kwargs.values()] if _is_float_tensor(t)]
        output = _first_tensor(call.fn(*leaves, **kwargs))
        grad_output = torch.randn_like(output)
        del output

        def core_fwd_bwd() -> None:
            torch.autograd.backward(_first_tensor(call.fn(*leaves, **kwargs)), grad_output)

        def clear_core_grads() -> None:
            for t in [*grads_of, *mixer.parameters()]:  # the core may use the mixer's own parameters
                t.grad = None

        return core_fwd_bwd, clear_core_grads, batch * seq_len

    if mode == "fwd":
        mixer.eval()

        def forward() -> Any:
            with torch.no_grad():
                return mixer(x)

        return forward, None, batch * seq_len
    if mode == "fwd_bwd":
        mixer.train()
        x_leaf = x.detach().requires_grad_()
        grad_y = torch.randn_like(x)

        def forward_backward() -> None:
            mixer(x_leaf).backward(grad_y)

        def clear_grads() -> None:
            x_leaf.grad = None
            for p in mixer.parameters():
                p.grad = None

        return forward_backward, clear_grads, batch * seq_len
    if mode == "prefill":
        mixer.eval()

        def prefill() -> Any:
            with torch.no_grad():
                return mixer.prefill(x)

        return prefill, None, batch * seq_len
    if mode == "decode":
        mixer.eval()
        with torch.no_grad():
            _, state = mixer.prefill(x)
        x_t = torch.randn_like(x[:, 0])

        def step() -> Any:
            with torch.no_grad():
                return mixer.step(x_t, state)

        return step, None, batch
    raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")


def _is_float_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor) and value.is_floating_point()


def measure_throughput(
    implementation: str,
    device: str,
    dtype: str,
    mode: str,
    level: str,
    batch: int,
    seq_len: int,
    config: dict[str, Any],
    timing: dict[str, Any] | None = None,
    timer: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Runs in a worker: build, warm up, time; returns the throughput row."""
    import torch

    from harness import registry
    from harness.config import MixerConfig
    from harness.noise import cpu_count, load_average, noise_columns
    from harness.timing import measure

    gc.collect()
    impl = registry.get(implementation)
    cfg = MixerConfig.from_dict(config)
    torch_dtype = parse_dtype(dtype)
    torch.manual_seed(seed)
    mixer = impl.create(cfg).to(device=device, dtype=torch_dtype)
    x = torch.randn(batch, seq_len, cfg.d_model, device=device, dtype=torch_dtype)
    fn, setup, tokens = workload(mixer, x, mode, level)
    load_before = load_average()
    result = measure(fn, device, timer=timer, setup=setup, **(timing or {}))
    row = result.to_row()
    row.update(noise_columns(row, load_before, load_average(), cpu_count()))
    seconds = row["median_ms"] / 1e3
    core = level == "op"
    row["flops"] = _model(lambda: impl.flops(cfg, batch, seq_len, mode, core=core))
    row["min_bytes"] = _model(lambda: impl.min_bytes(cfg, batch, seq_len, mode, torch_dtype, core=core))
    row["tokens_per_second"] = tokens / seconds
    row["achieved_tflops"] = row["flops"] / seconds / 1e12
    row["achieved_gbps"] = row["min_bytes"] / seconds / 1e9
    return row


def _model(evaluate: Any) -> float:
    """An analytic model's value; NaN where the model does not cover this mode."""
    try:
        return float(evaluate())
    except (ValueError, NotImplementedError, KeyError):
        return float("nan")


# ---------------------------------------------------------------------------------------------
# in the parent: jobs from a preset


SWEEP_KEYS = {"shape", "tokens", "batch", "seq_lens", "implementations", "modes", "levels", "config"}


def sweep_points(
    sweeps: list[dict[str, Any]], seq_lens: tuple[int, ...] = (), batches: tuple[int, ...] = ()
) -> list[tuple[int, int]]:
    """(batch, seq_len) points of the preset's sweeps, in order, without repeats. --seq-len replaces
    each sweep's lengths; --batch turns every sweep into a fixed-batch sweep of those batches."""
    points: list[tuple[int, int]] = []
    for sweep in sweeps:
        points += [p for p in _points(sweep, seq_lens, batches) if p not in points]
    return points


def _points(sweep: dict[str, Any], seq_lens: tuple[int, ...], batches: tuple[int, ...]) -> list[tuple[int, int]]:
    check_keys("[[sweeps]]", sweep, SWEEP_KEYS)
    lengths = list(seq_lens) or list(sweep["seq_lens"])
    shape = sweep.get("shape", "fixed_batch")
    if batches:
        return [(b, n) for b in batches for n in lengths]
    if shape == "constant_tokens":
        return [(sweep["tokens"] // n, n) for n in lengths if sweep["tokens"] // n >= 1]
    if shape == "fixed_batch":
        return [(sweep["batch"], n) for n in lengths]
    raise UserError(f"unknown sweep shape {shape!r}; use constant_tokens or fixed_batch")


def _sweep_groups(preset: dict[str, Any], options: RunOptions) -> list[dict[str, Any]]:
    """The preset's sweeps merged into groups that share implementations, modes, levels and config.

    A plain sweep applies to every selected implementation with the preset's modes, levels and config.
    A sweep may narrow that (`implementations = [...]`, `modes`, `levels`) and override config fields
    (`config = {n_heads = 32}`, applied over the family's config): the anchors preset measures one
    implementation at several head dimensions this way."""
    groups: list[dict[str, Any]] = []
    for sweep in preset.get("sweeps", []):
        points = _points(sweep, options.seq_lens, options.batches)
        key = (
            tuple(sweep.get("implementations", ())),
            tuple(sweep.get("modes", ())),
            tuple(sweep.get("levels", ())),
            tuple(sorted(sweep.get("config", {}).items())),
        )
        for group in groups:
            if group["key"] == key:
                group["points"] += [p for p in points if p not in group["points"]]
                break
        else:
            groups.append({"key": key, "points": points, **{k: sweep.get(k) for k in SWEEP_KEYS}})
    return groups


def build_jobs(preset: dict[str, Any], options: RunOptions, device: str) -> list[Job]:
    check_keys(f"throughput preset {preset['name']!r}", preset, PRESET_KEYS)
    timing = dict(preset.get("timing", {}))
    check_keys("[timing]", timing, PRESET_TIMING_KEYS)
    preset_modes = checked(options.modes or preset.get("modes", ["fwd"]), MODES, "throughput mode")
    preset_levels = list(preset.get("levels", ["layer"]))
    op_modes = [m for m in preset.get("op_modes", OP_MODES) if m in OP_MODES]
    groups = _sweep_groups(preset, options)
    timeouts = options.timeouts(preset)
    # A CUDA-graph decode timer means nothing on a CPU (a GPU preset run with --device cpu).
    decode_timer = preset.get("decode_timer", "auto") if device.startswith("cuda") else "auto"

    def jobs_of(cell: Cell) -> list[Job]:
        impl, cell_jobs = cell.impl, []
        for group in groups:
            if group["implementations"] and impl.name not in group["implementations"]:
                continue
            config = _with_overrides(cell.config, group["config"] or {}, preset, impl.family)
            # --mode narrows a sweep's own modes too; it never adds modes a sweep left out.
            modes = [m for m in (group["modes"] or preset_modes) if not options.modes or m in options.modes]
            for level in group["levels"] or preset_levels:
                for mode in modes:
                    if level == "op" and mode not in op_modes:
                        continue
                    for batch, seq_len in group["points"]:
                        if not cell.fits(seq_len):
                            continue
                        params = {
                            "implementation": impl.name,
                            "device": device,
                            "dtype": cell.dtype,
                            "mode": mode,
                            "level": level,
                            "batch": batch,
                            "seq_len": seq_len,
                            "config": config,
                            "timing": timing,
                            "timer": decode_timer if mode == "decode" else "auto",
                        }
                        job = Job(SUITE, impl.name, TARGET, params, timeouts)
                        if all(job.job_id != other.job_id for other in cell_jobs):  # sweeps may share points
                            cell_jobs.append(job)
        return cell_jobs

    return job_grid(preset, options, device, jobs_of)


def _with_overrides(
    values: dict[str, Any], overrides: dict[str, Any], preset: dict[str, Any], family: str
) -> dict[str, Any]:
    """A family's config params with a sweep's overrides, validated as a MixerConfig."""
    if not overrides:
        return values
    merged = {**values, **overrides}
    try:
        MixerConfig.from_dict(merged)
    except ConfigError as exc:
        raise UserError(f"preset {preset.get('name')!r}, a sweep's config for {family}: {exc}") from exc
    return merged


def plan(options: RunOptions) -> SuitePlan:
    """The jobs of the preset the options name (or the machine's default), on its device."""
    device, preset = resolve_suite_device(SUITE, options)
    return SuitePlan(SUITE, device, build_jobs(preset, options, device))


command = suite_command(
    SUITE,
    plan,
    """Time every implementation's forward, training step, prefill and decode step over sweeps of
    batch and sequence length (tokens/s, TFLOP/s, GB/s, fraction of the device's measured peak).""",
)


SUITE_RECORD = register(
    Suite(
        name=SUITE,
        title="Throughput",
        columns={
            "median_ms": FLOAT,
            "p10_ms": FLOAT,
            "p90_ms": FLOAT,
            "mean_ms": FLOAT,
            "std_ms": FLOAT,
            "cv": FLOAT,
            "reps": INT,
            "samples_ms": FLOAT_LIST,  # every rep's time, for significance tests
            "compile_s": FLOAT,  # warm-up / compile / autotune, never in the statistics
            "timer": STRING,  # cuda_event | cuda_graph | host
            "flops": FLOAT,
            "min_bytes": FLOAT,
            "tokens_per_second": FLOAT,
            "achieved_tflops": FLOAT,
            "achieved_gbps": FLOAT,
            "frac_peak_tflops": FLOAT,
            "frac_peak_gbps": FLOAT,
            "warmup_calls": INT,
            # Noise (harness.noise): the spread or the host's load made the row untrustworthy
            "noisy": BOOL,
            "noise_reason": STRING,
            "load_avg_before": FLOAT,  # 1-minute load average before and after the measurement
            "load_avg_after": FLOAT,
            "cpu_count": INT,  # CPUs this process may use, the load average's yardstick
        },
        shown_columns=(
            "median_ms",
            "p10_ms",
            "p90_ms",
            "cv",
            "reps",
            "noisy",
            "noise_reason",
            "samples_ms",
            "compile_s",
            "timer",
            "tokens_per_second",
            "achieved_tflops",
            "achieved_gbps",
            "frac_peak_tflops",
            "frac_peak_gbps",
        ),
        report_order=10,
        plan=plan,
        command=command,
        targets=(TARGET,),
        page="harness.report.pages.throughput",
        bench_order=10,
        presets_dir=PRESETS_DIR / SUITE,
        timed=True,
    )
)
