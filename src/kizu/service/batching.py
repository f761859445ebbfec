"""Micro-batching: requests from the event loop are gathered into small batches and inspected in
one worker thread, so inference never blocks the loop and the model sees batches, not single images.

The queue is bounded (in images): when it is full, ``submit`` raises ``QueueFull`` at once with an
estimate of when to retry, instead of letting the backlog and the latency grow without limit.
Each batch takes the model handle current when the batch starts; a reload swaps the handle, and a
batch already running finishes on the model it started with.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from . import _kizu


class QueueFull(Exception):
    """The inference queue holds as many images as it may; ``retry_after`` seconds is an estimate."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"the inspection queue is full; retry in {retry_after} s")


class ShuttingDown(Exception):
    """The worker stopped before the job ran."""


@dataclass(frozen=True)
class ModelHandle:
    """A loaded model with what requests report about it; replaced whole on reload."""

    model: Any
    model_id: str
    path: str
    loaded_at: float
    params: dict  #: ``_kizu.calibration_params``: alpha, threshold, n_calibration, pixel_threshold


@dataclass
class BatchResult:
    """What one job gets back: the model that ran it, its verdicts and the batch's inference time."""

    handle: ModelHandle
    verdicts: list
    inference_ms: float
    batch_images: int


@dataclass
class _Job:
    images: list[np.ndarray]
    names: list[str]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    """One inference thread fed by a bounded queue of jobs (a job = one request's images)."""

    def __init__(self, current: Callable[[], ModelHandle], *, window_s: float = 0.005, max_batch: int = 32,
                 max_queue: int = 256, on_batch: Callable[[ModelHandle, list, float], None] | None = None):
        if max_batch < 1 or max_queue < max_batch:
            raise ValueError(f"need 1 <= max_batch <= max_queue, got max_batch={max_batch}, max_queue={max_queue}")
        self._current, self.window_s, self.max_batch, self.max_queue = current, window_s, max_batch, max_queue
        self._on_batch = on_batch
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._carry: _Job | None = None
        self._lock = threading.Lock()
        self._pending = 0  # images queued or running
        self._seconds_per_image = 0.05
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Images waiting or being inspected."""
        return self._pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="kizu-inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch that is running, then fail every queued job with ShuttingDown."""
        self._q.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
        for job in self._drain():
            self._resolve(job, exc=ShuttingDown("the service is shutting down"))

    async def submit(self, images: list[np.ndarray], names: list[str]) -> BatchResult:
        """Queue one request's images and wait for their verdicts (QueueFull when there is no room)."""
        n = len(images)
        with self._lock:
            if self._pending + n > self.max_queue:
                raise QueueFull(self.retry_after())
            self._pending += n
        loop = asyncio.get_running_loop()
        job = _Job(images, names, loop.create_future(), loop)
        self._q.put(job)
        return await job.future

    def retry_after(self) -> int:
        """Whole seconds until the current backlog is likely inspected (at least 1)."""
        return max(1, math.ceil(self._pending * self._seconds_per_image))

    # -- worker thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._collect()
            if batch is None:
                return
            self._inspect(batch)

    def _collect(self) -> list[_Job] | None:
        """Block for a first job, then take more for up to ``window_s`` or ``max_batch`` images.
        None: stop."""
        first, self._carry = (self._carry, None) if self._carry is not None else (self._q.get(), None)
        if first is None:
            return None
        batch, n = [first], len(first.images)
        deadline = time.perf_counter() + self.window_s
        while n < self.max_batch:
            try:
                job = self._q.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                break
            if job is None:
                self._q.put(None)  # stop after this batch
                break
            if n + len(job.images) > self.max_batch:
                self._carry = job  # first of the next batch
                break
            batch.append(job)
            n += len(job.images)
        return batch

    def _inspect(self, batch: list[_Job]) -> None:
        """Inspect a batch on the current model; if it fails, each job alone, so one bad job (an
        image that no longer fits a reloaded model) cannot fail the others."""
        handle = self._current()
        images = [im for job in batch for im in job.images]
        names = [nm for job in batch for nm in job.names]
        t0 = time.perf_counter()
        try:
            verdicts = _kizu.inspect(handle.model, images, names)
        except Exception:  # noqa: BLE001 - retried job by job below, where the error is reported
            verdicts = None
        seconds = time.perf_counter() - t0
        if verdicts is None:
            for job in batch:
                self._inspect_alone(handle, job)
        else:
            self._deliver(batch, handle, verdicts, seconds)
        self._seconds_per_image = 0.8 * self._seconds_per_image + 0.2 * seconds / max(1, len(images))

    def _inspect_alone(self, handle: ModelHandle, job: _Job) -> None:
        t0 = time.perf_counter()
        try:
            verdicts = _kizu.inspect(handle.model, job.images, job.names)
        except Exception as err:  # noqa: BLE001 - handed to the request that sent the job
            self._release(len(job.images))
            self._resolve(job, exc=err)
            return
        self._deliver([job], handle, verdicts, time.perf_counter() - t0)

    def _deliver(self, batch: list[_Job], handle: ModelHandle, verdicts: list, seconds: float) -> None:
        if self._on_batch is not None:
            self._on_batch(handle, verdicts, seconds)
        start = 0
        for job in batch:
            part = verdicts[start:start + len(job.images)]
            start += len(job.images)
            self._release(len(job.images))
            self._resolve(job, BatchResult(handle, part, 1000.0 * seconds, len(verdicts)))

    def _release(self, n: int) -> None:
        with self._lock:
            self._pending -= n

    def _drain(self) -> list[_Job]:
        jobs = [self._carry] if self._carry is not None else []
        self._carry = None
        while True:
            try:
                job = self._q.get_nowait()
            except queue.Empty:
                return jobs
            if job is not None:
                jobs.append(job)

    @staticmethod
    def _resolve(job: _Job, result: BatchResult | None = None, exc: BaseException | None = None) -> None:
        """Hand a result or an error to the job's event loop (a cancelled request is skipped)."""

        def settle() -> None:
            if job.future.done():
                return
            if exc is not None:
                job.future.set_exception(exc)
            else:
                job.future.set_result(result)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass
