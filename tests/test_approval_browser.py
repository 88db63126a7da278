"""The coordinator approves a new mentor in Debian's Chromium (Playwright), from the link
in the email they received; screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from .desk import Desk, mail, text_of
from .servers import Dovecot, SmtpSink
from .test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from .test_mentor_approval import APPROVE, ENROLL

pytestmark = pytest.mark.browser

ADA = "ada@example.com"


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-tests.sh")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    desk.configure(program={"approve_mentors": True})
    yield desk
    await desk.stop()


async def test_the_coordinator_approves_a_mentor_in_a_real_browser(
    desk: Desk, chromium: Browser
) -> None:
    await desk.start()
    desk.send(mail(f"Ada Lovelace <{ADA}>", "Mentor enrollment", ENROLL.format(name="Ada")))
    notice = await desk.mail_to("coord@program.test", "New mentor to approve")
    [url] = APPROVE.findall(text_of(notice))
    ARTIFACTS.mkdir(exist_ok=True)

    page = await chromium.new_page(viewport={"width": 390, "height": 844})
    response = await page.goto(url)
    assert response is not None and response.status == 200
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "Approve Ada as a mentor?"
    details = await page.inner_text("dl")
    assert "python" in details and "Tue 18:00–20:00 (Europe/Berlin)" in details
    button = page.get_by_role("button", name="Approve Ada")
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 300
    await page.screenshot(path=str(ARTIFACTS / "approve-page.png"), full_page=True)

    await button.click()
    await page.wait_for_load_state()
    assert await heading.inner_text() == "Done: Ada is a mentor now."
    assert await page.get_by_role("status").inner_text() == "Approved"
    await page.screenshot(path=str(ARTIFACTS / "approved-page.png"), full_page=True)
    await desk.mail_to(ADA, "Welcome: you are a mentor now")
    async with desk.store() as store:
        assert (store.mentor(ADA) or {}).get("status") == "active"
