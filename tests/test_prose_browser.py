"""A mentee's view of the pick-a-time page: Debian's Chromium, driven by Playwright.

She told us neither her zone nor her hours, so after Ada took her request she got a link
instead of an invitation. Her browser is set to Chicago's zone: the page asks it (the
script runs under the page's Content-Security-Policy nonce), shows Ada's free times on
Chicago's clock, and one click books one. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser

from .desk import Desk, mail, text_of
from .test_browser import ARTIFACTS, browser
from .test_prose_e2e import ADA, PICK, ROSA, answer, invited_start, start

__all__ = ["browser"]  # the fixture, shared with test_browser.py

pytestmark = pytest.mark.browser
CHICAGO = ZoneInfo("America/Chicago")


async def test_a_mentee_picks_a_time_in_her_own_zone(desk: Desk, browser: Browser) -> None:
    await start(desk, ["career advice"])
    desk.send(
        mail(
            f"Rosa Delgado <{ROSA}>",
            "Mentor request",
            "Hi, I'm looking for someone to help me with my resume and job search.\n",
        )
    )
    claim = await desk.mail_to(ADA, "would like help")
    desk.send(answer(ADA, claim, "I'll take this one!\n"))
    pick = await desk.mail_to(ROSA, "Pick a time to meet")
    [pick_url] = PICK.findall(text_of(pick))
    ARTIFACTS.mkdir(exist_ok=True)

    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, timezone_id="America/Chicago"
    )
    page = await context.new_page()
    await page.goto(pick_url)
    # The page asked the browser for its zone and reloaded with it.
    await page.wait_for_url(re.compile(r"\?tz=America(%2F|/)Chicago$"))
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "Pick a time to meet Ada"
    assert await page.locator("#zone").inner_text() == "America/Chicago"
    choices = page.locator("label.choice")
    assert await choices.count() > 2
    labels = [await choices.nth(i).inner_text() for i in range(await choices.count())]
    assert all(label.strip().endswith("(America/Chicago)") for label in labels)
    values = [
        await choices.nth(i).locator("input").get_attribute("value") for i in range(len(labels))
    ]
    for value, label in zip(values, labels, strict=True):
        assert value is not None
        local = datetime.fromisoformat(value).astimezone(CHICAGO)
        assert f"{local:%H:%M}–" in label  # shown on her clock
    button = page.get_by_role("button", name="Book this time")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44
    await page.screenshot(path=str(ARTIFACTS / "mentee-pick-page.png"), full_page=True)

    await choices.nth(2).click()
    await button.click()
    await page.wait_for_load_state()
    assert (await heading.inner_text()).startswith("Booked: ")
    assert (await heading.inner_text()).endswith("(America/Chicago)")
    assert await page.get_by_role("status").inner_text() == "Invitation sent"
    await page.screenshot(path=str(ARTIFACTS / "mentee-picked-page.png"), full_page=True)
    await context.close()

    invitation = await desk.mail_to(ROSA, "Mentoring session with")
    assert invited_start(invitation) == datetime.fromisoformat(str(values[2])).astimezone(UTC)
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["timezone"] == "America/Chicago"
