"""Dynamic batching: concurrent requests gathered into one encoder / retrieval / LM batch.

A :class:`Batcher` keeps a bounded queue of :class:`Job` s. Its loop takes the oldest job, waits until
``max_batch`` items of the same ``key`` (the settings a batch must share: RAG on or off, the tasks) are
queued or ``max_wait_ms`` has passed since that job arrived (under load, up to ``max_fill_ms`` after the
last batch ended), then hands the jobs to ``work`` in the one worker thread (the pipeline is not
thread-safe, and one thread per core is what the LM wants). Jobs of other keys keep their place. A full
queue refuses a job at once (:class:`QueueFull`: the service answers 429 with Retry-After); a job past its
deadline, or whose client went away (:meth:`Job.cancel`), is dropped before it costs any decoding. ``work``
returns one result or exception per job: one job's bad input fails that job alone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ragsc.errors import RagscError

FILL_SHARE = 0.05  # under load, a batch waits to fill for at most this share of the last batch's time


class QueueFull(RagscError):
    """The queue holds ``max_queue`` items already; ``retry_after_s`` is when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceeded(RagscError):
    """A job's deadline passed before its batch started."""


@dataclass(eq=False)
class Job:
    """One request's work: ``payload`` for ``work``, ``size`` items, the batch ``key`` it needs, its deadline
    (``time.monotonic()`` seconds)."""

    payload: Any
    size: int
    key: Hashable
    deadline: float
    enqueued: float = field(default_factory=time.monotonic)
    started: float | None = None
    batch_items: int = 0
    future: asyncio.Future | None = None
    cancelled: bool = False

    def cancel(self) -> None:
        """The client went away: drop the job if its batch has not started."""
        self.cancelled = True


@dataclass
class BatchStats:
    """What the metrics read: batches run, their item counts, and the seconds of the last ones."""

    batches: int = 0
    items: int = 0
    expired: int = 0  # past their deadline before their batch
    gone: int = 0  # their client went away before their batch
    sizes: deque = field(default_factory=lambda: deque(maxlen=256))
    seconds: deque = field(default_factory=lambda: deque(maxlen=32))


class Batcher:
    """The queue and the loop (see the module docstring).

    Parameters
    ----------
    work
        ``work(payloads, key) -> list`` of one result or exception per payload; runs in the worker thread.
    max_batch
        Items per batch (a larger single job still runs, alone).
    max_wait_ms
        How long the oldest job waits for company when the worker was idle.
    max_fill_ms
        Under load (the last batch had company, or jobs queued while it ran), how long after a batch ends the
        next one waits to fill: at most :data:`FILL_SHARE` of the last batch's time, and at most this. In a
        closed loop the clients of a finished batch send again within milliseconds; without the wait the next
        batch would start with the first few of them.
    max_queue
        Items the queue may hold before it refuses jobs.
    executor
        The single worker thread (shared with the service's other pipeline work, so that everything touching
        the pipeline runs there in turn).
    on_batch
        Called with ``(key, n_items, seconds)`` after each batch (metrics).
    """

    def __init__(self, work: Callable[[list, Hashable], list], *, max_batch: int = 32,
                 max_wait_ms: float = 2.0, max_fill_ms: float = 250.0, max_queue: int = 256,
                 executor: ThreadPoolExecutor,
                 on_batch: Callable[[Hashable, int, float], None] | None = None) -> None:
        self.work, self.max_batch, self.max_wait = work, max_batch, max_wait_ms / 1000.0
        self.max_fill = max_fill_ms / 1000.0
        self.max_queue, self.executor, self.on_batch = max_queue, executor, on_batch
        self.pending: deque[Job] = deque()
        self.stats = BatchStats()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._running: list[Job] = []  # the batch in the worker thread
        self._loaded, self._batch_end = False, 0.0

    @property
    def queued_items(self) -> int:
        return sum(j.size for j in self.pending)

    def start(self) -> None:
        """Start the loop on the running event loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop the loop; jobs still queued or running fail (the server is going away)."""
        running = list(self._running)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for job in [*running, *self.pending]:
            if job.future is not None and not job.future.done():
                job.future.set_exception(DeadlineExceeded("the server is shutting down"))
        self.pending.clear()

    def submit(self, job: Job) -> asyncio.Future:
        """Queue ``job``; its future resolves to ``work``'s result. :class:`QueueFull` when there is no
        room."""
        self._purge()  # jobs already answered (deadline) or given up (client gone) hold no place
        if self.pending and self.queued_items + job.size > self.max_queue:
            raise QueueFull(f"the receiver's queue is full ({self.queued_items} items queued, at most "
                            f"{self.max_queue}); try again later", self._retry_after())
        job.future = asyncio.get_running_loop().create_future()
        self.pending.append(job)
        self._wake.set()
        return job.future

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained: the queued items at the recent items per second."""
        if not self.stats.seconds or not self.stats.sizes:
            return 1
        per_item = sum(self.stats.seconds) / max(1, sum(list(self.stats.sizes)[-len(self.stats.seconds):]))
        return max(1, math.ceil(self.queued_items * per_item))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.pending:
                self._wake.clear()
                await self._wake.wait()
            first = self.pending[0]
            until = first.enqueued + self.max_wait
            if self._loaded and self.stats.seconds:
                # under load, the clients of the batch that just finished send again within milliseconds:
                # waiting a little for them fills the next batch (a small share of a batch's own time)
                fill = min(FILL_SHARE * self.stats.seconds[-1], self.max_fill)
                until = max(until, self._batch_end + fill)
            while sum(j.size for j in self.pending if j.key == first.key) < self.max_batch:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            now = time.monotonic()
            live = [job for job in self._take(first.key) if not self._dead(job, now)]
            if not live:
                continue
            n = sum(j.size for j in live)
            for job in live:
                job.started, job.batch_items = now, n
            t0 = time.perf_counter()
            self._running = live
            try:
                results = await loop.run_in_executor(self.executor, self.work, [j.payload for j in live],
                                                     first.key)
            except Exception as exc:  # work failed as a whole: every job of the batch gets the error
                results = [exc] * len(live)
            finally:
                self._running = []
            seconds = time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.items += n
            self.stats.sizes.append(n)
            self.stats.seconds.append(seconds)
            if self.on_batch is not None:
                self.on_batch(first.key, n, seconds)
            self._batch_end = time.monotonic()
            self._loaded = n > 1 or bool(self.pending)  # concurrent clients: the next batch waits to fill
            for job, result in zip(live, results):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def cancel(self, job: Job) -> None:
        """The client of ``job`` went away: out of the queue now (counted in ``stats.gone``), never decoded; a
        job whose batch has started finishes, and its result is discarded."""
        job.cancel()
        if job in self.pending:
            self.pending.remove(job)
            self.stats.gone += 1
            if job.future is not None and not job.future.done():
                job.future.cancel()

    def _purge(self) -> None:
        """Out of the queue: jobs whose client went away and jobs already answered (their deadline)."""
        self.pending = deque(job for job in self.pending if not self._dead(job))

    def _dead(self, job: Job, now: float | None = None) -> bool:
        """Whether ``job`` must not be decoded -- its client went away (``stats.gone``), or it was answered
        already, or (given ``now``) its deadline passed (``stats.expired``) -- with its future resolved."""
        if job.cancelled:
            self.stats.gone += 1
            if not job.future.done():
                job.future.cancel()
            return True
        if job.future.done():
            self.stats.expired += 1
            return True
        if now is not None and now > job.deadline:
            self.stats.expired += 1
            job.future.set_exception(DeadlineExceeded(
                f"the request's deadline passed after {now - job.enqueued:.3f} s in the queue"))
            return True
        return False

    def _take(self, key: Hashable) -> list[Job]:
        """The oldest jobs of ``key`` up to ``max_batch`` items (the first always), out of the queue."""
        batch, n, keep = [], 0, deque()
        for job in self.pending:
            if job.key == key and (not batch or n + job.size <= self.max_batch):
                batch.append(job)
                n += job.size
            else:
                keep.append(job)
        self.pending = keep
        return batch
