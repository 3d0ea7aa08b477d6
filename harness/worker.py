"""Isolated worker subprocesses: whatever a job does (raise, abort, hang, run out of memory), only the
worker dies, and the parent turns it into an `Outcome` with a status and a one-line reason.

A worker is a spawned (never forked: CUDA does not survive fork) Python process that runs calls by
dotted path, so it can be reused for consecutive jobs (Triton compiles once per process) and restarted
after a failure. A call may announce phases (`report_phase("measure")`) so that warm-up (compilation,
autotuning: slow, generous timeout) and measurement (tight timeout) have their own time limits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

STATUSES = ("ok", "oom", "error", "crash", "timeout", "unavailable")

_phase_connection: Connection | None = None  # set inside a worker process only


@dataclass
class Outcome:
    status: str  # one of STATUSES
    reason: str = ""  # one line; empty when ok
    value: Any = None
    elapsed_s: float = 0.0


def one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except ImportError:
        pass
    # Triton and some libraries report CUDA OOM as a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def classify_exception(exc: BaseException) -> Outcome:
    message = one_line(f"{type(exc).__name__}: {exc}")
    return Outcome("oom" if is_out_of_memory(exc) else "error", message)


def report_phase(name: str) -> None:
    """Called from inside a job: the job enters phase `name` (its own timeout starts now)."""
    if _phase_connection is not None:
        _phase_connection.send(("phase", name))


def _worker_main(connection: Connection) -> None:
    global _phase_connection
    _phase_connection = connection
    from harness.interface import resolve

    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        target, kwargs = message
        try:
            value = resolve(target)(**kwargs)
            connection.send(("result", Outcome("ok", "", value)))
        except BaseException as exc:  # report everything; the parent decides
            outcome = classify_exception(exc)
            outcome.value = traceback.format_exc(limit=8)
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:
                pass
            connection.send(("result", outcome))


@contextmanager
def _environment(overrides: Mapping[str, str]):
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Worker:
    """One reusable child process. `call` never raises for what happens inside the child."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self._process: mp.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        context = mp.get_context("spawn")
        parent_end, child_end = context.Pipe()
        with _environment(self.env):  # spawn copies os.environ at start: set the worker's env then
            process = context.Process(target=_worker_main, args=(child_end,), daemon=True)
            process.start()
        child_end.close()
        self._process, self._connection = process, parent_end
        self.starts += 1

    def call(self, target: str, kwargs: dict[str, Any], timeout_s: float | Mapping[str, float]) -> Outcome:
        """Run `target(**kwargs)` in the worker. `timeout_s` is one limit, or a limit per phase
        ({"warmup": 600, "measure": 60}; the call starts in phase "start", or the first key)."""
        limits = {"start": float(timeout_s)} if isinstance(timeout_s, int | float) else dict(timeout_s)
        phase = "start" if "start" in limits else next(iter(limits))
        if not self.alive:
            self.start()
        assert self._connection is not None and self._process is not None
        began = time.monotonic()
        phase_began = began
        try:
            self._connection.send((target, kwargs))
        except (BrokenPipeError, OSError) as exc:
            return self._died(f"could not send the job: {exc}", began)
        while True:
            remaining = limits.get(phase, limits.get("start", 60.0)) - (time.monotonic() - phase_began)
            if remaining <= 0:
                self.kill()
                limit = limits.get(phase, limits.get("start", 60.0))
                return Outcome("timeout", f"exceeded {limit:g} s in phase {phase}", None, time.monotonic() - began)
            if self._connection.poll(min(remaining, 0.5)):
                try:
                    kind, payload = self._connection.recv()
                except (EOFError, OSError):
                    return self._died("worker closed its pipe", began)
                if kind == "phase":
                    phase, phase_began = payload, time.monotonic()
                    continue
                payload.elapsed_s = time.monotonic() - began
                return payload
            if not self._process.is_alive():
                return self._died("", began)

    def _died(self, detail: str, began: float) -> Outcome:
        assert self._process is not None
        self._process.join(timeout=5)
        code = self._process.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            reason = f"worker killed by {name}"
            if name == "SIGKILL":
                reason += " (possibly the out-of-memory killer)"
        else:
            reason = f"worker exited with status {code}"
        if detail:
            reason += f": {detail}"
        self._process, self._connection = None, None
        return Outcome("crash", reason, None, time.monotonic() - began)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join(timeout=10)
        self._process, self._connection = None, None

    def close(self) -> None:
        if self._connection is not None and self.alive:
            try:
                self._connection.send(None)
                assert self._process is not None
                self._process.join(timeout=10)
            except (BrokenPipeError, OSError):
                pass
        self.kill()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
