"""Isolated worker subprocesses: whatever a job does (raise, abort, hang, run out of memory), only the
worker dies, and the parent turns it into an `Outcome` with a status and a one-line reason.

A worker is a spawned (never forked: CUDA does not survive fork) Python process that runs calls by
dotted path, so it can be reused for consecutive jobs (Triton compiles once per process) and restarted
after a failure. A call may announce phases (`report_phase("measure")`) so that warm-up (compilation,
autotuning: slow, generous timeout) and measurement (tight timeout) have their own time limits.

Workers share on-disk compilation caches (Triton kernels and autotuning results, TorchInductor) in the
user's cache directory, so a second worker, or a second run, does not compile again.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

STATUSES = ("ok", "oom", "error", "crash", "timeout", "unavailable")

_phase_connection: Connection | None = None  # set inside a worker process only


@dataclass
class Outcome:
    status: str  # one of STATUSES
    reason: str = ""  # one line; empty when ok
    value: Any = None  # the call's return value when ok; the traceback text when it raised
    elapsed_s: float = 0.0


class Unavailable(Exception):
    """Raised inside a job when what it asks cannot run here (e.g. a mixer without a core op):
    the job's row gets status `unavailable`, not `error`."""


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
    # Triton and some libraries report CUDA OOM as a plain RuntimeError; torch's CPU allocator says
    # "DefaultCPUAllocator: can't allocate memory" (errno 12) in one.
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("out of memory", "can't allocate memory", "cannot allocate memory")
    )


def classify_exception(exc: BaseException) -> Outcome:
    message = one_line(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, Unavailable):
        return Outcome("unavailable", one_line(str(exc)))
    # A library that refuses an operation it does not implement (fla: "Backward pass for ... is not
    # implemented") makes this job impossible here, not a failure of this run.
    if isinstance(exc, NotImplementedError):
        return Outcome("unavailable", message)
    return Outcome("oom" if is_out_of_memory(exc) else "error", message)


def report_phase(name: str) -> None:
    """Called from inside a job: the job enters phase `name` (its own timeout starts now)."""
    if _phase_connection is not None:
        _phase_connection.send(("phase", name))


# ---------------------------------------------------------------------------------------------
# compilation caches


def cache_home() -> Path:
    """$XDG_CACHE_HOME/seqbench, or ~/.cache/seqbench."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seqbench"


def cache_environment() -> dict[str, str]:
    """Environment for workers: shared on-disk caches, unless the user chose their own.

    TRITON_CACHE_DIR     compiled Triton kernels (every Triton version);
    TRITON_CACHE_AUTOTUNING=1  autotuning results on disk too (Triton >= 3.4 reads it, triton-lang/triton#6261;
                         older ones ignore it; fla passes cache_results=True itself where triton.autotune takes it);
    TORCHINDUCTOR_CACHE_DIR    torch.compile's kernels and FX graph cache (FlexAttention)."""
    home = cache_home()
    wanted = {
        "TRITON_CACHE_DIR": str(home / "triton"),
        "TRITON_CACHE_AUTOTUNING": "1",
        "TORCHINDUCTOR_CACHE_DIR": str(home / "inductor"),
    }
    return {key: value for key, value in wanted.items() if key not in os.environ}


# ---------------------------------------------------------------------------------------------
# the child


def _redirect_output(log_path: str | None) -> None:
    """Kernel libraries print (compiler warnings, autotuning logs): send the child's stdout and stderr,
    down to the file descriptors, to a log file so they do not break the parent's progress display."""
    if not log_path:
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _worker_main(
    connection: Connection,
    log_path: str | None = None,
    env: Mapping[str, str] | None = None,
    preload: tuple[str, ...] = (),
) -> None:
    global _phase_connection
    # The worker's own variables (its GPU pin, the compile caches), set before anything reads them: CUDA
    # reads CUDA_VISIBLE_DEVICES at its first call, Triton and inductor their cache paths when they compile.
    os.environ.update(env or {})
    _phase_connection = connection
    # Ctrl-C reaches the whole process group: let the parent decide (it kills us and saves its rows).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _redirect_output(log_path)
    from harness.interface import resolve

    for module in preload:  # ahead of the first job; a job that needs a module that failed here says why
        try:
            importlib.import_module(module)
        except Exception:
            pass

    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        target, kwargs = message
        try:
            outcome = Outcome("ok", "", resolve(target)(**kwargs))
        except BaseException as exc:  # report everything; the parent decides
            outcome = classify_exception(exc)
            outcome.value = traceback.format_exc(limit=8)
        if outcome.status != "ok":
            # Outside the except block, the traceback's frames (and the tensors they held) are gone.
            _release_device_memory()
        try:
            connection.send(("result", outcome))
        except Exception as exc:  # e.g. a return value that cannot be pickled
            connection.send(("result", Outcome("error", one_line(f"could not return the result: {exc}"))))


def _release_device_memory() -> None:
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# the parent's handle


class Worker:
    """One reusable child process. `call` never raises for what happens inside the child.

    env: extra environment variables for the child (on top of the shared compilation caches);
    log_path: where the child's stdout/stderr go (None: inherited from the parent);
    preload: modules each process imports as it starts, before its first job (see `start_spare`)."""

    def __init__(
        self, env: Mapping[str, str] | None = None, log_path: str | Path | None = None, preload: tuple[str, ...] = ()
    ) -> None:
        self.env = cache_environment() | dict(env or {})
        self.log_path = str(log_path) if log_path else None
        self.preload = tuple(preload)
        self._process: mp.process.BaseProcess | None = None
        self._connection: Connection | None = None
        self._spare: tuple[mp.process.BaseProcess, Connection] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """A fresh process: the spare if one was started ahead (`start_spare`), else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None and spare[0].is_alive():
            self._process, self._connection = spare
        else:
            self._process, self._connection = self._spawn()
        self.starts += 1

    def start_spare(self) -> None:
        """Start, ahead of need, the process the next `start` will take. A process start imports torch
        (4.4 s on an H100 host) and the `preload` modules: a spare does it on another core while the
        current process measures, and touches no GPU until it gets a job (CUDA initialises at the first
        call that needs it; preload only modules that do not initialise it at import)."""
        if self._spare is None or not self._spare[0].is_alive():
            self._spare = self._spawn()

    def _spawn(self) -> tuple[mp.process.BaseProcess, Connection]:
        context = mp.get_context("spawn")
        parent_end, child_end = context.Pipe()
        # The environment travels as an argument: setting os.environ around the spawn would race with other
        # threads starting workers (one per GPU) and briefly change this process's own environment.
        args = (child_end, self.log_path, dict(self.env), self.preload)
        process = context.Process(target=_worker_main, args=args, daemon=True)
        process.start()
        child_end.close()
        return process, parent_end

    def call(self, target: str, kwargs: dict[str, Any], timeout_s: float | Mapping[str, float]) -> Outcome:
        """Run `target(**kwargs)` in the worker. `timeout_s` is one limit, or a limit per phase
        ({"warmup": 600, "measure": 60}; the call starts in phase "start" if given, else the first key;
        a phase without a limit of its own gets the first phase's)."""
        limits = {"start": float(timeout_s)} if isinstance(timeout_s, int | float) else dict(timeout_s)
        phase = "start" if "start" in limits else next(iter(limits))
        default_limit = limits[phase]
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
            limit = limits.get(phase, default_limit)
            remaining = limit - (time.monotonic() - phase_began)
            if remaining <= 0:
                self.kill()
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

    def shutdown(self) -> None:
        """Kill the process and the spare, if any: the end of the worker's use."""
        self.kill()
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[0].kill()
            spare[0].join(timeout=10)

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
        self.shutdown()
