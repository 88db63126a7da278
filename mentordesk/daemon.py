"""The daemon: one event loop running the inbox reader, the outbox sender and the timers.

Threads and ownership:
- the store (TinyDB) belongs to one writer thread (``StoreWriter``); the coordinator's
  decisions run there too, so they see and change state one message at a time;
- the mailbox (imapclient, blocking) belongs to another single thread;
- SMTP (aiosmtplib) runs on the event loop itself;
- the timers (``timers.Scheduler``, APScheduler on this loop) run their steps on the
  writer thread, each in its own transaction.

A message leaves the inbox only after its effects are stored; a crash anywhere in
between means the message is read again after the restart, recognised by its Message-ID
and its place in the mailbox (or its content), and moved without a second set of effects.

The inbox reader is supervised: no exception ends it. Whatever goes wrong is logged, the
messages concerned stay in the mailbox (or are quarantined, when they are at fault), and
the reader goes on after a back-off; meanwhile ``/healthz`` says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

from .config import Config
from .errors import MailSourceError, MentordeskError, PermanentDeliveryError
from .flows.claims import ClaimDesk
from .flows.coordinator import CoordinatorDesk
from .flows.desks import Desks
from .flows.office_hours import OfficeHoursDesk
from .flows.router import Coordinator, Outcome, describe, temporary
from .flows.sessions import SessionDesk
from .health import HealthRules
from .inbox.source import MailSource, RawMessage, open_source
from .mailer.compose import Renderer
from .mailer.drafts import DraftWriter
from .mailer.sender import OutboxSender
from .mailer.transport import Transport, open_transport
from .state.store import OutboxItem, Store, StoreWriter
from .timers import Scheduler
from .web import WebApp

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

Clock = Callable[[], datetime]

# How long the writer thread handles messages before it commits them (one fsync for the
# group) and lets the outbox's reads and "sent" marks, queued for the same thread, run.
COMMIT_AFTER_S = 0.02
# Back-pressure: while more emails than this are due and unsent, new mail waits in the
# mailbox, where it is safe, instead of in memory as yet more unsent emails.
MAX_OUTBOX_BACKLOG = 1000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Batch:
    """What one round of the inbox reader found: maybe more mail, maybe trouble."""

    more: bool
    trouble: str = ""  # temporary trouble that left messages in the mailbox


class Backoff:
    """Exponential back-off with jitter, for reconnecting to servers."""

    def __init__(self, first_s: float = 0.5, max_s: float = 60.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay = min(self.max_s, self.first_s * 2.0 ** (self.failures - 1))
        return float(delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self.failures = 0


class Daemon:
    """Owns the store, the mailbox and the outbox for one program."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utc_now,
        source_factory: Callable[[], MailSource] | None = None,
        transport_factory: Callable[[], Transport] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.source_factory = source_factory or (lambda: open_source(config.inbox))
        self.transport_factory = transport_factory or (lambda: open_transport(config.smtp))
        self.writer = StoreWriter(lambda: Store(config.state.path, fsync=config.state.fsync))
        self.renderer = Renderer()
        self.drafts = DraftWriter(self.renderer, config.program)
        self.coordinator: Coordinator | None = None
        self.source: MailSource | None = None
        self._mailbox_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailbox")
        self.sender: OutboxSender | None = None
        self.web: WebApp | None = None
        self.timers: Scheduler | None = None
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self.health = self.writer.health  # what /healthz shows

    # Lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.writer.start()
        store = self._store()
        self.coordinator = Coordinator(self.config, store, self.renderer)
        self.sender = OutboxSender(
            self.config.smtp,
            self.writer,
            self.transport_factory,
            self.clock,
            self._delivery_failed,
            drafts=self.drafts,
            on_delivered=self._delivered,
            on_held=self._delivery_held,
        )
        self.source = self.source_factory()

    async def run(self) -> None:
        """Run until stop() is called (or the task is cancelled)."""
        await self.start()
        assert self.sender is not None
        try:
            await self.start_web()
        except BaseException:
            await self.close()  # the state's lock and threads go with the failed start
            raise
        assert self.coordinator is not None
        self.timers = Scheduler(
            self.config, self.writer, self.coordinator, self.clock, changed=self.sender.poke
        )
        self.timers.start()
        self.health.expect(HealthRules.from_config(self.config))
        tasks = [
            asyncio.create_task(self._read_inbox_forever(), name="inbox"),
            asyncio.create_task(self.sender.run(self.stop_event), name="outbox"),
        ]
        for task in tasks:
            task.add_done_callback(self._ended)
        self.ready.set()
        try:
            await self.stop_event.wait()
        finally:
            if self.timers is not None:
                await self.timers.stop()
            if self.source is not None:
                self.source.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.web is not None:
                await self.web.stop()
            await self.close()

    async def start_web(self) -> None:
        """Serve the pages behind the links in our emails on [web] host:port."""
        assert self.sender is not None
        self.web = WebApp(
            self.config,
            self.writer,
            self._claims,
            self.clock,
            changed=self.sender.poke,
            sessions=self._sessions,
            office_hours=self._office_hours,
            coordinator=self._coordinator_desk,
            desks=self._desks,
        )
        await self.web.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.source is not None:
            self.source.stop()

    async def close(self) -> None:
        if self.source is not None:
            await self._in_mailbox_thread(self.source.close)
        self._mailbox_thread.shutdown(wait=True)
        await asyncio.to_thread(self.drafts.close)
        await self.writer.close()

    # Inbox ------------------------------------------------------------------------------

    async def _read_inbox_forever(self) -> None:
        """Read mail until stop(). Supervised: whatever is raised is logged, shown on
        /healthz, and followed by a back-off; then the reader reads on."""
        backoff = Backoff(max_s=self.config.inbox.poll_interval.total_seconds() or 60.0)
        connected = reached = False
        while not self.stop_event.is_set():
            try:
                if not connected:
                    await self._in_mailbox_thread(self._source().connect)
                    connected = reached = True
                    self.writer.metrics.mailbox_connected()
                    log.info("mailbox connected")
                await self._wait_for_the_outbox()
                batch = await self._process_batch()
                if batch.trouble:
                    # Temporary trouble (no file descriptor left, say): the messages stay
                    # in the mailbox, uncounted, and are read again after the back-off.
                    await self._back_off(backoff, batch.trouble)
                    continue
                backoff.reset()
                self.health.fine("inbox")
                if not batch.more:
                    await self._in_mailbox_thread(
                        self._source().wait, self.config.inbox.poll_interval.total_seconds()
                    )
            except MailSourceError as exc:
                if not reached and backoff.failures == 0:
                    log.error(
                        "cannot reach the mailbox: %s — mentordesk keeps trying; /healthz "
                        "answers 503 until it can (`mentordesk check-config --connect` "
                        "tells what to fix)",
                        exc,
                    )
                connected = False
                await self._close_mailbox()
                await self._back_off(backoff, f"mailbox: {exc}", reconnect=True)
            except Exception as exc:
                # The state not writable (disk full?) or a bug: nothing was moved out of
                # the mailbox. A bug may have left the connection in any state, so the
                # reader starts again from a new one.
                restart = not temporary(exc)
                if restart:
                    log.error("the inbox reader failed; it starts again", exc_info=exc)
                    connected = False
                    await self._close_mailbox()
                await self._back_off(backoff, describe(exc), reconnect=restart)

    async def _back_off(self, backoff: Backoff, trouble: str, *, reconnect: bool = False) -> None:
        delay = backoff.next_delay()
        again = "reconnecting" if reconnect else "reading again"
        log.warning("inbox: %s; %s in %.1fs", trouble, again, delay)
        self.health.trouble("inbox", f"{trouble}; {again} in {delay:.1f}s")
        await self._sleep(delay)

    async def _close_mailbox(self) -> None:
        try:
            await self._in_mailbox_thread(self._source().close)
        except Exception:  # close() never raises, by contract; the reader must not stop
            log.exception("closing the mailbox failed")

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A long-running task ended: expected after stop(), else /healthz shows it."""
        if self.stop_event.is_set() or task.cancelled():
            return
        exc = task.exception()
        log.critical("the %s task stopped", task.get_name(), exc_info=exc)
        self.health.trouble(task.get_name(), f"stopped: {describe(exc) if exc else 'ended'}")

    async def _wait_for_the_outbox(self) -> None:
        """Return once the outbox's backlog is under MAX_OUTBOX_BACKLOG (or on stop).

        Only emails due now count: mail held back by a server that refuses it for a while
        waits for its retry and does not stop the inbox.
        """
        store = self._store()
        while (
            not self.stop_event.is_set()
            and await self.writer.call(store.due_outbox_count, self.clock()) > MAX_OUTBOX_BACKLOG
        ):
            await self._sleep(0.05)

    async def process_inbox_once(self) -> bool:
        """Fetch one batch, apply it, move what is settled. True when there may be more."""
        return (await self._process_batch()).more

    async def _process_batch(self) -> _Batch:
        source = self._source()
        batch = await self._in_mailbox_thread(source.fetch, self.config.inbox.batch_size)
        if not batch:
            return _Batch(more=False)
        outcomes: list[Outcome] = []
        while len(outcomes) < len(batch):
            outcomes += await self.writer.call(self._handle_some, batch[len(outcomes) :])
            if self.sender is not None:
                self.sender.poke()  # their emails may go while the next ones are handled
        done = list(zip(batch, outcomes, strict=True))
        for raw, outcome in done:
            self.writer.metrics.message_handled(
                raw.key, outcome.status, outcome.kind, outcome.request
            )
        settled = [raw for raw, outcome in done if outcome.settled]
        quarantined = [raw for raw, outcome in done if outcome.status == "quarantined"]
        if settled:
            await self._in_mailbox_thread(source.mark_done, settled)
        if quarantined:
            await self._in_mailbox_thread(source.quarantine, quarantined)
        deferred = [outcome for _, outcome in done if outcome.status == "deferred"]
        if deferred:
            trouble = f"{len(deferred)} of {len(batch)} messages left in the mailbox"
            return _Batch(more=True, trouble=f"{trouble}: {deferred[0].error}")
        failing = len(batch) - len(settled) - len(quarantined)
        if failing:
            # Failing messages stay in the inbox; give them a moment before the retry.
            await self._sleep(min(5.0, self.config.inbox.poll_interval.total_seconds()))
        return _Batch(more=len(batch) >= self.config.inbox.batch_size or failing > 0)

    def _handle_some(self, batch: list[RawMessage]) -> list[Outcome]:
        """Handle the first messages of ``batch``, for about COMMIT_AFTER_S; their outcomes.

        Runs on the writer thread. Group commit: the messages' own transactions nest in
        one, so their effects reach the disk together, with one fsync. A message that fails
        still fails alone (its block is undone, the others' are kept), and none is moved
        out of the inbox before this returns, when all are durable.
        """
        assert self.coordinator is not None
        outcomes: list[Outcome] = []
        started = time.monotonic()
        with self._store().transaction():
            for raw in batch:
                outcomes.append(self.coordinator.handle(raw, self.clock()))
                if time.monotonic() - started >= COMMIT_AFTER_S:
                    break
        return outcomes

    # Outbox outcomes (on the writer thread, inside the sender's transaction) ------------

    def _delivery_failed(
        self, item: OutboxItem, failure: PermanentDeliveryError, now: datetime
    ) -> None:
        assert self.coordinator is not None
        for address in failure.recipients:
            self.coordinator.bounces.address_failed(
                address, str(failure), now, original=item.message_id, origin="relay"
            )

    def _delivered(self, addresses: Sequence[str], now: datetime) -> None:
        assert self.coordinator is not None
        self.coordinator.bounces.delivered(addresses, now)

    def _delivery_held(self, recipients: Sequence[str], error: str, now: datetime) -> None:
        assert self.coordinator is not None
        self.coordinator.bounces.held(recipients, error, now)

    # Demo and tests: run until nothing is left to do --------------------------------------

    async def drain(self) -> None:
        """Process the whole inbox and deliver everything due, then return."""
        await self._in_mailbox_thread(self._source().connect)
        while (batch := await self._process_batch()).more:
            if batch.trouble:
                raise MentordeskError(f"the inbox cannot be drained now: {batch.trouble}")
        assert self.sender is not None
        await self.sender.drain()

    # Helpers ------------------------------------------------------------------------------

    async def _in_mailbox_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._mailbox_thread, functools.partial(fn, *args, **kwargs)
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)

    def _sessions(self) -> SessionDesk:
        if self.coordinator is None:
            raise RuntimeError("daemon not started")
        return self.coordinator.sessions

    def _office_hours(self) -> OfficeHoursDesk:
        if self.coordinator is None:
            raise RuntimeError("daemon not started")
        return self.coordinator.office_hours

    def _desks(self) -> Desks:
        if self.coordinator is None:
            raise RuntimeError("daemon not started")
        return self.coordinator.desks

    def _coordinator_desk(self) -> CoordinatorDesk:
        if self.coordinator is None:
            raise RuntimeError("daemon not started")
        return self.coordinator.desks.coordinator

    def _claims(self) -> ClaimDesk:
        if self.coordinator is None:
            raise RuntimeError("daemon not started")
        return self.coordinator.claims

    def _source(self) -> MailSource:
        if self.source is None:
            raise RuntimeError("daemon not started")
        return self.source

    def _store(self) -> Store:
        if self.writer.store is None:
            raise RuntimeError("store not open")
        return self.writer.store
