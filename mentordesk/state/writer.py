"""The store's one writer thread: every store call runs there, off the event loop.

One writer is what makes a claim a compare-and-set: jobs run one at a time, in order.
The thread commits them in groups (group commit): it takes every job queued since the
last group, runs them one after the other, each in its own transactions, then makes
all their records durable with one fdatasync (``Database.sync``) and only then answers
their callers. So a job queued while the disk is busy with the previous group shares
the next group's fdatasync instead of paying its own, and nobody is told of a change a
crash could lose: a claim's "it's yours" page, an outbox "sent" mark, a message moved
out of the inbox all come after the fdatasync that covers them.

After the fdatasync the thread publishes what the group changed to the committed view
(``committed.py``), which the web's pages read from the event loop without queueing.

Two lanes: ``call``/``submit`` (``for_page`` when a person waits on a page) for what
someone is waiting for, ``defer`` for work that can follow (a claim's emails and
booking). A deferred job runs in a group of its own when no other job is queued and no
page's job has come for ``QUIET_S``, or once it has waited ``DEFER_AT_MOST_S``: a burst
of clicks is answered first, its emails follow it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import Context
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, Self, TypeVar

from .. import foreground
from ..health import Health
from ..metrics import Metrics
from .committed import CommittedView

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DEFER_AT_MOST_S", "MAX_GROUP", "QUIET_S", "StoreWriter"]

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: The most jobs one group commit runs: the first job's answer waits for the last.
MAX_GROUP = 64
#: How long without a page's job (``for_page``) before a deferred job runs: the end of a
#: burst of clicks, longer than the gaps between them and than a short stall.
QUIET_S = 0.2
#: How long a deferred job may wait for such a quiet moment.
DEFER_AT_MOST_S = 10.0


class _Answer(asyncio.Future[T]):
    """What a caller of the writer awaits: its task is woken as soon as it is answered.

    A plain future wakes the task that awaits it on the event loop's next turn, after
    every callback already waiting there; and the answer itself comes on a turn of its
    own (``answered``, from this thread). Under load a turn serves some 25 pages, about
    15 ms, so a claim's page waited one turn more than it needs. Here the callbacks of
    an answer run in ``answered`` itself, a turn of the loop in which no task runs. A
    cancelled answer calls them back on the next turn, as a plain future does: a task
    may be cancelled from within another task.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self._waiting: list[tuple[Callable[[Any], object], Context | None]] = []

    def add_done_callback(
        self, fn: Callable[[Self], object], /, *, context: Context | None = None
    ) -> None:
        if self.done():
            super().add_done_callback(fn, context=context)
        else:
            self._waiting.append((fn, context))

    def remove_done_callback(self, fn: Callable[[Self], object], /) -> int:
        kept = [(each, context) for each, context in self._waiting if each != fn]
        removed = len(self._waiting) - len(kept)
        self._waiting = kept
        return removed + super().remove_done_callback(fn)

    def cancel(self, msg: Any | None = None) -> bool:
        if not super().cancel(msg):
            return False
        waiting, self._waiting = self._waiting, []
        for fn, context in waiting:
            self.get_loop().call_soon(fn, self, context=context)
        return True

    def answered(self, ok: bool, value: Any) -> None:
        """Set the result (or the exception) and call back at once: on the loop, in a
        callback of its own, never from within a task."""
        if self.cancelled():
            return
        if ok:
            self.set_result(value)
        else:
            self.set_exception(value)
        waiting, self._waiting = self._waiting, []
        for fn, context in waiting:
            try:
                if context is None:
                    fn(self)
                else:
                    context.run(fn, self)
            except Exception as exc:  # as the loop reports a failing callback
                self.get_loop().call_exception_handler(
                    {"message": "an answer's callback failed", "exception": exc, "future": self}
                )


@dataclass
class _Job:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: _Answer[Any]
    queued: float = field(default_factory=time.monotonic)


class StoreWriter:
    """Runs every store call on one dedicated thread: one writer, off the event loop.

    It is what the daemon's parts share, so it also carries their ``health`` (shown on
    /healthz by the web endpoint) and, once started, the ``committed`` view.
    """

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open_store = open_store
        self.store: Store | None = None
        self.committed: CommittedView | None = None
        self.health = Health()
        self.metrics = Metrics()  # what /metrics shows
        self._ready = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._deferred: deque[_Job] = deque()
        self._closing = False
        self._dropping = False  # closing: deferred jobs are dropped
        self._deferred_last = False  # was the last group a deferred job?
        self._last_page_job = 0.0  # when (monotonic) the last page's job came
        self._thread: threading.Thread | None = None
        self.groups = 0  # group commits so far (each one fdatasync at most) ...
        self.jobs = 0  # ... of this many jobs: for benchmarks and /metrics

    async def start(self) -> None:
        self.store = await self.call(self._open)
        # The state just loaded lives as long as the process: the cyclic collector need
        # not walk its documents on every full collection, a pause that would grow with
        # the program's history. (They are plain data, freed by reference counting.)
        gc.freeze()

    def _open(self) -> Store:
        store = self._open_store()
        store.db.hold_syncs()  # this thread syncs once per group (module docstring)
        self.committed = CommittedView(store.db)
        self.store = store  # already, for the jobs committed with this one
        return store

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the writer; returns once what it wrote is durable."""
        return await self.submit(fn, *args, **kwargs)

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn`` now without waiting for it: it runs after every call queued
        before it and before every call queued after it (``defer``'s excepted). Raises
        RuntimeError once the writer is closing."""
        return self._queue(self._jobs, functools.partial(fn, *args, **kwargs))

    async def for_page(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call`` for a page a person is waiting for (a claim's button): deferred jobs
        wait until such jobs have stopped coming for ``QUIET_S``."""
        job = self._queue(self._jobs, functools.partial(fn, *args, **kwargs), page=True)
        return await job

    def defer(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        """Queue ``fn`` to run when nothing else waits for the writer (or it has waited
        ``DEFER_AT_MOST_S``), after every job deferred before it. Raises RuntimeError
        once the writer is closing.

        Closing drops what is still deferred (its future is cancelled): only work that
        the state says is due, and that a start picks up again, may be deferred."""
        with self._ready:
            if self._dropping:
                raise RuntimeError("the store's writer is closing")
        return self._queue(self._deferred, functools.partial(fn, *args, **kwargs))

    async def close(self) -> None:
        with self._ready:
            self._dropping = True
            dropped = list(self._deferred)
            self._deferred.clear()
        for job in dropped:
            job.future.cancel()
        if self.store is not None:
            await self.call(self.store.close)
            self.store = None
        with self._ready:
            self._closing = True
            self._ready.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # The thread ---------------------------------------------------------------------------

    def _queue(
        self, lane: deque[_Job], fn: Callable[[], T], *, page: bool = False
    ) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop, _Answer(loop=loop))
        with self._ready:
            if self._closing:
                raise RuntimeError("the store's writer is closing")
            lane.append(job)
            if page:
                self._last_page_job = job.queued
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store", daemon=True)
                self._thread.start()
            self._ready.notify()
        return job.future

    def _run(self) -> None:
        while (group := self._next_group()) is not None:
            self.groups += 1
            self.jobs += len(group)
            done: list[tuple[_Job, bool, Any]] = []
            deferred = self._deferred_last  # nobody waits for it: it makes way for pages
            for job in group:
                try:
                    with foreground.background() if deferred else contextlib.nullcontext():
                        done.append((job, True, job.fn()))
                except BaseException as exc:  # handed to the caller, as an executor does
                    done.append((job, False, exc))
            try:
                self._sync()
            except Exception as exc:  # nothing of the group is known to be durable
                log.exception("the store could not commit a group of %d jobs", len(group))
                done = [(job, False, exc) for job, _, _ in done]
            for job, ok, value in done:
                # (RuntimeError: the caller's loop is closed; nobody is left to tell.)
                with contextlib.suppress(RuntimeError):
                    job.loop.call_soon_threadsafe(job.future.answered, ok, value)

    def _next_group(self) -> list[_Job] | None:
        """The next jobs to commit together; None once closing and nothing is left.

        Jobs someone waits for first, all that are queued. A deferred job alone, when
        none is queued and no page's job has come for ``QUIET_S`` (a burst of clicks is
        over), or when it has waited ``DEFER_AT_MOST_S`` (then it takes every other
        turn, never two in a row).
        """
        with self._ready:
            while True:
                now = time.monotonic()
                overdue = bool(self._deferred) and now - self._deferred[0].queued >= DEFER_AT_MOST_S
                if self._jobs and (not overdue or self._deferred_last):
                    self._deferred_last = False
                    return [self._jobs.popleft() for _ in range(min(len(self._jobs), MAX_GROUP))]
                quiet_for = now - self._last_page_job
                if self._deferred and (overdue or self._closing or quiet_for >= QUIET_S):
                    self._deferred_last = True
                    return [self._deferred.popleft()]
                if self._closing:
                    return None
                self._ready.wait(QUIET_S - quiet_for if self._deferred else None)

    def _sync(self) -> None:
        """Make the group durable, then show it to the committed view's readers."""
        store, committed = self.store, self.committed
        if store is None or committed is None:
            return
        committed.publish(store.db.sync())
