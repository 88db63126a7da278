"""Mentor terms (flow 10): the renewal reminder, "your term has ended", renewing after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from mentordesk.flows.ladder import ladder_step
from mentordesk.flows.terms import term_notice, terms_step
from mentordesk.state.store import iso
from mentordesk.timers import Registry

from .desk import mail
from .timetravel import T0, Harness, html_of, mentor_doc, text_of

ADA = "ada@example.com"
DAY = timedelta(days=1)
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\nAvailability: Tue 12:00-14:00\n"
    "Details: I am learning Python and would love a review of my first project.\n"
)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    registry = Registry()
    registry.register_sweep_step("ladder", ladder_step)
    registry.register_sweep_step("terms", terms_step)
    harness = await Harness(tmp_path, registry).open()
    yield harness
    await harness.close()


def test_term_notice_decides_once_per_term(tmp_path: Path) -> None:
    from .timetravel import write_config

    timers = write_config(tmp_path).timers  # renewal_notice 30d
    end = T0 + 40 * DAY
    mentor = {"status": "active", "term_end": iso(end)}
    assert term_notice(mentor, timers, T0) is None
    assert term_notice(mentor, timers, end - 30 * DAY - timedelta(seconds=1)) is None
    assert term_notice(mentor, timers, end - 30 * DAY) == "reminder"
    assert term_notice({**mentor, "term_reminded": iso(end)}, timers, end - DAY) is None
    # Reminded for an earlier term: this one gets its own.
    assert term_notice({**mentor, "term_reminded": iso(T0)}, timers, end - DAY) == "reminder"
    assert term_notice(mentor, timers, end) == "ended"
    # Over is over, told or not: the mentor leaves through the lifecycle (the email
    # itself goes once); once they have, nothing more is due.
    assert term_notice({**mentor, "term_ended_told": iso(end)}, timers, end + DAY) == "ended"
    assert term_notice({**mentor, "status": "term-ended"}, timers, end + DAY) is None
    assert term_notice({**mentor, "status": "paused"}, timers, end) == "ended"
    assert term_notice({**mentor, "status": "resigned"}, timers, end) is None
    assert term_notice({"status": "active", "term_end": None}, timers, end) is None
    # An end nobody can read counts as over (state.records.term_over decides).
    assert term_notice({"status": "active", "term_end": "soon"}, timers, end) == "ended"


async def test_reminder_then_ended_each_once(desk: Harness) -> None:
    await desk.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"], term_end=iso(T0 + 40 * DAY)),
        mentor_doc("pat@example.com", "Pat Paused", ["python"], status="paused"),
        mentor_doc(
            "ron@example.com",
            "Ron Resigned",
            ["python"],
            status="resigned",
            term_end=iso(T0 - DAY),
        ),
    )
    assert (await desk.sweep())["terms"] == 0
    assert (await desk.sweep(days=10, minutes=1))["terms"] == 1
    [reminder] = await desk.sent("term_reminder", ADA)
    assert reminder["Subject"] == (
        'Your mentor term ends on Saturday 26 April 2025 – reply "renew" to stay'
    )
    assert "another 2 years" in " ".join(text_of(reminder).split())
    assert "renew" in html_of(reminder)
    for days in (1, 20):
        assert (await desk.sweep(days=days))["terms"] == 0
    desk.clock.now = T0 + 40 * DAY
    assert (await desk.sweep())["terms"] == 1
    [ended] = await desk.sent("term_ended", ADA)
    assert ended["Subject"] == "Your mentor term has ended – thank you"
    assert "no longer send you new requests" in " ".join(text_of(ended).split())
    for days in (1, 200):
        assert (await desk.sweep(days=days))["terms"] == 0
    # Paused mentors are still mentors: Pat hears too (default term, a year from T0).
    desk.clock.now = T0 + 336 * DAY
    assert (await desk.sweep())["terms"] == 1
    assert await desk.kinds() == [
        ("term_reminder", ADA),
        ("term_ended", ADA),
        ("term_reminder", "pat@example.com"),
    ]
    ada = await desk.call(desk.store.mentor, ADA)
    assert ada["term_reminded"] == ada["term_ended_told"] == iso(T0 + 40 * DAY)
    assert ada["status"] == "term-ended"


async def test_renewing_after_the_end_brings_requests_back(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"], term_end=iso(T0 + DAY)))
    await desk.sweep(days=2)
    [ended] = await desk.sent("term_ended", ADA)
    # While the term is over, a request finds nobody.
    await desk.receive(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    assert not (await desk.request(1)).get("invited")
    assert await desk.sent("coordinator_no_match")

    desk.clock.advance(days=3)
    await desk.receive(
        mail(
            "Ada Lovelace <ada@example.com>",
            f"Re: {ended['Subject']}",
            "Renew\n\n> Your term as a Test Mentors mentor ended",
            in_reply_to=ended["Message-ID"],
        )
    )
    [confirmation] = await desk.sent("mentor_status", ADA)
    assert "Your mentor term is renewed until" in text_of(confirmation)
    ada = await desk.call(desk.store.mentor, ADA)
    new_end = desk.clock() + timedelta(days=730)
    assert ada["status"] == "active" and ada["term_end"] == iso(new_end)

    await desk.receive(
        mail(
            "Sam Sun <sam@example.net>",
            "Mentor request",
            REQUEST.replace("Jordan Lee", "Sam Sun"),
        )
    )
    assert [i["email"] for i in (await desk.request(2))["invited"]] == [ADA]
    # The new term gets its own reminder, once, and no second "ended".
    assert (await desk.sweep(days=1))["terms"] == 0
    desk.clock.now = new_end - 29 * DAY
    assert (await desk.sweep())["terms"] == 1
    assert (await desk.sweep(days=1))["terms"] == 0
    assert [k for k, _ in await desk.kinds() if k.startswith("term_")] == [
        "term_ended",
        "term_reminder",
    ]


JORDAN = "jordan@example.net"


async def test_a_term_ending_hands_back_what_the_mentor_holds(desk: Harness) -> None:
    """The end of a term is a mentor leaving (SPEC §3a): the request Ada holds goes back
    to matching without her, its session is cancelled in both calendars, the mentee and
    the coordinator are told, and Ada's "term ended" email names it."""
    await desk.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"], term_end=iso(T0 + 10 * DAY)),
        mentor_doc("bea@example.com", "Bea Brown", ["python"]),
    )
    await desk.receive(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    claims = desk.coordinator.claims
    assert (await desk.call(claims.claim, 1, ADA, desk.clock(), via="web")).outcome == "claimed"
    assert (await desk.request(1))["status"] == "booked"
    [session] = await desk.call(desk.store.sessions)

    desk.clock.now = T0 + 10 * DAY + timedelta(minutes=1)
    assert (await desk.sweep())["terms"] == 1
    request = await desk.request(1)
    assert request["status"] == "open" and request["claimed_by"] is None
    assert request["released_by"] == [ADA]
    assert [i["email"] for i in request["invited"]][-1] == "bea@example.com"
    cancelled = await desk.call(desk.store.session, session["uid"])
    assert cancelled["status"] == "cancelled" and cancelled["sequence"] == session["sequence"] + 1
    assert {to for kind, to in await desk.kinds() if kind == "session_cancelled"} == {ADA, JORDAN}
    assert await desk.sent("request_released", JORDAN)
    [notice] = await desk.sent("coordinator_holder_left")
    assert "MD-0001" in notice["Subject"]
    [ended] = await desk.sent("term_ended", ADA)
    text = " ".join(text_of(ended).split())
    assert "The request you still held (MD-0001) went back to other mentors" in text
    assert (await desk.call(desk.store.mentor, ADA))["status"] == "term-ended"
    # Nothing more: no second email, no second hand-back.
    assert (await desk.sweep(days=1))["terms"] == 0
    assert len(await desk.sent("term_ended")) == 1


async def test_a_reminder_missed_by_downtime_is_skipped_and_written_down(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"], term_end=iso(T0 + 40 * DAY)))
    assert (await desk.sweep())["terms"] == 0
    # Down from now until after the end: the reminder's whole window passed.
    desk.clock.now = T0 + 41 * DAY
    await desk.restart()
    assert (await desk.sweep())["terms"] == 1
    assert [k for k, _ in await desk.kinds() if k.startswith("term_")] == ["term_ended"]
    [skipped] = [e for e in await desk.call(desk.store.audit_log) if e["event"] == "skipped: late"]
    assert (skipped["step"], skipped["mentor"]) == ("term reminder", ADA)
    assert skipped["due"] == iso(T0 + 10 * DAY) and skipped["late"] == "31 days"
