"""kill -9 the daemon during a burst of claim clicks (group commit, SPEC §3 flow 4, §5).

``mentordesk run`` (a child process, state fsync'd) serves the claim pages of
``REQUESTS`` open requests, each offered to ``INVITED`` mentors. Clients press every
button at once, many at a time; once some presses have been answered "it's yours", the
daemon is killed with SIGKILL, in the middle of the burst. After a restart every button
is pressed again. What the mentors were told and what the state holds must show: every
claim answered "it's yours" survived the kill, held by that mentor; exactly one mentor
was ever told "it's yours" for each request; and each request's introductions and
"taken" notices exist exactly once, with the effects the killed process left settled
by the restarted one.
"""

from __future__ import annotations

import asyncio
import collections
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from mentordesk.config import load_config
from mentordesk.state.store import Store, iso
from mentordesk.tokens import FORM_FIELD, Links, form_token, verify

from .child import Child
from .desk import ENVIRON, SECRET, toml_text
from .servers import SmtpSink, free_port

REQUESTS = 40
INVITED = 6
MENTORS = [f"mentor{n:02d}@example.com" for n in range(12)]
KILL_AFTER_WINNERS = 8  # answered "it's yours" before the kill
CLIENTS = 16


def seed(folder: Path, smtp: SmtpSink) -> tuple[Path, dict[tuple[int, str], str]]:
    """The config and state; the claim URL of each (request, invited mentor)."""
    web_port = free_port()
    config_path = folder / "config.toml"
    config_path.write_text(
        toml_text(
            {
                "program": {
                    "name": "Burst",
                    "address": "mentors@program.test",
                    "coordinator": "coord@program.test",
                    "base_url": f"http://127.0.0.1:{web_port}",
                    "secret_env": "MD_TEST_SECRET",
                },
                "inbox": {"kind": "maildir", "path": str(folder / "in")},
                "smtp": {"kind": "smtp", "host": smtp.host, "port": smtp.port, "tls": "none"},
                "web": {"host": "127.0.0.1", "port": web_port},
                "state": {"path": str(folder / "state" / "md.db"), "fsync": True},
            }
        ),
        "utf-8",
    )
    config = load_config(config_path, environ=ENVIRON)
    now = datetime.now(UTC)
    rng = random.Random(11)
    store = Store(config.state.path)
    urls: dict[tuple[int, str], str] = {}
    links = Links(config.secret, config.program.base_url, timedelta(days=7))
    try:
        with store.transaction():
            for email in MENTORS:
                store.save_mentor(
                    {
                        "email": email,
                        "name": email.split("@")[0].title(),
                        "skills": ["python"],
                        "timezone": "Europe/Berlin",
                        "availability": [[1, 18 * 60, 20 * 60], [3, 18 * 60, 20 * 60]],
                        "capacity": 100,
                        "about": "",
                        "status": "active",
                        "term_end": iso(now + timedelta(days=365)),
                        "enrolled": iso(now),
                        "updated": iso(now),
                    }
                )
            for number in range(1, REQUESTS + 1):
                invited = rng.sample(MENTORS, INVITED)
                store.save_request(
                    {
                        "number": number,
                        "mentee": f"mentee{number}@example.net",
                        "name": f"Mentee {number}",
                        "skills": ["python"],
                        "details": "A review of my first project, please.",
                        "timezone": "Europe/Berlin",
                        "availability": [[1, 18 * 60, 20 * 60]],
                        "status": "open",
                        "created": iso(now),
                        "opened": iso(now),
                        "updated": iso(now),
                        "invited": [{"email": e, "at": iso(now)} for e in invited],
                    }
                )
                for email in invited:
                    urls[number, email] = links("claim", email, str(number), now)
    finally:
        store.close()
    (folder / "in").mkdir()
    return config_path, urls


async def up(session: aiohttp.ClientSession, base: str, child: Child) -> None:
    for _ in range(300):
        assert child.proc.poll() is None, child.log()[-3000:]
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status < 500:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the daemon's web endpoint did not come up")


def outcome(status: int, page: str) -> str:
    if status == 200 and "It’s yours" in page:
        return "claimed"
    if status == 200 and "Already yours" in page:
        return "yours"
    return str(status)


async def press(
    session: aiohttp.ClientSession,
    pairs: list[tuple[int, str]],
    urls: dict[tuple[int, str], str],
    told: dict[tuple[int, str], str],
    *,
    stop_after_winners: int | None = None,
    child: Child | None = None,
) -> None:
    """Press the buttons of ``pairs`` from CLIENTS clients; kill ``child`` once
    ``stop_after_winners`` presses were answered "it's yours"."""
    queue = list(pairs)
    secret = SECRET.encode()
    killed = asyncio.Event()

    async def client() -> None:
        while queue and not killed.is_set():
            pair = queue.pop()
            url = urls[pair]
            granted = verify(secret, url.rsplit("/", 1)[1], purpose="claim", now=datetime.now(UTC))
            try:
                async with session.post(url, data={FORM_FIELD: form_token(secret, granted)}) as r:
                    told[pair] = outcome(r.status, await r.text())
            except aiohttp.ClientError:
                continue  # killed under it: no answer
            winners = sum(1 for said in told.values() if said == "claimed")
            if (
                child
                and stop_after_winners
                and winners >= stop_after_winners
                and not killed.is_set()
            ):
                killed.set()
                child.kill()  # SIGKILL, with presses still on the way

    await asyncio.gather(*(client() for _ in range(CLIENTS)))


async def settled(config_path: Path, child: Child) -> tuple[dict[int, str], list[tuple[str, int]]]:
    """Once every claim's effects are stored and sent: holders, and (kind, request) of
    every stored email."""
    config = load_config(config_path, environ=ENVIRON)
    for _ in range(600):
        assert child.proc.poll() is None, child.log()[-3000:]
        store = Store(config.state.path, fsync=False, read_only=True)
        try:
            requests = store.requests()
            emails = store.outbox()
        finally:
            store.close()
        due = [r for r in requests if r.get("effects_due")]
        pending = [e for e in emails if e["status"] == "pending"]
        if not due and not pending and all(r.get("claimed_by") for r in requests):
            holders = {int(r["number"]): str(r["claimed_by"]) for r in requests}
            return holders, [
                (str(e["kind"]), int(e["request"])) for e in emails if e.get("request")
            ]
        await asyncio.sleep(0.1)
    raise AssertionError(child.log()[-3000:])


async def test_kill_9_in_a_burst_of_claims_loses_no_answered_claim_and_doubles_none(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    config_path, urls = seed(tmp_path, smtp_sink)
    base = urls[next(iter(urls))].split("/claim/")[0]
    pairs = list(urls)
    random.Random(3).shuffle(pairs)
    before: dict[tuple[int, str], str] = {}
    after: dict[tuple[int, str], str] = {}
    async with aiohttp.ClientSession() as session:
        child = Child(tmp_path)
        await up(session, base, child)
        await press(
            session, pairs, urls, before, stop_after_winners=KILL_AFTER_WINNERS, child=child
        )
        assert child.proc.returncode == -9
        child = Child(tmp_path)
        try:
            await up(session, base, child)
            await press(session, pairs, urls, after)
            holders, emails = await settled(config_path, child)
        finally:
            child.stop()
    assert "Traceback" not in child.log()
    # The restart's sweep settled what the killed process had left (none before).
    assert re.search(r"sweep at [^\n]*claim effects \d+", child.log())

    answered_first = {pair for pair, said in before.items() if said == "claimed"}
    assert len(answered_first) >= KILL_AFTER_WINNERS
    assert len(before) < len(pairs)  # the kill fell in the middle of the burst
    # Every claim answered "it's yours" survived the kill, held by that mentor ...
    assert {(number, holders[number]) for number, _ in answered_first} == answered_first
    # ... who, pressing again, is told it is theirs already.
    assert all(after[pair] == "yours" for pair in answered_first)
    # At most one mentor was ever told "it's yours" for each request: its holder (a
    # press the kill cut off may have won unanswered: its mentor hears "already yours").
    told_yours: collections.defaultdict[int, set[str]] = collections.defaultdict(set)
    for told in (before, after):
        for (number, email), said in told.items():
            if said == "claimed":
                told_yours[number].add(email)
    assert all(told_yours[number] <= {holder} for number, holder in holders.items())
    for number, email in pairs:
        expected = {"claimed", "yours"} if email == holders[number] else {"409"}
        assert after[number, email] in expected, (number, email, after[number, email])
    # The effects exactly once each, those the kill left too.
    kinds = collections.Counter(emails)
    for number in range(1, REQUESTS + 1):
        assert kinds["intro_mentor", number] == 1
        assert kinds["intro_mentee", number] == 1
        assert kinds["claim_taken", number] == INVITED - 1
