"""Office hours as a whole, end to end: ``office-hours edit`` and ``office-hours end``
through the running daemon, every calendar object read back by ical.js and vobject from
the real SMTP server; the warning when a mentor's own hours do not cover a series.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mentordesk.admin import apply_locally
from mentordesk.cli import main as cli
from mentordesk.errors import OfficeHoursError
from mentordesk.state.store import Store

from .desk import ENVIRON, Desk, mail, text_of
from .servers import Dovecot, SmtpSink
from .test_claims import mentor, seed
from .test_office_hours_flow import calendar_of, people, read_both

ADA, LINUS, DANA = "ada@example.com", "linus@example.com", "dana@example.net"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    # Ada's own hours: Tuesdays 18:00–20:00 in Berlin; Linus's: Thursdays 17:00–21:00.
    seed(
        desk,
        [
            mentor(ADA, "Ada Lovelace", ["python"]),
            mentor(LINUS, "Linus Park", ["js"], availability=[[3, 17 * 60, 21 * 60]]),
        ],
    )
    yield desk
    await desk.stop()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("USER", "alice")


async def run(desk: Desk, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    config = str(desk.root / "config.toml")
    code: int = await asyncio.to_thread(cli, [*args, "--config", config])
    out, err = capsys.readouterr()
    return code, out, err


def event_in(message: Any) -> tuple[str, dict[str, Any]]:
    method, ics = calendar_of(message)
    [event] = read_both(ics, 3)["events"]
    return method, event


def starts_at(first: str, hour: int, weeks: int = 3) -> list[str]:
    """Weekly starts at ``hour`` Berlin wall-clock time, in UTC, from ``first``."""
    day = date.fromisoformat(first)
    return [
        datetime.combine(day + timedelta(weeks=k), datetime.min.time(), BERLIN)
        .replace(hour=hour)
        .astimezone(UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        for k in range(weeks)
    ]


async def test_edit_then_end_a_series_for_everyone(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await desk.start()
    code, out, _ = await run(
        desk,
        capsys,
        "office-hours",
        "add",
        "--weekday",
        "thu",
        "--time",
        "18:00",
        "--zone",
        "Europe/Berlin",
        "--mentor",
        ADA,
        "--mentor",
        LINUS,
    )
    assert code == 0
    # Ada's own hours are on Tuesdays: the coordinator is told; Linus's cover Thursdays.
    assert (
        "note: Ada Lovelace's own hours do not cover these office hours "
        "(Thu 18:00–19:00 in Europe/Berlin)" in out
    )
    assert "Linus Park's own hours" not in out
    for person in (ADA, LINUS):
        await desk.replies_to(person, 1)
    desk.send(mail(f"Dana <{DANA}>", "Office hours", "May I join?"))
    [joined] = await desk.replies_to(DANA, 1)
    uid = event_in(joined)[1]["uid"]
    async with desk.store() as store:
        series = store.series(1)
        assert series is not None and series["attendees"] == [DANA]

    # Edit: 19:00 instead of 18:00, and Linus no longer hosts.
    code, out, _ = await run(
        desk, capsys, "office-hours", "edit", "1", "--time", "19:00", "--mentor", ADA
    )
    assert code == 0, out
    assert "Changed office hours 1; the running daemon sends the emails now." in out
    assert "changed: every Thursday, 18:00–19:00 (Europe/Berlin) → every Thursday, 19:00" in out
    assert "changed: no longer with Linus Park" in out
    assert "note: Ada Lovelace's own hours do not cover" in out
    async with desk.store() as store:
        edited = store.series(1)
        assert edited is not None
    for person in (ADA, DANA):
        update = (await desk.replies_to(person, 2))[-1]
        method, event = event_in(update)
        assert method == "REQUEST"
        assert (event["uid"], event["sequence"]) == (uid, 1)
        assert [o["start"] for o in event["occurrences"]] == starts_at(edited["first"], 19)
        assert people(event) == ([ADA] if person == ADA else [ADA, DANA])
        assert "changed, now" in update.subject
        assert "no longer with Linus Park" in text_of(update)
    removal = (await desk.replies_to(LINUS, 2))[-1]
    method, event = event_in(removal)
    assert method == "CANCEL"
    assert (event["uid"], event["sequence"], event["status"]) == (uid, 1, "CANCELLED")
    assert people(event) == [LINUS]
    assert "you are no longer on the staff" in " ".join(text_of(removal).split())

    # End: one CANCEL of the whole series to everyone still on it.
    code, out, _ = await run(desk, capsys, "office-hours", "end", "1")
    assert code == 0
    assert "Ended office hours 1" in out and "ended: " in out
    for person in (ADA, DANA):
        ended = (await desk.replies_to(person, 3))[-1]
        method, event = event_in(ended)
        assert method == "CANCEL"
        assert (event["uid"], event["sequence"], event["status"]) == (uid, 2, "CANCELLED")
        assert event["recurrence_id"] is None
        assert "they have ended" in ended.subject
    await asyncio.sleep(0.3)
    assert len(desk.sink.messages_to(LINUS)) == 2  # Linus was off already

    code, _, err = await run(desk, capsys, "office-hours", "end", "1")
    assert code == 2 and "office hours 1 ended already" in err
    code, _, err = await run(desk, capsys, "office-hours", "edit", "1", "--time", "20:00")
    assert code == 2 and "office hours 1 have ended" in err
    # Nothing is left to join.
    async with desk.store() as store:
        assert store.series(1) is not None
    code, out, _ = await run(desk, capsys, "office-hours", "list")
    assert "next:" not in out and "   ended: " in out
    # Nobody is on it any more; who was is kept.
    async with desk.store() as store:
        record = store.series(1)
        assert record is not None
        assert (record["mentors"], record["attendees"]) == ([], [])
        assert record["ended_with"] == {"mentors": [ADA], "attendees": [DANA]}
        changed = ("office hours created", "office hours edited", "office hours ended")
        done = [(e["event"], e.get("by")) for e in store.audit_log() if e["event"] in changed]
    # Who did it is recorded for every change of the series.
    assert done == [(event, "cli:alice") for event in changed]
    # Dana asks for office hours again: none are scheduled, no invitation.
    desk.send(mail(f"Dana <{DANA}>", "Office hours", "Anything on?"))
    [*_, answer] = await desk.replies_to(DANA, 4)
    assert not [p for p in answer.message.walk() if p.get_content_type() == "text/calendar"]


def test_edit_refuses_what_cannot_be(desk: Desk) -> None:
    now = datetime.now(UTC)
    add = {
        "action": "add",
        "weekday": "tue",
        "time": "18:00",
        "zone": "Europe/Berlin",
        "length": "60m",
        "mentors": [ADA],
    }
    answer = apply_locally(desk.config, add, now)
    assert answer["warnings"] == []  # Ada's own hours cover Tuesdays 18:00-19:00
    for command, problem in (
        ({"action": "edit", "id": 1}, "nothing to change"),
        ({"action": "edit", "id": 1, "mentors": []}, "at least one mentor"),
        ({"action": "edit", "id": 1, "time": "25:00"}, "is not a time of day"),
        ({"action": "edit", "id": 9, "time": "19:00"}, "there is no office-hours series 9"),
        ({"action": "end", "id": "1"}, "id must be a series number"),
    ):
        with pytest.raises(OfficeHoursError) as refused:
            apply_locally(desk.config, command, now)
        assert problem in str(refused.value)
    store = Store(desk.config.state.path, fsync=False, read_only=True)
    try:
        series = store.series(1)
        assert series is not None
        assert (series["sequence"], series["time"], series["mentors"]) == (0, "18:00", [ADA])
        assert len(store.outbox("pending")) == 1  # Ada's first invitation, nothing more
    finally:
        store.close()


async def test_a_new_day_and_a_new_mentor_reach_every_calendar(
    desk: Desk, capsys: pytest.CaptureFixture[str]
) -> None:
    await desk.start()
    add = ["--weekday", "tue", "--time", "18:00", "--zone", "Europe/Berlin", "--mentor", ADA]
    code, out, _ = await run(desk, capsys, "office-hours", "add", *add)
    assert code == 0 and "note:" not in out  # Ada's own hours cover Tuesdays 18:00-20:00
    [invitation] = await desk.replies_to(ADA, 1)
    uid = event_in(invitation)[1]["uid"]
    desk.send(mail(f"Dana <{DANA}>", "Office hours", "May I join?"))
    await desk.replies_to(DANA, 1)
    await desk.until(lambda store: (store.series(1) or {}).get("attendees") == [DANA])

    code, out, _ = await run(
        desk,
        capsys,
        "office-hours",
        "edit",
        "1",
        "--weekday",
        "thu",
        "--mentor",
        ADA,
        "--mentor",
        LINUS,
        "--by",
        "cli:reps-council",
    )
    assert code == 0, out
    assert "changed: now also with Linus Park" in out
    # Thursdays are outside Ada's own hours (Tuesdays), inside Linus's.
    assert "note: Ada Lovelace's own hours do not cover" in out
    assert "Linus Park's own hours" not in out
    async with desk.store() as store:
        series = store.series(1)
        assert series is not None and date.fromisoformat(series["first"]).weekday() == 3
    for person, count in ((ADA, 2), (DANA, 2), (LINUS, 1)):
        update = (await desk.replies_to(person, count))[-1]
        method, event = event_in(update)
        assert method == "REQUEST"
        assert (event["uid"], event["sequence"]) == (uid, 1)
        assert [o["start"] for o in event["occurrences"]] == starts_at(series["first"], 18)
        assert people(event)[:2] == [ADA, LINUS]
    async with desk.store() as store:
        [edited] = [e for e in store.audit_log() if e["event"] == "office hours edited"]
    assert edited["by"] == "cli:reps-council"
