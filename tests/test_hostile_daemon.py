"""Generated hostile mail through the real daemon, over the real Dovecot (issue 14).

Hypothesis generates the messages (``tests/hostile_mail.py``); all are APPENDed to the
program's INBOX, then ``mentordesk run`` drains them as a child process. Every email it
sends is parsed back from what aiosmtpd received: only our header fields, each once, no
Bcc, recipients only the ones named, bodies whole. The child's memory high-water mark
stays under 300 MB, nothing is left in the INBOX, every placed message is answered at
its sender's plain address once, and every unplaceable one reaches the coordinator once.

The normal suite runs 250 messages. ``MENTORDESK_HOSTILE_COUNT=2500`` runs more (and
bigger: up to 2 MB of body at 2,000 and beyond), figures printed at the end (-s):

    MENTORDESK_HOSTILE_COUNT=2500 .venv/bin/python -m pytest -s tests/test_hostile_daemon.py
"""

from __future__ import annotations

import asyncio
import collections
import email.message
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from .child import Child, child_daemon
from .desk import COORDINATOR, PROGRAM, Desk
from .hostile_mail import TOKEN_FORMAT, Hostile, address, generate
from .servers import PROGRAM_USER, Dovecot, ReceivedMessage, SmtpSink

pytestmark = pytest.mark.dovecot

COUNT = int(os.environ.get("MENTORDESK_HOSTILE_COUNT", "250"))
BIG = 2_000_000 if COUNT >= 2_000 else 200_000
MB = 1024 * 1024
PEAK_RSS_LIMIT = 300 * MB

# The header fields an email of ours may carry, each at most once (written here, not
# taken from the code under test).
OUR_FIELDS = {"from", "to", "reply-to", "subject", "date", "message-id", "in-reply-to",
              "references", "auto-submitted", "x-auto-response-suppress", "mime-version",
              "content-type", "content-transfer-encoding"}  # fmt: skip
ALWAYS = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}
PLAIN_ADDRESS = re.compile(r"[a-z0-9.+-]+@[a-z0-9.-]+\.[a-z]+")
TOKEN = re.compile(r"hm\d{5}")
SIGNATURE = "Sent automatically by the Test Mentors mentoring desk."


def numbered(messages: Sequence[Hostile]) -> list[tuple[str, Hostile, bytes]]:
    """Enrollments first (so requests find mentors and invitations go out), then the
    rest as generated; one in ten reuses the Message-ID of the one five before it."""
    ordered = sorted(messages, key=lambda m: m.kind != "enrollment")
    ids = [f"<hm{n}.{os.getpid()}@client.test>" for n in range(len(ordered))]
    for n in range(10, len(ids), 10):
        ids[n] = ids[n - 5]
    return [
        (TOKEN_FORMAT.format(n), message, message.raw(n, ids[n]))
        for n, message in enumerate(ordered)
    ]


def append_all(dovecot: Dovecot, raws: Sequence[bytes]) -> None:
    with dovecot.client(PROGRAM_USER) as client:
        for start in range(0, len(raws), 50):
            client.multiappend("INBOX", list(raws[start : start + 50]))


def field_names(data: bytes) -> list[str]:
    """The field names of a written head, as a mail server reads them (RFC 5322 §2.2)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return [
        line.split(b":", 1)[0].decode("ascii", "replace").strip().lower()
        for line in head.split(b"\r\n")
        if line[:1] not in (b" ", b"\t")
    ]


def check_sent(sent: ReceivedMessage) -> None:
    """One email as sent: no header injected, recipients only those named, body whole."""
    names = field_names(sent.data)
    assert set(names) <= OUR_FIELDS, names
    assert set(names) >= ALWAYS, names
    assert len(names) == len(set(names)), names
    assert all(b"\r" not in line and b"\n" not in line for line in sent.data.split(b"\r\n"))
    message = sent.message
    assert not message.defects, message.defects
    to = [a.addr_spec for a in message["To"].addresses]
    assert sorted(to) == sorted(sent.rcpt_tos), (to, sent.rcpt_tos)
    for rcpt in sent.rcpt_tos:
        assert PLAIN_ADDRESS.fullmatch(rcpt) and "evil" not in rcpt, rcpt
    assert str(message["From"]).endswith(f"<{PROGRAM}>")
    subject = str(message["Subject"])
    assert "\r" not in subject and "\n" not in subject
    plain = message.get_body(preferencelist=("plain",))
    assert isinstance(plain, email.message.EmailMessage), sent.subject
    text = str(plain.get_content())
    assert text.strip().startswith(("Hello", "Hi", "Dear", "Thank", "Thanks")), text[:200]
    assert SIGNATURE in text, text[-400:]
    for part in message.walk():
        assert not part.defects, (sent.subject, part.defects)


def tokens_in(sent: ReceivedMessage) -> set[str]:
    """The tokens a notice is about: in its subject, else anywhere in its parts."""
    found = set(TOKEN.findall(sent.subject))
    if found:
        return found
    for part in sent.message.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            found |= set(TOKEN.findall(payload.decode("utf-8", "replace")))
    return found


async def drained(desk: Desk, child: Child, count: int, timeout_s: float) -> None:
    """Until every message left the INBOX and every email stored for sending went out."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        assert child.proc.poll() is None, child.log()[-4000:]
        left = await asyncio.to_thread(desk.dovecot.count, PROGRAM_USER, "INBOX")
        if left == 0:
            async with desk.store() as store:
                settled = len(store.messages()) >= count and not store.outbox("pending")
                sent = len(store.outbox("sent"))
            if settled and len(desk.sink.messages) >= sent:
                return
        assert asyncio.get_running_loop().time() < deadline, f"{left} left:\n{child.log()[-4000:]}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(3 * 3600 if COUNT > 300 else 600)
async def test_hostile_mail_through_the_daemon(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    started = time.monotonic()
    messages = numbered(generate(COUNT, big=BIG))
    kinds = {token: message.kind for token, message, _ in messages}
    await asyncio.to_thread(append_all, dovecot, [raw for _, _, raw in messages])
    assert dovecot.count(PROGRAM_USER, "INBOX") == COUNT

    desk = Desk(tmp_path, dovecot, smtp_sink)
    desk.configure(inbox={"poll_interval": "1s"})
    with child_daemon(desk) as child:
        await drained(desk, child, COUNT, timeout_s=max(300, COUNT * 1.5))
        peak = child.peak_rss_bytes()
    elapsed = time.monotonic() - started

    sent = smtp_sink.messages
    for one in sent:
        check_sent(one)

    # Placed: answered once at the sender's own plain address; the coordinator not told.
    # (A mentor also gets invitations to the requests; those carry a claim link.)
    notices = [m for m in sent if m.rcpt_tos == (COORDINATOR,) and "Needs a person" in m.subject]
    told = collections.Counter(token for notice in notices for token in tokens_in(notice))
    by_sender = collections.Counter(
        m.rcpt_tos[0] for m in sent if "/claim/" not in str(m.message.get_body(("plain",)))
    )
    for n, (token, message, _) in enumerate(messages):
        if message.kind in ("request", "enrollment"):
            assert by_sender[address(n)] == 1, (token, message)
            assert told[token] == 0, (token, message)
        elif message.kind == "silent":
            assert told[token] == 0, (token, message)
        else:
            assert told[token] == 1, (token, told[token], message)
    assert set(told) <= set(kinds)
    assert len(notices) == sum(told.values())  # each notice is about one message
    assert all(
        rcpt == COORDINATOR or rcpt.endswith("@example.net") for m in sent for rcpt in m.rcpt_tos
    )

    assert dovecot.count(PROGRAM_USER, "INBOX") == 0
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak / MB:.0f} MB"
    print(
        f"\nhostile mail through the daemon: {COUNT} messages "
        f"({collections.Counter(kinds.values())}), {elapsed:.0f} s, "
        f"peak RSS {peak / MB:.0f} MB, {len(sent)} emails sent, {len(notices)} coordinator "
        f"notices, {dovecot.count(PROGRAM_USER, 'Quarantine')} quarantined"
    )
