"""Hostile mail through the real daemon (Dovecot in, aiosmtpd out): nothing unreadable is
dropped silently, nothing big is multiplied, and replies go to the parsed address only.

Issue 14, items 6 and 7.
"""

from __future__ import annotations

import json

import pytest

from .desk import COORDINATOR, PROGRAM, Desk, mail, text_of
from .servers import PROGRAM_USER
from .test_flows import ENROLL_ADA, MARKER_ADDRESS, REQUEST, marker, only_to

pytestmark = pytest.mark.dovecot


def nested_mime(depth: int, subject: str) -> bytes:
    """A message whose multipart/mixed parts nest ``depth`` deep, text at the bottom."""
    lines = [
        "From: Nell Nested <nell@example.com>",
        f"To: {PROGRAM}",
        f"Subject: {subject}",
        f"Message-ID: <{subject.replace(' ', '-')}@client.test>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b0"',
        "",
    ]
    for level in range(1, depth):
        lines += [f"--b{level - 1}", f'Content-Type: multipart/mixed; boundary="b{level}"', ""]
    lines += [f"--b{depth - 1}", "Content-Type: text/plain", "", "the bottom"]
    lines += [f"--b{level}--" for level in reversed(range(depth))]
    return ("\r\n".join(lines) + "\r\n").encode()


UNREADABLE_SENDERS = {
    "no headers": b"Just some words, and no header at all.\r\n",
    "nul in from": (
        b"From: Nul <nul\x00@example.com>\r\nTo: mentors@program.test\r\n"
        b"Subject: nul in from\r\nMessage-ID: <nul@client.test>\r\n\r\nHello.\r\n"
    ),
    "no from": (
        b"To: mentors@program.test\r\nSubject: no from\r\n"
        b"Message-ID: <nofrom@client.test>\r\n\r\nHello.\r\n"
    ),
    "deep mime": nested_mime(1_000, "deep mime"),
}


async def test_mail_without_a_readable_sender_reaches_the_coordinator_once(desk: Desk) -> None:
    await desk.start()
    for raw in UNREADABLE_SENDERS.values():
        desk.send(raw)
    desk.send(marker())
    await desk.replies_to(MARKER_ADDRESS, 1)
    await desk.processed(len(UNREADABLE_SENDERS) + 1)
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 0

    replies = desk.sink.messages
    notices = only_to(replies, COORDINATOR)
    # One notice each; nothing else went anywhere but to the marker's sender.
    assert len(notices) == len(UNREADABLE_SENDERS), [n.subject for n in notices]
    assert len(replies) == len(UNREADABLE_SENDERS) + 1
    for name in ("nul in from", "no from", "deep mime"):
        assert sum(name in notice.subject for notice in notices) == 1, name
    deep = next(notice for notice in notices if "deep mime" in notice.subject)
    assert "nell@example.com" in text_of(deep)


async def test_an_encoded_line_break_in_the_display_name_is_answered_at_the_parsed_address(
    desk: Desk,
) -> None:
    await desk.start()
    desk.send(
        mail(
            "Eve <eve@example.org>",
            "pause",
            "",
        ).replace(
            b"From: Eve <eve@example.org>",
            b"From: =?utf-8?q?Eve=0D=0ABcc:_victim@evil.test?= <eve@example.org>",
        )
    )
    [reply] = await desk.replies(1)
    assert reply.rcpt_tos == ("eve@example.org",)
    assert reply.message["To"].addresses[0].addr_spec == "eve@example.org"
    head = reply.data.split(b"\r\n\r\n")[0].decode("ascii")
    assert not [line for line in head.split("\r\n") if line.lower().startswith("bcc")]


def state_bytes(desk: Desk) -> int:
    folder = desk.config.state.path.parent
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


async def test_a_ten_megabyte_request_is_stored_and_echoed_capped(desk: Desk) -> None:
    await desk.start()
    for n in range(3):
        desk.send(mail(f"Mentor {n} <mentor{n}@example.com>", "Mentor enrollment", ENROLL_ADA))
    await desk.replies(3)
    before = state_bytes(desk)

    paragraph = "I would like help with my python project and its many parts. " * 16 + "\n\n"
    huge = REQUEST + paragraph * (10_000_000 // len(paragraph))
    assert len(huge) > 10_000_000 - len(paragraph)
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", huge))
    [ack] = await desk.replies_to("jordan@example.net", 1, timeout_s=60)
    invites = [
        (await desk.replies_to(f"mentor{n}@example.com", 2, timeout_s=30))[1] for n in range(3)
    ]
    for sent in [ack, *invites]:
        assert len(sent.data) < 100_000, (sent.subject, len(sent.data))
    assert "shortened" in text_of(ack)
    assert "I would like help with my python project" in text_of(invites[0])

    async with desk.store() as store:
        request = store.request(1)
    assert request is not None
    assert len(json.dumps(request)) < 20_000
    assert state_bytes(desk) - before < 1_000_000


async def test_big_mail_is_read_a_few_at_a_time_and_all_answered(desk: Desk) -> None:
    desk.configure(inbox={"max_message_bytes": 100_000})  # batches of 400 KB
    await desk.start()
    filler = "Some more words about what I have tried so far with my python project.\n"
    for n in range(12):
        body = REQUEST.replace("Jordan Lee", f"Mentee {n}") + filler * 1_300  # ~95 KB
        desk.send(mail(f"Mentee {n} <mentee{n}@example.net>", "Mentor request", body))
    for n in range(12):
        [ack] = await desk.replies_to(f"mentee{n}@example.net", 1, timeout_s=30)
        assert "MD-" in ack.subject
    await desk.processed(12)
    assert desk.dovecot.count(PROGRAM_USER, "INBOX") == 0
