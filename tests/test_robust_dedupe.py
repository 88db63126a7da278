"""Exactly one set of effects per message, without dropping another that reuses its
Message-ID (issue 14, item 7; SPEC §5).

A message is the same one when it sits at the same place in the mailbox (IMAP
UIDVALIDITY and UID, or Maildir key), or when its Message-ID and its content are the
same (one message delivered twice, or read again after the folder was renumbered). A
different message that reuses a Message-ID is handled as the new message it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mentordesk.daemon import Daemon
from mentordesk.flows.router import Coordinator
from mentordesk.inbox.source import RawMessage
from mentordesk.mailer.compose import Renderer
from mentordesk.state.store import Store

from .desk import Desk, mail
from .servers import PROGRAM_USER
from .test_robust_bounces import _config

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
REUSED = "<1@broken-client.test>"
JORDAN = "Jordan Lee <jordan@example.net>"
LENA = "Lena Fischer <lena@example.org>"


class Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


@pytest.mark.dovecot
async def test_a_different_message_reusing_a_message_id_is_handled(desk: Desk) -> None:
    await desk.start()
    desk.send(mail(JORDAN, "pause", "", message_id=REUSED))
    await desk.replies_to("jordan@example.net", 1)
    desk.send(mail(LENA, "pause", "", message_id=REUSED))  # a broken client, another person
    await desk.replies_to("lena@example.org", 1)
    desk.send(mail(JORDAN, "resume", "", message_id=REUSED))  # the same person, new words
    await desk.replies_to("jordan@example.net", 2)
    await desk.processed(3)
    async with desk.store() as store:
        assert [m["status"] for m in store.messages()] == ["done"] * 3


@pytest.mark.dovecot
async def test_the_same_message_read_again_after_a_crash_is_not_handled_twice(
    desk: Desk,
) -> None:
    desk.send(mail(JORDAN, "pause", "", message_id=REUSED))
    await desk.start()
    await desk.replies_to("jordan@example.net", 1)
    await desk.processed(1)
    await desk.stop()

    daemon = Daemon(desk.config)
    await daemon.start()
    source = daemon._source()

    def crash(*args: object) -> None:
        raise Crash

    source.mark_done = crash  # type: ignore[method-assign,assignment]
    desk.send(mail(LENA, "pause", "", message_id=REUSED))
    await daemon._in_mailbox_thread(source.connect)
    with pytest.raises(Crash):
        await daemon.process_inbox_once()
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 1  # stored, not moved
    await daemon.close()

    await desk.start()  # a new process reads Lena's message again
    await desk.processed(2)
    await desk.replies_to("lena@example.org", 1)
    desk.send(mail("Marker <marker@example.com>", "pause", ""))
    await desk.replies_to("marker@example.com", 1)
    assert len(desk.sink.messages_to("lena@example.org")) == 1
    assert len(desk.sink.messages_to("jordan@example.net")) == 1
    async with desk.store() as store:
        assert len(store.messages()) == 3


def test_which_copies_are_the_same_message(tmp_path: Path) -> None:
    store = Store(tmp_path / "md.db", fsync=False)
    try:
        coordinator = Coordinator(_config(tmp_path, False), store, Renderer())

        def handle(key: str, raw: bytes) -> str:
            with store.transaction():
                return coordinator.handle(RawMessage(key, raw), NOW).status

        first = mail(JORDAN, "pause", "", message_id=REUSED)
        assert handle("imap:7:1", first) == "done"
        assert handle("imap:7:1", first) == "duplicate"  # read again before it was moved
        assert handle("imap:8:1", first) == "duplicate"  # the folder was renumbered
        # Delivered twice (two aliases): the servers' trace fields differ, the message not.
        traced = b"Delivered-To: alias@program.test\r\nReceived: from mx by mx\r\n" + first
        assert handle("maildir:1733.M1P2.host", traced) == "duplicate"
        other = mail(LENA, "pause", "", message_id=REUSED)
        assert handle("imap:8:2", other) == "done"
        assert handle("imap:8:2", other) == "duplicate"
        assert len(store.messages()) == 2
    finally:
        store.close()
