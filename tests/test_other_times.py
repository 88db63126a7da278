"""Other times, one click: the invitation lists a few other times that suit both, each in
the reader's zone; the link's page (in Debian's Chromium) asks, its button moves the
session — the same UID with SEQUENCE + 1 to both, read back by ical.js. A link from an
older invitation, a time no longer free, a tampered link or a POST without the page's
form token changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from playwright.async_api import Browser

from mentordesk.state.store import from_iso

from .desk import Desk, html_of, mail, text_of
from .forms import claims_of, form, press
from .icalcheck import read_with_icaljs, read_with_vobject
from .servers import ReceivedMessage
from .test_browser import ARTIFACTS, browser
from .test_claims import JORDAN
from .test_sessions import ADA, calendar_of, claimed, session_doc, urls

__all__ = ["browser"]  # the fixture, shared with the claim page's browser tests

pytestmark = [pytest.mark.dovecot, pytest.mark.browser]

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
OFFERED = re.compile(r"^  - (.+?)\r?\n    (http://\S+/session-time/[\w.-]+)", re.M)


def offered(message: ReceivedMessage) -> list[tuple[str, str]]:
    """(time as shown, link) of each other time in an invitation's text."""
    return OFFERED.findall(text_of(message))


def local_label(start: datetime, zone: ZoneInfo) -> str:
    local, end = start.astimezone(zone), (start + timedelta(minutes=30)).astimezone(zone)
    return f"{local:%A %-d %B}, {local:%H:%M}–{end:%H:%M} ({zone.key})"


def start_of(url: str) -> datetime:
    """The time a session-time link offers (from its claims, as the page shows it)."""
    return from_iso(claims_of(url).obj.split(" ")[2])


def the_event(message: ReceivedMessage) -> list[dict[str, object]]:
    method, ics = calendar_of(message)
    assert method == "REQUEST"
    events = []
    for read in (read_with_icaljs(ics), read_with_vobject(ics)):
        [event] = read["events"]
        events.append(event)
    return events


async def test_a_click_on_another_time_moves_the_session_for_both(
    desk: Desk, http: aiohttp.ClientSession, browser: Browser
) -> None:
    await claimed(desk, http)
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    session = await session_doc(desk)
    first = from_iso(session["start"])

    # Up to three other times, each in the reader's own zone, the same moments for both.
    jordans, adas = offered(to_jordan), offered(to_ada)
    assert len(jordans) == 3 and len(adas) == 3
    starts = [start_of(url) for _, url in jordans]
    assert starts == [start_of(url) for _, url in adas] == sorted(starts)
    assert first not in starts and all(abs(s - first) >= timedelta(hours=2) for s in starts)
    assert [label for label, _ in jordans] == [local_label(s, NEW_YORK) for s in starts]
    assert [label for label, _ in adas] == [local_label(s, BERLIN) for s in starts]
    assert all(f'href="{url}"' in html_of(to_jordan) for _, url in jordans)
    # Each is a time both weeks have: Tuesday, 12:00-14:00 in New York.
    for start in starts:
        local = start.astimezone(NEW_YORK)
        assert local.weekday() == 1 and 12 <= local.hour < 14

    # Jordan clicks the second one in the email: the page asks, in his zone.
    label, url = jordans[1]
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    response = await page.goto(url)
    assert response is not None and response.status == 200
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == f"Move your session to {label}?"
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "other-time-page.png"), full_page=True)
    # Opening the page (GET) changed nothing.
    async with desk.store() as store:
        assert store.session(session["uid"])["sequence"] == 0  # type: ignore[index]
    assert len(desk.sink.messages_to(ADA)) == 3  # claim, introduction, invitation

    await page.get_by_role("button", name="Move it to this time").click()
    await page.wait_for_load_state()
    assert await heading.inner_text() == f"Your session is now {label}."
    assert await page.get_by_role("status").inner_text() == "Moved"
    await page.close()

    # Both get the update: the same UID, SEQUENCE 1, at the chosen time.
    for person in (ADA, JORDAN):
        update = await desk.mail_to(person, "New time")
        for event in the_event(update):
            assert event["uid"] == session["uid"] and event["sequence"] == 1
            assert event["occurrences"] == [
                {
                    "start": starts[1].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end": (starts[1] + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
    moved = await session_doc(desk, sequence=1)
    assert from_iso(moved["start"]) == starts[1] and moved["chosen_by"] == JORDAN
    assert "You chose it from the other times that suit you both" in " ".join(
        text_of(await desk.mail_to(JORDAN, "New time")).split()
    )
    assert "Jordan chose it from the other times" in " ".join(
        text_of(await desk.mail_to(ADA, "New time")).split()
    )

    # Ada's link from the first invitation is stale now: it says so, and nothing changes.
    _, stale_url = adas[0]
    page = await browser.new_page()
    response = await page.goto(stale_url)
    assert response is not None and response.status == 410
    assert await page.get_by_role("heading", level=1).inner_text() == (
        "This link is from an older invitation."
    )
    await page.close()
    async with press(http, stale_url) as pressed:
        assert pressed.status == 410
        assert "nothing was changed" in await pressed.text()
    async with desk.store() as store:
        after = store.session(session["uid"])
        assert after is not None and after["sequence"] == 1 and after["start"] == moved["start"]
    assert len(desk.sink.messages_to(ADA)) == 4


async def test_a_time_taken_since_is_refused_kindly(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    session = await session_doc(desk)
    [(label, url), *_] = offered(to_jordan)
    # Ada's week changes: Tuesdays are gone (the session itself stays until someone moves it).
    desk.send(
        mail(
            "Ada Lovelace <ada@example.com>",
            "Mentor enrollment",
            "Name: Ada Lovelace\nSkills: python\nTimezone: Europe/Berlin\n"
            "Availability: Wed 18:00-20:00\n",
        )
    )
    await desk.until(
        lambda store: (store.mentor(ADA) or {}).get("availability") == [[2, 1080, 1200]]
    )
    async with http.get(url) as response:
        assert response.status == 409
        page = await response.text()
        assert "Sorry, that time is no longer free." in page
        assert label in page
    async with press(http, url) as response:
        assert response.status == 409
        assert "Nothing was changed." in await response.text()
    async with desk.store() as store:
        after = store.session(session["uid"])
        assert after is not None and after["sequence"] == 0
        assert after["start"] == session["start"]
    assert not [m for m in desk.sink.messages if "New time" in m.subject]


async def test_a_tampered_link_or_a_missing_form_token_changes_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    session = await session_doc(desk)
    [(_, url), *_] = offered(to_jordan)
    payload = url.rsplit("/", 1)[1].split(".")[0]
    # Another time, spliced into the payload: the signature no longer matches.
    tampered = url.replace(payload, payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB"))
    async with http.get(tampered) as response:
        assert response.status == 403
        assert "This link does not work." in await response.text()
    async with http.post(tampered, data=form(url)) as response:  # with the page's form
        assert response.status == 403
    # The genuine link without its page's form token (another site, a scanner).
    async with http.post(url, data={}) as response:
        assert response.status == 403
        assert "This button only works on our own page." in await response.text()
    # A session-move link's token is for another purpose.
    [move_url] = urls(to_jordan, "session-move")
    async with http.get(url.rsplit("/", 2)[0] + "/session-time/" + move_url.rsplit("/", 1)[1]) as r:
        assert r.status == 403
    async with desk.store() as store:
        after = store.session(session["uid"])
        assert after is not None and after["sequence"] == 0
    assert not [m for m in desk.sink.messages if "New time" in m.subject]
    assert datetime.now(UTC) < from_iso(session["start"])


async def test_a_link_to_a_cancelled_session_changes_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await claimed(desk, http)
    to_jordan = await desk.mail_to(JORDAN, "Mentoring session with")
    session = await session_doc(desk)
    [(_, url), *_] = offered(to_jordan)
    [cancel_url] = urls(to_jordan, "session-cancel")
    async with press(http, cancel_url) as response:
        assert response.status == 200
    await desk.mail_to(ADA, "Cancelled")
    async with http.get(url) as response:
        assert response.status == 410
        assert "This link is from an older invitation." in await response.text()
    async with press(http, url) as response:
        assert response.status == 410
    async with desk.store() as store:
        after = store.session(session["uid"])
        assert after is not None and after["status"] == "cancelled" and after["sequence"] == 1
        request = store.request(1)
        assert request is not None and request["status"] == "claimed"
    assert not [m for m in desk.sink.messages if "New time" in m.subject]


async def test_pressing_twice_moves_once(desk: Desk, http: aiohttp.ClientSession) -> None:
    """A double click, or the same link pressed again later: one move, one update each."""
    await claimed(desk, http)
    to_ada = await desk.mail_to(ADA, "Mentoring session with")
    session = await session_doc(desk)
    [_, (label, url), _] = offered(to_ada)
    async with press(http, url) as first:
        assert first.status == 200
        assert f"Your session is now {label}." in await first.text()
    async with press(http, url) as again:
        assert again.status == 410
    for person in (ADA, JORDAN):
        await desk.mail_to(person, "New time")
    async with desk.store() as store:
        after = store.session(session["uid"])
        assert after is not None and after["sequence"] == 1
        assert from_iso(after["start"]) == start_of(url)
    assert len([m for m in desk.sink.messages if "New time" in m.subject]) == 2
