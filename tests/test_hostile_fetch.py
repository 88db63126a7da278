"""Big mail at fetch, for both mail sources (issue 14, item 6): a message is read no
further than ``[inbox] max_message_bytes``, and a batch holds no more than
``source.batch_bytes`` of them, however many ``fetch(limit)`` allows. Before, IMAP read
200 whole messages at once (60 × 10 MB mails took 10 GB).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mentordesk.inbox.imap import ImapSource
from mentordesk.inbox.maildir import MaildirSource
from mentordesk.inbox.source import MailSource, batch_bytes
from tests.servers import PROGRAM_USER, Dovecot

from .test_imap_source import imap_config
from .test_maildir_source import maildir_config

CAP = 10_000  # [inbox] max_message_bytes in these tests


def message(n: int, size: int) -> bytes:
    head = b"From: mentee%d@example.test\r\nSubject: request %d\r\n\r\n" % (n, n)
    line = b"I need help with python and this line is part of a long body.\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


@dataclass(frozen=True)
class Mailbox:
    """A source and a way to deliver to it, for either kind."""

    source: MailSource
    deliver: Callable[[bytes], None]


@pytest.fixture(params=["imap", "maildir"])
def mailbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mailbox]:
    source: MailSource
    if request.param == "imap":
        dovecot: Dovecot = request.getfixturevalue("dovecot")
        source = ImapSource(imap_config(dovecot, max_message_bytes=CAP))

        def deliver(data: bytes) -> None:
            dovecot.append(PROGRAM_USER, "INBOX", data)

    else:
        source = MaildirSource(replace(maildir_config(tmp_path / "mail"), max_message_bytes=CAP))
        count = iter(range(10**6))

        def deliver(data: bytes) -> None:
            n = next(count)
            path = tmp_path / "mail" / "inbox" / "new" / f"{n:06d}.test"
            path.write_bytes(data)
            stamp = time.time() - 1_000 + n  # oldest first, in delivery order
            os.utime(path, (stamp, stamp))

    source.connect()
    yield Mailbox(source, deliver)
    source.stop()
    source.close()


def test_a_message_over_the_limit_is_read_only_that_far(mailbox: Mailbox) -> None:
    big = message(1, 5 * CAP)
    mailbox.deliver(big)
    [raw] = mailbox.source.fetch(200)
    assert raw.data == big[:CAP]


def test_a_message_within_the_limit_is_read_whole(mailbox: Mailbox) -> None:
    for size in (100, CAP - 1, CAP):
        data = message(size, size)[:size]
        mailbox.deliver(data)
    assert [len(raw.data) for raw in mailbox.source.fetch(200)] == [100, CAP - 1, CAP]


def test_a_batch_holds_no_more_bytes_than_the_budget(mailbox: Mailbox) -> None:
    budget = batch_bytes(replace(maildir_config(Path("unused")), max_message_bytes=CAP))
    assert budget == 4 * CAP
    for n in range(10):
        mailbox.deliver(message(n, 3 * CAP))  # each read as CAP bytes
    seen: list[bytes] = []
    for _ in range(10):
        batch = mailbox.source.fetch(200)
        if not batch:
            break
        assert 1 <= len(batch) <= 4
        assert sum(len(raw.data) for raw in batch) <= budget
        seen += [raw.data for raw in batch]
        mailbox.source.mark_done(batch)
        if len(seen) < 10:
            started = time.monotonic()
            mailbox.source.wait(20.0)  # more is waiting: returns at once
            assert time.monotonic() - started < 10.0
    assert len(seen) == 10
    assert [data.split(b"\r\n")[1] for data in seen] == [
        b"Subject: request %d" % n for n in range(10)
    ]


def test_small_mail_still_comes_by_the_hundred(mailbox: Mailbox) -> None:
    for n in range(150):
        mailbox.deliver(message(n, 200))
    assert len(mailbox.source.fetch(200)) == 150
