"""The admin route applies each signed command once, and only from this machine's loopback.

A token was good for its body for two minutes, so the same request sent twice made two
office-hours series. Each token now carries a nonce that the daemon spends in the store.
The route shares the public listener: it answers loopback peers only, and not what a
local reverse proxy forwards.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from mentordesk.admin import admin_token, is_loopback, office_hours_command
from mentordesk.web import COMMAND_ERRORS, WebApp
from mentordesk.web_admin import admin_route

from .desk import SECRET, Desk
from .servers import Dovecot, SmtpSink
from .test_claims import mentor, seed

ADA = "ada@example.com"
ADD = {
    "action": "add",
    "weekday": "thu",
    "time": "18:00",
    "zone": "Europe/Berlin",
    "length": "60m",
    "mentors": [ADA],
    "until": None,
    "title": "",
    "location": "",
}


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    seed(desk, [mentor(ADA, "Ada Lovelace", ["python"])])
    yield desk
    await desk.stop()


async def post(
    http: aiohttp.ClientSession, desk: Desk, body: bytes, token: str, **headers: str
) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{desk.web_port}/admin/office-hours"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.json()


async def test_the_same_signed_command_twice_makes_one_series(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    body = json.dumps(ADD, sort_keys=True).encode()
    token = admin_token(SECRET.encode(), body, datetime.now(UTC))

    status, answer = await post(http, desk, body, token)
    assert status == 200 and answer["series"]["id"] == 1
    status, answer = await post(http, desk, body, token)  # a replay, within its 2 minutes
    assert status == 403
    assert "received already" in answer["error"]
    async with desk.store() as store:
        assert [s["id"] for s in store.all_series()] == [1]
    await desk.replies_to(ADA, 1)  # one invitation, for the one series


async def test_a_replayed_failing_command_is_refused_too(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    body = json.dumps({"action": "cancel", "id": 1, "date": "2030-01-03"}).encode()
    token = admin_token(SECRET.encode(), body, datetime.now(UTC))
    assert (await post(http, desk, body, token))[0] == 400  # no series 1 yet
    # Once series 1 exists, the old request must not cancel anything.
    add = json.dumps(ADD).encode()
    status, _ = await post(http, desk, add, admin_token(SECRET.encode(), add, datetime.now(UTC)))
    assert status == 200
    assert (await post(http, desk, body, token))[0] == 403


async def test_each_cli_command_is_signed_anew(desk: Desk) -> None:
    await desk.start()
    for _ in range(3):  # the same command, three times: three fresh nonces
        answer, through_daemon = await asyncio.to_thread(
            office_hours_command, desk.config, {"action": "list"}
        )
        assert through_daemon and answer == {"series": []}


async def test_what_a_local_proxy_forwards_is_refused(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    body = json.dumps({"action": "list"}).encode()
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        token = admin_token(SECRET.encode(), body, datetime.now(UTC))
        status, answer = await post(http, desk, body, token, **{header: "for=203.0.113.9"})
        assert status == 403 and "loopback" in answer["error"], header


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("192.0.2.7", "192.0.2.1"),  # another machine, to the public address
        ("192.0.2.1", "192.0.2.1"),  # this machine, but through its public address
        ("127.0.0.1", "192.0.2.1"),  # a forged source cannot reach a public address
    ],
)
async def test_only_loopback_peers_may_send_commands(desk: Desk, peer: str, local: str) -> None:
    def extra(name: str, default: object = None) -> object:
        return {"peername": (peer, 40000), "sockname": (local, desk.web_port)}.get(name, default)

    transport = mock.Mock(get_extra_info=extra)
    body = json.dumps({"action": "list"}).encode()
    request = make_mocked_request(
        "POST",
        "/admin/office-hours",
        headers={
            "Authorization": f"Bearer {admin_token(SECRET.encode(), body, datetime.now(UTC))}"
        },
        transport=transport,
    )
    app = WebApp(desk.config, mock.Mock(), mock.Mock(), lambda: datetime.now(UTC))
    route = admin_route(app, "/admin/office-hours", app._apply_command, COMMAND_ERRORS)
    response = await route.handler(request)
    assert response.status == 403


def test_loopback_is_loopback() -> None:
    for host in ("127.0.0.1", "127.8.9.1", "::1", "::ffff:127.0.0.1", "localhost"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.0.2.1", "::ffff:192.0.2.1", "example.org", ""):
        assert not is_loopback(host), host
