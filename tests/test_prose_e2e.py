"""People's own words end to end: mail in through the real Dovecot, mail out to the
aiosmtpd sink, the daemon's own web pages, and a fake clock.

The clock starts on Monday 30 November 2026, 15:00 UTC: 09:00 in Chicago (UTC-6), 16:00
in Berlin (UTC+1). Ada, the mentor, is a night owl in Berlin, free every day 08:00-24:00
and 00:00-03:00, so the earliest slot a day ahead is Tuesday 16:00 Berlin — 09:00 in
Chicago, a time the Chicago mentee never offered. Every invitation is read back with
Mozilla's ical.js.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from mentordesk.daemon import Daemon
from mentordesk.state.store import Store, iso

from .desk import Desk, mail, text_of
from .icalcheck import read_with_icaljs
from .servers import Dovecot, ReceivedMessage, SmtpSink
from .test_claims import mentor
from .timetravel import FakeClock

T0 = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
ADA = "ada@example.com"
MAYA = "maya@example.net"
ROSA = "rosa@example.net"
CHICAGO = ZoneInfo("America/Chicago")
DENVER = ZoneInfo("America/Denver")
PICK = re.compile(r"http://127\.0\.0\.1:\d+/pick/[A-Za-z0-9_\-.]+")


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    yield desk
    await desk.stop()


async def start(desk: Desk, skills: list[str]) -> Daemon:
    """Ada enrolled; the daemon started at T0 with its clock in our hands."""
    desk.configure(timers={"sweep_interval": "1h"})
    night_owl = [[day, start, end] for day in range(7) for start, end in ((0, 180), (480, 1440))]
    ada: dict[str, Any] = mentor(
        ADA,
        "Ada Lovelace",
        skills,
        availability=night_owl,
        term_end=iso(T0 + timedelta(days=365)),
        enrolled=iso(T0 - timedelta(days=30)),
    )
    store = Store(desk.config.state.path, fsync=False)
    try:
        store.save_mentor(ada)
    finally:
        store.close()
    return await desk.start(Daemon(desk.config, clock=FakeClock(T0)))


def answer(sender: str, to: ReceivedMessage, body: str) -> bytes:
    """What a mail client sends when ``sender`` answers ``to``."""
    return mail(sender, f"Re: {to.subject}", body, in_reply_to=str(to.message["Message-ID"]))


def flat(message: ReceivedMessage) -> str:
    return " ".join(text_of(message).split())


def invited_start(invitation: ReceivedMessage) -> datetime:
    """The start of an invitation's one event, as ical.js reads it (UTC)."""
    for part in invitation.message.walk():
        if part.get_content_type() == "text/calendar":
            ics = part.get_payload(decode=True)
            assert isinstance(ics, bytes)
            read = read_with_icaljs(ics)
            assert read["method"] == "REQUEST"
            [event] = read["events"]
            start = event["occurrences"][0]["start"]
            return datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    raise AssertionError(f"no text/calendar part in {invitation.subject!r}")


async def test_the_chicago_mentee_is_asked_nothing_she_said_and_met_in_her_evening(
    desk: Desk,
) -> None:
    await start(desk, ["python"])
    desk.send(
        mail(
            f"Maya Okonkwo <{MAYA}>",
            "Mentor request",
            "Hi there,\n\nI'm in Chicago and usually free weekday evenings after 6pm. I'm a "
            "nurse learning\nPython and I'd love someone to look at the inventory script I "
            "wrote for our ward.\n\nThanks so much,\nMaya\n",
        )
    )
    ack = await desk.mail_to(MAYA, "[MD-0001]")
    text = flat(ack)
    # What she said is echoed with her words, and not asked again.
    assert "Timezone: America/Chicago (you wrote “Chicago”)" in text
    assert "Availability: Mon–Fri 18:00–22:00 (you wrote “weekday evenings after 6pm”)" in text
    assert "please tell us" not in text
    assert "- Timezone:" not in text and "- Availability:" not in text

    # Ada reads Maya's evenings on her own Berlin clock, Maya's own in brackets.
    claim = await desk.mail_to(ADA, "would like help")
    assert (
        "Usually free: Tue–Sat 01:00–05:00 your time (Mon–Fri 18:00–22:00 in America/Chicago)"
        in flat(claim)
    )
    desk.send(answer(ADA, claim, "I'll take this one!\n\nAda\n"))

    invitation = await desk.mail_to(MAYA, "Mentoring session with")
    start_utc = invited_start(invitation)
    local = start_utc.astimezone(CHICAGO)
    end = (start_utc + timedelta(minutes=30)).astimezone(CHICAGO)
    assert local.weekday() < 5, local  # a weekday
    assert local.hour * 60 + local.minute >= 18 * 60 and end.hour * 60 + end.minute <= 22 * 60
    assert local >= T0 + timedelta(hours=24)
    # The earliest such time: Tuesday 1 December, 18:00 in Chicago.
    assert (local.day, local.hour, local.minute) == (1, 18, 0)
    words = flat(invitation)
    assert "Tuesday 1 December, 18:00–18:30 (America/Chicago)" in words
    assert "It is the earliest time that fits both of your weeks." in words
    # Ada reads the same moment on her clock: Wednesday 01:00 in Berlin.
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    assert invited_start(to_ada) == start_utc
    assert "Wednesday 2 December, 01:00–01:30 (Europe/Berlin)" in flat(to_ada)


async def test_a_mentee_who_says_no_zone_or_hours_picks_a_time_instead_of_being_booked(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    daemon = await start(desk, ["career advice"])
    desk.send(
        mail(
            f"Rosa Delgado <{ROSA}>",
            "Mentor request",
            "Hi, I'm looking for someone to help me with my resume and job search.\n"
            "I was laid off from a support role and want to move into QA.\n\nRosa\n",
        )
    )
    ack = await desk.mail_to(ROSA, "[MD-0001]")
    text = text_of(ack)
    # One question naming both, each once.
    assert text.count("  - Timezone:") == 1 and text.count("  - Availability:") == 1
    assert "pick one of their free times" in flat(ack)

    claim = await desk.mail_to(ADA, "would like help")
    assert "Usually free: not said yet; if you take it, they pick one of your free times" in (
        flat(claim)
    )
    desk.send(answer(ADA, claim, "claim\n"))
    pick = await desk.mail_to(ROSA, "Pick a time to meet Ada Lovelace")
    [pick_url] = PICK.findall(text_of(pick))
    await desk.until(lambda store: (store.request(1) or {}).get("schedule") == "mentee picks")
    async with desk.store() as store:
        kinds = [(item["kind"], item["recipients"][0]) for item in store.outbox()]
    assert ("session_invite", ROSA) not in kinds and ("session_invite", ADA) not in kinds

    # The page (a GET changes nothing): Ada's free times, in the program's zone until the
    # browser says hers.
    async with http.get(pick_url) as response:
        assert response.status == 200
        page = await response.text()
    assert "Pick a time to meet Ada" in page
    assert "Intl.DateTimeFormat().resolvedOptions().timeZone" in page
    slots = re.findall(r'name="slot" value="([^"]+)"', page)
    assert slots and "(America/New_York)" in page
    async with http.get(pick_url + "?tz=America/Denver") as response:
        page = await response.text()
    slots = re.findall(r'name="slot" value="([^"]+)"', page)
    assert slots and "(America/Denver)" in page and "(America/New_York)" not in page
    for slot in slots:  # in her daytime, as her browser's clock reads it
        assert 9 <= datetime.fromisoformat(slot).astimezone(DENVER).hour < 21
    assert 'name="tz" value="America/Denver"' in page

    async with http.post(pick_url, data={"slot": slots[1], "tz": "America/Denver"}) as response:
        assert response.status == 200
        assert "Booked:" in await response.text()
    invitation = await desk.mail_to(ROSA, "Mentoring session with")
    start_utc = invited_start(invitation)
    assert iso(start_utc) == slots[1]
    local = start_utc.astimezone(DENVER)
    assert f"{local:%A} {local.day} {local:%B}, {local:%H:%M}–" in flat(invitation)
    assert "(America/Denver)" in flat(invitation)
    assert "You picked it from Ada's free times." in flat(invitation)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["timezone"] == "America/Denver"
    # Nothing she received says a time fits her week: she never said what her week is.
    for message in desk.sink.messages_to(ROSA):
        assert "fits both of your weeks" not in flat(message), message.subject
    assert daemon.coordinator is not None
