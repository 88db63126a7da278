"""What the flows do with people's own words: the questions they ask, never booking blind,
times in each reader's zone. The real coordinator and store, without mail servers
(``tests/timetravel.py``); the end-to-end runs over Dovecot are in test_prose_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mentordesk.inbox.intents import ProposedTime
from mentordesk.state.store import from_iso
from mentordesk.timers import Registry

from .desk import mail
from .timetravel import Harness, mentor_doc, text_of

ADA = "ada@example.com"
ROSA = "rosa@example.net"
TOM = "tom@example.net"
LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, Registry()).open()
    yield harness
    await harness.close()


def answer(sender: str, to: EmailMessage, body: str) -> bytes:
    """What a mail client sends when ``sender`` answers ``to``."""
    return mail(sender, f"Re: {to['Subject']}", body, in_reply_to=str(to["Message-ID"]))


async def claimed_by_mail(desk: Harness) -> None:
    """Ada answers her claim email in her own words."""
    [invite] = await desk.sent("claim_invite", ADA)
    await desk.receive(answer(ADA, invite, "I'll take this one!\n"))


def flat(message: EmailMessage) -> str:
    return " ".join(text_of(message).split())


# --- never book blind ------------------------------------------------------------------


async def test_a_mentee_without_zone_or_hours_is_asked_and_then_picks(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    body = "Hi, my first Python scraper keeps timing out and I don't know why. Can anyone help?\n"
    await desk.receive(mail(f"Rosa Delgado <{ROSA}>", "Mentor request", body))
    [ack] = await desk.sent("request_ack", ROSA)
    text = text_of(ack)
    assert text.count("  - Timezone:") == 1 and text.count("  - Availability:") == 1
    assert "  - Skills:" not in text and "  - Details:" not in text  # she gave those
    assert "pick one of their free times" in flat(ack)
    assert "fits both of your weeks" not in flat(ack)

    await claimed_by_mail(desk)
    request = await desk.request(1)
    assert (request["status"], request["schedule"]) == ("claimed", "mentee picks")
    kinds = await desk.kinds()
    assert ("session_invite", ROSA) not in kinds and ("session_invite", ADA) not in kinds
    [pick] = await desk.sent("session_pick_mentee", ROSA)
    assert "/pick/" in text_of(pick)
    assert "your time zone or when you are usually free" in flat(pick)
    [intro] = await desk.sent("intro_mentee", ROSA)
    assert "fits both of your weeks" not in flat(intro)
    assert "link to pick one of Ada's free times" in flat(intro)
    [intro_ada] = await desk.sent("intro_mentor", ADA)
    assert "we have sent them a link to pick one of your free times" in flat(intro_ada)

    sessions = desk.coordinator.sessions
    now = desk.clock()
    shown = await desk.call(sessions.mentee_choices, 1, now)
    # Without her zone, the program's (README), named on every time.
    assert shown and all(c["label"].endswith("(America/New_York)") for c in shown)
    chicago = await desk.call(sessions.mentee_choices, 1, now, "America/Chicago")
    assert all(c["label"].endswith("(America/Chicago)") for c in chicago)
    for choice in chicago:
        start = from_iso(choice["value"])
        assert start >= now + timedelta(hours=24)
        in_berlin = start.astimezone(BERLIN)  # in Ada's week (Berlin, 08:00-22:00) ...
        assert 8 * 60 <= in_berlin.hour * 60 + in_berlin.minute <= 21 * 60 + 30
        in_chicago = start.astimezone(ZoneInfo("America/Chicago"))  # ... and Rosa's day
        assert 9 * 60 <= in_chicago.hour * 60 + in_chicago.minute <= 20 * 60 + 30
    days = {from_iso(c["value"]).astimezone(ZoneInfo("America/Chicago")).date() for c in chicago}
    assert len(days) >= 4  # a few a day, over several days

    # A time never offered is refused; so is someone else's link.
    assert await desk.call(
        sessions.mentee_pick, 1, ROSA, "2030-01-01T03:00:00+00:00", now, None
    ) == ("taken")
    assert await desk.call(sessions.mentee_pick, 1, ADA, chicago[0]["value"], now, None) == (
        "not_yours"
    )
    outcome = await desk.call(
        sessions.mentee_pick, 1, ROSA, chicago[2]["value"], now, "America/Chicago"
    )
    assert outcome == "booked"
    request = await desk.request(1)
    assert (request["status"], request["timezone"]) == ("booked", "America/Chicago")
    session = await desk.call(desk.store.live_session_of, 1)
    assert session["start"] == chicago[2]["value"]
    [to_rosa] = await desk.sent("session_invite", ROSA)
    [to_ada] = await desk.sent("session_invite", ADA)
    assert "You picked it from Ada's free times." in flat(to_rosa)
    assert "Rosa picked it from your free times." in flat(to_ada)
    for invitation in (to_rosa, to_ada):
        assert "fits both of your weeks" not in flat(invitation)
    assert chicago[2]["label"] in flat(to_rosa)  # what she clicked is what she reads


async def test_hours_said_later_in_the_thread_fill_in_the_request(desk: Harness) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    body = "Hello, I would like a code review of my first Python project before I apply for jobs.\n"
    await desk.receive(mail(f"Rosa Delgado <{ROSA}>", "Mentor request", body))
    [ack] = await desk.sent("request_ack", ROSA)
    await desk.receive(
        answer(ROSA, ack, "Sorry! I'm in Chicago and usually free weekday evenings after 6pm.\n")
    )
    request = await desk.request(1)
    assert request["timezone"] == "America/Chicago"
    assert request["availability"] == [[day, 18 * 60, 22 * 60] for day in range(5)]
    [note] = await desk.sent("request_note", ROSA)
    assert "We have updated your request" in flat(note)
    assert "America/Chicago (you wrote “Chicago”)" in flat(note)
    assert "Mon–Fri 18:00–22:00 (you wrote “weekday evenings after 6pm”)" in flat(note)
    # "my mentor could be in London" is not her zone, and changes nothing.
    [note] = await desk.sent("request_note", ROSA)
    await desk.receive(answer(ROSA, note, "It's fine if my mentor is in London, by the way.\n"))
    assert (await desk.request(1))["timezone"] == "America/Chicago"


# --- the questions a mentee is asked ---------------------------------------------------


async def test_an_incomplete_request_asks_each_thing_once_in_a_mentees_words(
    desk: Harness,
) -> None:
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    body = "Skills: python\nAvailability: ask me\nDetails: help pls\n"
    await desk.receive(mail(f"Rosa Delgado <{ROSA}>", "Mentor request", body))
    [question] = await desk.sent("request_incomplete", ROSA)
    text = flat(question)
    assert "what you can help with" not in text  # a mentor's words
    assert text.count("Availability:") == 2  # the problem once, and the form line
    assert "I couldn't read any days and times in “ask me”" in text
    assert (
        "Details: a few more words on what you would like help with (so far we have “help pls”)"
        in text
    )
    assert "Timezone: the city you are in" in text
    assert "Skills: what you would like help with" not in text  # she gave her skills


async def test_an_enrollment_in_sentences_is_echoed_with_its_words(desk: Harness) -> None:
    body = (
        "Name: Priya Natarajan\nSkills: python, sql\n\n"
        "I live in Toronto and I'm free Saturday mornings and Wednesday evenings.\n"
    )
    await desk.receive(mail("Priya <priya@example.com>", "Mentor enrollment", body))
    [confirmation] = await desk.sent("enrollment_confirmed", "priya@example.com")
    text = flat(confirmation)
    assert "America/Toronto (you wrote “Toronto”)" in text
    assert (
        "Wed 18:00–22:00, Sat 08:00–12:00 (you wrote “Saturday mornings and Wednesday evenings”)"
        in text
    )
    mentor = await desk.call(desk.store.mentor, "priya@example.com")
    assert mentor["availability"] == [[2, 18 * 60, 22 * 60], [5, 8 * 60, 12 * 60]]


# --- a time asked for in words ---------------------------------------------------------


async def booked_with_tom(desk: Harness) -> dict[str, Any]:
    """Tom (Los Angeles, weekday mornings 6-9) is booked with Ada (Berlin, 08:00-22:00)."""
    await desk.seed(mentor_doc(ADA, "Ada Lovelace", ["python"]))
    body = (
        "Name: Tom Reyes\nSkills: python\nTimezone: America/Los_Angeles\n"
        "Availability: weekdays 6-9am\n"
        "Details: I would like help structuring my first data analysis project in Python.\n"
    )
    await desk.receive(mail(f"Tom Reyes <{TOM}>", "Mentor request", body))
    await claimed_by_mail(desk)
    session: dict[str, Any] = await desk.call(desk.store.live_session_of, 1)
    [invitation] = await desk.sent("session_invite", TOM)
    assert "It is the earliest time that fits both of your weeks." in flat(invitation)
    return session


async def test_a_time_asked_for_in_words_is_booked_when_the_mentor_is_free(
    desk: Harness,
) -> None:
    session = await booked_with_tom(desk)
    first = from_iso(session["start"]).astimezone(LA)
    sessions = desk.coordinator.sessions
    asked = ProposedTime(None, None, 7 * 60 + 30, "7:30am")  # "can we do 7:30am instead?"
    outcome = await desk.call(sessions.move, session["uid"], TOM, desk.clock(), asked)
    assert outcome == "moved"
    moved = await desk.call(desk.store.live_session_of, 1)
    start = from_iso(moved["start"]).astimezone(LA)
    assert (start.date(), start.hour, start.minute) == (first.date(), 7, 30)
    assert (moved["uid"], moved["sequence"]) == (session["uid"], 1)
    to_tom, to_ada = (
        (await desk.sent("session_invite", TOM))[-1],
        (await desk.sent("session_invite", ADA))[-1],
    )
    assert "It is the time you asked for." in flat(to_tom)
    assert "It is the time Tom asked for." in flat(to_ada)


async def test_a_time_outside_the_mentors_week_goes_to_the_mentor(desk: Harness) -> None:
    session = await booked_with_tom(desk)
    sessions = desk.coordinator.sessions
    # 14:00 in Los Angeles is 23:00 in Berlin: outside Ada's 08:00-22:00.
    asked = ProposedTime(None, None, 14 * 60, "2pm")
    outcome = await desk.call(sessions.move, session["uid"], TOM, desk.clock(), asked)
    assert outcome == "picking"
    assert (await desk.request(1))["schedule"] == "mentor picks"
    [pick] = await desk.sent("session_pick", ADA)
    assert "/schedule/" in text_of(pick)
    assert len(await desk.sent("session_invite", TOM)) == 1  # nothing invented for him


# --- what people ask for in a sentence of their own ------------------------------------


async def test_a_sentence_outside_any_thread_asks_for_what_it_says(desk: Harness) -> None:
    await desk.seed(
        mentor_doc(ADA, "Ada Lovelace", ["python"], term_end="2025-04-01T00:00:00+00:00")
    )
    await desk.receive(mail(ADA, "my term", "Yes, please renew me for another year. Thanks!\n"))
    [status] = await desk.sent("mentor_status", ADA)
    mentor = await desk.call(desk.store.mentor, ADA)
    assert mentor["term_end"] > "2026-01-01"
    assert ("coordinator_notice", "coord@program.test") not in await desk.kinds()

    body = "Hello, I would like help with the Python tests of my first web app, please.\n"
    await desk.receive(mail(f"Rosa Delgado <{ROSA}>", "Mentor request", body))
    await desk.receive(
        mail(ROSA, "hello again", "Please withdraw my request, I found a mentor at work.\n")
    )
    assert (await desk.request(1))["status"] == "withdrawn"
    assert status is not None
