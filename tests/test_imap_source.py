"""ImapSource against a real Dovecot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from mentordesk.config import InboxConfig
from mentordesk.errors import MailSourceError
from mentordesk.inbox.imap import ImapSource
from mentordesk.inbox.source import MailSource, RawMessage, open_source
from tests.servers import PROGRAM_PASSWORD, PROGRAM_USER, Dovecot, wait_until

# Long timeouts for waits that must end early: if one ran out, the test failed.
LONG_S = 20.0


def raw(n: int) -> bytes:
    return (
        b"From: mentee%d@example.test\r\nTo: mentors@program.test\r\n"
        b"Message-ID: <%d@example.test>\r\nSubject: request %d\r\n\r\nHi\r\n" % (n, n, n)
    )


def imap_config(dovecot: Dovecot, **changes: Any) -> InboxConfig:
    config = InboxConfig(
        kind="imap",
        path=Path("unused"),
        host=dovecot.host,
        port=dovecot.port,
        tls="none",
        username=PROGRAM_USER,
        password_env="MENTORDESK_IMAP_PASSWORD",
        folder="INBOX",
        processed_folder="Processed",
        quarantine_folder="Quarantine",
        idle=True,
        poll_interval=timedelta(seconds=30),
        max_attempts=3,
        max_message_bytes=10_000_000,
        batch_size=200,
        require_authentication=False,
        authserv_id="",
        password=PROGRAM_PASSWORD,
    )
    return replace(config, **changes)


@pytest.fixture
def source(dovecot: Dovecot) -> Iterator[ImapSource]:
    imap = ImapSource(imap_config(dovecot))
    imap.connect()
    yield imap
    imap.stop()
    imap.close()


def in_thread(function: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    """Run ``function`` in a thread; the dict receives its "result" or "error"."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def finished(thread: threading.Thread, within_s: float = 10.0) -> bool:
    thread.join(within_s)
    return not thread.is_alive()


# --- reading and moving -----------------------------------------------------------------


def test_is_a_mail_source(dovecot: Dovecot) -> None:
    made = open_source(imap_config(dovecot))
    assert isinstance(made, ImapSource)
    assert isinstance(made, MailSource)


def test_fetch_returns_oldest_first_and_leaves_them_unread(
    dovecot: Dovecot, source: ImapSource
) -> None:
    uids = [dovecot.append(PROGRAM_USER, "INBOX", raw(n)) for n in range(3)]

    messages = source.fetch(limit=10)

    assert [m.data for m in messages] == [raw(0), raw(1), raw(2)]
    assert [m.uid for m in messages] == uids
    assert source.uidvalidity is not None
    assert all(m.uidvalidity == source.uidvalidity for m in messages)
    assert [m.key for m in messages] == [f"imap:{source.uidvalidity}:{uid}" for uid in uids]
    assert not any(b"\\Seen" in flags for flags in dovecot.fetch_flags(PROGRAM_USER, "INBOX"))
    # Nothing moves until the daemon says so.
    assert source.fetch(limit=10) == messages


def test_fetch_honours_limit(dovecot: Dovecot, source: ImapSource) -> None:
    for n in range(5):
        dovecot.append(PROGRAM_USER, "INBOX", raw(n))

    assert [m.data for m in source.fetch(limit=2)] == [raw(0), raw(1)]
    assert source.fetch(limit=0) == []


def test_fetch_of_empty_folder(source: ImapSource) -> None:
    assert source.fetch(limit=10) == []


def test_mark_done_moves_to_processed_creating_it(dovecot: Dovecot, source: ImapSource) -> None:
    for n in range(3):
        dovecot.append(PROGRAM_USER, "INBOX", raw(n))
    first, second, third = source.fetch(limit=10)
    assert "Processed" not in dovecot.folders(PROGRAM_USER)

    source.mark_done([first, third])

    assert dovecot.fetch_all(PROGRAM_USER, "Processed") == [raw(0), raw(2)]
    assert dovecot.fetch_all(PROGRAM_USER, "INBOX") == [raw(1)]
    assert source.fetch(limit=10) == [second]
    # Moving what is already gone is harmless (a retry after a lost reply).
    source.mark_done([first])
    source.mark_done([])
    assert dovecot.count(PROGRAM_USER, "Processed") == 2


def test_quarantine_moves_to_quarantine(dovecot: Dovecot, source: ImapSource) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    dovecot.append(PROGRAM_USER, "Quarantine", raw(0))  # the folder may already exist

    source.quarantine(source.fetch(limit=10))

    assert dovecot.fetch_all(PROGRAM_USER, "Quarantine") == [raw(0), raw(1)]
    assert dovecot.count(PROGRAM_USER, "INBOX") == 0


def test_other_folder_names(dovecot: Dovecot) -> None:
    # Non-ASCII names travel as modified UTF-7; Dovecot's hierarchy separator is ".".
    dovecot.append(PROGRAM_USER, "Anfragen", raw(1))
    config = imap_config(dovecot, folder="Anfragen", processed_folder="Erledigt.März")
    imap = ImapSource(config)
    imap.connect()
    try:
        imap.mark_done(imap.fetch(limit=10))
    finally:
        imap.close()

    assert dovecot.fetch_all(PROGRAM_USER, "Erledigt.März") == [raw(1)]
    assert dovecot.count(PROGRAM_USER, "Anfragen") == 0


def test_move_without_the_move_capability(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dovecot always offers MOVE, so hide it: the source must then COPY, flag \Deleted
    # and UID EXPUNGE exactly the moved messages. imapclient's move() refuses to run
    # without the capability, and the spy makes sure it is not even tried.
    real_has_capability = IMAPClient.has_capability

    def without_move(client: IMAPClient, capability: str) -> bool:
        return capability.upper() != "MOVE" and bool(real_has_capability(client, capability))

    def no_move(*args: object) -> None:
        raise AssertionError("MOVE used although the server does not offer it")

    monkeypatch.setattr(IMAPClient, "has_capability", without_move)
    monkeypatch.setattr(IMAPClient, "move", no_move)
    for n in range(3):
        dovecot.append(PROGRAM_USER, "INBOX", raw(n))
    # A \Deleted message that is not ours must survive our expunge.
    dovecot.append(PROGRAM_USER, "INBOX", raw(9), flags=(b"\\Deleted",))
    imap = ImapSource(imap_config(dovecot))
    imap.connect()
    try:
        first, second, third = imap.fetch(limit=10)
        imap.mark_done([first, third])
        imap.quarantine([second])
    finally:
        imap.close()

    assert dovecot.fetch_all(PROGRAM_USER, "Processed") == [raw(0), raw(2)]
    assert dovecot.fetch_all(PROGRAM_USER, "Quarantine") == [raw(1)]
    assert dovecot.fetch_all(PROGRAM_USER, "INBOX") == [raw(9)]


def test_stale_keys_are_not_moved(dovecot: Dovecot, source: ImapSource) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    [message] = source.fetch(limit=10)
    stale = replace(message, uidvalidity=(message.uidvalidity or 0) + 1)

    source.mark_done([stale])

    assert dovecot.count(PROGRAM_USER, "INBOX") == 1
    with pytest.raises(ValueError, match="not come from an IMAP mailbox"):
        source.mark_done([RawMessage(key="maildir:x", data=b"")])


def test_uidvalidity_change_gives_new_keys(dovecot: Dovecot) -> None:
    dovecot.append(PROGRAM_USER, "Requests", raw(1))
    imap = ImapSource(imap_config(dovecot, folder="Requests"))
    imap.connect()
    [before] = imap.fetch(limit=10)
    imap.close()
    # Deleting and re-creating a folder gives it a new UIDVALIDITY.
    with dovecot.client(PROGRAM_USER) as client:
        client.delete_folder("Requests")
    dovecot.append(PROGRAM_USER, "Requests", raw(1))

    imap.connect()
    try:
        [after] = imap.fetch(limit=10)
        assert imap.uidvalidity == after.uidvalidity != before.uidvalidity
        assert after.key != before.key
        imap.mark_done([before])  # stale: ignored
        assert dovecot.count(PROGRAM_USER, "Requests") == 1
        imap.mark_done([after])
        assert dovecot.count(PROGRAM_USER, "Requests") == 0
    finally:
        imap.close()


# --- waiting for mail ------------------------------------------------------------------


def test_wait_returns_when_mail_arrives(dovecot: Dovecot, source: ImapSource) -> None:
    assert source.fetch(limit=10) == []
    thread, outcome = in_thread(lambda: source.wait(LONG_S))

    dovecot.append(PROGRAM_USER, "INBOX", raw(1))

    assert finished(thread), "wait() did not notice the new message"
    assert "error" not in outcome
    assert [m.data for m in source.fetch(limit=10)] == [raw(1)]


def test_wait_returns_at_once_for_mail_not_yet_fetched(
    dovecot: Dovecot, source: ImapSource
) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    dovecot.append(PROGRAM_USER, "INBOX", raw(2))

    thread, _ = in_thread(lambda: source.wait(LONG_S))  # nothing fetched yet
    assert finished(thread)

    source.fetch(limit=1)  # one left behind
    thread, _ = in_thread(lambda: source.wait(LONG_S))
    assert finished(thread)


def test_wait_ignores_mail_already_fetched(dovecot: Dovecot, source: ImapSource) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    source.fetch(limit=10)  # fetched, not yet moved

    started = time.monotonic()
    source.wait(0.6)

    assert time.monotonic() - started >= 0.6


def test_stop_ends_a_blocked_wait(source: ImapSource) -> None:
    source.fetch(limit=10)
    thread, outcome = in_thread(lambda: source.wait(LONG_S))

    source.stop()  # whether or not the thread has reached IDLE yet

    assert finished(thread), "wait() ignored stop()"
    assert "error" not in outcome
    source.wait(LONG_S)  # and every later wait returns at once


@pytest.mark.parametrize("hide_idle", [True, False], ids=["no-IDLE-capability", "idle-false"])
def test_wait_polls_without_idle(
    dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch, hide_idle: bool
) -> None:
    if hide_idle:
        real_has_capability = IMAPClient.has_capability

        def without_idle(client: IMAPClient, capability: str) -> bool:
            return capability.upper() != "IDLE" and bool(real_has_capability(client, capability))

        monkeypatch.setattr(IMAPClient, "has_capability", without_idle)
    # Either the server lacks IDLE, or it has it and [inbox] idle = false.
    config = imap_config(dovecot, idle=hide_idle, poll_interval=timedelta(seconds=0.3))
    imap = ImapSource(config)
    imap.connect()
    try:
        imap.fetch(limit=10)
        started = time.monotonic()
        imap.wait(LONG_S)  # returns after one poll interval
        assert 0.3 <= time.monotonic() - started < LONG_S

        thread, _ = in_thread(lambda: imap.wait(LONG_S))
        imap.stop()
        assert finished(thread), "wait() ignored stop() while polling"
    finally:
        imap.close()


# --- failures --------------------------------------------------------------------------


def test_wrong_password(dovecot: Dovecot) -> None:
    imap = ImapSource(imap_config(dovecot, password="not-the-password"))

    with pytest.raises(MailSourceError) as failure:
        imap.connect()

    message = str(failure.value)
    assert f"{dovecot.host}:{dovecot.port}" in message
    assert "login as 'mentors@program.test' failed" in message
    assert "AUTHENTICATIONFAILED" in message
    assert "not-the-password" not in message
    assert not imap.connected


def test_nothing_listening(free_port: int, dovecot: Dovecot) -> None:
    imap = ImapSource(imap_config(dovecot, port=free_port))

    with pytest.raises(MailSourceError, match=rf"IMAP 127\.0\.0\.1:{free_port}: cannot connect"):
        imap.connect()


def test_missing_folder(dovecot: Dovecot) -> None:
    imap = ImapSource(imap_config(dovecot, folder="Nope"))

    with pytest.raises(MailSourceError, match="cannot open folder 'Nope'"):
        imap.connect()


def test_not_connected(dovecot: Dovecot) -> None:
    imap = ImapSource(imap_config(dovecot))

    with pytest.raises(MailSourceError, match="not connected"):
        imap.fetch(limit=10)
    imap.close()  # harmless


def test_server_restart_is_survived(dovecot: Dovecot, source: ImapSource) -> None:
    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    [message] = source.fetch(limit=10)

    dovecot.stop()

    with pytest.raises(MailSourceError, match=rf"IMAP 127\.0\.0\.1:{dovecot.port}"):
        source.mark_done([message])
    with pytest.raises(MailSourceError):  # stays failed until reconnected
        source.fetch(limit=10)
    with pytest.raises(MailSourceError, match="cannot connect"):
        source.connect()

    dovecot.start()
    source.close()
    source.connect()

    [again] = source.fetch(limit=10)
    assert again == message
    source.mark_done([again])
    assert dovecot.fetch_all(PROGRAM_USER, "Processed") == [raw(1)]


@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "crash"])
def test_server_going_away_during_idle_raises(
    dovecot: Dovecot, source: ImapSource, crash: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mentordesk.inbox.imap")
    source.fetch(limit=10)
    thread, outcome = in_thread(lambda: source.wait(LONG_S))
    # Cut the connection while the source is in IDLE, the case imapclient makes hard.
    wait_until(lambda: any("idling" in r.getMessage() for r in caplog.records))

    # A shutdown says "* BYE"; a crash just closes the connection.
    dovecot.stop(crash=crash)

    assert finished(thread), "wait() did not notice the server going away"
    assert isinstance(outcome.get("error"), MailSourceError), outcome

    dovecot.start()
    source.close()
    source.connect()
    dovecot.append(PROGRAM_USER, "INBOX", raw(2))
    assert [m.data for m in source.fetch(limit=10)] == [raw(2)]


# --- what makes a message the same one (SPEC §5; issue 14, item 7) ---------------------------


def test_a_message_read_again_by_a_new_connection_is_recognised_its_namesake_not(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from mentordesk.state.store import Store, content_fingerprint

    dovecot.append(PROGRAM_USER, "INBOX", raw(1))
    namesake = raw(1).replace(b"Hi", b"Something else entirely")  # same Message-ID
    dovecot.append(PROGRAM_USER, "INBOX", namesake)
    imap = ImapSource(imap_config(dovecot))
    imap.connect()
    first = imap.fetch(limit=10)
    imap.close()
    imap.connect()  # as after a crash: a new connection, the messages still there
    try:
        again = imap.fetch(limit=10)
    finally:
        imap.close()
    assert [(m.key, m.data) for m in again] == [(m.key, m.data) for m in first]

    store = Store(tmp_path / "md.db", fsync=False)
    try:
        handled, other = first
        store.record_message(
            "<1@example.test>",
            key=handled.key,
            kind="request",
            now=datetime(2026, 12, 1, tzinfo=UTC),
            fingerprint=content_fingerprint(handled.data),
        )
        for message, seen in ((again[0], True), (again[1], False)):
            fingerprint = content_fingerprint(message.data)
            assert (
                store.is_processed("<1@example.test>", key=message.key, fingerprint=fingerprint)
                is seen
            )
        assert other.key != handled.key
    finally:
        store.close()
