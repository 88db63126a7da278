"""The coordinator's desk over HTTP: signing in by emailed link, the session, the forms.

The daemon runs against the real Dovecot and the real aiosmtpd sink; the sign-in link is
read from the email the sink received. The browser's view is tests/test_desk_browser.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mentordesk.daemon import Daemon
from mentordesk.desk_auth import DeskSession, coordinators, form_token_for
from mentordesk.errors import ConfigError

from .desk import COORDINATOR, Desk, mail
from .deskweb import (
    SUBJECT,
    ShiftedClock,
    ask_for_link,
    client,
    link_in,
    sign_in,
    token_for,
    token_in,
)
from .forms import form, press
from .test_claims import JORDAN, REQUEST, TEAM, links, seed
from .timetravel import write_config

PAGES = (
    "/desk",
    "/desk/requests",
    "/desk/mentors",
    "/desk/sessions",
    "/desk/office-hours",
    "/desk/feedback",
    "/desk/chart",
)


def url(desk: Desk, path: str) -> str:
    return f"http://127.0.0.1:{desk.web_port}{path}"


async def test_a_coordinator_signs_in_with_the_emailed_link_once(desk: Desk) -> None:
    seed(desk, TEAM)
    await desk.start()
    async with client() as http:
        answer = await sign_in(http, desk)
        assert answer.status == 303 and answer.headers["Location"] == "/desk"
        cookie = answer.headers["Set-Cookie"]
        for part in ("md_desk=", "HttpOnly", "SameSite=Strict", "Path=/desk", "Max-Age=43200"):
            assert part in cookie, cookie
        assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
        for path in PAGES:
            async with http.get(url(desk, path), allow_redirects=False) as page:
                assert page.status == 200, (path, await page.text())
                assert "Signed in as coord@program.test" in await page.text()
        async with http.get(url(desk, "/desk/mentors")) as page:
            html = await page.text()
        assert "Ada Lovelace" in html and "0 of 2" in html

        # The link works once: its button again signs nobody in.
        [mail] = desk.sink.messages_to(COORDINATOR)
        assert mail.subject == "Your sign-in link for the Test Mentors desk"
        link = link_in(mail)
    async with client() as other:
        async with other.get(link) as page:
            assert page.status == 403
            assert "That sign-in link does not work." in await page.text()
        async with other.post(link, data=form(link), allow_redirects=False) as again:
            assert again.status == 403
            assert "That sign-in link does not work." in await again.text()
            assert "Set-Cookie" not in again.headers
        async with other.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/desk/sign-in"
        # A link cut short or changed is no link.
        for bad in (link[:-3], link.replace("/desk/sign-in/", "/desk/sign-in/x")):
            async with other.get(bad) as page:
                assert page.status == 403
                assert "That sign-in link does not work." in await page.text()
    async with desk.store() as store:
        assert [e["event"] for e in store.audit_log()].count("desk signed in") == 1


async def test_a_stranger_is_told_the_same_and_sent_nothing(desk: Desk) -> None:
    seed(desk, TEAM)
    await desk.start()
    async with client() as http:
        stranger = await ask_for_link(http, desk, "ada@example.com")
        nonsense = await ask_for_link(http, desk, "not an address")
        # Then a coordinator: their email comes after anything the stranger's would have.
        coordinator = await ask_for_link(http, desk, "Coord@Program.test")
        for page in (stranger, nonsense, coordinator):
            assert "If that address is a coordinator’s, a link is on its way." in page
        await desk.mail_to(COORDINATOR, SUBJECT)
        await asyncio.sleep(0.3)
    # (Olga's term ended: the daemon tells her so; that email is none of this test's.)
    assert [m.rcpt_tos for m in desk.sink.messages if "term" not in m.subject] == [(COORDINATOR,)]
    assert desk.sink.messages_to("ada@example.com") == []
    async with desk.store() as store:
        refused = [e for e in store.audit_log() if e["event"].startswith("desk sign-in refused")]
    assert len(refused) == 2


async def test_the_pages_and_buttons_need_a_signed_in_session(desk: Desk) -> None:
    await desk.start()
    async with client() as http:
        for path in PAGES:
            async with http.get(url(desk, path), allow_redirects=False) as page:
                assert page.status == 303 and page.headers["Location"] == "/desk/sign-in"
        async with http.post(url(desk, "/desk/sign-out"), allow_redirects=False) as answer:
            assert answer.status == 303
        # A made-up cookie is no session; the page says a session ended.
        http.cookie_jar.update_cookies({"md_desk": "made-up"})
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.headers["Location"] == "/desk/sign-in?ended"


async def test_a_form_without_its_token_is_refused_and_changes_nothing(desk: Desk) -> None:
    await desk.start()
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        async with http.get(url(desk, "/desk")) as page:
            html = await page.text()
        sign_out_token = token_in(html)
        for fields in ({}, {"form_token": "guessed"}, {"form_token": sign_out_token[:-2]}):
            async with http.post(url(desk, "/desk/sign-out"), data=fields) as answer:
                assert answer.status == 403
                assert "This button only works on our own page." in await answer.text()
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 200  # still signed in: nothing changed
        # Another site's page posting with the browser's cookie is refused too.
        async with http.post(
            url(desk, "/desk/sign-out"),
            data={"form_token": sign_out_token},
            headers={"Origin": "http://evil.test"},
        ) as answer:
            assert answer.status == 403
        async with http.post(
            url(desk, "/desk/sign-out"), data={"form_token": sign_out_token}
        ) as answer:
            assert answer.status == 200
            assert "You are signed out" in await answer.text()
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 303


async def test_the_sign_in_form_needs_its_own_token(desk: Desk) -> None:
    await desk.start()
    async with client() as http:
        async with http.post(
            url(desk, "/desk/sign-in"), data={"address": COORDINATOR, "form_token": "x"}
        ) as answer:
            assert answer.status == 403
        await asyncio.sleep(0.3)
    assert desk.sink.messages == []


async def test_the_session_and_the_link_expire(desk: Desk) -> None:
    clock = ShiftedClock()
    await desk.start(Daemon(desk.config, clock=clock))
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        clock.offset = timedelta(hours=11, minutes=59)
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 200
        clock.offset = timedelta(hours=12, minutes=1)
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/desk/sign-in?ended"
        async with http.get(url(desk, "/desk/sign-in?ended")) as page:
            assert "Your desk session has ended." in await page.text()

        # A sign-in link left for 16 minutes no longer works.
        await ask_for_link(http, desk, COORDINATOR)
        mails = await desk.replies_to(COORDINATOR, 2)
        clock.offset += timedelta(minutes=16)
        async with http.get(link_in(mails[1])) as page:
            assert page.status == 410


async def test_sign_in_links_are_limited_per_hour(desk: Desk) -> None:
    await desk.start()
    async with client() as http:
        for _ in range(7):
            await ask_for_link(http, desk, COORDINATOR)
        await desk.replies_to(COORDINATOR, 5)
        await asyncio.sleep(0.3)
    assert len(desk.sink.messages_to(COORDINATOR)) == 5


async def test_behind_https_the_cookie_is_secure(desk: Desk) -> None:
    desk.configure(program={"base_url": "https://desk.program.test"})
    await desk.start()
    async with client() as http:
        await ask_for_link(http, desk, COORDINATOR)
        [mail] = await desk.replies_to(COORDINATOR, 1)
        link = link_in(mail).replace("https://desk.program.test", url(desk, ""))
        async with http.get(link) as page:
            token = token_in(await page.text())
        async with http.post(link, data={"form_token": token}, allow_redirects=False) as answer:
            assert answer.status == 303
            assert "Secure" in answer.headers["Set-Cookie"]


async def test_an_action_needs_its_forms_token_and_a_refusal_says_why(desk: Desk) -> None:
    seed(desk, TEAM)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.replies_to(JORDAN, 1)
    assign = url(desk, "/desk/requests/1/assign")
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        async with http.get(url(desk, "/desk/requests/1")) as page:
            html = await page.text()
        assert "Assign to Ada" in html and "Assign to Linus" in html
        withdraw_token = token_for(html, "/desk/requests/1/withdraw")
        for fields in (
            {"mentor": "linus@example.com"},
            {"mentor": "linus@example.com", "form_token": withdraw_token},  # another form's
        ):
            async with http.post(assign, data=fields) as answer:
                assert answer.status == 403
        async with desk.store() as store:
            request = store.request(1)
            assert request is not None and request["status"] == "open"
            assert not [e for e in store.audit_log(1) if str(e.get("by", "")).startswith("desk")]

        # The requests page's filters: status, skill (its synonyms too), age.
        shown = {
            "?status=open&skill=python": True,
            "?status=open&skill=py": True,
            "?skill=javascript": False,
            "?status=all&older_than=1": False,
            "?status=closed": False,
            "?status=<b>&skill=" + "x" * 500: False,
            "": True,
        }
        for query, listed in shown.items():
            async with http.get(url(desk, "/desk/requests" + query)) as page:
                assert page.status == 200
                text = await page.text()
                assert ("MD-0001" in text) is listed, query
                assert "<b>" not in text

        # A move the lifecycle refuses: the page says why, and nothing changes.
        async with http.post(
            url(desk, "/desk/requests/1/reassign"),
            data={
                "mentor": "linus@example.com",
                "form_token": token_for(html, "/desk/requests/1/assign"),
            },
        ) as answer:
            assert answer.status == 403  # the assign form's token is not reassign's
        async with http.get(url(desk, "/desk/requests/1/assign"), allow_redirects=False) as back:
            assert back.status == 303 and back.headers["Location"] == "/desk/requests/1"
        async with http.post(url(desk, "/desk/requests/1/launch"), data={}) as unknown:
            assert unknown.status in (403, 404)
        async with http.post(
            url(desk, "/desk/requests/1/withdraw"), data={"form_token": withdraw_token}
        ) as answer:
            assert answer.status == 200
            assert "MD-0001 is withdrawn" in await answer.text()
        async with http.post(
            url(desk, "/desk/requests/1/withdraw"), data={"form_token": withdraw_token}
        ) as again:
            assert again.status == 409
            assert "it has ended" in await again.text()
    await desk.mail_to(JORDAN, "withdrawn")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "withdrawn"


async def test_a_session_outlives_a_restart_but_not_the_coordinators_removal(
    desk: Desk,
) -> None:
    await desk.start()
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        await desk.stop()
        await desk.start()
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 200  # the session is in the state file, not in memory
        await desk.stop()
        desk.configure(desk={"coordinators": ["chair@program.test"]})
        await desk.start()
        async with http.get(url(desk, "/desk"), allow_redirects=False) as page:
            assert page.status == 303 and page.headers["Location"] == "/desk/sign-in?ended"
        # The new coordinator signs in; the old address gets nothing more.
        assert (await sign_in(http, desk, "chair@program.test")).status == 303
        await ask_for_link(http, desk, COORDINATOR)
        await asyncio.sleep(0.3)
    assert len(desk.sink.messages_to(COORDINATOR)) == 1


@pytest.mark.parametrize(
    ("table", "bad", "says"),
    [
        ({"coordinators": "coord@program.test"}, "coordinators", "expected a list"),
        ({"coordinators": ["not an address"]}, "coordinators", "not a plain email address"),
        ({"session_lifetime": "0s"}, "session_lifetime", "longer than nothing"),
        ({"sign_in_lifetime": "soon"}, "sign_in_lifetime", "is not a duration"),
        ({"lifetime": "1h"}, "lifetime", "unknown key"),
    ],
)
def test_bad_desk_config_is_refused_naming_the_key(
    tmp_path: Path, table: dict[str, Any], bad: str, says: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        write_config(tmp_path, desk=table)
    assert f"[desk] {bad}:" in str(refused.value) and says in str(refused.value)


def test_the_desk_defaults_to_the_program_coordinator(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert coordinators(config) == ("coord@program.test",)
    assert config.desk.session_lifetime == timedelta(hours=12)
    assert config.desk.sign_in_lifetime == timedelta(minutes=15)
    listed = write_config(tmp_path, desk={"coordinators": ["Chair@Program.test"]})
    assert coordinators(listed) == ("chair@program.test",)


async def test_each_desk_button_makes_its_own_move(desk: Desk) -> None:
    """Reassign, resend, close (refused), pause, resume, an unknown mentor: each button
    reaches the coordinator desk's move of its name, and the page says what came of it."""
    seed(desk, TEAM)
    await desk.start()
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    [invite] = await desk.replies_to("linus@example.com", 1)
    async with aiohttp.ClientSession() as plain, press(plain, links(invite, "claim")[0]) as took:
        assert took.status == 200
    await desk.mail_to(JORDAN, "will be your mentor")

    async def post(http: aiohttp.ClientSession, path: str, **fields: str) -> tuple[int, str]:
        page_path = "/desk/mentors" if path.startswith("/desk/mentors") else "/desk/requests/1"
        async with http.get(url(desk, page_path)) as page:
            token = token_for(await page.text(), path)
        async with http.post(url(desk, path), data={"form_token": token, **fields}) as answer:
            return answer.status, await answer.text()

    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        async with http.get(url(desk, "/desk/requests/1")) as page:
            html = await page.text()
        assert "Give it to another mentor" in html and "Give it to Ada" in html
        assert "Send the session invitation again" in html
        assert 'action="/desk/requests/1/close"' not in html  # only once the session is held

        status, text = await post(http, "/desk/requests/1/reassign", mentor="ada@example.com")
        assert status == 200, text
        assert "MD-0001 is now with Ada Lovelace; Linus Park was told" in text
        await desk.mail_to("linus@example.com", "Now with another mentor")
        await desk.mail_to("ada@example.com", "It's yours")

        status, text = await post(http, "/desk/requests/1/resend")
        assert status == 200, text
        assert "went again to Ada Lovelace and the mentee" in text

        # No close button while the session is ahead; a hand-made close is refused.
        session_key = await desk_form_token(desk, http, "/desk/requests/1/close")
        async with http.post(
            url(desk, "/desk/requests/1/close"), data={"form_token": session_key}
        ) as answer:
            assert answer.status == 409
            assert "only a request whose session was held can be closed" in await answer.text()

        status, text = await post(http, "/desk/mentors/pause", mentor="grace@example.org")
        assert status == 200 and "Grace Hopper was told." in text, text
        status, text = await post(http, "/desk/mentors/resume", mentor="grace@example.org")
        assert status == 200 and "Grace Hopper was told." in text, text
        status, text = await post(http, "/desk/mentors/pause", mentor="nobody@example.org")
        assert status == 404 and "No mentor has the address nobody@example.org" in text
    async with desk.store() as store:
        grace = store.mentor("grace@example.org")
        assert grace is not None and grace["status"] == "active"
        moves = [e for e in store.audit_log() if e.get("by") == f"desk:{COORDINATOR}"]
        assert moves, "the audit says the desk did it"
    told = await desk.replies_to("grace@example.org", 2)
    assert len(told) == 2


async def desk_form_token(desk: Desk, http: aiohttp.ClientSession, path: str) -> str:
    """The token our page would put in a form for ``path`` in this client's session
    (for a move the page offers no button for, as a hand-made POST would carry)."""
    [cookie] = [c for c in http.cookie_jar if c.key == "md_desk"]
    key = hashlib.sha256(cookie.value.encode()).hexdigest()
    async with desk.store() as store:
        stored = store.meta("desk:sessions")[key]
    session = DeskSession(key, stored["person"], datetime.fromisoformat(stored["expires"]))
    return form_token_for(desk.config, session, path)


async def test_requests_by_age_on_the_desk(desk: Desk) -> None:
    clock = ShiftedClock()
    seed(desk, TEAM)
    await desk.start(Daemon(desk.config, clock=clock))
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.replies_to(JORDAN, 1)
    clock.offset = timedelta(days=2, hours=1)
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        for days, listed in (("1", True), ("2", True), ("3", False)):
            async with http.get(url(desk, f"/desk/requests?older_than={days}")) as page:
                assert ("MD-0001" in await page.text()) is listed, days
        async with http.get(url(desk, "/desk")) as page:
            html = await page.text()
        assert "Waiting for a mentor (1)" in html
        assert ">2d 1h<" in html


async def test_an_escalated_request_is_marked_on_the_desk(desk: Desk) -> None:
    """The ladder escalates a request nobody took (time moved on ten days and more);
    what needs a person shows it first among the waiting, marked escalated."""
    clock = ShiftedClock()
    seed(desk, TEAM)
    desk.configure(timers={"sweep_interval": "1s"})
    await desk.start(Daemon(desk.config, clock=clock))
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await desk.replies_to(JORDAN, 1)
    clock.offset = timedelta(days=10, hours=2)
    await desk.mail_to("boss@program.test", "Nobody has taken it")
    async with client() as http:
        assert (await sign_in(http, desk)).status == 303
        async with http.get(url(desk, "/desk")) as page:
            html = await page.text()
    assert "Waiting for a mentor (1, 1 escalated)" in html
    assert '<span class="status warn">escalated</span>' in html
    assert ">10d 2h<" in html
