"""The desk's Announce page over HTTP (desk_announce.py; the rules are flows/announcements').

The daemon runs against the real Dovecot and the real aiosmtpd sink; the coordinator
signs in from the emailed link; the last test fills the form in Debian's Chromium.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiohttp
import pytest
from playwright.async_api import Browser

from mentordesk.state.store import Store, iso

from .desk import COORDINATOR, Desk, text_of
from .deskweb import client, sign_in, token_for
from .servers import ReceivedMessage
from .test_browser import ARTIFACTS
from .test_claims import TEAM, mentor, seed
from .test_desk_browser import DESKTOP, PHONE, context, serious_violations, sign_in_in_browser
from .test_desk_browser import browser as browser  # the Chromium fixture

ACTIVE = ["ada@example.com", "linus@example.com", "grace@example.org"]
QUIET = "quiet@example.org"
SUBJECT = "Spring meetup"
BODY = "Dear all,\n\nThe spring meetup is on 4 April in Berlin.\nBring a friend!"


def url(desk: Desk, path: str) -> str:
    return f"http://127.0.0.1:{desk.web_port}{path}"


def seed_team(desk: Desk) -> None:
    """The claims tests' team (three active mentors) and one who opted out."""
    seed(desk, [*TEAM, mentor(QUIET, "Quinn Quiet", ["python"])])
    store = Store(desk.config.state.path, fsync=False)
    try:
        store.set_meta(f"announcements-off:{QUIET}", iso(datetime.now(UTC)))
    finally:
        store.close()


def announcements(desk: Desk) -> list[ReceivedMessage]:
    """The announcement's emails the sink received, the preview too."""
    return [m for m in desk.sink.messages if SUBJECT in m.subject]


async def page_token(http: aiohttp.ClientSession, desk: Desk) -> str:
    async with http.get(url(desk, "/desk/announce")) as page:
        assert page.status == 200
        html = await page.text()
    assert 'aria-current="page">Announce' in html
    return token_for(html, "/desk/announce")


async def post(
    http: aiohttp.ClientSession, desk: Desk, do: str, token: str | None, body: str = BODY
) -> tuple[int, str]:
    fields = {"audience": "mentors", "subject": SUBJECT, "body": body, "do": do}
    if token is not None:
        fields["form_token"] = token
    async with http.post(url(desk, "/desk/announce"), data=fields) as answer:
        return answer.status, await answer.text()


async def until_quiet(desk: Desk, count: int) -> None:
    """Wait until ``count`` announcements arrived, then a little more for any extra."""
    deadline = asyncio.get_running_loop().time() + 60
    while len(announcements(desk)) < count:
        assert asyncio.get_running_loop().time() < deadline, len(announcements(desk))
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)


async def test_a_preview_then_the_send_reach_each_active_mentor_once(desk: Desk) -> None:
    seed_team(desk)
    desk.configure(announcements={"per_minute": 600})
    await desk.start()
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        token = await page_token(http, desk)

        status, html = await post(http, desk, "preview", token)
        assert status == 200, html
        assert "A preview is on its way to coord@program.test" in html
        assert "would reach 3 people" in html and "Send to 3 people" in html
        [preview] = [m for m in await desk.replies_to(COORDINATOR, 2) if SUBJECT in m.subject]
        assert tuple(preview.rcpt_tos) == (COORDINATOR,)
        assert "spring meetup is on 4 April" in text_of(preview)
        await asyncio.sleep(1)
        assert [m.rcpt_tos for m in announcements(desk)] == [preview.rcpt_tos]

        status, html = await post(http, desk, "send", token)
        assert status == 200, html
        assert "Queued for 3 people. The outbox sends them paced, 600 a minute" in html
        await until_quiet(desk, 4)
        to = sorted(r for m in announcements(desk) for r in m.rcpt_tos if r != COORDINATOR)
        assert to == sorted(ACTIVE)  # each once; not the paused, resigned, ended or quiet

        # The same announcement again: the flow's refusal, and nothing more goes out.
        status, html = await post(http, desk, "send", token)
        assert status == 409
        assert "This announcement went to 3 people on" in html
        assert "change its subject or text to send another. Nothing was sent." in html
        await asyncio.sleep(1.5)
        assert len(announcements(desk)) == 4
    async with desk.store() as store:
        events = [e for e in store.audit_log() if e["event"].startswith("announcement")]
    assert [(e["event"], e.get("by"), e.get("count")) for e in events] == [
        ("announcement previewed", f"desk:{COORDINATOR}", 3),
        ("announcement sent", f"desk:{COORDINATOR}", 3),
    ]


async def test_the_preview_goes_to_whoever_signed_in_and_two_sends_at_once_go_once(
    desk: Desk,
) -> None:
    chair = "chair@program.test"
    seed_team(desk)
    desk.configure(desk={"coordinators": [COORDINATOR, chair]}, announcements={"per_minute": 600})
    await desk.start()
    async with client() as http:
        assert (await sign_in(http, desk, chair)).status == 303
        token = await page_token(http, desk)
        status, html = await post(http, desk, "preview", token)
        assert status == 200 and f"A preview is on its way to {chair}" in html
        await until_quiet(desk, 1)
        assert [tuple(m.rcpt_tos) for m in announcements(desk)] == [(chair,)]

        # A double click: both posts reach the server; the flow lets one through.
        answers = await asyncio.gather(*(post(http, desk, "send", token) for _ in range(2)))
        assert sorted(status for status, _ in answers) == [200, 409]
        await until_quiet(desk, 4)
        to = sorted(r for m in announcements(desk) for r in m.rcpt_tos if r != chair)
        assert to == sorted(ACTIVE)
    assert desk.sink.messages_to(COORDINATOR) == []  # not the program's coordinator
    async with desk.store() as store:
        sent = [e for e in store.audit_log() if e["event"] == "announcement sent"]
    assert [e.get("by") for e in sent] == [f"desk:{chair}"]


async def test_without_its_token_or_session_the_form_sends_nothing(desk: Desk) -> None:
    seed_team(desk)
    await desk.start()
    async with client() as http:
        async with http.get(url(desk, "/desk/announce"), allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/desk/sign-in"
        fields = {"audience": "mentors", "subject": SUBJECT, "body": BODY, "do": "send"}
        async with http.post(url(desk, "/desk/announce"), data=fields, allow_redirects=False) as a:
            assert a.status == 303  # no session: off to sign in, nothing done
        assert (await sign_in(http, desk)).status == 303
        other_form = token_for(await (await http.get(url(desk, "/desk"))).text(), "/desk/sign-out")
        for token in (None, "guessed", other_form):
            status, html = await post(http, desk, "send", token)
            assert status == 403, html
            assert "This button only works on our own page." in html
        # Another site's page posting with the browser's cookie is refused as well.
        token = await page_token(http, desk)
        async with http.post(
            url(desk, "/desk/announce"),
            data={**fields, "form_token": token},
            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        ) as answer:
            assert answer.status == 403
    await asyncio.sleep(1.5)
    assert announcements(desk) == []
    async with desk.store() as store:
        assert not [e for e in store.audit_log() if e["event"].startswith("announcement")]


async def test_a_text_too_long_is_refused_with_the_reason(desk: Desk) -> None:
    seed_team(desk)
    await desk.start()
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        token = await page_token(http, desk)
        status, html = await post(http, desk, "send", token, body="x" * 20_001)
        assert status == 400
        assert "The text is 20,001 characters long; it may have at most 20,000." in html
        assert "Nothing was sent" in html
        # What was typed stays in the form, to shorten rather than retype.
        assert SUBJECT in html
        fields = {"audience": "mentors", "subject": "s" * 201, "body": BODY, "do": "preview"}
        async with http.post(
            url(desk, "/desk/announce"), data={**fields, "form_token": token}
        ) as a:
            assert a.status == 400
            text = await a.text()
        assert "The subject is 201 characters long; it may have at most 200." in text
        status, html = await post(http, desk, "preview", token, body="\n \n")
        assert status == 400
        assert "The text is empty: write what you want to say. Nothing was sent." in html
    await asyncio.sleep(1.5)
    assert announcements(desk) == []
    async with desk.store() as store:
        assert not [e for e in store.audit_log() if e["event"].startswith("announcement")]


@pytest.mark.browser
async def test_the_coordinator_previews_and_sends_in_chromium(desk: Desk, browser: Browser) -> None:
    seed_team(desk)
    desk.configure(announcements={"per_minute": 600})
    await desk.start()
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{desk.web_port}"
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        browsing = await context(browser, viewport)
        page = await browsing.new_page()
        await sign_in_in_browser(page, desk)
        await page.get_by_role("link", name="Announce", exact=True).click()
        await page.wait_for_load_state()
        assert page.url == f"{base}/desk/announce"
        assert await serious_violations(page) == [], size
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], (size, width)
        await page.screenshot(path=str(ARTIFACTS / f"desk-announce-{size}.png"), full_page=True)
        await browsing.close()

    browsing = await context(browser, PHONE)
    page = await browsing.new_page()
    await sign_in_in_browser(page, desk)
    await page.goto(f"{base}/desk/announce")
    await page.get_by_role("radio", name="Active mentors").check()
    await page.get_by_label("Subject").fill(SUBJECT)
    await page.get_by_label("Text").fill(BODY)
    await page.get_by_role("button", name="Send me a preview").click()
    await page.wait_for_load_state()
    said = await page.get_by_role("status").inner_text()
    assert said == (
        f"A preview is on its way to {COORDINATOR}. "
        "Sent now, this announcement would reach 3 people."
    ), said
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-announce-previewed-phone.png"), full_page=True)
    await until_quiet(desk, 1)
    assert [tuple(m.rcpt_tos) for m in announcements(desk)] == [(COORDINATOR,)]

    await page.get_by_role("button", name="Send to 3 people").click()
    await page.wait_for_load_state()
    said = await page.get_by_role("status").inner_text()
    assert said.startswith("Queued for 3 people. The outbox sends them paced"), said
    assert await serious_violations(page) == []
    await page.screenshot(path=str(ARTIFACTS / "desk-announce-sent-phone.png"), full_page=True)
    await until_quiet(desk, 4)
    to = sorted(r for m in announcements(desk) for r in m.rcpt_tos if r != COORDINATOR)
    assert to == sorted(ACTIVE)
    await browsing.close()
