"""A thousand slow clients against the whole daemon (issue 14, item 3): the web pages
stay reachable for a person and the mailbox is still read and answered meanwhile.

The daemon runs with its default web limits. 1,000 clients each send half a request head
and then nothing; while they hang on, a person opens their claim link and two emails are
answered. The connection cap holds, and the log gets a summary, not a line a client.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest

from mentordesk.web_guard import WebLimits

from .desk import Desk, mail
from .test_claims import links, open_request
from .test_flows import ENROLL_ADA
from .test_web_hardening import log_lines, stall_in_a_head

pytestmark = pytest.mark.dovecot

CLIENTS = 1_000


async def test_a_thousand_slow_clients_and_the_mailbox_is_still_served(
    desk: Desk, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    await open_request(desk)
    [invite] = await desk.replies_to("ada@example.com", 1)
    [url] = links(invite, "claim")
    assert desk.daemon is not None and desk.daemon.web is not None
    guard = desk.daemon.web.guard
    caplog.clear()
    caplog.set_level(logging.INFO)
    stalled = [await stall_in_a_head(desk.web_port) for _ in range(CLIENTS)]
    try:
        desk.send(mail("Mo Mentor <mo@example.org>", "Mentor enrollment", ENROLL_ADA))
        desk.send(mail("Marker <marker@example.com>", "pause", "marker"))
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as response:
            assert response.status == 200
            assert "Can you help Jordan?" in await response.text()
        await desk.replies_to("mo@example.org", 1, timeout_s=60)
        await desk.replies_to("marker@example.com", 1, timeout_s=60)
        assert guard.peak <= WebLimits().max_connections
    finally:
        for _, writer in stalled:
            writer.close()
    web_lines = [line for line in log_lines(caplog) if "web" in line]
    assert len(web_lines) <= 3, web_lines
