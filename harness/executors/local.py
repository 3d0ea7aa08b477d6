"""The local executor: isolated worker processes on this machine, one per GPU.

With one GPU, or on CPU, one worker runs every job in order (the behaviour before executors existed).
With several GPUs visible and device `cuda`, there is one slot per GPU: a thread of this process drives
one worker pinned to its GPU through CUDA_VISIBLE_DEVICES (inside it the GPU is `cuda:0`), and takes the
next chunk (the jobs of one implementation, so each worker compiles an implementation once) whenever it
is free: greedy scheduling, longest runs do not wait for each other. `workers` limits the slots (on CPU
it adds them: CPU slots share the cores, so use them for tests and recall sweeps, not timings).

Only this process writes rows: the slots hand outcomes to the runner through a queue.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UserError
from harness.executors.base import (
    PROVENANCE_TARGET,
    PROVENANCE_TIMEOUT_S,
    Event,
    Executor,
    JobDone,
    JobStarted,
    RunContext,
    family_of,
    gpu_index_of,
    physical_gpu_index,
    run_job,
    visible_gpus,
)
from harness.worker import Outcome, Worker

if TYPE_CHECKING:
    from harness.job import Job


# Modules a family's worker process imports as it starts (a spare: while the previous family measures).
# fla's ops and layers and FlexAttention import torch._dynamo and torch._inductor: 6.5 s of the 7.3 s fla's
# light import took on an H100 host (2026-11-23), in the family's first job. Importing the three took 5.9 s
# there and left CUDA uninitialised (torch.cuda.is_initialized() False, no process on the GPU), so a spare
# does not touch the GPU another family is measuring on.
PROCESS_PRELOAD = ("triton", "torch._dynamo", "torch._inductor")


@dataclass
class Slot:
    """One worker process and where it runs."""

    index: int
    gpu_index: int | None  # physical GPU (nvidia-smi index); None on CPU
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)  # the run's worker_env, plus the GPU pin
    worker: Worker | None = None

    @property
    def placement(self) -> dict[str, Any]:
        return {"executor": "local", "gpu_index": self.gpu_index}


@dataclass
class _SlotExit:
    error: BaseException | None = None


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int | None = None, slots_per_gpu: int | None = None) -> None:
        if workers is not None and workers <= 0:
            raise UserError(f"--workers must be a positive integer, got {workers}")
        if slots_per_gpu is not None and slots_per_gpu <= 0:
            raise UserError(f"--slots-per-gpu must be a positive integer, got {slots_per_gpu}")
        self.workers = workers
        self.slots_per_gpu = slots_per_gpu or 1
        self.slots: list[Slot] = []
        self.context: RunContext | None = None

    # -- setup

    def open(self, context: RunContext) -> None:
        self.context = context
        self.slots = self._plan_slots(context)
        preload = PROCESS_PRELOAD if context.isolate_families else ()
        for slot in self.slots:
            slot.worker = Worker(env=slot.env, log_path=slot.log_path, preload=preload)

    def _plan_slots(self, context: RunContext) -> list[Slot]:
        device, env = context.device, dict(context.worker_env)
        if not device.startswith("cuda"):
            count = self.workers or 1
            if count == 1:
                return [Slot(0, None, context.run_dir / "worker.log", env)]
            return [Slot(i, None, context.run_dir / f"worker-slot{i}.log", env) for i in range(count)]
        gpus = visible_gpus()
        if self.slots_per_gpu > 1:
            return self._shared_gpu_slots(device, gpus, env, context.run_dir)
        names_one_gpu = device not in ("cuda", "cuda:0")
        if names_one_gpu and (self.workers or 1) > 1:
            raise UserError(f"--device {device} names one GPU; with several workers use --device cuda")
        count = 1 if names_one_gpu else self.workers or max(len(gpus), 1)
        if count > max(len(gpus), 1):
            raise UserError(
                f"--workers {count}: only {len(gpus)} GPU(s) visible; one worker per GPU "
                "(two workers on one GPU would distort each other's timings)"
            )
        if count == 1:  # unpinned: the worker sees what this process sees, as before executors existed
            return [Slot(0, gpu_index_of(device), context.run_dir / "worker.log", env)]
        slots = []
        for i, entry in enumerate(gpus[:count]):
            index = physical_gpu_index(entry)
            name = f"gpu{index}" if index is not None else f"slot{i}"
            slots.append(Slot(i, index, context.run_dir / f"worker-{name}.log", env | {"CUDA_VISIBLE_DEVICES": entry}))
        return slots

    def _shared_gpu_slots(self, device: str, gpus: list[str], env: dict[str, str], run_dir: Path) -> list[Slot]:
        """`slots_per_gpu` slots pinned to each GPU the run uses (the one `cuda:i` names, else every
        visible one; unpinned when none is listed), for suites whose jobs may share a card."""
        if device not in ("cuda", "cuda:0") or not gpus:
            entries: list[str | None] = [None]
        else:
            entries = list(gpus[: self.workers] if self.workers else gpus)
        slots = []
        for entry in entries:
            index = physical_gpu_index(entry) if entry is not None else gpu_index_of(device)
            for k in range(self.slots_per_gpu):
                name = f"gpu{index}-slot{k}" if index is not None else f"slot{len(slots)}"
                pin = {"CUDA_VISIBLE_DEVICES": entry} if entry is not None else {}
                slots.append(Slot(len(slots), index, run_dir / f"worker-{name}.log", env | pin))
        return slots

    @property
    def one_job_per_chunk(self) -> bool:
        """With several slots on one GPU the jobs of one implementation are spread over them, not run in a row."""
        return self.slots_per_gpu > 1

    def describe(self, measure_ceilings: bool) -> Outcome:
        """Provenance from a worker that sees what this process sees (all the run's GPUs: gpu_count is the
        machine's). With one slot it is that slot's worker and serves the first chunk, as before."""
        assert self.context is not None
        single = len(self.slots) == 1
        worker = (
            self.slots[0].worker if single else Worker(self.context.worker_env, self.context.run_dir / "worker.log")
        )
        assert worker is not None
        kwargs = {"device": self.context.device, "measure_ceilings": measure_ceilings}
        outcome = worker.call(PROVENANCE_TARGET, kwargs, PROVENANCE_TIMEOUT_S)
        if outcome.status != "ok":
            worker.kill()
        elif not single:
            worker.close()  # the slots start their own, pinned workers
        return outcome

    def log_pattern(self, run_dir: Path) -> Path:
        return run_dir / ("worker.log" if len(self.slots) == 1 else "worker*.log")

    # -- running

    def run(self, chunks: Sequence[Sequence[Job]]) -> Iterator[Event]:
        if len(self.slots) == 1:
            yield from self._run_slot(self.slots[0], chunks)
        else:
            yield from self._run_threads(chunks)

    def _run_slot(self, slot: Slot, chunks: Iterable[Sequence[Job]]) -> Iterator[Event]:
        """Chunks one after another on the slot's worker. On CUDA each family gets its own process (one
        library's allocator cache, compiled kernels or CUDA state never shape another family's numbers);
        not one per implementation: a process start imports torch and the kernel library (5-10 s). The
        next family's process is started while this one runs (`Worker.start_spare`), so a family switch
        does not wait for torch's import."""
        from harness.results import utc_now

        assert self.context is not None and slot.worker is not None
        isolate = self.context.isolate_families
        families = [family_of(chunk[0]) for chunk in chunks] if isinstance(chunks, Sequence) else None
        previous_family = None
        try:
            for index, chunk in enumerate(chunks):
                family = families[index] if families is not None else family_of(chunk[0])
                if isolate and previous_family is not None and family != previous_family:
                    slot.worker.close()
                    slot.worker.start()  # the spare started during the previous family
                previous_family = family
                # A later family to come (always possible when the chunks arrive from a queue) gets a spare,
                # started once this family's process runs (a failed job's restart may take it: then anew).
                spare_wanted = isolate and (families is None or any(f != family for f in families[index + 1 :]))
                for job in chunk:
                    if spare_wanted:
                        if not slot.worker.alive:
                            slot.worker.start()
                        slot.worker.start_spare()
                    yield JobStarted(job)
                    started_at = utc_now()
                    outcome = run_job(slot.worker, job, slot.log_path)
                    yield JobDone(job, outcome, slot.placement, started_at)
        finally:
            slot.worker.shutdown()

    def _run_threads(self, chunks: Sequence[Sequence[Job]]) -> Iterator[Event]:
        """One thread per slot, each taking the next chunk when free; events reach the runner in the
        order jobs start and finish. Closing this generator stops the slots and kills their workers."""
        from harness import registry

        registry.implementations()  # load the registry once here, not concurrently in the slots
        work: queue.Queue[Sequence[Job]] = queue.Queue()
        for chunk in chunks:
            work.put(chunk)
        events: queue.Queue[Event | _SlotExit] = queue.Queue()
        stop = threading.Event()

        def next_chunks() -> Iterator[Sequence[Job]]:
            while not stop.is_set():
                try:
                    yield work.get_nowait()
                except queue.Empty:
                    return

        def drive(slot: Slot) -> None:
            error = None
            try:
                for event in self._run_slot(slot, next_chunks()):
                    if stop.is_set():
                        break  # the run was stopped: this outcome (a killed worker) is not a result
                    events.put(event)
            except BaseException as exc:  # a bug, not a job's failure (those are outcomes): surface it
                error = exc
            finally:
                events.put(_SlotExit(error))

        threads = [threading.Thread(target=drive, args=(slot,), daemon=True) for slot in self.slots]
        for thread in threads:
            thread.start()
        try:
            running = len(threads)
            while running:
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if isinstance(event, _SlotExit):
                    running -= 1
                    if event.error is not None and not stop.is_set():
                        raise RuntimeError(f"a worker slot failed: {event.error!r}") from event.error
                    continue
                yield event
        finally:
            stop.set()
            while any(thread.is_alive() for thread in threads):
                for slot in self.slots:  # a slot thread waits on its worker: kill the process, not the thread
                    _kill(slot.worker)
                for thread in threads:
                    thread.join(timeout=0.5)


def _kill(worker: Worker | None) -> None:
    pid = worker.pid if worker is not None else None
    if pid is not None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
