"""The private calendar feed: a person's sessions and office hours, read by ical.js and vobject.

Session documents are written into the store as the sessions desk keeps them; the
office-hours series are made through the desk. The feed is read back by both parsers and
every time compared with the intended one, across the March DST change in Berlin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mentordesk.feed import FEED_LIFETIME, build_feed
from mentordesk.state.store import iso
from mentordesk.tokens import verify

from .desk import mail
from .test_office_hours import (
    ADA,
    BERLIN_THURSDAYS,
    DANA,
    ERIN,
    LINUS,
    MARCH,
    SECRET,
    World,
    read_both,
    starts,
    utc,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.store.close()


SESSION_UID = "6c1d2e3f-0a1b-4c2d-9e8f-7a6b5c4d3e2f@program.test"
KIM = "kim@example.com"


def session(
    uid: str, mentor: str, mentee: str, start: datetime, status: str, **extra: Any
) -> dict[str, Any]:
    return {
        "uid": uid,
        "request": extra.pop("request", 1),
        "mentor": mentor,
        "mentee": mentee,
        "start": iso(start),
        "end": iso(start + timedelta(minutes=30)),
        "sequence": extra.pop("sequence", 0),
        "status": status,
        "answers": {mentor: "NEEDS-ACTION", mentee: "NEEDS-ACTION"},
        "created": iso(MARCH),
        "updated": iso(MARCH),
        **extra,
    }


def fill(world: World) -> None:
    store = world.store
    with store.transaction():
        for number, mentee, name in ((1, DANA, "Dana Müller"), (2, KIM, "Kim Ng")):
            store.save_request(
                {
                    "number": number,
                    "mentee": mentee,
                    "name": name,
                    "skills": ["python"],
                    "details": "",
                    "status": "claimed",
                    "claimed_by": ADA,
                    "claimed_at": iso(MARCH),
                    "created": iso(MARCH),
                    "updated": iso(MARCH),
                }
            )
        for uid, mentor, mentee, start, status, extra in [
            (SESSION_UID, ADA, DANA, (2026, 3, 10, 17), "accepted", {"sequence": 2}),
            ("cancelled@program.test", ADA, DANA, (2026, 3, 3, 17), "cancelled", {"sequence": 1}),
            ("kim@program.test", ADA, KIM, (2026, 3, 31, 16), "proposed", {"request": 2}),
            ("old@program.test", ADA, KIM, (2025, 10, 1, 16), "done", {"request": 2}),
            ("linus@program.test", LINUS, ERIN, (2026, 3, 11, 17), "accepted", {"request": 2}),
        ]:
            doc = session(uid, mentor, mentee, datetime(*start, tzinfo=UTC), status, **extra)
            store.save_session(doc)
    world.berlin_thursdays()
    world.desk.commands.cancel_occurrence(1, date(2026, 4, 2), MARCH)
    world.desk.commands.move_occurrence(1, date(2026, 3, 19), datetime(2026, 3, 20, 19), MARCH)
    world.desk.commands.create_series(
        weekday=5,
        start_time=datetime(2026, 1, 1, 10).time(),
        zone="America/New_York",
        length=timedelta(minutes=30),
        mentors=[LINUS],
        now=MARCH,
        title="Saturday office hours",
    )
    world.receive(mail(DANA, "Office hours", ""), MARCH)  # joins both series


def test_a_mentors_feed_lists_their_sessions_and_the_series_they_staff(world: World) -> None:
    fill(world)
    ics = world.desk.feed(ADA, MARCH)
    text = ics.decode().replace("\r\n ", "")
    assert "METHOD" not in text  # published data, not an iTIP message
    assert "X-WR-CALNAME:Test Mentors: Ada Lovelace" in text
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in text
    assert "BEGIN:VTIMEZONE" in text and "TZID:Europe/Berlin" in text
    assert "ATTENDEE" not in text  # nobody's address is in a feed
    parsed = read_both(ics, 7)
    assert parsed["method"] is None
    by_uid: dict[str, list[dict[str, Any]]] = {}
    for event in parsed["events"]:
        by_uid.setdefault(event["uid"], []).append(event)
    series_uid = world.series(1)["uid"]
    # The old session (done in October) and Linus's session are not in it; nor is
    # Linus's Saturday series.
    assert list(by_uid) == ["cancelled@program.test", SESSION_UID, "kim@program.test", series_uid]
    [cancelled], [confirmed], [proposed] = (
        by_uid["cancelled@program.test"],
        by_uid[SESSION_UID],
        by_uid["kim@program.test"],
    )
    assert (cancelled["status"], cancelled["sequence"]) == ("CANCELLED", 1)
    assert (confirmed["status"], confirmed["sequence"]) == ("CONFIRMED", 2)
    assert confirmed["summary"] == "Mentoring session with Dana Müller"
    assert confirmed["occurrences"] == [
        {"start": utc(2026, 3, 10, 17), "end": utc(2026, 3, 10, 17, 30)}
    ]
    assert (proposed["status"], proposed["summary"]) == (
        "TENTATIVE",
        "Mentoring session with Kim Ng",
    )

    master, moved = by_uid[series_uid]
    assert master["start_zone"] == "Europe/Berlin" and master["recurrence_id"] is None
    assert moved["recurrence_id"] == utc(2026, 3, 19, 17) and moved["sequence"] == 1
    # 19 March moved to Friday 20th 19:00 CET; 2 April (CEST) cancelled.
    expected = [s for s in BERLIN_THURSDAYS if s != utc(2026, 4, 2, 16)] + [utc(2026, 4, 23, 16)]
    expected[2] = utc(2026, 3, 20, 18)
    assert starts(parsed, parsed["events"].index(master)) == expected


def test_a_guests_feed_has_their_sessions_and_the_series_they_joined(world: World) -> None:
    fill(world)
    parsed = read_both(world.desk.feed(DANA, MARCH), 3)
    uids = [e["uid"] for e in parsed["events"] if e["recurrence_id"] is None]
    saturday = world.series(2)
    assert uids == ["cancelled@program.test", SESSION_UID, world.series(1)["uid"], saturday["uid"]]
    confirmed = next(e for e in parsed["events"] if e["uid"] == SESSION_UID)
    assert confirmed["summary"] == "Mentoring session with Ada Lovelace"
    sat = next(e for e in parsed["events"] if e["uid"] == saturday["uid"])
    # Saturdays 10:00 New York: EST until the US change on 8 March, EDT after.
    assert starts({"events": [sat]}) == [
        utc(2026, 3, 7, 15),
        utc(2026, 3, 14, 14),
        utc(2026, 3, 21, 14),
    ]

    # After leaving, the series are gone from the feed.
    world.receive(mail(DANA, "office hours leave", ""), MARCH)
    parsed = read_both(world.desk.feed(DANA, MARCH))
    assert {e["uid"] for e in parsed["events"]} == {"cancelled@program.test", SESSION_UID}


def test_an_empty_feed_is_still_a_calendar(world: World) -> None:
    parsed = read_both(world.desk.feed("nobody@example.com", MARCH))
    assert parsed == {"method": None, "events": []}
    assert read_both(build_feed(name="x", entries=[], series=[], now=MARCH))["events"] == []


def test_feed_url_is_signed_for_the_person_for_two_years(world: World) -> None:
    url = world.desk.feed_url("Dana@Example.NET", MARCH)
    found = re.fullmatch(
        r"https://mentors\.program\.test/feed/([A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)\.ics", url
    )
    assert found is not None
    claims = verify(SECRET.encode(), found.group(1), purpose="feed", now=MARCH)
    assert (claims.person, claims.obj) == (DANA, "calendar")
    assert claims.expires == MARCH + FEED_LIFETIME
    assert timedelta(days=700) <= FEED_LIFETIME
