"""Pairings end to end: mail in through Dovecot, mail out to aiosmtpd, clicks on the
daemon's pages, the sweep run by hand after moving the daemon's clock (as in
``test_lifecycle_e2e``). Every calendar object is read with ical.js and vobject.

Ada (Berlin, Tuesdays 18:00-20:00) takes Jordan's request (New York, Tuesdays
12:00-14:00) "for the next year": from Tuesday 3 June 2025, 18:00 Berlin, every two
weeks, a year long — across the October and the March DST changes.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from playwright.async_api import Browser

from mentordesk.errors import OfficeHoursError
from mentordesk.pairings_cli import pairings_command
from mentordesk.state.pairings import all_pairings
from mentordesk.tokens import sign

from .desk import COORDINATOR, SECRET, Desk, mail, text_of
from .forms import claims_of, press
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import ReceivedMessage
from .test_announce_e2e import browser
from .test_claims import JORDAN, links
from .test_lifecycle_e2e import ADA, LINUS, Program, calendar_of, start, team_member

__all__ = ["browser"]  # the fixture, for the Chromium test below

BERLIN = ZoneInfo("Europe/Berlin")
PAIRING_LINK = re.compile(r"http://127\.0\.0\.1:\d+/pairing/[A-Za-z0-9_\-.]+")
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\n"
    "Availability: Tue 12:00-14:00\n"
    "Details: I'm leaving the Army and learning Python. I'd love a long-term mentor\n"
    "to meet regularly for the next year.\n"
)


def pairing_links(message: ReceivedMessage) -> list[str]:
    return PAIRING_LINK.findall(text_of(message))


def both(message: ReceivedMessage, occurrences: int = 10) -> list[dict[str, Any]]:
    _, ics = calendar_of(message)
    return [read_with_icaljs(ics, occurrences), read_with_vobject(ics, occurrences)]


async def paired(p: Program) -> dict[str, ReceivedMessage]:
    desk = p.desk
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    invite = await desk.mail_to(ADA, "would like help")
    async with press(p.http, links(invite, "claim")[0]) as response:
        assert response.status == 200
        assert "Thank you! MD-0001 is yours." in await response.text()
    return {who: await desk.mail_to(who, "Mentoring with") for who in (ADA, JORDAN)}


async def pairing_doc(desk: Desk) -> dict[str, Any]:
    async with desk.store() as store:
        [doc] = all_pairings(store)
        return doc


async def test_a_year_long_pairing_from_request_to_resignation(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(
        desk,
        http,
        [team_member(ADA, "Ada Lovelace"), team_member(LINUS, "Linus Park")],
        pairings={"enabled": True},
    )
    invitations = await paired(p)
    assert invitations[ADA].subject == (
        "[MD-0001] Mentoring with Jordan Lee, every other Tuesday at 18:00 (Europe/Berlin)"
    )
    # Each reads it on their own clock: the series' zone is Ada's.
    assert invitations[JORDAN].subject == (
        "[MD-0001] Mentoring with Ada Lovelace, every other Tuesday at 12:00 (America/New_York)"
    )
    assert "First:         Tuesday 3 June, 12:00–12:30 (America/New_York)" in text_of(
        invitations[JORDAN]
    )
    doc = await pairing_doc(desk)
    for reading in both(invitations[JORDAN], 40):
        [event] = reading["events"]
        assert (reading["method"], event["uid"]) == ("REQUEST", doc["series"]["uid"])
        assert event["start_zone"] == "Europe/Berlin"
        starts = [datetime.fromisoformat(o["start"]) for o in event["occurrences"]]
        assert len(starts) == 27
        assert {s.astimezone(BERLIN).strftime("%a %H:%M") for s in starts} == {"Tue 18:00"}
        assert {s.hour for s in starts} == {16, 17}  # CEST, then CET, then CEST again
        assert starts[0] == datetime(2025, 6, 3, 16, 0, tzinfo=UTC)
        assert {a["value"] for a in event["attendees"]} == {f"mailto:{ADA}", f"mailto:{JORDAN}"}

    # Orientation: only the mentor's invitation has the link; GET shows, POST closes it.
    assert pairing_links(invitations[JORDAN]) == []
    [oriented] = pairing_links(invitations[ADA])
    async with http.get(oriented) as page:
        assert page.status == 200 and "Orientation done with Jordan" in await page.text()
    assert (await pairing_doc(desk))["status"] == "orienting"
    async with http.post(oriented, data={"x": "no form token"}) as forged:
        assert forged.status == 403
    async with press(http, oriented) as done:
        assert done.status == 200 and "Orientation done." in await done.text()
    assert (await pairing_doc(desk))["status"] == "active"

    # One occurrence cancelled, one moved, by the coordinator's commands through the
    # running daemon: updates of those occurrences only.
    for command in (
        {"action": "cancel", "id": doc["id"], "date": "2025-06-17"},
        {"action": "move", "id": doc["id"], "date": "2025-07-01", "to": "2025-07-02 18:00"},
    ):
        _, through_daemon = await asyncio.to_thread(pairings_command, desk.config, command)
        assert through_daemon
    with pytest.raises(OfficeHoursError, match="no session on 2025-06-10"):
        bad = {"action": "cancel", "id": doc["id"], "date": "2025-06-10"}
        await asyncio.to_thread(pairings_command, desk.config, bad)
    listed, _ = await asyncio.to_thread(pairings_command, desk.config, {"action": "list"})
    [shown] = listed["pairings"]
    assert shown["cancelled"] == ["2025-06-17"]
    assert shown["moved"] == {"2025-07-01": "2025-07-02 18:00"}
    # Asking by a reply reaches the coordinator, saying which pairing and what to do.
    desk.send(
        mail(
            "Jordan Lee <jordan@example.net>",
            f"Re: {invitations[JORDAN].subject}",
            "Could we skip the session on 15 July? I'm travelling.\n",
            in_reply_to=str(invitations[JORDAN].message["Message-ID"]),
        )
    )
    asked = await desk.mail_to(COORDINATOR, "a message about pairing")
    assert "a message about pairing 1 (MD-0001)" in asked.subject
    assert "mentordesk pairings cancel|move 1 DATE" in text_of(asked)
    assert "skip the session on 15 July" in text_of(asked)
    cancelled = await desk.mail_to(JORDAN, "Session on Tue 17 Jun: cancelled")
    moved = await desk.mail_to(JORDAN, "Session on Tue 1 Jul: moved")
    for reading in both(cancelled):
        [event] = reading["events"]
        assert reading["method"] == "CANCEL" and event["uid"] == doc["series"]["uid"]
        assert event["recurrence_id"] == "2025-06-17T16:00:00Z"
    for reading in both(moved):
        [override] = [e for e in reading["events"] if e["recurrence_id"]]
        assert override["recurrence_id"] == "2025-07-01T16:00:00Z"
        assert override["occurrences"][0]["start"] == "2025-07-02T16:00:00Z"
    assert "moves to Wednesday 2 July, 12:00" in " ".join(text_of(moved).split())

    # The quarterly check-in, once; "needs help" reaches the coordinator.
    started = datetime.fromisoformat(doc["started"])
    await p.sweep(started + timedelta(days=91, hours=1))
    checks = {who: await desk.mail_to(who, "How is it going") for who in (ADA, JORDAN)}
    await p.sweep(started + timedelta(days=92))
    assert [k for k, _ in await p.outbox()].count("pairing_check_in") == 2
    going_well, needs_help = pairing_links(checks[JORDAN])
    assert claims_of(going_well).obj == f"{doc['id']}:going-well"
    assert claims_of(needs_help).obj == f"{doc['id']}:needs-help"
    async with press(http, needs_help) as helped:
        assert helped.status == 200 and "told the coordinator" in await helped.text()
    notice = await desk.mail_to(COORDINATOR, "A pairing needs help")
    assert "Jordan Lee answered the check-in" in " ".join(text_of(notice).split())

    # Ada resigns by email: the series is cancelled in both calendars, the coordinator
    # is told once that it was a pairing, and matching starts again.
    desk.send(mail("Ada Lovelace <ada@example.com>", "resign", "Sorry, I have to stop.\n"))
    left = await desk.mail_to(COORDINATOR, "Back to matching")
    assert "It was a pairing" in " ".join(text_of(left).split())
    for who in (ADA, JORDAN):
        over = await desk.mail_to(who, "are cancelled")
        for reading in both(over):
            [event] = reading["events"]
            assert reading["method"] == "CANCEL" and event["recurrence_id"] is None
            assert event["uid"] == doc["series"]["uid"]
    await desk.mail_to(LINUS, "would like help")
    kinds = [k for k, to in await p.outbox() if to == COORDINATOR]
    assert kinds.count("coordinator_holder_left") == 1
    assert (await pairing_doc(desk))["status"] == "cancelled"


async def test_the_terms_end_choice_by_link_extends_the_series(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")], pairings={"enabled": True})
    await paired(p)
    doc = await pairing_doc(desk)
    term_end = datetime.fromisoformat(doc["term_end"])
    await p.sweep(term_end - timedelta(days=21))
    asks = {who: await desk.mail_to(who, "go on, change or end?") for who in (ADA, JORDAN)}
    await p.sweep(term_end - timedelta(days=20))
    assert [k for k, _ in await p.outbox()].count("pairing_term") == 2
    extend = {who: pairing_links(m)[0] for who, m in asks.items()}
    # A link altered, or made for someone outside the pairing, changes nothing.
    async with press(http, extend[ADA][:-4] + "AAAA") as tampered:
        assert tampered.status == 403
    stranger = f"{extend[ADA].rsplit('/', 1)[0]}/" + sign(
        SECRET.encode(),
        purpose="pairing",
        person="eve@example.org",
        obj=f"{doc['id']}:end",
        expires=datetime.now(UTC) + timedelta(days=1),
    )
    async with press(http, stranger) as refused:
        assert refused.status == 403 and "This link is for someone else." in await refused.text()
    async with http.post(extend[ADA].replace("pairing/", "pairing/x")) as garbage:
        assert garbage.status == 403
    async with http.get(extend[ADA]) as page:
        assert "Another term with Jordan" in await page.text()
    async with press(http, extend[ADA]) as first:
        assert "We have your choice" in await first.text()
    async with press(http, extend[JORDAN]) as second:
        assert "Another term it is." in await second.text()
    renewed = await desk.mail_to(JORDAN, "Another term:")
    for reading in both(renewed, 60):
        [event] = reading["events"]
        assert event["uid"] == doc["series"]["uid"] and event["sequence"] == 1
        assert len(event["occurrences"]) == 53
    # Pressed again, the old link belongs to the term that was extended: nothing happens.
    async with press(http, extend[JORDAN]) as again:
        assert again.status == 409 and "too early to choose" in await again.text()
    assert [k for k, _ in await p.outbox()].count("pairing_invite") == 4


@pytest.mark.browser
async def test_orientation_done_in_chromium_on_a_phone(
    desk: Desk, http: aiohttp.ClientSession, browser: Browser
) -> None:
    p = await start(desk, http, [team_member(ADA, "Ada Lovelace")], pairings={"enabled": True})
    invitations = await paired(p)
    [oriented] = pairing_links(invitations[ADA])
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    response = await page.goto(oriented)
    assert response is not None and response.status == 200
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "Orientation done with Jordan Lee?"
    button = page.get_by_role("button", name="Orientation done")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44
    assert (await pairing_doc(desk))["status"] == "orienting"
    await button.click()
    await page.wait_for_load_state()
    assert await heading.inner_text() == "Orientation done."
    assert (await pairing_doc(desk))["status"] == "active"
    await page.close()
