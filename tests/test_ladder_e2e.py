"""The ladder end to end: real Dovecot in, real SMTP out, the daemon's own web endpoint,
and the daemon's scheduler swept by hand after moving its injected clock.

One request nobody takes: bumped, widened, escalated, then assigned by the escalation
contact with the link from the escalation email. And the assign link refuses what it
must: altered, expired, someone else's, or made for something else.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from mentordesk.daemon import Daemon
from mentordesk.state.store import Store, iso
from mentordesk.tokens import sign

from .desk import SECRET, Desk, html_of, mail, text_of
from .forms import press
from .servers import Dovecot, ReceivedMessage, SmtpSink
from .timetravel import FakeClock, mentor_doc

JORDAN = "jordan@example.net"
BOSS = "boss@program.test"  # tests/desk.py's escalation contact
REQUEST = (
    "Name: Jordan Lee\nSkills: python\nTimezone: America/New_York\nAvailability: Tue 12:00-14:00\n"
    "Details: I'm leaving the Army in March and learning Python; I'd love a review of my\n"
    "first project and advice on what to build next.\n"
)
LINK = re.compile(r"http://127\.0\.0\.1:\d+/(claim|assign)/[A-Za-z0-9_\-.]+")
MENTORS = ["ada", "bea", "cyd", "dan", "eli"]


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, dovecot, smtp_sink)
    # The interval sweep stays out of the way: the test sweeps by hand.
    desk.configure(matching={"invite_count": 2, "widen_count": 2}, timers={"sweep_interval": "1h"})
    yield desk
    await desk.stop()


async def mail_with(desk: Desk, address: str, subject_part: str, nth: int = 1) -> ReceivedMessage:
    """The ``nth`` message to ``address`` whose subject holds ``subject_part`` (polled)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        found = [m for m in desk.sink.messages_to(address) if subject_part in m.subject]
        if len(found) >= nth:
            return found[nth - 1]
        if asyncio.get_running_loop().time() > deadline:
            got = [m.subject for m in desk.sink.messages_to(address)]
            raise AssertionError(f"{address}: no {subject_part!r} among {got}")
        await asyncio.sleep(0.02)


def links(message: ReceivedMessage, kind: str) -> list[str]:
    return [m.group(0) for m in LINK.finditer(text_of(message)) if m.group(1) == kind]


async def start(desk: Desk) -> tuple[Daemon, FakeClock]:
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    store = Store(desk.config.state.path, fsync=False)
    try:
        for name in MENTORS:
            store.save_mentor(
                mentor_doc(
                    f"{name}@example.com",
                    f"{name.title()} Example",
                    ["python"],
                    term_end=iso(clock() + timedelta(days=365)),
                )
            )
    finally:
        store.close()
    daemon = await desk.start(Daemon(desk.config, clock=clock))
    desk.send(mail("Jordan Lee <jordan@example.net>", "Mentor request", REQUEST))
    await mail_with(desk, JORDAN, "[MD-0001]")
    await mail_with(desk, "ada@example.com", "[MD-0001]")
    await mail_with(desk, "bea@example.com", "[MD-0001]")
    return daemon, clock


async def sweep(daemon: Daemon, clock: FakeClock, **advance: float) -> dict[str, int]:
    clock.advance(**advance)
    assert daemon.timers is not None
    return await daemon.timers.sweep()


async def test_unclaimed_bumped_widened_escalated_assigned(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    daemon, clock = await start(desk)
    assert (await sweep(daemon, clock, days=1))["ladder"] == 0

    # Day 3: the two invited mentors are reminded, the mentee hears from us.
    assert (await sweep(daemon, clock, days=2))["ladder"] == 3
    bump = await mail_with(desk, "ada@example.com", "Re: [MD-0001] Jordan would like help")
    invite = await mail_with(desk, "ada@example.com", "[MD-0001] Jordan would like help")
    assert bump.message["In-Reply-To"] == invite.message["Message-ID"]
    [claim_url] = links(bump, "claim")
    async with http.get(claim_url) as response:
        assert response.status == 200
        assert "Can you help Jordan?" in await response.text()
    update = await mail_with(desk, JORDAN, "Re: [MD-0001] Mentor request", nth=2)
    assert "no mentor has taken it yet" in " ".join(text_of(update).split())

    # Day 5: two more mentors.
    assert (await sweep(daemon, clock, days=2))["ladder"] == 2
    await mail_with(desk, "cyd@example.com", "[MD-0001]")
    await mail_with(desk, "dan@example.com", "[MD-0001]")
    assert not desk.sink.messages_to("eli@example.com")

    # Day 10: escalated, with an assign link per candidate.
    assert (await sweep(daemon, clock, days=5))["ladder"] == 1
    escalation = await mail_with(desk, BOSS, "[MD-0001] Nobody has taken it in 10 days")
    assert JORDAN in text_of(escalation)
    assert "Reminded Ada Example <ada@example.com>, Bea Example <bea@example.com>" in (
        text_of(escalation)
    )
    assign_urls = links(escalation, "assign")
    assert len(assign_urls) == 4 and len(re.findall("/assign/", html_of(escalation))) == 4
    [dan_url] = [u for u in assign_urls if "Assign to Dan" in _line_of(escalation, u)]

    # GET shows a confirmation and changes nothing; POST assigns.
    for _ in range(3):
        async with http.get(dan_url) as response:
            assert response.status == 200
            page = await response.text()
    assert "Give MD-0001 to Dan Example?" in page and '<form method="post">' in page
    async with desk.store() as store:
        assert store.request(1)["status"] == "open"  # type: ignore[index]
    async with press(http, dan_url) as response:
        assert response.status == 200
        assert "Done: MD-0001 is Dan’s." in await response.text()

    intro = await mail_with(desk, "dan@example.com", "[MD-0001] It's yours: meet Jordan Lee")
    assert JORDAN in text_of(intro)
    await mail_with(desk, JORDAN, "[MD-0001] Dan Example will be your mentor")
    await mail_with(desk, "ada@example.com", "[MD-0001] Taken by Dan")
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None
        assert request["status"] == "booked" and request["claimed_by"] == "dan@example.com"
        assert set(request["ladder"]) == {"bump", "mentee_update", "widen", "escalate"}
        events = [(e["event"], e.get("via"), e.get("by")) for e in store.audit_log(1)]
        assert ("claimed", "assign", None) in events
        assert ("assigned", None, BOSS) in events

    # Nothing more climbs; a second assignment finds it taken.
    assert (await sweep(daemon, clock, days=1))["ladder"] == 0
    [cyd_url] = [u for u in assign_urls if "Assign to Cyd" in _line_of(escalation, u)]
    async with http.post(cyd_url) as response:
        assert response.status == 409
        assert "Dan Example has taken it." in await response.text()
    bumps = [m for m in desk.sink.messages if m.subject.startswith("Re: [MD-0001] Jordan")]
    assert sorted(r for m in bumps for r in m.rcpt_tos) == ["ada@example.com", "bea@example.com"]
    assert len([m for m in desk.sink.messages if "Nobody has taken it" in m.subject]) == 1


async def test_bad_assign_links_are_refused(desk: Desk, http: aiohttp.ClientSession) -> None:
    daemon, clock = await start(desk)
    await sweep(daemon, clock, days=10)
    escalation = await mail_with(desk, BOSS, "Nobody has taken it")
    url = links(escalation, "assign")[0]
    base, token = url.rsplit("/", 1)
    invite = await mail_with(desk, "ada@example.com", "[MD-0001]")
    claim_token = links(invite, "claim")[0].rsplit("/", 1)[1]

    def token_for(person: str, obj: str, expires: datetime) -> str:
        return sign(SECRET.encode(), purpose="assign", person=person, obj=obj, expires=expires)

    later = clock() + timedelta(days=1)
    cases = {
        token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"): (403, "does not work"),
        token_for(BOSS, "1:ada@example.com", clock() - timedelta(seconds=1)): (410, "expired"),
        token_for("mallory@example.com", "1:ada@example.com", later): (403, "not yours"),
        token_for("ada@example.com", "1:ada@example.com", later): (403, "not yours"),
        claim_token: (403, "does not work"),  # a mentor's claim link, not an assign link
        token_for(BOSS, "1", later): (404, "no page here"),
    }
    for bad, (status, words) in cases.items():
        for method in (http.get, http.post):
            async with method(f"{base}/{bad}") as response:
                assert response.status == status, (bad, method)
                assert words in await response.text(), bad
    async with desk.store() as store:
        request = store.request(1)
        assert request is not None and request["status"] == "open"
        assert not [e for e in store.audit_log(1) if e["event"] in ("claimed", "assigned")]
    # The genuine link still works afterwards.
    async with press(http, url) as response:
        assert response.status == 200


def _line_of(message: ReceivedMessage, url: str) -> str:
    """The text line holding ``url``."""
    return next(line for line in text_of(message).splitlines() if url in line)
