"""kill -9 the daemon at random points while it drains a backlog (issue 14, SPEC §5).

300 requests wait in the real Dovecot INBOX; ``mentordesk run`` (a child process) is
killed with SIGKILL eight times at random moments — while fetching, handling, sending,
moving mail out of the INBOX — and started again each time, then left to finish. What
aiosmtpd received and what the state holds must show: lost 0 (every request
acknowledged), stored twice 0 (one request record per Message-ID), distinct duplicate
acknowledgements 0 (per request one acknowledgement; at most re-sent whole, with the same
Message-ID, when a kill fell between the relay's "250" and the sent mark).

``tests/test_db.py`` kills a process writing the state; this kills the whole daemon.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
from pathlib import Path

import pytest

from .child import Child
from .desk import COORDINATOR, Desk, mail
from .servers import PROGRAM_USER, Dovecot, SmtpSink

pytestmark = pytest.mark.dovecot

REQUESTS = 300
KILLS = 8
REQUEST = (
    "Name: Mentee {n}\nSkills: python\nTimezone: PST\nAvailability: weekdays 18:00-20:00\n"
    "Details: I'd love a review of my first project, number {n}.\n"
)


def mentee(n: int) -> str:
    return f"mentee{n:03d}@example.net"


def request_mail(n: int) -> bytes:
    return mail(
        f"Mentee {n} <{mentee(n)}>",
        "Mentor request",
        REQUEST.format(n=n),
        message_id=f"<chaos-{n}@client.test>",
    )


def append_all(dovecot: Dovecot) -> None:
    with dovecot.client(PROGRAM_USER) as client:
        for start in range(0, REQUESTS, 50):
            client.multiappend("INBOX", [request_mail(n) for n in range(start, start + 50)])


async def sent_more_than(sink: SmtpSink, count: int, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(sink.messages) <= count:
        assert asyncio.get_running_loop().time() < deadline, "the daemon sent nothing"
        await asyncio.sleep(0.01)


async def finished(desk: Desk, child: Child, timeout_s: float) -> None:
    """Until the INBOX is empty, every request stored, every stored email sent."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        assert child.proc.poll() is None, child.log()[-4000:]
        if await asyncio.to_thread(desk.dovecot.count, PROGRAM_USER, "INBOX") == 0:
            async with desk.store() as store:
                stored = len(store.requests())
                pending = store.outbox("pending")
                sent = len(store.outbox("sent"))
            if stored >= REQUESTS and not pending and len(desk.sink.messages) >= sent:
                return
        assert asyncio.get_running_loop().time() < deadline, child.log()[-4000:]
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
async def test_kill_9_while_draining_a_backlog_loses_nothing_and_doubles_nothing(
    tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink
) -> None:
    await asyncio.to_thread(append_all, dovecot)
    desk = Desk(tmp_path, dovecot, smtp_sink)
    desk.configure(inbox={"poll_interval": "1s"})
    rng = random.Random(14)
    progress = []
    for kill in range(KILLS):
        child = Child(desk)
        before = len(smtp_sink.messages)
        if kill % 3 == 0:
            # Anywhere from start-up (importing, opening the state) on.
            await asyncio.sleep(rng.uniform(0.2, 2.0))
        else:
            # Mid-drain: once this run has sent something, a moment later.
            await sent_more_than(smtp_sink, before, timeout_s=30)
            await asyncio.sleep(rng.uniform(0, 0.1))
        assert child.proc.poll() is None, child.log()[-4000:]
        child.kill()
        progress.append(len(smtp_sink.messages))
    child = Child(desk)
    try:
        await finished(desk, child, timeout_s=120)
    finally:
        child.stop()
    assert "Traceback" not in child.log()
    # The kills fell at different points of the drain, not all before it began.
    # (Each request gets two emails: its acknowledgement and, as no mentor is enrolled,
    # the coordinator's notice that nobody matches.)
    assert sum(sent < 2 * REQUESTS for sent in set(progress)) > KILLS // 2, progress

    # Per request and recipient, the distinct emails: the mentee's acknowledgement and
    # (no mentor is enrolled) the coordinator's notice that nobody matches.
    emails = collections.defaultdict(set)
    copies = collections.Counter[str]()
    for sent in smtp_sink.messages:
        [to] = sent.rcpt_tos
        [reference] = re.findall(r"\[MD-\d+\]", sent.subject)
        emails[to, reference].add(str(sent.message["Message-ID"]))
        copies[str(sent.message["Message-ID"])] += 1
    acks = {to: ids for (to, _), ids in emails.items() if to != COORDINATOR}
    doubled = {key: ids for key, ids in emails.items() if len(ids) > 1}
    lost = [n for n in range(REQUESTS) if mentee(n) not in acks]
    async with desk.store() as store:
        requests = store.requests()
    sources = collections.Counter(request["source"] for request in requests)
    stored_twice = {source: count for source, count in sources.items() if count > 1}
    numbers = [request["number"] for request in requests]

    assert len(acks) == REQUESTS
    assert lost == []
    assert stored_twice == {}
    assert doubled == {}
    assert sorted(sources) == sorted(f"<chaos-{n}@client.test>" for n in range(REQUESTS))
    assert len(set(numbers)) == len(numbers) == REQUESTS
    assert dovecot.count(PROGRAM_USER, "INBOX") == 0
    assert dovecot.count(PROGRAM_USER, "Quarantine") == 0
    resent = sum(count - 1 for count in copies.values())
    print(f"\nchaos: {KILLS} kills at {progress} emails; lost 0, stored twice 0, "
          f"distinct duplicate acknowledgements 0; {resent} re-sent whole")  # fmt: skip
