"""Signing in to the coordinator's desk over HTTP, for the desk's tests.

The way in is the real one: the sign-in form, the email the real SMTP sink received,
the link in it, its button. ``ShiftedClock`` lets a test move the daemon's time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp

from .desk import COORDINATOR, Desk, text_of
from .servers import ReceivedMessage

TOKEN_FIELD = re.compile(r'name="form_token" value="([^"]+)"')
SIGN_IN_LINK = re.compile(r"https?://[^\s/]+/desk/sign-in/[A-Za-z0-9_\-.]+")
SUBJECT = "sign-in link"


class ShiftedClock:
    """The real time plus an offset the test moves (the daemon's ``clock``)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def token_in(html: str) -> str:
    """The first form token on a page."""
    found = TOKEN_FIELD.search(html)
    assert found, "no form token on the page"
    return found.group(1)


def token_for(html: str, action: str) -> str:
    """The form token of the form on the page that posts to ``action``."""
    form = re.search(rf'<form method="post" action="{re.escape(action)}">(.*?)</form>', html, re.S)
    assert form, f"no form for {action}"
    return token_in(form.group(1))


def link_in(message: ReceivedMessage) -> str:
    links = [m.group(0) for m in SIGN_IN_LINK.finditer(text_of(message))]
    assert len(links) == 1, links
    return links[0]


def client() -> aiohttp.ClientSession:
    """A client that keeps cookies of 127.0.0.1 (aiohttp drops IP cookies by default)."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def ask_for_link(http: aiohttp.ClientSession, desk: Desk, address: str) -> str:
    """Fill in the sign-in form with ``address``; the page's text."""
    base = f"http://127.0.0.1:{desk.web_port}"
    async with http.get(f"{base}/desk/sign-in") as page:
        assert page.status == 200
        token = token_in(await page.text())
    async with http.post(
        f"{base}/desk/sign-in", data={"form_token": token, "address": address}
    ) as answer:
        assert answer.status == 200
        return await answer.text()


async def sign_in(
    http: aiohttp.ClientSession, desk: Desk, address: str = COORDINATOR, nth: int = 1
) -> aiohttp.ClientResponse:
    """Sign in as the coordinator from the emailed link; the button's (unfollowed) answer."""
    await ask_for_link(http, desk, address)
    link = link_in(await desk.mail_to(address, SUBJECT, nth=nth))
    async with http.get(link) as page:
        assert page.status == 200, await page.text()
        token = token_in(await page.text())
    async with http.post(link, data={"form_token": token}, allow_redirects=False) as answer:
        return answer
