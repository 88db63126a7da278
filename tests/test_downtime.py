"""Downtime (SPEC §3a, Time): a step whose moment passed while the daemon was down is
done late only within its grace window; otherwise it is skipped, written down, and the
next digest says so. Never several ladder steps at once.

Every step of the flows runs here (``flows.steps.register_steps``), over the real store,
coordinator and scheduler, with a fake clock moved by hand and restarts in between.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mentordesk.flows.steps import register_steps
from mentordesk.state.store import from_iso, iso
from mentordesk.timers import SKIPPED_LATE, Registry

from .desk import mail
from .test_ladder import FIRST, REQUEST, TEAM
from .timetravel import BOSS, T0, Harness, mentor_doc, text_of

ADA = "ada@example.com"
JORDAN = "jordan@example.net"
DAY = timedelta(days=1)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, register_steps(Registry())).open()
    yield harness
    await harness.close()


async def skipped(desk: Harness) -> list[dict[str, object]]:
    return [e for e in await desk.call(desk.store.audit_log) if e["event"] == SKIPPED_LATE]


async def digest_text(desk: Harness) -> str:
    """The text of the latest digest, flattened."""
    digests = await desk.sent("digest")
    assert digests, "no digest went out"
    return " ".join(text_of(digests[-1]).split())


# --- the reported bugs -------------------------------------------------------------------------


async def test_a_feedback_round_missed_by_eight_months_does_not_go_out(desk: Harness) -> None:
    """Reported: after the daemon was down, a feedback round missed by eight months still
    went out (the yearly job fired on start). It is skipped now, and the digest says so."""
    await desk.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"], term_end="2027-01-01T00:00:00+00:00")
    )
    desk.clock.now = datetime(2025, 2, 1, 14, tzinfo=UTC)
    await desk.sweep()  # first sight of the yearly job: it counts from now
    desk.clock.now = datetime(2025, 2, 20, 14, tzinfo=UTC)
    await desk.sweep()
    await desk.restart()  # down from 20 February (the round is due on 1 March) ...
    desk.clock.now = datetime(2025, 10, 30, 14, tzinfo=UTC)  # ... to 30 October
    done = await desk.sweep()
    assert "feedback round" not in done
    assert await desk.sent("survey_invite") == []
    assert await desk.call(desk.store.survey, 2025) is None
    [record] = await skipped(desk)
    assert (record["step"], record["late"]) == ("feedback round", "8 months")
    assert record["due"] == iso(datetime(2025, 3, 1, 13, tzinfo=UTC))  # 08:00 in New York
    # Only once: the next sweeps neither send it nor write it down again.
    for hours in (1, 24):
        await desk.sweep(hours=hours)
    assert await desk.sent("survey_invite") == [] and len(await skipped(desk)) == 1
    # The next morning's digest tells the coordinator.
    desk.clock.now = datetime(2025, 11, 1, 12, tzinfo=UTC)  # Saturday, 08:00 local
    assert (await desk.sweep())["digest"] == 1
    assert (
        "feedback round, due Sat 1 Mar 08:00, 8 months late (done late only within 14 days)"
        in await digest_text(desk)
    )
    # Next year's round goes out on its day, as always.
    desk.clock.now = datetime(2026, 3, 1, 13, 1, tzinfo=UTC)
    assert (await desk.sweep())["feedback round"] == 1
    assert [m["To"].addresses[0].addr_spec for m in await desk.sent("survey_invite")] == [ADA]


async def test_a_feedback_round_a_few_days_late_still_goes_out(desk: Harness) -> None:
    await desk.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"], term_end="2027-01-01T00:00:00+00:00")
    )
    desk.clock.now = datetime(2025, 2, 20, 14, tzinfo=UTC)
    await desk.sweep()
    await desk.restart()
    desk.clock.now = datetime(2025, 3, 14, 13, tzinfo=UTC)  # 13 days late: within 14
    assert (await desk.sweep())["feedback round"] == 1
    assert len(await desk.sent("survey_invite")) == 1 and await skipped(desk) == []


# --- the ladder: one step at most ---------------------------------------------------------------


async def test_an_outage_over_days_2_to_12_gives_the_escalation_alone(desk: Harness) -> None:
    await desk.seed(*TEAM)
    await desk.receive(
        mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST, message_id="<r1@x.test>")
    )
    await desk.sweep(days=1)
    await desk.restart()
    desk.clock.now = T0 + 12 * DAY  # down over days 2–12
    assert (await desk.sweep())["ladder"] == 1
    ladder_mail = [
        (kind, to)
        for kind, to in await desk.kinds()
        if kind in ("request_bump", "request_update", "request_escalated", "claim_invite")
    ]
    # Not bump + update + widen + escalate together: the two first invitations, then
    # the escalation alone.
    assert ladder_mail == [*(("claim_invite", m) for m in FIRST), ("request_escalated", BOSS)]
    request = await desk.request(1)
    assert set(request["ladder"]) == {"escalate"}
    assert set(request["ladder_skipped"]) == {"bump", "mentee_update", "widen"}
    records = {r["step"]: r for r in await skipped(desk)}
    assert set(records) == {"ladder bump", "ladder mentee_update", "ladder widen"}
    assert records["ladder widen"]["due"] == iso(T0 + 5 * DAY)
    assert "never two steps at once" in str(records["ladder bump"]["rule"])
    # The escalation's history shows what was passed over.
    [escalation] = await desk.sent("request_escalated")
    assert "Skipped ladder widen, 7 days late" in text_of(escalation)
    # Nothing more climbs, and the next digest lists the three.
    for days in (1, 30):
        assert (await desk.sweep(days=days))["ladder"] == 0
    text = await digest_text(desk)
    assert "SKIPPED: TOO LATE (3)" in text
    assert "ladder widen for MD-0001, due Sat 22 Mar 10:00, 7 days late" in text


async def test_an_outage_past_the_grace_sends_no_ladder_step_at_all(desk: Harness) -> None:
    await desk.seed(*TEAM)
    await desk.receive(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.restart()
    desk.clock.now = T0 + 13 * DAY  # the escalation was due three days ago: too late
    assert (await desk.sweep())["ladder"] == 0
    assert await desk.sent("request_escalated") == [] and await desk.sent("request_bump") == []
    assert {r["step"] for r in await skipped(desk)} == {
        "ladder bump",
        "ladder mentee_update",
        "ladder widen",
        "ladder escalate",
    }
    assert (await desk.request(1))["status"] == "open"  # still waiting: the digest says so


# --- the digest: today's only -------------------------------------------------------------------


async def test_yesterdays_digest_is_not_sent_this_morning(desk: Harness) -> None:
    await desk.sweep()  # Monday 10:00 in New York: the daily job counts from now
    desk.clock.now = datetime(2025, 3, 18, 12, tzinfo=UTC)  # Tuesday 08:00 local
    assert (await desk.sweep())["digest"] == 1
    await desk.restart()
    desk.clock.now = datetime(2025, 3, 20, 11, tzinfo=UTC)  # down until Thursday 07:00
    assert "digest" not in await desk.sweep()
    assert len(await desk.sent("digest_quiet")) + len(await desk.sent("digest")) == 1
    [record] = await skipped(desk)
    assert (record["step"], record["late"]) == ("digest", "23 hours")
    desk.clock.now = datetime(2025, 3, 20, 12, tzinfo=UTC)  # Thursday 08:00
    assert (await desk.sweep())["digest"] == 1
    text = await digest_text(desk)  # not quiet: a skipped step is news
    assert (
        "digest, due Wed 19 Mar 08:00, 23 hours late (a daily job runs late only on its own day)"
        in text
    )
    # A digest late by an hour on its own day still goes out.
    await desk.restart()
    desk.clock.now = datetime(2025, 3, 21, 13, tzinfo=UTC)  # Friday 09:00
    assert (await desk.sweep())["digest"] == 1


# --- sessions: reminders only before, questions within a week -----------------------------------

SESSION_REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: Europe/Berlin\n"
    "Availability: Tue 18:00-20:00\n"
    "Details: I would like a review of my first Python project and some advice.\n"
)


async def booked(desk: Harness) -> dict[str, object]:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    await desk.receive(mail("Jordan Lee <jordan@example.net>", "Mentor request", SESSION_REQUEST))
    result = await desk.call(desk.coordinator.claims.claim, 1, ADA, desk.clock(), via="test")
    assert result.outcome == "claimed"
    [session] = await desk.call(desk.store.sessions)
    return dict(session)


async def test_a_reminder_missed_by_downtime_is_not_sent_after_the_start(desk: Harness) -> None:
    session = await booked(desk)
    start = from_iso(str(session["start"]))
    desk.clock.now = start - timedelta(hours=30)
    await desk.sweep()
    await desk.restart()
    desk.clock.now = start + timedelta(minutes=10)  # down through the whole window
    assert (await desk.sweep())["session reminders"] == 0
    assert await desk.sent("session_reminder") == []
    [record] = await skipped(desk)
    assert (record["step"], record["what"], record["uid"]) == (
        "session reminder",
        "MD-0001",
        session["uid"],
    )
    assert record["due"] == iso(start - timedelta(hours=24))
    await desk.sweep(minutes=5)
    assert len(await skipped(desk)) == 1  # written down once
    # The session itself goes on: held after its end, asked about two hours later.
    desk.clock.now = start + timedelta(hours=3)
    done = await desk.sweep()
    assert done["sessions done"] == 1 and done["after the session"] == 1
    assert (await desk.request(1))["status"] == "closed"
    assert await desk.sent("after_session_mentee", JORDAN)


async def test_after_session_questions_weeks_late_are_skipped(desk: Harness) -> None:
    session = await booked(desk)
    desk.clock.now = from_iso(str(session["start"])) - timedelta(hours=2)
    assert (await desk.sweep())["session reminders"] == 1
    await desk.restart()
    desk.clock.now = from_iso(str(session["end"])) + timedelta(days=9)  # down for 9 days
    done = await desk.sweep()
    assert done["sessions done"] == 1 and done["after the session"] == 0
    assert await desk.sent("after_session_mentee") == []
    assert await desk.sent("after_session_mentor") == []
    [record] = await skipped(desk)
    assert (record["step"], record["late"]) == ("after-session questions", "8 days")
    # The request's life is over all the same: it does not stay "met" for ever.
    assert (await desk.request(1))["status"] == "closed"


# --- the feedback round's reminder ---------------------------------------------------------------


async def test_a_survey_reminder_past_its_grace_is_skipped(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    assert await desk.scheduler.run_job("feedback round") == 1
    await desk.restart()
    desk.clock.now = T0 + 7 * DAY + 15 * DAY  # reminder due on day 7; 15 days late
    assert (await desk.sweep())["feedback round reminder"] == 0
    assert await desk.sent("survey_reminder") == []
    [record] = await skipped(desk)
    assert (record["step"], record["what"], record["late"]) == (
        "feedback round reminder",
        "2025",
        "15 days",
    )
    survey = await desk.call(desk.store.survey, 2025)
    assert survey["reminded"] == iso(desk.clock())


async def test_a_long_outage_sends_each_thing_at_most_once(desk: Harness) -> None:
    """Down for a year with a program in every state: the first sweep back sends no
    reminder, bump or question twice, and a second sweep sends nothing new."""
    await desk.seed(*TEAM)
    await desk.receive(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.sweep(days=1)
    await desk.restart()
    desk.clock.now = T0 + 400 * DAY
    await desk.sweep()
    before = await desk.kinds()
    await desk.sweep(minutes=1)
    await desk.sweep(hours=1)
    assert await desk.kinds() == before
    # What did go out: the request expired (the mentee told once), the mentors whose
    # terms ended heard once each; no ladder mail and no feedback round at all.
    assert [to for kind, to in before if kind == "request_expired"] == [JORDAN]
    assert sorted(to for kind, to in before if kind == "term_ended") == sorted(
        m["email"] for m in TEAM
    )
    late = ("request_bump", "request_update", "request_escalated", "survey_invite")
    assert not [kind for kind, _ in before if kind in late]
