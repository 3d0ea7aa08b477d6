"""`seqbench run profile`: where a step's time goes, kernel by kernel, and which part of the mixer
(projection, convolution, core, norm, gating) each kernel belongs to.

For each job (implementation × dtype × mode × batch × seq_len) the worker builds the same step the
throughput suite times (`suites.throughput.workload`: fwd, fwd_bwd, prefill or decode), then:

  1. times it unprofiled (`harness.timing.measure`, CUDA events with the L2 flushed, or the host clock
     on CPU): warm-up (compilation, autotuning) happens here, and the median is `step_wall_time_us`;
     CUDA graphs are never used, so the launch overhead stays in the wall time;
  2. runs `profiled_steps` more steps under torch.profiler (CPU + CUDA activities) after one profiler warm-up
     step, each inside a `seqbench::step` range ended by a device synchronisation; the trace is written
     by `torch.profiler.tensorboard_trace_handler` (a `*.pt.trace.json`: Perfetto and tensorboard with
     torch-tb-profiler both open it) under `<results>-logs/traces/<run_id>/<job_id>/`;
  3. turns the events inside the step ranges into one row per (kernel, part): `calls`, `device_time_us`
     and `self_device_time_us` (per step), `share` of the step's device time, and per job
     `step_device_time_us` (the sum of every kernel's time), `launches` (kernels per step) and
     `host_gap_us` = step_wall_time_us - step_device_time_us: time the device was not running one of
     the step's kernels (launch overhead, host-bound Python; negative when kernels overlap on several
     streams, or on CPU when profiling overhead outweighs the Python between ops).

On CUDA a row is a device activity (kernel, memcpy, memset): its total and self time are the same
(kernels do not nest). On CPU a row is an operator (aten::mm, ...): `device_time_us` is its inclusive
time, `self_device_time_us` its time without the operators it called; shares use self time, so they sum
to 1 over a job's rows on both devices.

Parts. Mixers mark their parts with `harness.interface.part(name)`, a `record_function` range named
`seqbench::<name>`. A CUDA kernel is attributed to the CPU operator that launched it through the
profiler's correlation ids (the kernel's linked correlation id is the id of the enclosing operator, or of
the innermost range where no operator encloses the launch, e.g. a Triton kernel); the innermost
`seqbench::` range above that operator is the part. Backward kernels run outside those ranges (after
the forward, on CUDA in autograd's own thread), so they inherit the part of the forward operator that
created their autograd node: `autograd::engine::evaluate_function: XBackward` carries the forward op's
sequence number and thread. Anything else is `other` (the loss seed, gradient accumulation, a
library that marks no parts).

Roofline of the core: on the row of the largest kernel in part `core`, `flops` and `min_bytes` are the
implementation's analytic core models (`Implementation.flops(..., core=True)`, `min_bytes(..., core=True)`)
and `achieved_tflops` / `achieved_gbps` divide them by the device time of the whole core part
(`core_device_time_us`: the models count the whole core op, which may take several kernels;
`core_kernel_share` says how much of it the dominant kernel covers). The runner adds their fractions of
the run's measured ceilings (`frac_peak_tflops`, `frac_peak_gbps`).
"""

from __future__ import annotations

import bisect
import gc
import glob
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError
from harness.execute import suite_command
from harness.interface import PARTS, parse_dtype
from harness.job import Job
from harness.results import FLOAT, INT, STRING
from harness.run_options import RunOptions, resolve_suite_device
from harness.suite import Suite, SuitePlan, register
from harness.timing import PRESET_TIMING_KEYS
from suites import PRESETS_DIR, check_keys
from suites.grid import GRID_PRESET_KEYS, Cell, checked, job_grid

SUITE = "profile"
TARGET = "suites.profile:profile_job"
MODES = ("fwd", "fwd_bwd", "prefill", "decode")
LEVELS = ("layer", "op")
OP_MODES = ("fwd", "fwd_bwd")
DEFAULT_STEPS = 3
SUMMARY_MAX_JOBS = 12  # `seqbench run profile` prints the top kernels itself up to this many jobs
# The worker learns where traces go from its environment (set per run by `command`), so that the
# trace location never enters the job's params and job ids stay the same from run to run.
TRACE_DIR_ENV = "SEQBENCH_PROFILE_TRACE_DIR"
STEP_RANGE = "seqbench::step"
PART_PREFIX = "seqbench::"
OTHER_PART = "other"
PRESET_KEYS = GRID_PRESET_KEYS | {"batch", "levels", "profiled_steps", "seq_lens", "timing"}


# ---------------------------------------------------------------------------------------------
# kernel names

_SHORT_NAME_MAX = 72
# Kernels whose own name says nothing: their first template argument names the real kernel.
_WRAPPER_KERNELS = {"Kernel", "Kernel2", "device_kernel", "enable_sm80_to_sm89", "enable_sm90_or_later"}
# Functor templates that wrap the functor worth naming (BinaryFunctor<..., MulFunctor<float>>).
_WRAPPER_FUNCTORS = {"BinaryFunctor", "AUnaryFunctor", "BUnaryFunctor", "UnaryFunctor", "func_wrapper_t"}
_FUNCTOR = re.compile(r"\b(\w*(?:Functor|functor)\w*)")
_ITERATOR_KERNEL = re.compile(r"(\w+)\(at::TensorIterator(?:Base)?&\)")


def _split_template(name: str) -> tuple[str, str]:
    """('outer name with every <...> removed', 'text of the first top-level <...>')."""
    outer, first, depth, current = [], None, 0, []
    for char in name:
        if char == "<":
            depth += 1
            if depth == 1:
                current = []
                continue
        elif char == ">" and depth > 0:
            depth -= 1
            if depth == 0:
                first = "".join(current) if first is None else first
                continue
        if depth == 0:
            outer.append(char)
        else:
            current.append(char)
    return "".join(outer), first or ""


def _base_name(name: str) -> tuple[str, str]:
    """(the function's own name, its namespace path) of a demangled signature, templates removed."""
    name = name.replace("(anonymous namespace)::", "")
    outer, first_template = _split_template(name)
    signature = outer.split("(", 1)[0].strip()  # drop the argument list
    qualified = signature.split()[-1] if signature.split() else signature  # drop the return type
    parts = [p for p in qualified.split("::") if p]
    if not parts:
        return name.strip(), ""
    base = parts[-1]
    if base in _WRAPPER_KERNELS and first_template:
        inner, _ = _base_name(first_template.split(",")[0])
        if inner:
            return inner, ""
    return base, "::".join(parts[:-1])


def short_kernel_name(name: str) -> str:
    """A readable name for a kernel or operator: no return type, namespaces, template arguments or
    parameters; an ATen elementwise/reduce kernel keeps the functor it runs, in brackets.

    'void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, ...>(int, ...)'
    -> 'vectorized_elementwise_kernel[FillFunctor]'; 'aten::mm' -> 'mm'; 'Memcpy DtoD (Device -> Device)'
    -> 'Memcpy DtoD'."""
    name = name.strip()
    if name.startswith(("Memcpy", "Memset")):
        return name.split(" (", 1)[0]
    if ": " in name and "<" not in name:  # autograd::engine::evaluate_function: MmBackward0
        head, tail = name.split(": ", 1)
        return f"{head.split('::')[-1]}: {tail}"
    base, namespace = _base_name(name)
    if base in ("kernel", "Kernel") and namespace:
        base = f"{namespace.split('::')[-1]}::{base}"
    if "<" in name and ("elementwise" in base or "reduce" in base or "vectorized" in base):
        functors = [f for f in _FUNCTOR.findall(name) if f not in _WRAPPER_FUNCTORS]
        iterator_kernel = _ITERATOR_KERNEL.search(name)
        what = functors[0] if functors else (iterator_kernel.group(1) if iterator_kernel else "")
        if what:
            base = f"{base}[{what}]"
    if len(base) > _SHORT_NAME_MAX:
        base = base[: _SHORT_NAME_MAX - 1] + "…"
    return base


# ---------------------------------------------------------------------------------------------
# attribution: events -> samples (one kernel execution or one operator call, with its part)


@dataclass(frozen=True)
class Sample:
    name: str
    part: str
    time_us: float  # inclusive: a kernel's duration, an operator's time with its callees
    self_time_us: float  # without callees (a kernel: its duration)


def _is_device_event(event: Any) -> bool:
    from torch.autograd import DeviceType

    return event.device_type in (DeviceType.CUDA, getattr(DeviceType, "HIP", DeviceType.CUDA))


def _is_annotation(event: Any) -> bool:
    """A record_function range (ours, a library's, ProfilerStep#n), not work: on CPU its self time is the
    Python between operators; on the device it is a copy of the CPU range (gpu_user_annotation)."""
    return bool(getattr(event, "is_user_annotation", False)) or event.name.startswith((PART_PREFIX, "ProfilerStep"))


def _enclosing_part(event: Any) -> str | None:
    """The innermost `seqbench::<part>` range around `event` (itself included), if any."""
    node = event
    while node is not None:
        if node.name.startswith(PART_PREFIX) and node.name[len(PART_PREFIX) :] in PARTS:
            return node.name[len(PART_PREFIX) :]
        node = node.cpu_parent
    return None


class PartResolver:
    """The part of a CPU event: its enclosing `seqbench::` range, or for backward work the part of the
    forward operator whose autograd node it evaluates (matched by (thread, sequence number))."""

    def __init__(self, cpu_events: Iterable[Any]) -> None:
        self.forward_parts: dict[tuple[int, int], str] = {}
        for event in cpu_events:
            if getattr(event, "sequence_nr", -1) >= 0:
                part = _enclosing_part(event)
                if part is not None:
                    self.forward_parts.setdefault((event.thread, event.sequence_nr), part)

    def part(self, event: Any) -> str:
        part = _enclosing_part(event)
        if part is not None:
            return part
        node = event
        while node is not None:
            if node.name.startswith("autograd::engine::evaluate_function") and node.sequence_nr >= 0:
                return self.forward_parts.get((node.fwd_thread, node.sequence_nr), OTHER_PART)
            node = node.cpu_parent
        return OTHER_PART


class StepWindows:
    """The host-time intervals of the profiled steps (`seqbench::step` ranges)."""

    def __init__(self, events: Iterable[Any]) -> None:
        spans = sorted((e.time_range.start, e.time_range.end) for e in events if e.name == STEP_RANGE)
        self.starts = [start for start, _ in spans]
        self.ends = [end for _, end in spans]

    def __len__(self) -> int:
        return len(self.starts)

    def contains(self, time_us: float) -> bool:
        index = bisect.bisect_right(self.starts, time_us) - 1
        return index >= 0 and time_us <= self.ends[index]


def _linked_id(event: Any) -> int | None:
    value = getattr(event, "linked_correlation_id", None)
    return None if value is None else int(value)


def cpu_samples(events: list[Any]) -> tuple[list[Sample], int]:
    """(one sample per operator call inside a step, number of steps)."""
    cpu = [e for e in events if not _is_device_event(e)]
    windows = StepWindows(cpu)
    resolver = PartResolver(cpu)
    samples = [
        Sample(e.name, resolver.part(e), e.cpu_time_total, e.self_cpu_time_total)
        for e in cpu
        if not _is_annotation(e) and not getattr(e, "is_async", False) and windows.contains(e.time_range.start)
    ]
    return samples, len(windows)


def cuda_samples(events: list[Any]) -> tuple[list[Sample], int]:
    """(one sample per device activity launched inside a step, number of steps).

    A kernel's parent op: the CPU event whose id is the kernel's linked correlation id (the operator, or
    range, that enclosed the launch). Without that attribute (older torch), the runtime call that launched
    it (same correlation id as the kernel) and that call's parent in the CPU event tree."""
    cpu = [e for e in events if not _is_device_event(e)]
    windows = StepWindows(cpu)
    resolver = PartResolver(cpu)
    frontend: dict[int, Any] = {}
    runtime: dict[int, Any] = {}
    for event in cpu:
        linked = _linked_id(event)
        if linked is None:  # no linked ids: tell runtime calls by name (cudaLaunchKernel, cuLaunchKernelEx, ...)
            (runtime if event.name.startswith("cu") else frontend).setdefault(event.id, event)
        elif linked > 0:
            runtime.setdefault(event.id, event)
        else:
            frontend.setdefault(event.id, event)
    samples = []
    for kernel in events:
        if not _is_device_event(kernel) or _is_annotation(kernel):
            continue
        parent = frontend.get(_linked_id(kernel) or -1)
        launched_at = parent.time_range.start if parent is not None else None
        if parent is None and kernel.id in runtime:
            call = runtime[kernel.id]
            parent, launched_at = call.cpu_parent, call.time_range.start
        if launched_at is None:
            launched_at = kernel.time_range.start
        if not windows.contains(launched_at):
            continue  # outside the steps: the L2 flush, gradient clearing, the profiler's warm-up
        duration = kernel.time_range.end - kernel.time_range.start
        part = resolver.part(parent) if parent is not None else OTHER_PART
        samples.append(Sample(kernel.name, part, duration, duration))
    return samples, len(windows)


# ---------------------------------------------------------------------------------------------
# samples -> rows


def kernel_rows(samples: list[Sample], steps: int, step_wall_time_us: float) -> list[dict[str, Any]]:
    """One row per (kernel, part), largest self time first, every time per step (see module docstring)."""
    if steps < 1 or not samples:
        raise RuntimeError(f"the profile recorded no kernels inside {steps} step range(s)")
    groups: dict[tuple[str, str], list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.name, sample.part), []).append(sample)
    total_self_us = sum(s.self_time_us for s in samples)
    step_device_us = total_self_us / steps
    launches = len(samples) / steps
    rows = []
    for (name, part), members in groups.items():
        self_us = sum(s.self_time_us for s in members)
        rows.append(
            {
                "kernel_name": name,
                "kernel_short": short_kernel_name(name),
                "part": part,
                "calls": round(len(members) / steps),
                "device_time_us": sum(s.time_us for s in members) / steps,
                "self_device_time_us": self_us / steps,
                "share": self_us / total_self_us if total_self_us > 0 else 1.0 / len(groups),
                "step_device_time_us": step_device_us,
                "step_wall_time_us": step_wall_time_us,
                "launches": round(launches),
                "host_gap_us": step_wall_time_us - step_device_us,
                "profiled_steps": steps,
            }
        )
    rows.sort(key=lambda row: (-row["self_device_time_us"], row["kernel_name"]))
    for rank, row in enumerate(rows, start=1):
        row["kernel_rank"] = rank
    return rows


def add_core_roofline(rows: list[dict[str, Any]], flops: float, min_bytes: float) -> None:
    """Put the core's analytic FLOPs and bytes, and the rates they imply over the core part's device
    time, on the row of the core's largest kernel (no row when the mixer marks no core)."""
    core = [row for row in rows if row["part"] == "core"]
    if not core:
        return
    core_us = sum(row["self_device_time_us"] for row in core)
    dominant = max(core, key=lambda row: row["self_device_time_us"])
    seconds = core_us / 1e6
    dominant.update(
        flops=flops,
        min_bytes=min_bytes,
        core_device_time_us=core_us,
        core_kernel_share=dominant["self_device_time_us"] / core_us if core_us > 0 else float("nan"),
        achieved_tflops=flops / seconds / 1e12 if seconds > 0 else float("nan"),
        achieved_gbps=min_bytes / seconds / 1e9 if seconds > 0 else float("nan"),
    )


# ---------------------------------------------------------------------------------------------
# profiling one step


def _device_kind(device: str) -> str:
    return device.split(":")[0]


def _synchronize(device: str) -> None:
    import torch

    if _device_kind(device) == "cuda":
        torch.cuda.synchronize(device)


def record_profile(
    fn: Callable[[], Any],
    setup: Callable[[], Any] | None,
    device: str,
    steps: int,
    trace_dir: Path,
    worker_name: str,
) -> tuple[list[Any], Path | None]:
    """Profile `steps` calls of `fn` (after one profiler warm-up call) and write the trace. Returns
    the profiler's events and the trace file. Caches are flushed before each step as when timing."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function, schedule, tensorboard_trace_handler

    from harness.timing import l2_flush_buffer

    cuda = _device_kind(device) == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    flush = l2_flush_buffer(torch.device(device)) if cuda else None
    trace_dir.mkdir(parents=True, exist_ok=True)
    with profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=1, active=steps, repeat=1),
        on_trace_ready=tensorboard_trace_handler(str(trace_dir), worker_name=worker_name),
    ) as profiler:
        for _ in range(steps + 1):
            if setup is not None:
                setup()
            if flush is not None:
                flush.zero_()
            _synchronize(device)
            with record_function(STEP_RANGE):
                fn()
                _synchronize(device)  # inside the range: the step's kernels all finish within it
            profiler.step()
    traces = sorted(glob.glob(str(trace_dir / f"{glob.escape(worker_name)}.*.pt.trace.json*")), key=os.path.getmtime)
    return list(profiler.events()), (Path(traces[-1]) if traces else None)


def profile_workload(
    fn: Callable[[], Any],
    setup: Callable[[], Any] | None,
    device: str,
    steps: int,
    trace_dir: Path,
    worker_name: str,
    timing: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Warm up and time `fn` unprofiled, then profile it: the rows of one job (no roofline yet)."""
    from harness.timing import measure
    from harness.worker import report_phase

    cuda = _device_kind(device) == "cuda"
    wall = measure(fn, device, timer="cuda_event" if cuda else "host", setup=setup, **(timing or {}))
    report_phase("profile")  # a phase of its own: large traces take a while to parse
    events, trace = record_profile(fn, setup, device, steps, trace_dir, worker_name)
    samples, steps_seen = (cuda_samples if cuda else cpu_samples)(events)
    rows = kernel_rows(samples, steps_seen, wall.median_ms * 1e3)
    for row in rows:
        row["trace_path"] = str(trace) if trace is not None else None
        row["compile_s"] = wall.compile_s
    return rows


def _in_core(fn: Callable[[], Any]) -> Callable[[], Any]:
    """An op-level call (the bare core op) marked as the core, so its kernels are attributed to it."""
    from harness.interface import part

    def call() -> Any:
        with part("core"):
            return fn()

    return call


def trace_worker_name(implementation: str, mode: str, dtype: str, batch: int, seq_len: int, level: str) -> str:
    """The trace file's prefix: tensorboard's profiler plugin shows it as the worker."""
    name = f"{implementation}_{level}_{mode}_{dtype}_B{batch}_L{seq_len}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _model(evaluate: Callable[[], float]) -> float:
    """An analytic model's value; NaN where the model does not cover this mode."""
    try:
        return float(evaluate())
    except (ValueError, NotImplementedError, KeyError):
        return float("nan")


def profile_mixer(
    implementation: str,
    device: str,
    dtype: str,
    mode: str,
    level: str,
    batch: int,
    seq_len: int,
    config: dict[str, Any],
    trace_dir: str | Path,
    profiled_steps: int = DEFAULT_STEPS,
    timing: dict[str, Any] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Build the implementation, then profile one step of `mode` (see the module docstring)."""
    import torch

    from harness import registry
    from harness.config import MixerConfig
    from suites.throughput import workload

    gc.collect()
    impl = registry.get(implementation)
    cfg = MixerConfig.from_dict(config)
    torch_dtype = parse_dtype(dtype)
    torch.manual_seed(seed)
    mixer = impl.create(cfg).to(device=device, dtype=torch_dtype)
    x = torch.randn(batch, seq_len, cfg.d_model, device=device, dtype=torch_dtype)
    fn, setup, _ = workload(mixer, x, mode, level)
    if level == "op":
        fn = _in_core(fn)
    name = trace_worker_name(implementation, mode, dtype, batch, seq_len, level)
    rows = profile_workload(fn, setup, device, profiled_steps, Path(trace_dir), name, timing)
    flops = _model(lambda: impl.flops(cfg, batch, seq_len, mode, core=True))
    min_bytes = _model(lambda: impl.min_bytes(cfg, batch, seq_len, mode, torch_dtype, core=True))
    add_core_roofline(rows, flops, min_bytes)
    return rows


def job_trace_dir(params: dict[str, Any], trace_root: str | Path) -> Path:
    """<trace_root>/<job_id>: the job id is the one the runner gives the job's rows."""
    return Path(trace_root) / Job(SUITE, params["implementation"], TARGET, params).job_id


def profile_job(**params: Any) -> list[dict[str, Any]]:
    """The worker's entry point: `params` are exactly the job's params; traces go under the run's trace
    directory (environment variable SEQBENCH_PROFILE_TRACE_DIR, set by `seqbench run profile`)."""
    trace_root = os.environ.get(TRACE_DIR_ENV) or str(Path("results-logs") / "traces" / "unnamed-run")
    return profile_mixer(trace_dir=job_trace_dir(params, trace_root), **params)


# ---------------------------------------------------------------------------------------------
# in the parent: jobs from a preset


def build_jobs(preset: dict[str, Any], options: RunOptions, device: str) -> list[Job]:
    check_keys(f"profile preset {preset['name']!r}", preset, PRESET_KEYS)
    timing = dict(preset.get("timing", {}))
    check_keys("[timing]", timing, PRESET_TIMING_KEYS)
    modes = checked(options.modes or preset.get("modes", ["fwd", "fwd_bwd", "decode"]), MODES, "profile mode")
    levels = checked(preset.get("levels", ["layer"]), LEVELS, "profile level")
    steps = preset.get("profiled_steps", DEFAULT_STEPS)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise UserError(f"profile preset {preset['name']!r}: profiled_steps must be a positive integer, got {steps!r}")
    batches = list(options.batches) or [int(preset.get("batch", 1))]
    seq_lens = list(options.seq_lens or preset.get("seq_lens", [256]))
    timeouts = options.timeouts(preset)

    def jobs_of(cell: Cell) -> list[Job]:
        impl, cell_jobs = cell.impl, []
        for level in levels:
            for mode in modes:
                if level == "op" and mode not in OP_MODES:
                    continue
                for batch in batches:
                    for seq_len in filter(cell.fits, seq_lens):
                        params = {
                            "implementation": impl.name,
                            "device": device,
                            "dtype": cell.dtype,
                            "mode": mode,
                            "level": level,
                            "batch": batch,
                            "seq_len": seq_len,
                            "config": cell.config,
                            "profiled_steps": steps,
                            "timing": timing,
                        }
                        cell_jobs.append(Job(SUITE, impl.name, TARGET, params, timeouts))
        return cell_jobs

    return job_grid(preset, options, device, jobs_of)


def trace_root(results_dir: str | Path, run_id: str) -> Path:
    """Beside the results, not in them: a trace inside the folder would break Parquet dataset readers."""
    from harness.results import sidecar_dir

    return sidecar_dir(results_dir) / "traces" / run_id


def plan(options: RunOptions) -> SuitePlan:
    """The jobs of the preset the options name (or the machine's default); workers write their traces
    under RESULTS-logs/traces/<run>/."""
    device, preset = resolve_suite_device(SUITE, options)
    return SuitePlan(
        SUITE,
        device,
        build_jobs(preset, options, device),
        worker_env=lambda results_dir, run_id: {TRACE_DIR_ENV: str(trace_root(results_dir, run_id))},
        after=_print_after,
    )


def _print_after(summary: Any) -> None:
    """The top kernels of a small run, and where the summary and the traces are."""
    from harness.commands.options import make_console
    from harness.commands.profile_summary import print_top_kernels

    ok = [row for row in summary.rows if row.get("status") == "ok"]
    if not ok:
        return
    if len({row["job_id"] for row in ok}) <= SUMMARY_MAX_JOBS:
        print_top_kernels(ok, make_console(), top=5)
    traces = trace_root(summary.results_dir, summary.run_id)
    click.echo(f"top kernels: seqbench profile-summary {summary.run_dir}")
    click.echo(f"traces: {traces} (tensorboard --logdir {traces}, or open a *.pt.trace.json in ui.perfetto.dev)")


command = suite_command(
    SUITE,
    plan,
    """Profile one step of each implementation kernel by kernel: time per kernel and per mixer part
    (projection, convolution, core, norm, gating), launch overhead, the core's roofline position, and a
    trace per job (Perfetto / tensorboard) under RESULTS-logs/traces/<run>/<job>/.""",
)


SUITE_RECORD = register(
    Suite(
        name=SUITE,
        title="Profile",
        columns={
            "kernel_name": STRING,
            "kernel_short": STRING,
            "part": STRING,  # projection | convolution | core | norm | gating | other
            "calls": INT,
            "device_time_us": FLOAT,
            "self_device_time_us": FLOAT,
            "share": FLOAT,
            "step_device_time_us": FLOAT,
            "step_wall_time_us": FLOAT,
            "launches": INT,
            "host_gap_us": FLOAT,
            "trace_path": STRING,
            "core_device_time_us": FLOAT,
            "core_kernel_share": FLOAT,
            "kernel_rank": INT,
            "profiled_steps": INT,
        },
        shown_columns=(
            "kernel_short",
            "part",
            "calls",
            "device_time_us",
            "self_device_time_us",
            "share",
            "step_device_time_us",
            "step_wall_time_us",
            "launches",
            "host_gap_us",
            "trace_path",
            "kernel_name",
        ),
        report_order=30,
        plan=plan,
        command=command,
        targets=(TARGET,),
        page="harness.report.pages.profile",
        # Last in each family's process: torch.profiler must not slow the timed suites' jobs.
        bench_order=40,
        presets_dir=PRESETS_DIR / SUITE,
    )
)
