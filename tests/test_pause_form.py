"""The pause button's POST carries the page's form token, like every other (issue 14,
item 11): a POST with only the link — from another site, or a script that found the
URL — pauses nobody; the page's own button does."""

from __future__ import annotations

import aiohttp

from mentordesk.tokens import FORM_FIELD

from .desk import Desk
from .forms import form, press
from .test_claims import links, open_request
from .test_web_hardening import EVIL, FORM_TOKEN


async def mentor_status(desk: Desk, email: str) -> str:
    async with desk.store() as store:
        mentor = store.mentor(email)
        assert mentor is not None
        return str(mentor["status"])


async def test_a_pause_without_the_pages_form_token_pauses_nobody(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [ada] = await desk.replies_to("ada@example.com", 1)
    [linus] = await desk.replies_to("linus@example.com", 1)
    [url], [linus_url] = links(ada, "pause"), links(linus, "pause")
    for data in ({}, {FORM_FIELD: "x" * 22}, form(linus_url)):
        async with http.post(url, data=data) as response:
            assert response.status == 403
            page = await response.text()
        assert "This button only works on our own page." in page
        assert "Nothing was changed." in page
    async with http.post(url, data=form(url), headers={"Origin": EVIL}) as response:
        assert response.status == 403
    assert await mentor_status(desk, "ada@example.com") == "active"


async def test_the_pause_pages_own_button_pauses(desk: Desk, http: aiohttp.ClientSession) -> None:
    await open_request(desk)
    [ada] = await desk.replies_to("ada@example.com", 1)
    [url] = links(ada, "pause")
    async with http.get(url) as response:
        page = await response.text()
    assert "Pause new requests?" in page
    [token] = FORM_TOKEN.findall(page)
    assert await mentor_status(desk, "ada@example.com") == "active"  # GET changes nothing
    async with http.post(url, data={FORM_FIELD: token}) as response:
        assert response.status == 200
        assert "You are paused." in await response.text()
    assert await mentor_status(desk, "ada@example.com") == "paused"
    async with press(http, url) as response:  # pressed again: still paused, no error
        assert response.status == 200
    assert await mentor_status(desk, "ada@example.com") == "paused"
