"""MaildirSource on a real directory tree."""

from __future__ import annotations

import mailbox
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mentordesk.config import InboxConfig
from mentordesk.errors import MailSourceError
from mentordesk.inbox.maildir import MaildirSource
from mentordesk.inbox.source import MailSource, RawMessage, open_source

LONG_S = 20.0


def raw(n: int) -> bytes:
    # On disk, as an MTA (and the mailbox module) writes it: LF line ends.
    return b"From: mentee%d@example.test\nSubject: request %d\n\nHi\n" % (n, n)


def maildir_config(path: Path) -> InboxConfig:
    return InboxConfig(
        kind="maildir",
        path=path,
        host="127.0.0.1",
        port=993,
        tls="ssl",
        username="",
        password_env="",
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
    )


@pytest.fixture
def source(tmp_path: Path) -> Iterator[MaildirSource]:
    maildir = MaildirSource(maildir_config(tmp_path / "mail"))
    maildir.connect()
    yield maildir
    maildir.stop()
    maildir.close()


def deliver(source: MaildirSource, data: bytes, *, age_s: float = 0.0, seen: bool = False) -> str:
    """Deliver like an MTA; ``age_s`` back-dates the file. Returns the Maildir key."""
    box = mailbox.Maildir(source.inbox, factory=None, create=False)
    message = mailbox.MaildirMessage(data)
    if seen:
        message.set_subdir("cur")
        message.set_flags("S")
    key = box.add(message)
    if age_s:
        for sub in ("new", "cur"):
            for path in (source.inbox / sub).glob(f"{key}*"):
                stamp = time.time() - age_s
                os.utime(path, (stamp, stamp))
    return key


def wait_in_thread(source: MaildirSource) -> threading.Event:
    """Start ``source.wait(LONG_S)`` in a thread; the event is set when it returns."""
    done = threading.Event()

    def run() -> None:
        source.wait(LONG_S)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


def names(folder: Path) -> list[str]:
    return sorted(p.name for sub in ("new", "cur") for p in (folder / sub).iterdir())


def test_is_a_mail_source(tmp_path: Path) -> None:
    made = open_source(maildir_config(tmp_path))
    assert isinstance(made, MaildirSource)
    assert isinstance(made, MailSource)
    assert made.uidvalidity is None


def test_connect_creates_the_maildirs(tmp_path: Path) -> None:
    MaildirSource(maildir_config(tmp_path / "mail")).connect()

    for box in ("inbox", "processed", "quarantine"):
        for sub in ("new", "cur", "tmp"):
            assert (tmp_path / "mail" / box / sub).is_dir()


def test_connect_failure(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")

    with pytest.raises(MailSourceError, match="cannot be created"):
        MaildirSource(maildir_config(tmp_path / "file")).connect()


def test_fetch_oldest_first_from_new_and_cur(source: MaildirSource) -> None:
    young = deliver(source, raw(3), age_s=10)
    old = deliver(source, raw(1), age_s=300, seen=True)
    middle = deliver(source, raw(2), age_s=60)
    (source.inbox / "tmp" / "half-delivered").write_bytes(raw(9))

    messages = source.fetch(limit=10)

    assert [m.data for m in messages] == [raw(1), raw(2), raw(3)]
    assert [m.key for m in messages] == [f"maildir:{k}" for k in (old, middle, young)]
    assert all(m.uid is None and m.uidvalidity is None for m in messages)
    assert [m.data for m in source.fetch(limit=2)] == [raw(1), raw(2)]


def test_mark_done_and_quarantine_move_files(source: MaildirSource) -> None:
    for n in range(3):
        deliver(source, raw(n), age_s=30 - n)
    deliver(source, raw(3), seen=True)
    first, second, third, fourth = source.fetch(limit=10)

    source.mark_done([first, fourth])
    source.quarantine([third])

    # Same subdirectory, same file name (flags included).
    assert [p.read_bytes() for p in (source.processed / "new").iterdir()] == [raw(0)]
    [seen] = (source.processed / "cur").iterdir()
    assert seen.read_bytes() == raw(3)
    assert seen.name.endswith(":2,S")
    assert [p.read_bytes() for p in (source.quarantine_dir / "new").iterdir()] == [raw(2)]
    assert source.fetch(limit=10) == [second]
    # Already moved: nothing happens.
    source.mark_done([first])
    source.mark_done([])
    assert len(names(source.processed)) == 2


def test_move_rejects_foreign_keys(source: MaildirSource) -> None:
    with pytest.raises(ValueError, match="did not come from a Maildir"):
        source.mark_done([RawMessage(key="imap:1:2", data=b"", uid=2, uidvalidity=1)])


def test_key_survives_flag_changes(source: MaildirSource) -> None:
    key = deliver(source, raw(1))
    [message] = source.fetch(limit=10)
    box = mailbox.Maildir(source.inbox, factory=None, create=False)
    changed = box[key]
    changed.set_subdir("cur")
    changed.add_flag("S")
    box[key] = changed  # a mail client read it: new/<key> becomes cur/<key>:2,S

    source.mark_done([message])

    assert names(source.inbox) == []
    assert len(names(source.processed)) == 1


def test_wait_returns_when_mail_arrives(source: MaildirSource) -> None:
    assert source.fetch(limit=10) == []
    done = wait_in_thread(source)

    deliver(source, raw(1))

    assert done.wait(10), "wait() did not notice the new message"
    assert [m.data for m in source.fetch(limit=10)] == [raw(1)]


def test_wait_returns_at_once_for_mail_not_yet_fetched(source: MaildirSource) -> None:
    deliver(source, raw(1))
    deliver(source, raw(2))
    started = time.monotonic()

    source.wait(LONG_S)  # nothing fetched yet
    source.fetch(limit=1)
    source.wait(LONG_S)  # one left behind

    assert time.monotonic() - started < LONG_S


def test_wait_ignores_mail_already_fetched(source: MaildirSource) -> None:
    deliver(source, raw(1))
    source.fetch(limit=10)
    started = time.monotonic()

    source.wait(0.5)

    assert time.monotonic() - started >= 0.5


def test_stop_ends_a_blocked_wait(source: MaildirSource) -> None:
    source.fetch(limit=10)
    done = wait_in_thread(source)

    source.stop()

    assert done.wait(10), "wait() ignored stop()"
    source.wait(LONG_S)  # and every later wait returns at once


def test_not_connected(tmp_path: Path) -> None:
    maildir = MaildirSource(maildir_config(tmp_path))

    with pytest.raises(MailSourceError, match="not connected"):
        maildir.fetch(limit=10)
