"""The archive through the flows: the sweep moves a finished request's history out of
memory once it is older than ``[state] archive_after``; after a restart, the mentee's
reply to an email about it, a bounce of that email and a new request from them are
handled exactly as when everything was still in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.flows.steps import register_steps
from mentordesk.mailer.drafts import stored_email
from mentordesk.timers import Registry

from .desk import mail
from .test_ladder import REQUEST, TEAM
from .timetravel import Harness, parse, text_of

JORDAN = "jordan@example.net"
# A delivery status report (RFC 3464) returning our acknowledgement: the report names
# its Message-ID, which the store looks up to see whom that email was for.
DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: mentors@program.test
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {to}
Action: failed
Status: 5.1.1

--B
Content-Type: text/rfc822-headers

From: Test Mentors <mentors@program.test>
To: {to}
Subject: Your request
Message-ID: {ack}

--B--
"""


async def program(root: Path, *, archive: bool) -> Harness:
    root.mkdir()
    registry = register_steps(Registry())
    if not archive:
        del registry.sweep_steps["archive"]
    desk = await Harness(root, registry).open()
    await desk.seed(*TEAM)
    return desk


async def finished_long_ago(desk: Harness) -> tuple[int, str]:
    """Jordan's request, withdrawn; every email sent; 401 days pass, with sweeps."""
    outcome = await desk.receive(
        mail(JORDAN, "Mentor request", REQUEST, message_id="<first@client.test>")
    )
    number = outcome.request
    assert number is not None
    [ack] = await desk.sent("request_ack")
    assert await desk.call(desk.coordinator.lifecycle.withdraw, number, JORDAN, desk.clock())
    await sent_all(desk)
    for _ in range(3):
        await desk.sweep(days=134)
    await sent_all(desk)
    await desk.sweep(minutes=1)
    await desk.restart()
    return number, str(ack["Message-ID"])


async def sent_all(desk: Harness) -> None:
    def mark() -> None:
        items = desk.store.due_outbox(desk.clock() + timedelta(days=3650), limit=10_000)
        desk.store.mark_all_sent([item.id for item in items], desk.clock())

    await desk.call(mark)


async def answers(desk: Harness, raw: bytes) -> list[tuple[str, str, str]]:
    """(template, recipient, text) of the emails stored in answer to ``raw``."""
    before = len(await desk.call(desk.store.outbox))
    await desk.receive(raw)
    items = (await desk.call(desk.store.outbox))[before:]
    texts = [text_of(parse(stored_email(item, desk.config.program))) for item in items]
    return [
        (item["kind"], item["recipients"][0], " ".join(text.split()))
        for item, text in zip(items, texts, strict=True)
    ]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    archived = await program(tmp_path / "archived", archive=True)
    kept = await program(tmp_path / "kept", archive=False)
    yield archived, kept
    await archived.close()
    await kept.close()


async def test_a_reply_to_an_archived_request_is_answered_as_before(
    pair: tuple[Harness, Harness],
) -> None:
    archived, kept = pair
    results: list[Any] = []
    for desk in (archived, kept):
        number, ack = await finished_long_ago(desk)
        reply = mail(
            JORDAN,
            "Re: Mentor request",
            "Thanks! Still looking.",
            in_reply_to=ack,
            message_id="<reply@client.test>",
        )
        again = mail(JORDAN, "Mentor request", REQUEST, message_id="<again@client.test>")
        request = await desk.request(number)
        for invited in request["invited"]:
            invited.pop("message_id")  # made at random: the one thing that differs
        history = await desk.call(desk.coordinator.desks.coordinator.request_history, number)
        results.append(
            (
                [(line.kind, line.text) for line in history],
                request,
                await answers(desk, reply),
                await answers(desk, again),
                await desk.call(desk.store.request_numbers_of, JORDAN),
                [e["event"] for e in await desk.call(desk.store.audit_log, number)],
            )
        )
    # The archive did move it: the archived program no longer holds it in memory.
    assert await archived.call(archived.store.archive.count, "requests") == 1
    assert await kept.call(kept.store.archive.count, "requests") == 0
    assert not await archived.call(lambda: dict(archived.store.db.stored_all("requests")).get(1))
    assert results[0] == results[1]
    history, request, reply_answers, new_answers, numbers, events = results[0]
    assert request["status"] == "withdrawn" and len(numbers) == 2
    # The desk's page of the request tells its whole story from the archive.
    assert [kind for kind, _ in history].count("email out") == 3
    assert ("email in", "A request email (done)") in history
    assert "withdrawn" in " ".join(events) and reply_answers and new_answers


async def test_a_bounce_of_an_archived_email_marks_the_address(
    pair: tuple[Harness, Harness],
) -> None:
    for desk in pair:
        _, ack = await finished_long_ago(desk)
        report = DSN.format(ack=ack, to=JORDAN).replace("\n", "\r\n").encode()
        await desk.receive(report)
    marks = [await desk.call(desk.store.is_bounced, JORDAN) for desk in pair]
    assert marks == [True, True]
