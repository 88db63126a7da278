"""Claim endpoint benchmark: GET and POST at once, under load from a separate process.

    .venv/bin/python bench/claims.py                # 25 GET + 25 POST clients
    .venv/bin/python bench/claims.py --get-clients 10 --post-clients 10

This process runs the daemon itself (web endpoint, store writer, timers, and the outbox
sending to a real SMTP server in its own process) over a state of --mentors mentors and
--requests open requests, each offered to 10 mentors; a claim books a session, as it
does in production. A second process (aiohttp client) has --post-clients connections
press the button (POST: the first press on a request wins, later ones get "already
taken"; --posts presses in all, 10 per request) while --get-clients others open claim
links (GET: the page) for as long as the claims go on: until the last press is answered
and every winning claim's effects (introductions, "taken" notices, booking) are stored.
So every GET is measured under the claims and their effects, every POST under the GETs.
The load starts once the daemon is warm: its start-up sweep done, the page compiled.
Then the same load goes to a bare aiohttp server in this process whose POST appends one
line to a file and fsyncs it (GETs until the last POST): the same-run baseline.
Targets (issues 3 and 11): GET and POST p99 < 50 ms, ≥ 500 GET/s, exactly one winner
per request. Matching speed is bench/matching.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mentordesk import event_loop  # noqa: E402
from mentordesk.config import load_config  # noqa: E402
from mentordesk.state.outbox_records import DRAFT  # noqa: E402
from mentordesk.state.records import request_status  # noqa: E402
from mentordesk.state.store import Store, iso  # noqa: E402
from mentordesk.tokens import FORM_FIELD, form_token, verify  # noqa: E402
from tests.servers import free_port  # noqa: E402

TARGET_GET_PER_S = 500.0
TARGET_P99_MS = 50.0
INVITED_PER_REQUEST = 10


def seed(store: Store, mentors: int, requests: int, now: datetime) -> None:
    skills = ["python", "javascript", "career advice", "devops", "data science"]
    with store.transaction():
        for n in range(mentors):
            store.save_mentor(
                {
                    "email": f"mentor{n}@example.com",
                    "name": f"Mentor {n}",
                    "skills": random.sample(skills, 2),
                    "timezone": "Europe/Berlin",
                    "availability": [[1, 1080, 1200]],
                    "capacity": 1000,
                    "about": "",
                    "status": "active",
                    "term_end": iso(now + timedelta(days=365)),
                    "enrolled": iso(now),
                    "updated": iso(now),
                }
            )
        for number in range(1, requests + 1):
            invited = random.sample(range(mentors), INVITED_PER_REQUEST)
            store.save_request(
                {
                    "number": number,
                    "mentee": f"mentee{number}@example.net",
                    "name": f"Mentee {number}",
                    "skills": ["python"],
                    "details": "I would like a review of my first Python project. " * 3,
                    "timezone": "America/New_York",
                    "timezone_text": "EST",
                    "availability": [[1, 720, 840]],
                    "status": "open",
                    "created": iso(now),
                    "updated": iso(now),
                    "invited": [
                        {"email": f"mentor{m}@example.com", "at": iso(now)} for m in invited
                    ],
                }
            )


def _load(
    urls_get: list[tuple[str, dict[str, str]]],
    urls_post: list[tuple[str, dict[str, str]]],
    get_clients: int,
    post_clients: int,
    posts_done: Any,
    stop_gets: Any,
    conn: Any,
) -> None:
    """The load generator, in its own process: GET and POST clients at the same time.

    POST clients press each button once; GET clients open the pages round and round
    until ``stop_gets`` (an Event the server sets). ``posts_done`` is set when the last
    POST is answered."""
    import aiohttp

    async def measured(
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        form: dict[str, str],
        latencies: list[float],
        statuses: dict[int, int],
    ) -> None:
        start = time.perf_counter()
        # A POST carries the page's form token, as the browser's button does.
        async with session.request(method, url, data=form or None) as response:
            await response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
        latencies.append(time.perf_counter() - start)

    async def posts(session: aiohttp.ClientSession) -> dict[str, Any]:
        queue = list(reversed(urls_post))
        latencies: list[float] = []
        statuses: dict[int, int] = {}

        async def worker() -> None:
            while queue:
                url, form = queue.pop()
                await measured(session, "POST", url, form, latencies, statuses)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(post_clients)))
        elapsed = time.perf_counter() - began
        posts_done.set()
        return {"latencies": latencies, "elapsed": elapsed, "statuses": statuses}

    async def gets(session: aiohttp.ClientSession) -> dict[str, Any]:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        # GETs sent before the last POST's answer, and after it
        during_posts: list[float] = []
        after_posts: list[float] = []
        turn = 0

        async def worker() -> None:
            nonlocal turn
            while not stop_gets.is_set():
                url, form = urls_get[turn % len(urls_get)]
                turn += 1
                posting = not posts_done.is_set()
                await measured(session, "GET", url, form, latencies, statuses)
                (during_posts if posting else after_posts).append(latencies[-1])

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(get_clients)))
        elapsed = time.perf_counter() - began
        return {
            "latencies": latencies,
            "elapsed": elapsed,
            "statuses": statuses,
            "during_posts": during_posts,
            "after_posts": after_posts,
        }

    async def main() -> None:
        connector = aiohttp.TCPConnector(limit=get_clients + post_clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            got, posted = await asyncio.gather(gets(session), posts(session))
        conn.send({"GET": got, "POST": posted})

    asyncio.run(main())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def drive(
    args: argparse.Namespace,
    get_urls: list[tuple[str, dict[str, str]]],
    post_urls: list[tuple[str, dict[str, str]]],
    settled: Callable[[], Awaitable[bool]],
) -> dict[str, Any]:
    """Run the load; GETs stop once the POSTs are answered and ``settled()`` says the
    work they caused is done (polled every 50 ms). Adds when each happened (s)."""
    parent, child = mp.Pipe()
    posts_done, stop_gets = mp.Event(), mp.Event()
    process = mp.Process(
        target=_load,
        args=(
            get_urls,
            post_urls,
            args.get_clients,
            args.post_clients,
            posts_done,
            stop_gets,
            child,
        ),
    )
    began = time.perf_counter()
    process.start()
    while not posts_done.is_set():
        await asyncio.sleep(0.05)
    answered = time.perf_counter() - began
    while not await settled():
        await asyncio.sleep(0.05)
    stop_gets.set()
    results: dict[str, Any] = await asyncio.to_thread(parent.recv)
    await asyncio.to_thread(process.join)
    results["posts_answered_s"] = answered
    results["settled_s"] = time.perf_counter() - began
    return results


async def serve_and_measure(args: argparse.Namespace, sink: Any) -> dict[str, Any]:
    """mentordesk as the daemon runs it: web, store writer, timers and the outbox sending
    to a real SMTP server; a claim books a session."""
    import aiohttp

    from mentordesk.daemon import Daemon

    with tempfile.TemporaryDirectory(prefix="md-claims-") as tmp:
        port = free_port()
        config_path = Path(tmp) / "config.toml"
        (Path(tmp) / "in").mkdir()
        config_path.write_text(
            f'[program]\nname = "Bench"\naddress = "mentors@program.test"\n'
            f'coordinator = "coord@program.test"\nbase_url = "http://127.0.0.1:{port}"\n'
            f'[inbox]\nkind = "maildir"\npath = "{Path(tmp) / "in"}"\n'
            f'[smtp]\nkind = "smtp"\nhost = "127.0.0.1"\nport = {sink.port}\ntls = "none"\n'
            f'[web]\nhost = "127.0.0.1"\nport = {port}\n'
            f'[state]\npath = "{Path(tmp) / "state.json"}"\nfsync = true\n',
            encoding="utf-8",
        )
        config = load_config(config_path, environ={"MENTORDESK_SECRET": "bench-" * 4})
        now = datetime.now(UTC)
        store = Store(config.state.path, fsync=False)
        seed(store, args.mentors, args.requests, now)
        requests = [store.request(n) for n in range(1, args.requests + 1)]
        store.close()
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        await daemon.ready.wait()
        assert daemon.coordinator is not None
        links = daemon.coordinator.claims.links
        get_urls = [
            (links("claim", random.choice(r["invited"])["email"], str(r["number"]), now), {})
            for r in random.choices([r for r in requests if r], k=args.gets)
        ]
        post_urls: list[tuple[str, dict[str, str]]] = []
        for r in requests[: args.posts // INVITED_PER_REQUEST]:
            assert r is not None
            for invited in r["invited"]:
                url = links("claim", invited["email"], str(r["number"]), now)
                granted = verify(config.secret, url.rsplit("/", 1)[1], purpose="claim", now=now)
                post_urls.append((url, {FORM_FIELD: form_token(config.secret, granted)}))
        random.shuffle(post_urls)
        writer = daemon.writer
        contested = [int(r["number"]) for r in requests[: args.posts // INVITED_PER_REQUEST] if r]

        async def settled() -> bool:
            """Are the introductions, notices and booking of every winning claim stored?
            (Asked of the committed state, not of the writer: asking must not add work.
            A mentordesk without that view is asked through its writer.)"""
            committed = getattr(writer, "committed", None)
            if committed is None:
                store = daemon._store()
                return not await writer.call(
                    lambda: any((store.request(n) or {}).get("effects_due") for n in contested)
                )
            return not any((committed.request(n) or {}).get("effects_due") for n in contested)

        # Warm-up, as a running daemon is: the sweep that runs at start (building the
        # sweep's indexes) is over, and the claim page's template is compiled.
        assert daemon.timers is not None
        await asyncio.sleep(0.2)
        await daemon.timers.sweep()
        async with aiohttp.ClientSession() as session, session.get(get_urls[0][0]) as page:
            assert page.status == 200, page.status
        groups, jobs = getattr(writer, "groups", 0), getattr(writer, "jobs", 0)
        results = await drive(args, get_urls, post_urls, settled)
        results["groups"] = getattr(writer, "groups", 0) - groups
        results["jobs"] = getattr(writer, "jobs", 0) - jobs
        results["emails_arrived"] = (await asyncio.to_thread(sink.count))[1]
        won = await writer.call(
            lambda: sum(1 for r in daemon._store().requests() if request_status(r).held)
        )
        stored = await writer.call(daemon._store().outbox)
        results["emails_stored"] = len(stored)
        # (a sent email's draft or bytes are let go: the unsent ones tell)
        unsent = [doc for doc in stored if doc.get("status") != "sent"]
        results["unsent"] = len(unsent)
        results["unsent_drafts"] = sum(1 for doc in unsent if DRAFT in doc)
        daemon.stop()
        await task
        results["won"] = won
        results["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return results


async def bare_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """A bare aiohttp server under the same load: GET returns a fixed page, POST appends
    one line to a file and fsyncs it (in a thread, as the store's writer does)."""
    from aiohttp import web

    with tempfile.TemporaryDirectory(prefix="md-claims-bare-") as tmp:
        log = open(Path(tmp) / "claims.log", "ab")  # noqa: SIM115  # closed below
        page = b"<!doctype html><title>Claim</title><form method=post><button>Claim</button>"

        def append(line: bytes) -> None:
            log.write(line)
            log.flush()
            os.fsync(log.fileno())

        async def get(request: web.Request) -> web.Response:
            return web.Response(body=page * 20, content_type="text/html")

        async def post(request: web.Request) -> web.Response:
            form = await request.post()
            line = f"{request.match_info['token']} {form.get(FORM_FIELD, '')}\n".encode()
            await asyncio.to_thread(append, line)
            return web.Response(body=page, content_type="text/html")

        app = web.Application()
        app.router.add_get("/claim/{token}", get)
        app.router.add_post("/claim/{token}", post)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}/claim/"
        get_urls = [(f"{base}g{n}", {}) for n in range(args.gets)]
        post_urls = [(f"{base}p{n}", {FORM_FIELD: "x" * 40}) for n in range(args.posts)]

        async def answered() -> bool:
            return True  # nothing follows a POST here

        try:
            return await drive(args, get_urls, post_urls, answered)
        finally:
            await runner.cleanup()
            log.close()


def summary(run: dict[str, Any]) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) of one method's run (NaN with no clients)."""
    lat = run["latencies"]
    if not lat:
        return math.nan, math.nan, math.nan
    return (
        len(lat) / run["elapsed"],
        statistics.median(lat) * 1000,
        percentile(lat, 0.99) * 1000,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--get-clients", type=int, default=25, help="concurrent GET clients")
    parser.add_argument("--post-clients", type=int, default=25, help="concurrent POST clients")
    parser.add_argument(
        "--gets", type=int, default=10_000, help="distinct GET links (opened round and round)"
    )
    parser.add_argument(
        "--posts", type=int, default=2_000, help="POST presses (10 per contested request)"
    )
    parser.add_argument("--mentors", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=1_000)
    args = parser.parse_args()
    if args.posts < INVITED_PER_REQUEST or args.posts > args.requests * INVITED_PER_REQUEST:
        parser.error(f"--posts: from {INVITED_PER_REQUEST} to 10 × --requests")
    from intake import Sink  # the intake benchmark's SMTP server, in its own process

    sink = Sink()
    try:
        results = event_loop.run(serve_and_measure(args, sink))
    finally:
        sink.stop()
    bare = event_loop.run(bare_baseline(args))  # on the same loop

    print(
        f"\nClaim endpoint: {args.get_clients} GET and {args.post_clients} POST clients at "
        "once, from a separate process; the daemon's web, writer, timers and outbox "
        "sending to an SMTP server. GETs go on until the last POST is answered and every "
        f"won claim's effects are stored. Both servers on the {event_loop.loop_name()} event "
        "loop, the load generator on asyncio's."
    )
    print(f"{'':22} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for name, runs in (("mentordesk", results), ("bare aiohttp + fsync", bare)):
        for method in ("GET", "POST"):
            rate, p50, p99 = summary(runs[method])
            print(
                f"{name:<16} {method:<5} {len(runs[method]['latencies']):>9} {rate:>8.0f} "
                f"{p50:>8.1f} {p99:>8.1f}  {dict(sorted(runs[method]['statuses'].items()))}"
            )
    contested = args.posts // INVITED_PER_REQUEST
    print()
    for method in ("GET", "POST"):
        rate, _, p99 = summary(results[method])
        bare_rate, _, bare_p99 = summary(bare[method])
        print(
            f"{method} p99 {p99:>7.1f} ms   target < {TARGET_P99_MS:g} ms   "
            f"bare {bare_p99:.1f} ms ({p99 / bare_p99:.1f}×; throughput "
            f"{rate / bare_rate:.2f}× bare)   {'MET' if p99 < TARGET_P99_MS else 'MISSED'}"
        )
    during, after = results["GET"]["during_posts"], results["GET"]["after_posts"]
    print(
        f"GET p99 while the POSTs went on {percentile(during, 0.99) * 1000:.1f} ms "
        f"({len(during)} GETs); after them, while their effects were stored "
        f"{percentile(after, 0.99) * 1000 if after else math.nan:.1f} ms ({len(after)} GETs)"
    )
    get_rate = summary(results["GET"])[0]
    print(
        f"GET throughput {get_rate:.0f}/s   target ≥ {TARGET_GET_PER_S:g}/s   "
        f"bare {summary(bare['GET'])[0]:.0f}/s   "
        f"{'MET' if get_rate >= TARGET_GET_PER_S else 'MISSED'}"
    )
    first_presses = results["POST"]["statuses"].get(200, 0)
    one_each = results["won"] == contested == first_presses
    print(
        f"winners {results['won']} of {contested} contested requests "
        f"({INVITED_PER_REQUEST} POSTs each; {first_presses} answered 200): exactly one each "
        f"{'MET' if one_each else 'WRONG'}"
    )
    print(
        f"the last POST answered after {results['posts_answered_s']:.1f} s; every claim's "
        f"effects stored after {results['settled_s']:.1f} s; {results['emails_stored']} "
        f"emails stored, {results['emails_arrived']} arrived at the SMTP server by then; "
        f"{results['unsent_drafts']} of the {results['unsent']} not sent yet are drafts"
    )
    if results["groups"]:
        print(
            f"writer: {results['jobs']} jobs in {results['groups']} group commits "
            f"({results['jobs'] / results['groups']:.1f} jobs per fdatasync)"
        )
    print(f"peak RSS {results['rss_mb']:.0f} MB (server process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
