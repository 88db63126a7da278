"""Emails stored as drafts and written when they are sent (mailer/drafts.py).

The flows' own emails are checked against rendering at once by conftest's
``drafts_read_as_rendered_at_once``; here: what may be a draft, the journal it saves,
writing a backlog on the drafts' thread, a draft that cannot be written, and a restart between
storing and sending."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from email.message import EmailMessage, MIMEPart
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup
from tinydb.table import Document

from mentordesk.calendar.invite import calendar_mime_parts
from mentordesk.errors import PermanentDeliveryError
from mentordesk.mailer import outbox as outbox_module
from mentordesk.mailer.compose import Email, Renderer, message_bytes
from mentordesk.mailer.drafts import (
    DraftWriter,
    NotPlain,
    plain,
    stored_email,
    write_draft,
)
from mentordesk.mailer.outbox import Postman
from mentordesk.mailer.sender import WRITTEN_AHEAD, OutboxSender
from mentordesk.reports import export_csv
from mentordesk.state.outbox_records import OutboxItem
from mentordesk.state.records import RequestStatus
from mentordesk.state.store import Store, StoreWriter
from mentordesk.views import request_view

from .test_outbox import NOW, PROGRAM, _Recorder, _run_until, _smtp

RENDERER = Renderer()
_MESSAGE_ID = re.compile(rb"<[0-9a-f]{32}@program.test>")


def ack_context(name: str = "Ada Lovelace", details: str = "Help with Python") -> dict[str, Any]:
    """A request's acknowledgement, as flows/requests.py makes it (tuples and all)."""
    request = {"number": 7, "name": name, "skills": ["python"], "details": details}
    return {
        "subject": "Re: Mentor request [#7]",
        "request": request_view(request),
        "missing": [],
        "asked": [],
        "understood": [("Timezone", "Europe/Berlin (you wrote “Berlin”)")],
        "problems": [],
        "unknown_skills": (),
        "known_skills": ["python"],
        "next_update": "Tuesday 12 May",
        "invite_count": 3,
    }


def store_ack(store: Store, context: dict[str, Any], to: str = "ada@example.com") -> str:
    with store.transaction():
        message_id = Postman(PROGRAM, store, RENDERER).send(
            "request_ack", to=to, to_name="Ada Lovelace", now=NOW, context=context
        )
    assert message_id is not None
    return message_id


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def without_boundary(raw: bytes) -> bytes:
    """The MIME boundaries are random each time an email is written; nothing else is."""
    boundaries = re.findall(rb'boundary="([^"]+)"', raw)
    assert boundaries
    for boundary in boundaries:
        raw = raw.replace(boundary, b"BOUNDARY")
    return raw


# --- what may be a draft ---------------------------------------------------------------


def test_plain_gives_what_json_gives_back() -> None:
    value = {"a": (1, 2.5, None), "b": MappingProxyType({"c": [True, "x"]})}
    assert plain(value) == {"a": [1, 2.5, None], "b": {"c": [True, "x"]}}


@dataclass
class Record:
    name: str


class Pair(NamedTuple):
    left: int
    right: int


@pytest.mark.parametrize(
    "value",
    [
        {"r": Record("ada")},
        {1: "key not text"},
        {"x": float("nan")},
        {"d": NOW},
        {"s": {1}},
        {"html": Markup("<em>already escaped</em>")},
        {"status": RequestStatus.OPEN},
        {"pair": Pair(1, 2)},
        {"doc": Document({"a": 1}, doc_id=3)},
    ],
)
def test_anything_else_is_not_plain(value: Any) -> None:
    with pytest.raises(NotPlain):
        plain(value)


def test_an_email_with_plain_context_is_stored_as_a_small_draft(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        journal = tmp_path / "state.db.journal"
        before = journal.stat().st_size
        message_id = store_ack(store, ack_context())
        doc = store.outbox_by_message_id(message_id)
        assert doc is not None and "data" not in doc
        assert doc["draft"]["template"] == "request_ack"
        assert f"Subject: {doc['subject']}" in doc["draft"]["head"]
        # The record is the draft, not ~6 KB of MIME.
        written = stored_email(doc, PROGRAM)
        assert journal.stat().st_size - before < len(written) / 2
        message = parsed(written)
        assert message["Message-ID"] == message_id
        assert message["Subject"] == doc["subject"]
        body = message.get_body(preferencelist=("plain",))
        assert body is not None and "Ada" in body.get_content()
    finally:
        store.close()


def store_with_parts(
    store: Store, alternatives: list[MIMEPart], attachments: list[MIMEPart]
) -> dict[str, Any]:
    with store.transaction():
        message_id = Postman(PROGRAM, store, RENDERER).send(
            "request_ack",
            to="ada@example.com",
            now=NOW,
            context=ack_context(),
            alternatives=alternatives,
            attachments=attachments,
        )
    doc = store.outbox_by_message_id(str(message_id))
    assert doc is not None
    return dict(doc)


def test_an_invitation_is_a_draft_with_its_calendar_parts_written_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calendar parts are bytes already: they are stored as written, and the text
    and HTML are written at send time around them, as they would have been at once."""
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nSUMMARY:Mentoring\r\nEND:VCALENDAR\r\n"
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        inline, attachment = calendar_mime_parts(ics, "REQUEST")
        draft_doc = store_with_parts(store, [inline], [attachment])
        monkeypatch.setattr(outbox_module, "_plain_or_none", lambda context: None)
        at_once_doc = store_with_parts(store, [inline], [attachment])
        assert "data" not in draft_doc and len(draft_doc["draft"]["attachments"]) == 1
        assert "draft" not in at_once_doc
        later, at_once = (stored_email(doc, PROGRAM) for doc in (draft_doc, at_once_doc))
        masked = [_MESSAGE_ID.sub(b"ID", without_boundary(raw)) for raw in (later, at_once)]
        assert masked[0] == masked[1]
        message = parsed(later)
        calendar = message.get_body(preferencelist=("calendar",))
        assert calendar is not None and calendar.get_payload(decode=True) == ics
        [attachment] = list(message.iter_attachments())
        assert attachment.get_filename() == "invite.ics"
        assert attachment.get_payload(decode=True) == ics
    finally:
        store.close()


def test_an_email_with_a_part_not_written_directly_is_stored_as_bytes(tmp_path: Path) -> None:
    """A part the direct writer leaves to the email package (here a long filename,
    folded) makes the whole email rendered at once, the long way."""
    part = MIMEPart()
    part.set_content(b"data", "application", "octet-stream", filename="x" * 100 + ".bin")
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        doc = store_with_parts(store, [], [part])
        assert "draft" not in doc and "data" in doc
        [attachment] = list(parsed(stored_email(doc, PROGRAM)).iter_attachments())
        assert attachment.get_payload(decode=True) == b"data"
    finally:
        store.close()


def test_a_bad_address_fails_the_decision_not_the_sending(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        with pytest.raises(ValueError):
            store_ack(store, ack_context(), to="ada@example.com\r\nBcc: everyone@example.org")
        assert store.outbox() == []
    finally:
        store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.text(min_size=1, max_size=40),
    details=st.text(max_size=300),
)
def test_a_draft_is_written_as_it_would_have_been_at_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, details: str
) -> None:
    """Hostile names and text: the email written later is the one rendered at once."""
    store = Store(tmp_path_factory.mktemp("d") / "state.db", fsync=False)
    try:
        message_id = store_ack(store, ack_context(name, details))
        doc = store.outbox_by_message_id(message_id)
        assert doc is not None
        later = write_draft(RENDERER, PROGRAM, doc["draft"])
        at_once = RENDERER.render("request_ack", {"program": PROGRAM, **ack_context(name, details)})
        email = Email(
            from_addr=PROGRAM.address,
            from_name=PROGRAM.name,
            to="ada@example.com",
            to_name="Ada Lovelace",
            subject=at_once.subject,
            text=at_once.text,
            html=at_once.html,
            message_id=message_id,
            date=NOW,
            auto_submitted="auto-generated",
        )
        assert without_boundary(later) == without_boundary(message_bytes(email))
        assert at_once.subject == doc["subject"]
    finally:
        store.close()


# --- writing at send time ----------------------------------------------------------------


@pytest.fixture
async def writer(tmp_path: Path) -> Any:
    writer = StoreWriter(lambda: Store(tmp_path / "state.db", fsync=False))
    await writer.start()
    yield writer
    await writer.close()


async def test_a_backlog_is_written_on_the_drafts_thread_as_one_email_is(
    writer: StoreWriter,
) -> None:
    store = writer.store
    assert store is not None
    message_id = await writer.call(store_ack, store, ack_context())
    doc = await writer.call(store.outbox_by_message_id, message_id)
    assert doc is not None
    drafts = DraftWriter(RENDERER, PROGRAM)
    try:
        here = await drafts.bytes_of(doc["draft"])
        assert drafts._thread is None  # one email alone is written on the loop
        there = await drafts.bytes_of(doc["draft"], busy=True)
        assert drafts._thread is not None
        assert without_boundary(there) == without_boundary(here)
    finally:
        await asyncio.to_thread(drafts.close)


async def test_a_draft_that_cannot_be_written_fails_alone(
    writer: StoreWriter, tmp_path: Path
) -> None:
    """Its template gone (a downgrade, a renamed file): that email fails with a clear
    error for the desk, the others go, and no address is marked undeliverable."""
    store = writer.store
    assert store is not None
    first = await writer.call(store_ack, store, ack_context())
    second = await writer.call(store_ack, store, ack_context(), "bea@example.com")

    def break_first() -> None:
        [item] = [i for i in store.due_outbox(NOW) if i.message_id == first]
        assert item.draft is not None
        draft = {**item.draft, "template": "no_such_template"}
        store._outbox.update({"draft": draft}, doc_ids=[item.id])

    await writer.call(break_first)
    sent: Counter[str] = Counter()
    failures: list[tuple[OutboxItem, PermanentDeliveryError]] = []
    sender = OutboxSender(
        _smtp(tmp_path),
        writer,
        lambda: _Recorder(sent),
        lambda: NOW,
        lambda item, failure, now: failures.append((item, failure)),
        drafts=DraftWriter(RENDERER, PROGRAM),
    )
    await sender.drain()
    [(item, failure)] = failures
    assert item.message_id == first and failure.recipients == []
    assert "could not be written" in str(failure) and "no_such_template" in str(failure)
    [raw] = list(sent)
    assert second in raw
    by_id = {doc["message_id"]: doc for doc in await writer.call(store.outbox)}
    assert by_id[first]["status"] == "failed" and "draft" in by_id[first]
    assert by_id[second]["status"] == "sent" and "draft" not in by_id[second]
    assert not await writer.call(store.is_bounced, "ada@example.com")


async def test_a_backlog_is_written_ahead_only_as_far_as_the_connections_will_take_it(
    writer: StoreWriter, tmp_path: Path
) -> None:
    """Thirty drafts due at once and a slow relay: the drafts are written a few ahead of
    the connections, not all at once (each holds the interpreter the pages share), and
    each email goes once."""
    store = writer.store
    assert store is not None
    for n in range(30):
        await writer.call(store_ack, store, ack_context(), f"person{n}@example.com")
    sent: Counter[str] = Counter()
    written_before_sent: list[int] = []

    class Slow(_Recorder):
        async def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
            await asyncio.sleep(0.01)
            await super().send(message, sender, recipients)

    class Counting(DraftWriter):
        started = 0

        async def bytes_of(self, draft: Mapping[str, Any], *, busy: bool = False) -> bytes:
            self.started += 1
            written_before_sent.append(self.started - sum(sent.values()))
            return await super().bytes_of(draft, busy=busy)

    drafts = Counting(RENDERER, PROGRAM)
    connections = 2
    sender = OutboxSender(
        _smtp(tmp_path, connections),
        writer,
        lambda: Slow(sent),
        lambda: NOW,
        lambda *args: None,
        drafts=drafts,
    )

    async def all_sent() -> bool:
        return sum(sent.values()) == 30

    try:
        await _run_until(sender, all_sent)
    finally:
        await asyncio.to_thread(drafts.close)
    assert len(sent) == 30 and set(sent.values()) == {1}
    assert drafts.started == 30
    # Written ahead, and by the connections' own turn: never more than that.
    assert max(written_before_sent) <= WRITTEN_AHEAD + connections
    assert max(written_before_sent) > connections  # and ahead it was


async def test_a_draft_stored_before_a_restart_is_sent_once_as_stored(tmp_path: Path) -> None:
    """Stored, then the process ends before sending: the next start writes it with the
    Message-ID and Date it was stored with, and sends it once."""
    path = tmp_path / "state.db"
    store = Store(path, fsync=True)
    message_id = store_ack(store, ack_context())
    store.close()
    writer = StoreWriter(lambda: Store(path, fsync=False))
    await writer.start()
    try:
        sent: Counter[str] = Counter()
        sender = OutboxSender(
            _smtp(tmp_path),
            writer,
            lambda: _Recorder(sent),
            lambda: NOW + timedelta(hours=1),
            lambda *args: None,
            drafts=DraftWriter(RENDERER, PROGRAM),
        )
        await sender.drain()
        await sender.drain()
        [(raw, times)] = sent.items()
        assert times == 1
        message = parsed(raw.encode())
        assert message["Message-ID"] == message_id
        assert message["Date"].datetime == NOW.replace(tzinfo=UTC)
    finally:
        await writer.close()


def test_an_export_leaves_out_drafts(tmp_path: Path) -> None:
    """A draft holds what the email says: the export leaves it out, as it does bytes."""
    store = Store(tmp_path / "state.db", fsync=False)
    try:
        store_ack(store, ack_context(details="SECRET DETAILS"))
        assert "SECRET DETAILS" in str(store.outbox()[0]["draft"])
        export_csv(store, tmp_path / "export")
    finally:
        store.close()
    exported = (tmp_path / "export" / "outbox.csv").read_text("utf-8")
    assert "request_ack" in exported and "SECRET DETAILS" not in exported
