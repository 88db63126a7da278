"""A person's view of the claim link: Debian's Chromium, driven by Playwright.

A mentor opens the link from the claim email they received, reads the request, presses
the button and reads the result. Screenshots land in test-artifacts/ for a human to look
at. Chromium is Debian's (/usr/bin/chromium, installed by scripts/setup-tests.sh);
Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from .desk import Desk, mail
from .test_claims import JORDAN, REQUEST, TEAM, links, seed

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# The flags a sandboxed root user on a closed network needs (see CONTRIBUTING.md).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
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


async def test_a_mentor_claims_from_the_email_in_a_real_browser(
    desk: Desk, browser: Browser
) -> None:
    seed(desk, TEAM)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("ada@example.com", 1)
    [claim_url] = links(invite, "claim")
    ARTIFACTS.mkdir(exist_ok=True)

    # A phone-sized window: most mentors open these emails on a phone.
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    response = await page.goto(claim_url)
    assert response is not None and response.status == 200
    assert await page.title() == "MD-0001 · Test Mentors"
    heading = page.get_by_role("heading", level=1)
    assert await heading.inner_text() == "Can you help Jordan?"
    assert "I'm leaving the Army in March" in await page.inner_text("dl")
    button = page.get_by_role("button", name="Take MD-0001")
    assert await button.is_visible()
    # The button is big enough to hit with a thumb.
    box = await button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 300
    await page.screenshot(path=str(ARTIFACTS / "claim-page.png"), full_page=True)

    await button.click()
    await page.wait_for_load_state()
    assert await heading.inner_text() == "Thank you! MD-0001 is yours."
    assert await page.get_by_role("status").inner_text() == "It’s yours"
    await page.screenshot(path=str(ARTIFACTS / "claimed-page.png"), full_page=True)

    intro = await desk.mail_to("ada@example.com", "It's yours")
    assert intro.subject == "[MD-0001] It's yours: meet Jordan Lee"
    await desk.mail_to(JORDAN, "will be your mentor")

    # Opening the same link again later shows that it is already hers; nothing changes.
    await page.goto(claim_url)
    assert await heading.inner_text() == "MD-0001 is yours."
    await page.close()


async def test_a_tampered_link_shows_a_clear_page(desk: Desk, browser: Browser) -> None:
    seed(desk, TEAM)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("ada@example.com", 1)
    [claim_url] = links(invite, "claim")
    page = await browser.new_page(viewport={"width": 390, "height": 844})
    response = await page.goto(claim_url[:-6])  # cut short, as a mail client might
    assert response is not None and response.status == 403
    assert await page.get_by_role("heading", level=1).inner_text() == "This link does not work."
    await page.screenshot(path=str(ARTIFACTS / "bad-link-page.png"), full_page=True)
    await page.close()


async def test_another_sites_page_cannot_press_the_button(desk: Desk, browser: Browser) -> None:
    """A page elsewhere that knows the link submits a form to it: nothing changes."""
    from aiohttp import web

    seed(desk, TEAM)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("ada@example.com", 1)
    [claim_url] = links(invite, "claim")

    # The other site: localhost is another origin than 127.0.0.1 for the browser.
    async def lure(request: web.Request) -> web.Response:
        return web.Response(
            text=(
                f'<form id="f" method="post" action="{claim_url}">'
                '<input type="hidden" name="form_token" value="guessed"></form>'
                "<script>document.getElementById('f').submit()</script>"
            ),
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", lure)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        page = await browser.new_page()
        async with page.expect_response(lambda r: r.url == claim_url) as answer:
            await page.goto(f"http://localhost:{site.port}/")
        response = await answer.value
        assert response.status == 403
        await page.wait_for_load_state()
        heading = page.get_by_role("heading", level=1)
        assert await heading.inner_text() == "This button only works on our own page."
        assert "Another website tried to press it for you" in await page.inner_text("main")
        await page.screenshot(path=str(ARTIFACTS / "cross-site-page.png"), full_page=True)
        await page.close()
    finally:
        await runner.cleanup()
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"


async def test_the_button_sends_the_pages_form_token(desk: Desk, browser: Browser) -> None:
    """What the browser posts on a click: the hidden field, from our own origin."""
    seed(desk, TEAM)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("ada@example.com", 1)
    [claim_url] = links(invite, "claim")
    page = await browser.new_page()
    await page.goto(claim_url)
    async with page.expect_request(lambda r: r.method == "POST") as posted:
        await page.get_by_role("button", name="Take MD-0001").click()
    request = await posted.value
    assert (request.post_data or "").startswith("form_token=")
    headers = await request.all_headers()
    # The page's no-referrer policy makes Chromium send "Origin: null" for its own form,
    # so the server goes by Sec-Fetch-Site, and by the form token.
    assert headers.get("sec-fetch-site") == "same-origin"
    assert headers.get("origin") in ("null", claim_url.split("/claim/")[0])
    await page.wait_for_load_state()
    assert await page.get_by_role("heading", level=1).inner_text() == (
        "Thank you! MD-0001 is yours."
    )
    await page.close()
