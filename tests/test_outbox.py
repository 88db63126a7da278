"""mailer/sender.py and the store's outbox: each email sent once, marks coalesced,
never more than MAX_UNMARKED delivered without their mark, sent bodies let go."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.config import ProgramConfig, SmtpConfig
from mentordesk.errors import TemporaryDeliveryError
from mentordesk.mailer import sender as sender_module
from mentordesk.mailer.compose import Renderer
from mentordesk.mailer.drafts import DraftWriter
from mentordesk.mailer.sender import OutboxSender
from mentordesk.state.store import Store, StoreWriter

NOW = datetime(2024, 5, 6, 14, 30, tzinfo=UTC)
PROGRAM = ProgramConfig(
    name="Program Mentors",
    address="mentors@program.test",
    coordinator="coord@program.test",
    escalation=(),
    timezone="UTC",
    base_url="http://127.0.0.1:8080",
    secret_env="SECRET",
)
# These tests store bytes; drafts are written by test_drafts.py's.
DRAFTS = DraftWriter(Renderer(), PROGRAM)
POLL_S = 0.01
WATCH_S = 0.3  # how long the cap on unmarked emails is watched


class _Recorder:
    """A transport that takes every message at once and remembers it."""

    def __init__(self, sent: Counter[str]) -> None:
        self.sent = sent

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        await asyncio.sleep(0)
        self.sent[message.decode()] += 1

    async def close(self) -> None:
        pass


def _smtp(tmp_path: Path, connections: int = 2) -> SmtpConfig:
    return SmtpConfig(
        kind="maildir",
        path=tmp_path,
        host="",
        port=0,
        tls="none",
        username="",
        password_env="",
        timeout=timedelta(seconds=5),
        max_attempts=3,
        retry_after=timedelta(seconds=30),
        max_retry_after=timedelta(hours=1),
        connections=connections,
    )


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[StoreWriter]:
    writer = StoreWriter(lambda: Store(tmp_path / "state.db", fsync=False))
    await writer.start()
    yield writer
    await writer.close()


def _enqueue(store: Store, count: int) -> None:
    with store.transaction():
        for n in range(count):
            store.enqueue(
                message_id=f"<{n}@program.test>",
                sender="mentors@program.test",
                recipients=[f"person{n}@example.com"],
                data=f"email {n}".encode(),
                kind="test",
                now=NOW,
            )


def _sender(tmp_path: Path, writer: StoreWriter, sent: Counter[str]) -> OutboxSender:
    def failed(*args: Any) -> None:
        raise AssertionError(f"nothing fails here: {args}")

    return OutboxSender(
        _smtp(tmp_path), writer, lambda: _Recorder(sent), lambda: NOW, failed, drafts=DRAFTS
    )


async def _run_until(sender: OutboxSender, done: Any, timeout_s: float = 10.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        async with asyncio.timeout(timeout_s):
            while not await done():
                await asyncio.sleep(POLL_S)
    finally:
        stop.set()
        sender.poke()
        await task


async def test_every_email_is_sent_once_and_marked_with_few_writes(
    tmp_path: Path, writer: StoreWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = writer.store
    assert store is not None
    await writer.call(_enqueue, store, 300)
    writes: list[int] = []
    real = Store.mark_all_sent

    def counted(self: Store, item_ids: Any, now: datetime) -> None:
        ids = list(item_ids)
        writes.append(len(ids))
        real(self, ids, now)

    monkeypatch.setattr(Store, "mark_all_sent", counted)
    sent: Counter[str] = Counter()
    sender = _sender(tmp_path, writer, sent)

    async def all_marked() -> bool:
        return not await writer.call(store.outbox, "pending")

    await _run_until(sender, all_marked)
    assert sent == Counter({f"email {n}": 1 for n in range(300)})
    assert sum(writes) == 300
    assert len(writes) < 300  # marks that came in while one was written went together
    items = await writer.call(store.outbox)
    assert {i["status"] for i in items} == {"sent"}
    assert all("data" not in i for i in items)  # a sent email's bytes are let go


async def test_at_most_max_unmarked_are_delivered_before_their_marks(
    tmp_path: Path, writer: StoreWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = writer.store
    assert store is not None
    await writer.call(_enqueue, store, sender_module.MAX_UNMARKED * 3)
    blocked = threading.Event()
    real = Store.mark_all_sent

    def slow(self: Store, item_ids: Any, now: datetime) -> None:
        blocked.wait(10)  # the store is busy elsewhere (handling a batch of mail)
        real(self, item_ids, now)

    monkeypatch.setattr(Store, "mark_all_sent", slow)
    sent: Counter[str] = Counter()
    sender = _sender(tmp_path, writer, sent)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(10):
            while sum(sent.values()) < sender_module.MAX_UNMARKED:
                await asyncio.sleep(POLL_S)
        # What a crash now could send twice: no more than MAX_UNMARKED, however long
        # the marks stay blocked (watched for a while, not slept through).
        watch_until = loop.time() + WATCH_S
        while loop.time() < watch_until:
            assert sum(sent.values()) == sender_module.MAX_UNMARKED
            await asyncio.sleep(POLL_S)
    finally:
        blocked.set()

    async def all_marked() -> bool:
        return not await writer.call(store.outbox, "pending")

    try:
        async with asyncio.timeout(10):
            while not await all_marked():
                await asyncio.sleep(POLL_S)
    finally:
        stop.set()
        sender.poke()
        await task
    assert set(sent.values()) == {1}
    assert len(sent) == sender_module.MAX_UNMARKED * 3


def test_the_store_knows_what_is_due_without_what_is_in_flight(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        _enqueue(store, 5)
        assert store.due_outbox_count(NOW) == 5
        assert [i.id for i in store.due_outbox(NOW, skip={1, 3})] == [2, 4, 5]
        assert store.next_outbox_due(skip={1, 2, 3, 4, 5}) is None
        store.mark_retry(2, error="451 later", due=NOW + timedelta(minutes=5))
        assert store.due_outbox_count(NOW) == 4
        assert store.next_outbox_due(skip={1, 3, 4, 5}) == NOW + timedelta(minutes=5)
        store.mark_all_sent([1, 3], NOW)
        assert [i.id for i in store.due_outbox(NOW)] == [4, 5]
        [first] = [d for d in store.outbox() if d["message_id"] == "<0@program.test>"]
        assert first["status"] == "sent" and "data" not in first
    finally:
        store.close()
    # The pending index is rebuilt from the file.
    again = Store(tmp_path / "state.db", fsync=False)
    try:
        assert [i.id for i in again.due_outbox(NOW)] == [4, 5]
        assert again.next_outbox_due() == NOW
    finally:
        again.close()


# --- temporary failures hold an email; deliveries are reported (issue 14, item 4) ---------


class _Down:
    """A relay that cannot be reached, until ``up`` is set."""

    def __init__(self, sent: Counter[str], up: threading.Event) -> None:
        self.sent = sent
        self.up = up
        self.tries = 0

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        await asyncio.sleep(0)
        self.tries += 1
        if not self.up.is_set():
            raise TemporaryDeliveryError("cannot connect: [Errno 111] Connection refused")
        self.sent[message.decode()] += 1

    async def close(self) -> None:
        pass


async def test_temporary_failures_hold_an_email_past_max_attempts_and_fail_nothing(
    tmp_path: Path, writer: StoreWriter
) -> None:
    store = writer.store
    assert store is not None
    await writer.call(_enqueue, store, 2)
    sent: Counter[str] = Counter()
    up = threading.Event()
    held: list[tuple[list[str], str]] = []
    delivered: list[str] = []
    clock = [NOW]

    def failed(*args: Any) -> None:
        raise AssertionError(f"a temporary failure failed an email: {args}")

    sender = OutboxSender(
        _smtp(tmp_path, connections=1),  # max_attempts 3, retry after 30 s up to 1 h
        writer,
        lambda: _Down(sent, up),
        lambda: clock[0],
        failed,
        drafts=DRAFTS,
        on_delivered=lambda addresses, now: delivered.extend(addresses),
        on_held=lambda recipients, error, now: held.append((list(recipients), error)),
    )
    for _ in range(6):  # twice the budget; each round the clock reaches the next retry
        await sender.drain()
        clock[0] += timedelta(hours=1)
    items = await writer.call(store.outbox)
    assert [(i["status"], i["attempts"]) for i in items] == [("pending", 6), ("pending", 6)]
    assert sorted(recipients for recipients, _ in held) == [
        ["person0@example.com"],
        ["person1@example.com"],
    ]
    assert all("Connection refused" in error for _, error in held)  # told once each
    assert delivered == []

    up.set()
    await sender.drain()
    assert sent == Counter({"email 0": 1, "email 1": 1})
    assert {i["status"] for i in await writer.call(store.outbox)} == {"sent"}
    assert sorted(delivered) == ["person0@example.com", "person1@example.com"]
    assert len(held) == 2


async def test_a_failing_consequence_never_unmarks_a_sent_email(
    tmp_path: Path, writer: StoreWriter
) -> None:
    store = writer.store
    assert store is not None
    await writer.call(_enqueue, store, 3)
    sent: Counter[str] = Counter()

    def broken(addresses: Sequence[str], now: datetime) -> None:
        raise RuntimeError("a bug after the delivery")

    sender = OutboxSender(
        _smtp(tmp_path),
        writer,
        lambda: _Recorder(sent),
        lambda: NOW,
        lambda *args: None,
        drafts=DRAFTS,
        on_delivered=broken,
    )
    await sender.drain()
    await sender.drain()  # nothing is due again: every email was marked sent
    assert sent == Counter({f"email {n}": 1 for n in range(3)})
    assert {i["status"] for i in await writer.call(store.outbox)} == {"sent"}


def test_an_email_is_found_by_its_message_id_without_a_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        _enqueue(store, 3)
        store.mark_all_sent([1, 2], NOW)
    finally:
        store.close()
    again = Store(tmp_path / "state.db", fsync=False)  # the index is rebuilt from the file
    try:

        def scan(*args: Any) -> Any:
            raise AssertionError("a bounce's lookup scanned the outbox")

        monkeypatch.setattr(again._outbox, "all", scan)
        monkeypatch.setattr(again._outbox, "search", scan)
        assert again.sent_to("<1@program.test>") == {"person1@example.com"}
        assert again.sent_to("<2@program.test>") == {"person2@example.com"}  # still pending
        assert again.sent_to("<elsewhere@example.com>") == frozenset()
        assert again.sent_to(None) == frozenset()
        found = again.outbox_by_message_id("<0@program.test>")
        assert found is not None and found["status"] == "sent"
    finally:
        again.close()


# --- a stop lets the email being sent finish ---------------------------------------------


class _SlowReply:
    """A relay that has the whole email at once but answers DATA only after a while."""

    def __init__(self, sent: Counter[str], sending: asyncio.Event) -> None:
        self.sent = sent
        self.sending = sending

    async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        self.sent[message.decode()] += 1
        self.sending.set()
        await asyncio.sleep(0.3)

    async def close(self) -> None:
        pass


async def test_a_stop_waits_for_the_email_being_sent_and_leaves_the_rest_due(
    tmp_path: Path, writer: StoreWriter
) -> None:
    """Cut off while the relay answers, an email the relay took would stay unmarked and
    go out a second time after the restart."""
    store = writer.store
    assert store is not None
    await writer.call(_enqueue, store, 5)
    sent: Counter[str] = Counter()
    sending = asyncio.Event()

    def failed(*args: Any) -> None:
        raise AssertionError(f"nothing fails here: {args}")

    sender = OutboxSender(
        _smtp(tmp_path, connections=1),
        writer,
        lambda: _SlowReply(sent, sending),
        lambda: NOW,
        failed,
        drafts=DRAFTS,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await asyncio.wait_for(sending.wait(), 10)
    stop.set()
    sender.poke()
    await asyncio.wait_for(task, 30)

    items = await writer.call(store.outbox)
    marked = [i for i in items if i["status"] == "sent"]
    assert sum(sent.values()) == len(marked) == 1
    assert sum(1 for i in items if i["status"] == "pending") == 4
    # The next start sends the other four, and the first not again.
    await sender.drain()
    assert sent == Counter({f"email {n}": 1 for n in range(5)})
