"""The web endpoint against other sites, stale links and slow or numerous clients.

* A POST from another site's page (its Origin, Referer or Sec-Fetch-Site says so) or
  without the page's form token changes nothing and gets a clear 403 page.
* A genuine link whose request or person is gone gets a clear page (410), not a 500.
* Clients that stall in a request head or body are closed, the number of connections
  is capped, a person is still served meanwhile, and the log gets a line, not a flood.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from mentordesk import foreground
from mentordesk.flows.claims import ClaimDesk
from mentordesk.state.store import Store, StoreWriter
from mentordesk.tokens import FORM_FIELD, sign
from mentordesk.web import WebApp
from mentordesk.web_guard import WebLimits

from .desk import SECRET, Desk
from .forms import form
from .servers import until
from .test_claims import JORDAN, links, open_request

EVIL = "https://evil.example"
FORM_TOKEN = re.compile(r'name="form_token" value="([A-Za-z0-9_-]+)"')


def genuine(purpose: str, person: str, obj: str) -> str:
    """A token we signed ourselves: valid, but maybe for something no longer there."""
    return sign(
        SECRET.encode(),
        purpose=purpose,
        person=person,
        obj=obj,
        expires=datetime.now(UTC) + timedelta(days=1),
    )


async def request_status(desk: Desk) -> str:
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        return str(request["status"])


# --- other sites and missing form tokens ------------------------------------------------------


async def test_a_post_from_another_site_changes_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [url] = links(invite, "claim")
    cross_site = [
        {"Origin": EVIL},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site too
        {"Referer": f"{EVIL}/free-money.html"},
    ]
    for headers in cross_site:
        async with http.post(url, data=form(url), headers=headers) as response:
            assert response.status == 403, headers
            page = await response.text()
        assert "This button only works on our own page." in page, headers
        assert "Another website tried to press it for you" in page
    assert await request_status(desk) == "open"


async def test_a_claim_without_the_pages_form_token_changes_nothing(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    [ada] = await desk.replies_to("ada@example.com", 1)
    [linus] = await desk.replies_to("linus@example.com", 1)
    [url], [linus_url] = links(ada, "claim"), links(linus, "claim")
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    for data in ({}, {FORM_FIELD: "x" * 22}, form(linus_url), {FORM_FIELD: "é" * 5000}):
        async with http.post(url, data=data) as response:
            assert response.status == 403
            page = await response.text()
        assert "This button only works on our own page." in page
        assert "Nothing was changed." in page
        assert f'href="/{path}"' in page  # back to the page, one click away
    assert await request_status(desk) == "open"
    async with desk.store() as store:
        assert not [e for e in store.audit_log(1) if e["event"] == "claimed"]


async def test_the_pages_own_button_claims(desk: Desk, http: aiohttp.ClientSession) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [url] = links(invite, "claim")
    async with http.get(url) as response:
        [token] = FORM_TOKEN.findall(await response.text())
    origin = url.split("/claim/")[0]
    # What a browser sends: same-origin by its own account, and an Origin of null where
    # the page's no-referrer policy hides it (older browsers send no Sec-Fetch-Site).
    async with http.post(url, data={FORM_FIELD: token}, headers={"Origin": "null"}) as response:
        assert response.status == 200
        assert "Thank you! MD-0001 is yours." in await response.text()
    intro = await desk.mail_to("ada@example.com", "It's yours")
    [release_url] = links(intro, "release")
    async with http.post(release_url) as response:
        assert response.status == 403  # a release is a change too: it needs the page's token
    assert await request_status(desk) == "booked"
    headers = {"Origin": origin, "Sec-Fetch-Site": "same-origin", "Referer": release_url}
    async with http.post(release_url, data=form(release_url), headers=headers) as response:
        assert response.status == 200
        assert "Thanks for letting us know." in await response.text()
    await desk.mail_to(JORDAN, "another mentor")


# --- genuine links to what is gone --------------------------------------------------------------


async def test_a_genuine_link_to_what_is_gone_gets_a_clear_page(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await open_request(desk)
    base = f"http://127.0.0.1:{desk.web_port}"
    gone = [
        ("claim", "ada@example.com", "99"),  # no such request (any more)
        ("claim", "nobody@example.com", "1"),  # no such mentor (any more)
        ("release", "ada@example.com", "99"),
    ]
    for purpose, person, obj in gone:
        url = f"{base}/{purpose}/{genuine(purpose, person, obj)}"
        for method, data in ((http.get, None), (http.post, form(url))):
            async with method(url, data=data) as response:
                assert response.status == 410, (purpose, person, obj, method)
                assert "This request or person is no longer here." in await response.text()
    assert await request_status(desk) == "open"


# --- slow and numerous clients ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def web_alone(desk: Desk, tmp_path: Path, limits: WebLimits) -> AsyncIterator[WebApp]:
    """The web endpoint by itself, on the desk's port, with these limits."""
    writer = StoreWriter(lambda: Store(tmp_path / "web-state" / "s.json", fsync=False))
    await writer.start()

    def no_claims() -> ClaimDesk:
        raise AssertionError("no claim pages here")

    app = WebApp(desk.config, writer, no_claims, lambda: datetime.now(UTC), limits=limits)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await writer.close()


async def stall_in_a_head(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that sends half a request head and then nothing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await writer.drain()
    return reader, writer


async def closed_by_the_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(4096):
            received += chunk
    return received


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.INFO]


async def test_stalled_clients_are_shed_and_a_person_is_still_served(
    desk: Desk, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = WebLimits(header_timeout_s=1.0, max_connections=32, log_interval_s=3600)
    async with web_alone(desk, tmp_path, limits) as app:
        caplog.clear()
        caplog.set_level(logging.INFO)
        stalled = [await stall_in_a_head(desk.web_port) for _ in range(200)]
        # A person's request is answered while 200 clients stall: they are at the cap,
        # and the one that has waited longest makes room.
        url = f"http://127.0.0.1:{desk.web_port}/healthz"
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
            assert response.status == 200
        # Every stalled client is closed: at the cap, or when its head timed out.
        answers = await asyncio.wait_for(
            asyncio.gather(*(closed_by_the_server(reader) for reader, _ in stalled)), 60
        )
        assert answers == [b""] * 200  # no answer to half a request
        assert app.guard.peak <= limits.max_connections
        assert app.guard.open_connections <= 1  # the person's keep-alive, at most
        for _, writer in stalled:
            writer.close()
    # One line when it started, one summary when the endpoint stopped: not 200.
    lines = log_lines(caplog)
    assert 1 <= len(lines) <= 3, lines
    counted = [re.search(r"web: closed (\d+) connection", line) for line in lines]
    assert sum(int(found.group(1)) for found in counted if found) == 200, lines


async def test_turns_are_short_while_anyone_is_connected(desk: Desk, tmp_path: Path) -> None:
    """While a connection is open someone may be waiting on a page: the interpreter's
    turns are short (foreground.py). Once the last one is closed (here: shed at the cap,
    and at the head timeout) they are long again."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    try:
        limits = WebLimits(header_timeout_s=1.0, max_connections=2, log_interval_s=3600)
        async with web_alone(desk, tmp_path, limits) as app:
            assert sys.getswitchinterval() == 0.005  # nobody connected
            stalled = [await stall_in_a_head(desk.web_port) for _ in range(3)]
            await until(lambda: app.guard.open_connections == 2)
            assert app.guard.peak == 2
            assert sys.getswitchinterval() == foreground.SHORT_TURN_S
            await asyncio.wait_for(
                asyncio.gather(*(closed_by_the_server(reader) for reader, _ in stalled)), 30
            )
            for _, writer in stalled:
                writer.close()
            await until(lambda: app.guard.open_connections == 0)
            assert sys.getswitchinterval() == 0.005
    finally:
        sys.setswitchinterval(before)


async def test_a_stalled_body_is_cut_off_with_a_page(
    desk: Desk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limits = WebLimits(body_timeout_s=0.5, log_interval_s=3600)
    async with web_alone(desk, tmp_path, limits):
        reader, writer = await asyncio.open_connection("127.0.0.1", desk.web_port)
        writer.write(
            b"POST /claim/abc.def HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"form_token="
        )
        await writer.drain()
        answer = await asyncio.wait_for(closed_by_the_server(reader), 30)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"Your answer did not arrive in time." in answer


async def test_a_body_too_big_is_refused_with_a_page(
    desk: Desk, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with web_alone(desk, tmp_path, WebLimits(max_body_bytes=4096)):
        url = f"http://127.0.0.1:{desk.web_port}/claim/abc.def"
        async with http.post(url, data={"comment": "x" * 10_000}) as response:
            assert response.status == 413
            assert "That was more than this page accepts." in await response.text()


async def test_with_the_default_limits_stalled_clients_do_not_keep_a_person_out(
    desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [url] = links(invite, "claim")
    caplog.clear()
    caplog.set_level(logging.INFO)
    stalled = [await stall_in_a_head(desk.web_port) for _ in range(200)]
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
            assert response.status == 200
            assert "Can you help Jordan?" in await response.text()
    finally:
        for _, writer in stalled:
            writer.close()
    assert len([line for line in log_lines(caplog) if "web" in line]) <= 2
