"""The sender: every stored email is sent until it is delivered.

``OutboxSender`` is the loop that delivers the outbox's stored items (outbox.py) with
retries and back-off and records the outcome; because an item is marked sent right
after the server accepts it, a crash can at worst resend the few messages that were in
flight (at most ``MAX_UNMARKED``), with the same Message-ID, so mail clients show each
once.

Temporary failures (4xx, the relay unreachable) never give an email up: they say nothing
about its recipients. Once an email has met ``[smtp] max_attempts`` of them it is "held"
(``on_held``) and retried every ``max_retry_after`` until the relay takes it. Only a
permanent refusal (5xx) fails it (``on_permanent_failure``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..config import SmtpConfig
from ..errors import PermanentDeliveryError, TemporaryDeliveryError
from ..state.store import OutboxItem, Store, StoreWriter
from .drafts import DraftWriter
from .transport import Transport

log = logging.getLogger(__name__)

# Emails delivered whose "sent" mark is not durable yet, at most, over all connections:
# what a crash could send twice. The marks wait for the store's writer thread, which also
# handles the inbox, so a connection goes on sending while its last marks are written.
MAX_UNMARKED = 32
# Emails waiting for a connection from which drafts are written ahead, on the drafts'
# thread (drafts.py): a backlog, not one email that is quicker written on the loop.
BUSY_QUEUE = 4
# At most this many drafts written ahead of the connections that will send them.
WRITTEN_AHEAD = 8
# On stop, how long a connection may take to finish the email it is sending. Cutting it
# off mid-reply could leave one the server accepted without its mark: sent again later.
STOP_GRACE_S = 10.0


DeliveryFailed = Callable[[OutboxItem, PermanentDeliveryError, datetime], None]
# The recipients of emails the relay accepted, and when.
Delivered = Callable[[Sequence[str], datetime], None]
# An email met [smtp] max_attempts temporary failures: its recipients, the last error.
DeliveryHeld = Callable[[Sequence[str], str, datetime], None]


def _ignore(*args: object) -> None:
    pass


class OutboxSender:
    """Delivers due outbox items over ``connections`` parallel transports.

    ``on_permanent_failure``, ``on_delivered`` and ``on_held`` run on the store's writer
    thread, inside the transaction that records the outcome, so that what they do (mark
    or clear an address, tell the coordinator) happens together with it.

    An item stays "in flight" — never handed out again — from the moment it is queued
    until its outcome is stored. The "sent" marks of items delivered while the store is
    busy are written together in its next write (one fsync for all); at most
    ``MAX_UNMARKED`` items are delivered and not yet marked at any time.
    """

    def __init__(
        self,
        config: SmtpConfig,
        writer: StoreWriter,
        open_transport: Callable[[], Transport],
        clock: Callable[[], datetime],
        on_permanent_failure: DeliveryFailed,
        *,
        drafts: DraftWriter,
        on_delivered: Delivered = _ignore,
        on_held: DeliveryHeld = _ignore,
    ) -> None:
        self.config = config
        self.drafts = drafts
        self.writer = writer
        self.open_transport = open_transport
        self.clock = clock
        self.on_permanent_failure = on_permanent_failure
        self.on_delivered = on_delivered
        self.on_held = on_held
        self.wakeup = asyncio.Event()
        # None tells a connection to close: the daemon is stopping.
        self._queue: asyncio.Queue[OutboxItem | None] = asyncio.Queue()
        self._in_flight: set[int] = set()
        # Drafts being written (or written) ahead of their connection, by item id, at
        # most ``WRITTEN_AHEAD``; and the queued ones to write ahead next, in order.
        self._ahead: dict[int, asyncio.Future[bytes]] = {}
        self._to_write_ahead: dict[int, OutboxItem] = {}
        # Items delivered whose "sent" mark is not written yet, and who waits for it.
        self._to_mark: list[tuple[OutboxItem, asyncio.Future[None]]] = []
        self._marker: asyncio.Task[None] | None = None
        self._unmarked = asyncio.Semaphore(MAX_UNMARKED)

    def poke(self) -> None:
        """New mail was stored: look for due items now."""
        self.wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        workers = [
            asyncio.create_task(self._deliver_forever(), name=f"smtp-{n}")
            for n in range(self.config.connections)
        ]
        try:
            while not stop.is_set():
                # Cleared before looking, so a poke that comes while we look is kept.
                self.wakeup.clear()
                await self._feed()
                await self._sleep_until_due(stop)
        finally:
            await self._close_connections(workers)
            if self._marker is not None:
                # Whatever was delivered gets its mark before the store closes.
                await asyncio.gather(self._marker, return_exceptions=True)

    async def _close_connections(self, workers: list[asyncio.Task[None]]) -> None:
        """Each connection finishes the email it is sending, then closes; emails not
        started stay due in the store for the next start."""
        while not self._queue.empty():
            waiting = self._queue.get_nowait()
            self._queue.task_done()
            if waiting is not None:
                self._in_flight.discard(waiting.id)
                self._to_write_ahead.pop(waiting.id, None)
                writing = self._ahead.pop(waiting.id, None)
                if writing is not None:
                    writing.cancel()
        for _ in workers:
            self._queue.put_nowait(None)
        _, late = await asyncio.wait(workers, timeout=STOP_GRACE_S)
        for worker in late:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def drain(self) -> None:
        """Deliver everything that is due now on one connection, then return.

        For the demo and tests; not to be mixed with a running ``run()``.
        """
        store = self._store()
        transport = self.open_transport()
        try:
            while due := await self.writer.call(store.due_outbox, self.clock(), 500):
                for item in due:
                    marking = await self._deliver(transport, item)
                    if marking is not None:
                        await marking
        finally:
            await transport.close()

    async def _feed(self) -> None:
        store = self._store()
        due = await self.writer.call(store.due_outbox, self.clock(), 500, set(self._in_flight))
        # A backlog's drafts are written ahead, on the drafts' thread (drafts.py), while
        # the connections send what is ready: each one then waits for SMTP only.
        ahead = len(due) + self._queue.qsize() >= BUSY_QUEUE
        for item in due:
            if item.id not in self._in_flight:
                self._in_flight.add(item.id)
                if ahead and item.draft is not None:
                    self._to_write_ahead[item.id] = item
                self._queue.put_nowait(item)
        self._write_ahead()

    def _write_ahead(self) -> None:
        """Keep the next ``WRITTEN_AHEAD`` drafts of the queue written or being written:
        a connection that takes one then waits for SMTP only. No more: the connections
        take them one SMTP exchange at a time, and a draft written long before its turn
        holds the interpreter, which the pages share, for nothing yet."""
        while len(self._ahead) < WRITTEN_AHEAD and self._to_write_ahead:
            item_id = next(iter(self._to_write_ahead))
            item = self._to_write_ahead.pop(item_id)
            self._ahead[item_id] = asyncio.ensure_future(self._write(item, busy=True))

    async def _sleep_until_due(self, stop: asyncio.Event) -> None:
        store = self._store()
        next_due = await self.writer.call(store.next_outbox_due, set(self._in_flight))
        timeout_s = 60.0
        if next_due is not None:
            timeout_s = min(timeout_s, max(0.05, (next_due - self.clock()).total_seconds()))
        waiters = [asyncio.create_task(self.wakeup.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _deliver_forever(self) -> None:
        transport = self.open_transport()
        try:
            while True:
                item = await self._queue.get()
                if item is None:
                    self._queue.task_done()
                    return
                marking: asyncio.Future[None] | None = None
                await self._unmarked.acquire()
                try:
                    marking = await self._deliver(transport, item)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # A bug must not stop delivery of everything else; the item stays
                    # pending and is retried at its next due time.
                    log.exception("unexpected error delivering outbox item %s", item.id)
                finally:
                    self._queue.task_done()
                    if marking is None:
                        self._settled(item.id)
                    else:
                        marking.add_done_callback(functools.partial(self._marked, item.id))
                # Python 3.11's asyncio.wait_for (aiosmtplib waits for replies with it)
                # can swallow a cancellation that arrives as a reply does; honour it.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError
        finally:
            await transport.close()

    def _marked(self, item_id: int, marking: asyncio.Future[None]) -> None:
        if not marking.cancelled() and marking.exception() is not None:
            # Still pending in the store: it will be sent again at its next due time.
            log.error("outbox %s was sent but not marked: %s", item_id, marking.exception())
        self._settled(item_id)

    def _settled(self, item_id: int) -> None:
        """``item_id``'s outcome is stored (or it stays pending for good reason)."""
        self._in_flight.discard(item_id)
        self._unmarked.release()

    async def _deliver(self, transport: Transport, item: OutboxItem) -> asyncio.Future[None] | None:
        """Try ``item`` once and store the outcome. After a successful send, returns the
        future of its "sent" mark, which is written with others (``_write_marks``)."""
        try:
            data = item.data if item.data is not None else await self._written(item)
            await transport.send(data, item.sender, item.recipients)
        except TemporaryDeliveryError as exc:
            attempts = item.attempts + 1
            # Doubling from retry_after, never beyond max_retry_after (nor overflowing).
            doublings = min(attempts - 1, 32)
            delay = min(self.config.retry_after * (2**doublings), self.config.max_retry_after)
            log.warning(
                "outbox %s to %s: %s; retry %d in %ss",
                item.id,
                ", ".join(item.recipients),
                exc,
                attempts,
                int(delay.total_seconds()),
            )
            self.writer.metrics.email_retried(item)
            self.writer.health.trouble("smtp", str(exc))
            await self.writer.call(self._retry_later, item, str(exc), self.clock() + delay)
            self.poke()  # the loop may be sleeping past the new due time
        except PermanentDeliveryError as exc:
            self.writer.metrics.email_failed(item)
            self.writer.health.fine("smtp")  # the server answered; the message was wrong
            await self.writer.call(self._fail, item, exc)
            self.poke()  # telling the coordinator stored an email of its own
        else:
            self.writer.metrics.email_sent(item)  # and its log line
            self.writer.health.fine("smtp")
            return self._mark_sent(item)
        return None

    async def _written(self, item: OutboxItem) -> bytes:
        """The bytes of an email stored as a draft: written ahead (``_feed``) or now. One
        that cannot be written (a template changed under it, say) fails as a refused
        email does, and the desk shows it."""
        writing = self._ahead.pop(item.id, None)
        # Its turn came before it was written ahead: of a backlog still, so on the
        # drafts' thread too.
        backlog = self._to_write_ahead.pop(item.id, None) is not None
        self._write_ahead()
        try:
            return await (writing or self._write(item, busy=backlog))
        except Exception as exc:
            log.exception("outbox %s could not be written from its draft", item.id)
            raise PermanentDeliveryError(f"the email could not be written: {exc}", []) from exc

    async def _write(self, item: OutboxItem, *, busy: bool) -> bytes:
        assert item.draft is not None
        return await self.drafts.bytes_of(item.draft, busy=busy)

    def _mark_sent(self, item: OutboxItem) -> asyncio.Future[None]:
        """Have ``item`` marked sent; the future is done once that is durable."""
        marked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_mark.append((item, marked))
        if self._marker is None or self._marker.done():
            self._marker = asyncio.create_task(self._write_marks(), name="outbox-marks")
        return marked

    async def _write_marks(self) -> None:
        """Write the waiting marks, one store write for all that came in the meantime."""
        while self._to_mark:
            batch, self._to_mark = self._to_mark, []
            try:
                await self.writer.call(self._record_sent, [item for item, _ in batch])
            except Exception as exc:
                for _, marked in batch:
                    if not marked.done():
                        marked.set_exception(exc)
            else:
                for _, marked in batch:
                    if not marked.done():
                        marked.set_result(None)

    def _record_sent(self, items: list[OutboxItem]) -> None:
        """Runs on the writer thread: the "sent" marks, and what the deliveries prove."""
        store = self._store()
        now = self.clock()
        with store.transaction():
            store.mark_all_sent([item.id for item in items], now)
            addresses = sorted({r.lower() for item in items for r in item.recipients})
            self._consequence(self.on_delivered, addresses, now)

    def _retry_later(self, item: OutboxItem, error: str, due: datetime) -> None:
        """Runs on the writer thread: the next attempt at ``due``; the email is held
        (``on_held``) when this failure was its ``max_attempts``-th."""
        store = self._store()
        with store.transaction():
            attempts = store.mark_retry(item.id, error=error, due=due)
            if attempts == self.config.max_attempts:
                log.error(
                    "outbox %s to %s held after %d attempts: %s",
                    item.id,
                    ", ".join(item.recipients),
                    attempts,
                    error,
                )
                self._consequence(self.on_held, list(item.recipients), error, self.clock())

    def _consequence(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn`` in a block of its own: should it fail, the outcome it follows from
        (an email sent, a retry planned) is still recorded, and nothing is sent twice."""
        store = self._store()
        try:
            with store.transaction():
                fn(*args)
        except Exception:
            log.exception("outbox: %s failed", getattr(fn, "__name__", fn))

    def _fail(self, item: OutboxItem, failure: PermanentDeliveryError) -> None:
        """Runs on the writer thread."""
        store = self._store()
        now = self.clock()
        log.error("outbox %s to %s failed for good: %s", item.id, item.recipients, failure)
        with store.transaction():
            store.mark_failed(item.id, error=str(failure), now=now)
            self.on_permanent_failure(item, failure, now)

    def _store(self) -> Store:
        if self.writer.store is None:
            raise RuntimeError("the store is not open")
        return self.writer.store
