"""Session reminders and completion, driven by the sweep with a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.flows.session_steps import session_reminders_step, sessions_done_step
from mentordesk.state.store import from_iso
from mentordesk.timers import Registry

from .desk import mail
from .timetravel import Harness, mentor_doc, text_of

REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: Europe/Berlin\n"
    "Availability: Tue 18:00-20:00\n"
    "Details: I would like a review of my first Python project and some advice.\n"
)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    registry = Registry()
    registry.register_sweep_step("session reminders", session_reminders_step)
    registry.register_sweep_step("sessions done", sessions_done_step)
    harness = await Harness(tmp_path, registry).open()
    yield harness
    await harness.close()


async def booked(desk: Harness) -> dict[str, Any]:
    await desk.seed(mentor_doc("ada@example.com", "Ada Lovelace", ["python"]))
    await desk.receive(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    claims = desk.coordinator.claims
    result = await desk.call(claims.claim, 1, "ada@example.com", desk.clock(), via="test")
    assert result.outcome == "claimed"
    [session] = await desk.call(desk.store.sessions)
    return dict(session)


async def test_reminder_once_a_day_before_and_done_after(desk: Harness) -> None:
    session = await booked(desk)
    start = from_iso(session["start"])
    desk.clock.now = start - timedelta(hours=25)
    assert (await desk.sweep())["session reminders"] == 0
    desk.clock.now = start - timedelta(hours=23)
    assert (await desk.sweep())["session reminders"] == 1
    assert (await desk.sweep(minutes=10))["session reminders"] == 0
    reminders = await desk.sent("session_reminder")
    assert sorted(m["To"].addresses[0].addr_spec for m in reminders) == [
        "ada@example.com",
        "jordan@example.net",
    ]
    assert "Reminder: mentoring session" in str(reminders[0]["Subject"])
    assert "Europe/Berlin" in text_of(reminders[0])

    # A restart in between repeats nothing.
    await desk.restart()
    assert (await desk.sweep())["session reminders"] == 0
    desk.clock.now = start + timedelta(minutes=31)
    assert (await desk.sweep())["sessions done"] == 1
    assert (await desk.sweep())["sessions done"] == 0
    [done] = await desk.call(desk.store.sessions)
    assert done["status"] == "held"


async def test_cancelled_sessions_get_no_reminder(desk: Harness) -> None:
    session = await booked(desk)
    outcome = await desk.call(
        desk.coordinator.sessions.cancel, session["uid"], "jordan@example.net", desk.clock()
    )
    assert outcome == "cancelled"
    desk.clock.now = from_iso(session["start"]) - timedelta(hours=2)
    assert (await desk.sweep())["session reminders"] == 0
    assert await desk.sent("session_reminder") == []
