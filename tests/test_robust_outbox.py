"""A relay outage marks nobody, and marks do not last forever (issue 14, item 4).

Temporary failures — the relay down, 4xx answers — say nothing about the people the mail
is for: past ``[smtp] max_attempts`` the email is held and tried again every
``max_retry_after``, the coordinator hears once that mail is held up, and nobody is
marked. A mark that a permanent failure did set clears when mail to that address is
accepted again (a mark from our own relay), or when the person answers one of our emails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mentordesk.flows.router import Coordinator
from mentordesk.inbox.source import RawMessage
from mentordesk.mailer.compose import Renderer
from mentordesk.state.store import Store

from .desk import COORDINATOR, Desk, mail, text_of
from .test_robust_bounces import _config, _sent, text_bounce

JORDAN = "jordan@example.net"
LENA = "lena@example.org"
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.dovecot
async def test_relay_down_past_the_retry_budget_then_back_marks_nobody(desk: Desk) -> None:
    # [smtp] max_attempts = 4, retried after 0.05 s doubling up to 0.2 s (tests/desk.py).
    await desk.start()
    desk.sink.stop()
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "pause", ""))
    desk.send(mail(f"Lena Fischer <{LENA}>", "pause", ""))

    def answers_tried(store: Store, times: int) -> bool:
        items = [i for i in store.outbox() if i["kind"] == "not_a_mentor"]
        return len(items) == 2 and all(
            i["attempts"] >= times or i["status"] != "pending" for i in items
        )

    await desk.until(lambda store: answers_tried(store, 4), timeout_s=30)  # the budget
    await desk.until(lambda store: answers_tried(store, 7), timeout_s=30)  # and beyond
    async with desk.store() as store:
        assert store.bounced_addresses() == []
        assert {i["status"] for i in store.outbox()} == {"pending"}

    desk.sink.start()
    [to_jordan] = await desk.replies_to(JORDAN, 1, timeout_s=30)
    [to_lena] = await desk.replies_to(LENA, 1, timeout_s=30)
    assert to_jordan.subject == to_lena.subject == "Re: pause"
    [notice] = await desk.replies_to(COORDINATOR, 1)  # told once that mail was held up
    assert "held" in text_of(notice)
    # The "sent" marks are written a moment after delivery (coalesced): wait for them.
    await desk.until(lambda store: {i["status"] for i in store.outbox()} == {"sent"})
    async with desk.store() as store:
        assert store.bounced_addresses() == []

    # And they are answered as before.
    desk.send(mail(f"Lena Fischer <{LENA}>", "resume", ""))
    await desk.replies_to(LENA, 2)
    assert len(desk.sink.messages_to(COORDINATOR)) == 1


@pytest.mark.dovecot
async def test_a_refused_address_is_marked_and_cleared_when_the_relay_accepts_it(
    desk: Desk,
) -> None:
    desk.sink.refuse_recipient(JORDAN, code=550)
    await desk.start()
    desk.send(mail(f"Jordan Lee <{JORDAN}>", "pause", ""))
    await desk.until(lambda store: store.is_bounced(JORDAN))
    [notice] = await desk.replies_to(COORDINATOR, 1)
    assert JORDAN in text_of(notice)
    # The relay's refusal was a mistake: an email for Jordan that was already in the
    # outbox before the mark (the gate refuses new ones) is accepted, and the mark goes.
    desk.sink.accept_recipient(JORDAN)
    daemon = desk.daemon
    assert daemon is not None and daemon.sender is not None
    live = daemon.writer.store
    assert live is not None

    def queued_before_the_mark() -> None:
        with live.transaction():
            _sent(live, JORDAN, "<queued@program.test>")

    await daemon.writer.call(queued_before_the_mark)
    daemon.sender.poke()
    await desk.until(lambda store: not store.is_bounced(JORDAN))
    assert len(desk.sink.messages_to(JORDAN)) == 1
    async with desk.store() as store:
        [cleared] = [e for e in store.audit_log() if e["event"] == "address cleared"]
        assert cleared["address"] == JORDAN


def test_a_mark_clears_when_the_person_answers_our_email(tmp_path: Path) -> None:
    store = Store(tmp_path / "md.db", fsync=False)
    try:
        coordinator = Coordinator(_config(tmp_path, False), store, Renderer())
        with store.transaction():
            _sent(store, LENA, "<hello@program.test>")
            _sent(store, LENA, "<reminder@program.test>")
        bounce = text_bounce(
            "MAILER-DAEMON@mx.example.org",
            LENA,
            message_id="<b1@mx.example.org>",
            returned="<reminder@program.test>",
        )
        coordinator.handle(RawMessage("k1", bounce), NOW)
        assert store.is_bounced(LENA)
        # A fresh message from Lena is no proof her mailbox takes mail: still marked.
        coordinator.handle(RawMessage("k2", mail(f"Lena <{LENA}>", "pause", "")), NOW)
        assert store.is_bounced(LENA)
        # An answer to an email we sent her is.
        answer = mail(f"Lena <{LENA}>", "Re: hello", "resume", in_reply_to="<hello@program.test>")
        coordinator.handle(RawMessage("k3", answer), NOW)
        assert not store.is_bounced(LENA)
        [cleared] = [e for e in store.audit_log() if e["event"] == "address cleared"]
        assert cleared["address"] == LENA
        # A bounce again is news again: the coordinator hears of it a second time.
        told = len(store.outbox())
        again = text_bounce(
            "MAILER-DAEMON@mx.example.org",
            LENA,
            message_id="<b2@mx.example.org>",
            returned="<hello@program.test>",
        )
        coordinator.handle(RawMessage("k4", again), NOW.replace(hour=11))
        assert store.is_bounced(LENA)
        assert len(store.outbox()) > told
    finally:
        store.close()
