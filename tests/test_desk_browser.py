"""The coordinator's desk in Debian's Chromium, driven by Playwright.

The coordinator signs in from the link in the email the real SMTP sink received, looks
at every desk page on a phone and on a desktop (screenshots in test-artifacts/, for a
person to look at) and acts on the desk; axe-core (from npm, tests/js) checks each page
for accessibility. Pages carry a strict Content-Security-Policy, so the browser context
bypasses it to inject axe (the pages themselves never run a script).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from mentordesk.daemon import Daemon
from mentordesk.state.store import Store

from .desk import COORDINATOR, Desk, mail, text_of
from .deskweb import SUBJECT, ShiftedClock, link_in
from .forms import press
from .test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from .test_claims import JORDAN, REQUEST, TEAM, links, mentor, seed

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
RATE = re.compile(r"http://127\.0\.0\.1:\d+/rate/[A-Za-z0-9_\-.]+\?score=\d")
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
PAGES = {
    "attention": "/desk",
    "requests": "/desk/requests?status=all",
    "request": "/desk/requests/1",
    "mentors": "/desk/mentors",
    "sessions": "/desk/sessions",
    "office-hours": "/desk/office-hours",
    "feedback": "/desk/feedback",
    "chart": "/desk/chart",
}
NEWCOMER = mentor("nia@example.org", "Nia Newcomer", ["python"], status="pending")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-tests.sh")
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run scripts/setup-tests.sh (npm ci in tests/js)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def context(browser: Browser, viewport: dict[str, int]) -> BrowserContext:
    return await browser.new_context(viewport=viewport, bypass_csp=True)  # type: ignore[arg-type]


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """What axe-core finds on the page that is serious or critical."""
    await page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => (await axe.run()).violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def sign_in_in_browser(page: Page, desk: Desk) -> None:
    """From the desk's address to a signed-in desk, the way a coordinator does it."""
    base = f"http://127.0.0.1:{desk.web_port}"
    before = len(desk.sink.messages_to(COORDINATOR))
    await page.goto(f"{base}/desk")
    assert page.url == f"{base}/desk/sign-in"
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-sign-in.png"), full_page=True)
    await page.get_by_label("Your email address").fill(COORDINATOR)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await page.wait_for_load_state()
    assert "a link is on its way" in await page.get_by_role("heading", level=1).inner_text()
    await page.screenshot(path=str(ARTIFACTS / "desk-sign-in-sent.png"), full_page=True)
    sent = (await desk.replies_to(COORDINATOR, before + 1))[-1]
    assert SUBJECT in sent.subject
    await page.goto(link_in(sent))
    assert "You stay signed in for 12 hours" in await page.inner_text("main")
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-sign-in-link.png"), full_page=True)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state()
    assert page.url == f"{base}/desk", await page.inner_text("main")


def seed_desk(desk: Desk) -> None:
    seed(desk, [*TEAM, NEWCOMER])
    store = Store(desk.config.state.path, fsync=False)
    try:
        store.mark_bounced(
            "lost@example.net", reason="550 5.1.1 no such user", now=datetime.now(UTC)
        )
    finally:
        store.close()


async def test_every_desk_page_reads_well_on_a_phone_and_a_desktop(
    desk: Desk, browser: Browser
) -> None:
    seed_desk(desk)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("linus@example.com", 1)
    # Linus takes it (a session is proposed); an office-hours series runs on Thursdays.
    async with aiohttp.ClientSession() as http, press(http, links(invite, "claim")[0]) as took:
        assert took.status == 200
    daemon = desk.daemon
    assert daemon is not None and daemon.coordinator is not None
    office_hours = daemon.coordinator.office_hours
    command = {
        "action": "add",
        "weekday": "thu",
        "time": "18:00",
        "mentors": ["ada@example.com"],
        "title": "Python drop-in",
        "location": "Video call",
    }
    await daemon.writer.call(office_hours.admin, command, datetime.now(UTC))
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{desk.web_port}"
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        browsing = await context(browser, viewport)
        page = await browsing.new_page()
        await sign_in_in_browser(page, desk)
        for name, path in PAGES.items():
            response = await page.goto(base + path)
            assert response is not None and response.status == 200, (name, response)
            assert await page.get_by_role("navigation", name="Desk pages").is_visible()
            assert await serious_violations(page) == [], (name, size)
            # Nothing is wider than the screen: no sideways scrolling on a phone.
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= viewport["width"], (name, size, width)
            await page.screenshot(path=str(ARTIFACTS / f"desk-{name}-{size}.png"), full_page=True)
        # The keyboard reaches the skip link first, then the page.
        await page.goto(base + "/desk")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Skip to the page"
        await browsing.close()

    # What the pages say, read the way a person reads them.
    browsing = await context(browser, DESKTOP)
    page = await browsing.new_page()
    await sign_in_in_browser(page, desk)
    main = page.get_by_role("main")
    assert "lost@example.net" in await main.inner_text()
    assert "Nia Newcomer" in await main.inner_text()
    await page.get_by_role("link", name="Sessions", exact=True).click()
    await page.wait_for_load_state()
    assert "Linus Park" in await main.inner_text()
    await page.get_by_role("link", name="Office hours", exact=True).click()
    await page.wait_for_load_state()
    assert "Python drop-in" in await main.inner_text()
    await page.goto(f"{base}/desk/requests/1")
    history = await page.get_by_role("region", name="What happened").inner_text()
    assert "email out" in history and "email in" in history and "session" in history
    await browsing.close()


async def test_the_coordinator_assigns_to_the_second_best_and_approves_a_mentor(
    desk: Desk, browser: Browser
) -> None:
    seed_desk(desk)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.replies_to(JORDAN, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{desk.web_port}"
    browsing = await context(browser, PHONE)
    page = await browsing.new_page()
    await sign_in_in_browser(page, desk)

    # From what needs a person to the request, then its ranked candidates.
    await page.get_by_role("link", name="MD-0001").click()
    await page.wait_for_load_state()
    assert page.url == f"{base}/desk/requests/1"
    candidates = page.get_by_role("region", name="Assign to a mentor")
    rows = candidates.get_by_role("row")
    assert await rows.count() >= 3  # the header and at least two mentors
    second = rows.nth(2)
    assert (await second.get_by_role("cell").first.inner_text()).strip() == "2"
    second_text = await second.inner_text()
    assert "of 2 taken" in second_text  # each mentor's load is shown
    email = next(word for word in second_text.split() if "@" in word)
    async with desk.store() as store:
        chosen = store.mentor(email)
    assert chosen is not None
    name = chosen["name"]

    # The same form with its token taken out (as a forger would post it): refused.
    await page.evaluate(
        "document.querySelectorAll('input[name=form_token]').forEach(i => i.remove())"
    )
    async with page.expect_response(lambda r: r.request.method == "POST") as refused:
        await second.get_by_role("button", name=f"Assign to {name.split()[0]}").click()
    assert (await refused.value).status == 403
    await page.wait_for_load_state()
    heading = await page.get_by_role("heading", level=1).inner_text()
    assert heading == "This button only works on our own page."
    async with desk.store() as store:
        untouched = store.request(1)
        assert untouched is not None and untouched["status"] == "open"
    assert all("It's yours" not in m.subject for m in desk.sink.messages_to(email))
    await page.goto(f"{base}/desk/requests/1")
    second = page.get_by_role("region", name="Assign to a mentor").get_by_role("row").nth(2)
    await second.get_by_role("button", name=f"Assign to {name.split()[0]}").click()
    await page.wait_for_load_state()
    outcome = await page.get_by_role("status").inner_text()
    assert outcome.startswith(
        f"MD-0001 is now with {name}; {name} and the mentee were introduced"
    ), outcome
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-assigned-phone.png"), full_page=True)
    intro = await desk.mail_to(email, "It's yours")
    assert intro.subject == "[MD-0001] It's yours: meet Jordan Lee"
    await desk.mail_to(JORDAN, "will be your mentor")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["claimed_by"] == email
        assert any(e.get("by") == f"desk:{COORDINATOR}" for e in store.audit_log(1)), (
            "the audit says who did it"
        )
    # Now held: the page offers to give it to someone else, and the history shows it.
    assert await page.get_by_role("region", name="Give it to another mentor").is_visible()
    assert "email out" in await page.get_by_role("region", name="What happened").inner_text()

    # A mentor waiting for approval, approved with one click.
    await page.get_by_role("link", name="Mentors", exact=True).click()
    await page.wait_for_load_state()
    # By keyboard: the button takes the focus and Enter presses it.
    await page.get_by_role("button", name="Approve Nia Newcomer").focus()
    await page.keyboard.press("Enter")
    await page.wait_for_load_state()
    outcome = await page.get_by_role("status").inner_text()
    assert "Nia Newcomer" in outcome, outcome
    assert await page.get_by_role("button", name="Approve Nia Newcomer").count() == 0
    assert await page.get_by_role("button", name="Pause Nia Newcomer").is_visible()
    await page.screenshot(path=str(ARTIFACTS / "desk-approved-phone.png"), full_page=True)
    welcome = await desk.mail_to("nia@example.org", "you are a mentor now")
    assert welcome.subject == "[Test Mentors] Welcome: you are a mentor now"
    async with desk.store() as store:
        nia = store.mentor("nia@example.org")
        assert nia is not None and nia["status"] == "active"

    # Signing out ends it: the desk asks to sign in again.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_load_state()
    assert "You are signed out" in await page.get_by_role("heading", level=1).inner_text()
    await page.goto(f"{base}/desk/mentors")
    assert page.url == f"{base}/desk/sign-in"
    await browsing.close()


async def test_the_session_ends_and_a_stranger_gets_no_link(desk: Desk, browser: Browser) -> None:
    clock = ShiftedClock()
    await desk.start(Daemon(desk.config, clock=clock))
    base = f"http://127.0.0.1:{desk.web_port}"
    browsing = await context(browser, PHONE)
    page = await browsing.new_page()
    await sign_in_in_browser(page, desk)
    [cookie] = [c for c in await browsing.cookies() if c["name"] == "md_desk"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/desk"

    # Twelve hours and a minute later the desk asks to sign in again.
    clock.offset = timedelta(hours=12, minutes=1)
    await page.goto(f"{base}/desk/mentors")
    assert page.url == f"{base}/desk/sign-in?ended"
    assert "Your desk session has ended." in await page.inner_text("main")
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-session-ended-phone.png"), full_page=True)

    # Someone who is not a coordinator reads the same answer and gets nothing.
    await page.get_by_label("Your email address").fill("curious@example.net")
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await page.wait_for_load_state()
    heading = await page.get_by_role("heading", level=1).inner_text()
    assert heading == "If that address is a coordinator’s, a link is on its way."
    # The coordinator asks next; once theirs is out, the stranger's would have been too.
    before = len(desk.sink.messages_to(COORDINATOR))
    await page.goto(f"{base}/desk/sign-in")
    await page.get_by_label("Your email address").fill(COORDINATOR)
    await page.get_by_role("button", name="Email me a sign-in link").click()
    await desk.replies_to(COORDINATOR, before + 1)
    assert desk.sink.messages_to("curious@example.net") == []
    await browsing.close()


async def test_the_feedback_page_shows_what_people_answered(desk: Desk, browser: Browser) -> None:
    """A session is held (time moves past it), Jordan rates it from the email, and the
    desk's feedback page shows the answer: the feedback results, not a copy of them."""
    clock = ShiftedClock()
    seed(desk, TEAM)
    desk.configure(timers={"sweep_interval": "1s"})
    await desk.start(Daemon(desk.config, clock=clock))
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("linus@example.com", 1)
    async with aiohttp.ClientSession() as http, press(http, links(invite, "claim")[0]) as took:
        assert took.status == 200
    # The claim's page answers first; the session is booked by the writer's next job.
    [session] = await desk.until(lambda store: store.sessions())
    clock.offset = datetime.fromisoformat(session["end"]) - datetime.now(UTC) + timedelta(hours=3)
    asked = await desk.mail_to(JORDAN, "How did it go with Linus?")
    [excellent] = [u for u in RATE.findall(text_of(asked)) if u.endswith("score=5")]
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            excellent.split("?")[0], data={"score": "5", "comment": "Linus knew just what to ask."}
        ) as rated,
    ):
        assert rated.status == 200

    browsing = await context(browser, PHONE)
    page = await browsing.new_page()
    await sign_in_in_browser(page, desk)
    await page.get_by_role("link", name="Feedback", exact=True).click()
    await page.wait_for_load_state()
    after = await page.get_by_role("region", name="After sessions, the last 365 days").inner_text()
    assert "Asked 1;" in after, after
    assert "1 of 1" in after and "5.0 / 5" in after
    assert "Linus knew just what to ask." in after
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-feedback-answered-phone.png"), full_page=True)
    await browsing.close()
