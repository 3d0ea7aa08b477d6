"""Planted faults for the runner and suite tests, registered through SEQBENCH_EXTRA_SPECS=tests.fault_specs.

Every fault is raised, never provoked: nothing here exhausts real memory or really hangs the machine
(the sleeper sleeps, and the worker's timeout kills it).

  fault/ok            the attention reference under another name: measures fine
  fault/raise         building raises RuntimeError
  fault/abort         building calls os.abort(): the worker dies with SIGABRT
  fault/sleep         building sleeps far past any timeout: killed in the warm-up phase
  fault/slow_measure  the first calls are fast, the third sleeps: killed in the measurement phase
  fault/cuda_oom      building raises torch.OutOfMemoryError (what a real CUDA OOM raises)
  fault/memory_error  building raises MemoryError (what a failed host allocation raises)
  fault/oom_above_256 forward raises torch.OutOfMemoryError when seq_len > 256 (an OOM frontier at 256)
  fault/cuda_only     runs on CUDA only: unavailable on a CPU machine
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from harness.config import MixerConfig
from harness.interface import Implementation
from harness.worker import report_phase
from implementations.attention.reference import AttentionReference
from implementations.attention.specs import attention_flops, attention_min_bytes, kv_cache_bytes

FAMILY = "fault"
_HERE = "tests.fault_specs"
SLEEP_S = 600.0


def build_raise(config: MixerConfig) -> AttentionReference:
    raise RuntimeError("planted failure while building")


def build_abort(config: MixerConfig) -> AttentionReference:
    os.abort()


def build_sleep(config: MixerConfig) -> AttentionReference:
    time.sleep(SLEEP_S)
    raise AssertionError("unreachable: the worker is killed first")


def build_cuda_oom(config: MixerConfig) -> AttentionReference:
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB (planted)")


def build_memory_error(config: MixerConfig) -> AttentionReference:
    raise MemoryError("planted: could not allocate 1 TiB")


class SlowOnThirdCall(AttentionReference):
    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        SlowOnThirdCall.calls += 1
        if SlowOnThirdCall.calls >= 3:
            time.sleep(SLEEP_S)
        return super().forward(x)


def build_slow_measure(config: MixerConfig) -> AttentionReference:
    SlowOnThirdCall.calls = 0
    return SlowOnThirdCall(config)


class OutOfMemoryAbove256(AttentionReference):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 256:
            raise torch.OutOfMemoryError(f"CUDA out of memory at seq_len {x.shape[1]} (planted)")
        return super().forward(x)


def build_oom_above_256(config: MixerConfig) -> AttentionReference:
    return OutOfMemoryAbove256(config)


def build_ok(config: MixerConfig) -> AttentionReference:
    return AttentionReference(config)


# ---------------------------------------------------------------------------------------------
# plain worker targets (for the worker and runner tests)


def behave(kind: str = "ok", value: float = 1.0, seq_len: int = 0, **_: object) -> dict[str, float]:
    """A job target: returns a row, or fails the way `kind` says."""
    if kind == "raise":
        raise ValueError("planted failure")
    if kind == "abort":
        os.abort()
    if kind == "sleep":
        time.sleep(SLEEP_S)
    if kind == "sleep_in_measure":
        report_phase("measure")
        time.sleep(SLEEP_S)
    if kind == "cuda_oom":
        raise torch.OutOfMemoryError("CUDA out of memory (planted)")
    if kind == "memory_error":
        raise MemoryError("planted")
    if kind == "cpu_alloc":  # a real allocation far beyond any host's memory: torch's CPU allocator refuses
        torch.empty(2**62, dtype=torch.uint8)
    if kind == "unavailable":
        from harness.worker import Unavailable

        raise Unavailable("planted: not here")
    if kind == "rows":
        return [{"median_ms": value, "seq_len": n} for n in (64, 128)]  # type: ignore[return-value]
    if kind == "huge":  # a measurement no int64 column holds
        return {"median_ms": value, "oom_frontier_seq_len": 10**20}
    if kind == "pid":  # which worker process ran the job
        return {"median_ms": value, "worker_pid": os.getpid()}
    return {"median_ms": value, "achieved_tflops": 2.0 * value}


def process_id() -> int:
    return os.getpid()


def loaded(module: str) -> bool:
    """Whether this process has imported `module`."""
    import sys

    return module in sys.modules


def environment(name: str) -> str | None:
    return os.environ.get(name)


def process_age_s(sleep_s: float = 0.0) -> tuple[int, float]:
    """This process's id and, after sleeping `sleep_s`, how long ago it started (Linux /proc)."""
    import time

    time.sleep(sleep_s)
    started_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    return os.getpid(), uptime_s - started_ticks / os.sysconf("SC_CLK_TCK")


_MODELS = {"flops_model": attention_flops, "bytes_model": attention_min_bytes, "state_bytes_model": kv_cache_bytes}


def _impl(name: str, builder: str, **kwargs: object) -> Implementation:
    return Implementation(
        family=FAMILY,
        name=f"{FAMILY}/{name}",
        backend="test",
        build=f"{_HERE}:{builder}",
        reference=None if name == "ok" else "fault/ok",
        **_MODELS,
        **kwargs,
    )


IMPLEMENTATIONS = [
    _impl("ok", "build_ok"),
    _impl("raise", "build_raise"),
    _impl("abort", "build_abort"),
    _impl("sleep", "build_sleep"),
    _impl("slow_measure", "build_slow_measure"),
    _impl("cuda_oom", "build_cuda_oom"),
    _impl("memory_error", "build_memory_error"),
    _impl("oom_above_256", "build_oom_above_256"),
    _impl("cuda_only", "build_ok", devices=("cuda",)),
]
