"""Timing of one callable: warm-up apart, then reps until the estimate is tight or the budget is spent.

    timing = measure(lambda: mixer(x), device="cuda")
    timing.median_ms, timing.compile_s, timing.samples_ms

Warm-up runs the call until two consecutive wall times (device synchronised) agree within
`warmup_agreement`: compilation and autotuning are then done. The warm-up's excess over steady state
(sum over warm-up calls of time minus the measured median) is `compile_s`, never part of the statistics.
On CUDA, ~`settle_s` of untimed back-to-back calls follow, so the timed reps see the clocks of sustained
work rather than of a GPU rested by the warm-up's synchronisations.

Reps, by timer:
  cuda_event  a CUDA event pair around each rep; before each rep the L2 cache is flushed by writing a
              256 MB buffer (H100 L2 is 50 MB), so no rep reads inputs the previous one left in cache.
              Reps are queued in rounds and read after one synchronisation (no host sync per rep),
              the same method as triton.testing.do_bench.
  cuda_graph  the call captured once in a CUDA graph, each rep one replay between events (for decode
              steps, where kernel launch overhead would dominate); falls back to cuda_event, saying why,
              if the call cannot be captured.
  host        time.perf_counter_ns around each rep (CPU: every op is synchronous); no cache flush
              (writing 256 MB per rep would cost more than the tiny CPU sizes measured).

Stopping: at least `min_reps` reps and `min_time_s` of measured time, then stop once the relative
standard error of the mean (std / mean / sqrt(n)) is at most `target_rel_error`; stop anyway when the
budget is spent (after at least 3 reps) or at `max_reps`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.worker import report_phase

TIMERS = ("cuda_event", "cuda_graph", "host")
L2_FLUSH_BYTES = 256 * 1024 * 1024
# The options of `measure` that a preset's [timing] table may set (suites pass the table on as it is).
PRESET_TIMING_KEYS = frozenset(
    {
        "budget_s",
        "min_reps",
        "max_reps",
        "min_time_s",
        "target_rel_error",
        "warmup_agreement",
        "warmup_max_calls",
        "warmup_budget_s",
        "settle_s",
    }
)
HARD_MIN_REPS = 3
ROUND_MAX = 25  # reps queued between two synchronisations


def summarize(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    """Median, p10, p90 (linear interpolation between order statistics), mean, std (n-1), cv, reps."""
    samples = np.asarray(samples_ms, dtype=np.float64)
    n = samples.size
    if n == 0:
        nan = float("nan")
        return {"median_ms": nan, "p10_ms": nan, "p90_ms": nan, "mean_ms": nan, "std_ms": nan, "cv": nan, "reps": 0}
    mean = float(samples.mean())
    std = float(samples.std(ddof=1)) if n > 1 else 0.0
    return {
        "median_ms": float(np.median(samples)),
        "p10_ms": float(np.percentile(samples, 10)),
        "p90_ms": float(np.percentile(samples, 90)),
        "mean_ms": mean,
        "std_ms": std,
        "cv": std / mean if mean > 0 else float("nan"),
        "reps": int(n),
    }


def relative_standard_error(samples_ms: list[float]) -> float:
    n = len(samples_ms)
    if n < 2:
        return math.inf
    mean = float(np.mean(samples_ms))
    return float(np.std(samples_ms, ddof=1)) / mean / math.sqrt(n) if mean > 0 else math.inf


@dataclass
class Timing:
    samples_ms: list[float]
    compile_s: float
    timer: str  # one of TIMERS
    warmup_calls: int
    warmup_ms: list[float] = field(default_factory=list)
    timer_note: str = ""  # why the asked-for timer was not used, if it was not

    @property
    def median_ms(self) -> float:
        return summarize(self.samples_ms)["median_ms"]

    def to_row(self) -> dict[str, Any]:
        """The throughput columns of this timing."""
        row: dict[str, Any] = summarize(self.samples_ms)
        row.update(
            samples_ms=list(self.samples_ms),
            compile_s=self.compile_s,
            timer=self.timer,
            warmup_calls=self.warmup_calls,
        )
        if self.timer_note:
            row["timer_note"] = self.timer_note
        return row


# ---------------------------------------------------------------------------------------------
# timers: run k reps of fn, return their times in ms


_flush_buffer: Any = None


def l2_flush_buffer(device: Any) -> Any:
    """One 256 MB buffer per process (allocating it per rep would time the allocator)."""
    import torch

    global _flush_buffer
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if _flush_buffer is None or _flush_buffer.device != device:
        _flush_buffer = torch.empty(L2_FLUSH_BYTES, dtype=torch.int8, device=device)
    return _flush_buffer


class HostTimer:
    name = "host"

    def __init__(self, clock_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        self.clock_ns = clock_ns

    def sync(self) -> None:
        pass

    def run(self, fn: Callable[[], Any], reps: int, setup: Callable[[], Any] | None) -> list[float]:
        times = []
        for _ in range(reps):
            if setup is not None:
                setup()
            began = self.clock_ns()
            fn()
            times.append((self.clock_ns() - began) / 1e6)
        return times


class CudaEventTimer:
    name = "cuda_event"

    def __init__(self, device: Any, flush_l2: bool = True) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.flush = l2_flush_buffer(self.device) if flush_l2 else None

    def clock_ns(self) -> int:
        return time.perf_counter_ns()

    def sync(self) -> None:
        self.torch.cuda.synchronize(self.device)

    def run(self, fn: Callable[[], Any], reps: int, setup: Callable[[], Any] | None) -> list[float]:
        torch = self.torch
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for start, end in zip(starts, ends, strict=True):
            if setup is not None:
                setup()
            if self.flush is not None:
                self.flush.zero_()
            start.record()
            fn()
            end.record()
        self.sync()
        return [start.elapsed_time(end) for start, end in zip(starts, ends, strict=True)]


def _settle(fn: Callable[[], Any], setup: Callable[[], Any] | None, runner: Any, calls: int) -> None:
    """Back-to-back calls, untimed, before the timed reps. The warm-up syncs after every call, so the GPU
    idles between them and enters the timed reps rested, at boost clocks a sustained run does not keep: on
    an H100 a power-bound kernel (cuDNN attention) then read 2-4% faster than under triton's do_bench,
    whose warm-up runs back to back. ~0.1 s of continuous work reaches the steady state."""
    for _ in range(calls):
        if setup is not None:
            setup()
        fn()
    runner.sync()


def capture_cuda_graph(fn: Callable[[], Any], device: Any) -> Callable[[], Any]:
    """fn captured in a CUDA graph (after warming it on a side stream, as capture requires); returns
    the replay. Raises if fn cannot be captured (host syncs, allocations torch cannot pool, ...)."""
    import torch

    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    torch.cuda.synchronize(device)
    return graph.replay


# ---------------------------------------------------------------------------------------------


def measure(
    fn: Callable[[], Any],
    device: Any = "cpu",
    *,
    timer: str = "auto",
    setup: Callable[[], Any] | None = None,
    budget_s: float = 1.0,
    min_reps: int = 10,
    max_reps: int = 1000,
    min_time_s: float = 0.1,
    target_rel_error: float = 0.005,
    warmup_agreement: float = 0.1,
    warmup_max_calls: int = 30,
    warmup_budget_s: float = 10.0,
    settle_s: float = 0.1,
    flush_l2: bool = True,
    clock_ns: Callable[[], int] | None = None,
    on_measure: Callable[[str], None] = report_phase,
) -> Timing:
    """Time `fn()` (see the module docstring). `setup()` runs before each rep, outside the timed region
    (e.g. dropping gradients). `timer`: auto (cuda_event on CUDA, host on CPU), cuda_event, cuda_graph
    or host. `clock_ns` replaces the host clock (tests use a synthetic one)."""
    kind = getattr(device, "type", None) or str(device).split(":")[0]
    if timer == "auto":
        timer = "cuda_event" if kind == "cuda" else "host"
    if timer not in TIMERS:
        raise ValueError(f"unknown timer {timer!r}; use one of {', '.join(TIMERS)}")
    if timer != "host" and kind != "cuda":
        raise ValueError(f"timer {timer} needs a CUDA device, got {device}")
    runner: HostTimer | CudaEventTimer = (
        HostTimer(clock_ns or time.perf_counter_ns) if timer == "host" else CudaEventTimer(device, flush_l2)
    )
    clock = runner.clock_ns

    # Warm-up: until two consecutive wall times agree (compilation and autotuning done), bounded.
    warmup_ms: list[float] = []
    first_done_ns = None
    while True:
        if setup is not None:
            setup()
        began = clock()
        fn()
        runner.sync()
        now = clock()
        warmup_ms.append((now - began) / 1e6)
        first_done_ns = first_done_ns or now
        if len(warmup_ms) >= 2:
            previous, last = warmup_ms[-2], warmup_ms[-1]
            if abs(last - previous) <= warmup_agreement * max(last, previous):
                break
            if len(warmup_ms) >= warmup_max_calls or (now - first_done_ns) / 1e9 >= warmup_budget_s:
                break
    if kind == "cuda" and settle_s > 0:
        _settle(fn, setup, runner, calls=int(min(1000, max(1, settle_s / max(warmup_ms[-1] / 1e3, 1e-6)))))
    on_measure("measure")

    timed_fn, note = fn, ""
    if timer == "cuda_graph":
        try:
            timed_fn = capture_cuda_graph(fn, device)
        except Exception as exc:
            timer, note = "cuda_event", f"cuda_graph capture failed ({type(exc).__name__}: {exc})".splitlines()[0]

    # Rounds of at most ROUND_MAX reps, one synchronisation each; the first sized from the warm-up.
    samples: list[float] = []
    began = clock()
    per_rep_s = max(warmup_ms[-1] / 1e3, 1e-7)
    round_size = int(min(max(HARD_MIN_REPS, budget_s / per_rep_s), ROUND_MAX, max_reps))
    while True:
        samples += runner.run(timed_fn, round_size, setup)
        elapsed_s = (clock() - began) / 1e9
        n = len(samples)
        if n >= max_reps:
            break
        if elapsed_s >= budget_s:
            if n >= HARD_MIN_REPS:
                break
            round_size = HARD_MIN_REPS - n
            continue
        if n >= min_reps and sum(samples) / 1e3 >= min_time_s and relative_standard_error(samples) <= target_rel_error:
            break
        per_rep_s = max(elapsed_s / n, 1e-7)
        wanted = max(min_reps - n, int((budget_s - elapsed_s) / per_rep_s), 1)
        round_size = int(min(wanted, ROUND_MAX, max_reps - n))

    median = float(np.median(samples))
    compile_s = sum(max(0.0, t - median) for t in warmup_ms) / 1e3
    return Timing(samples, compile_s, timer, len(warmup_ms), warmup_ms, note)
