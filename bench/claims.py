"""Claim endpoint benchmark: GET and POST under load from a separate process.

    .venv/bin/python bench/claims.py                # 50 clients, 10,000 GETs, 2,000 POSTs
    .venv/bin/python bench/claims.py --clients 20

This process runs mentordesk's web endpoint (the same WebApp, store writer and claim
logic as the daemon) over a state of --mentors mentors and --requests open requests,
each offered to 10 mentors. A second process (aiohttp client, --clients concurrent
connections) opens claim links (GET: the page) and presses the button (POST: the first
press on a request wins, later ones get "already taken"). It prints throughput and
latency percentiles against the targets of issue 3: ≥ 500 GET/s and p99 < 50 ms on the
2-core machine. Matching speed (10,000 mentors, < 20 ms) is bench/matching.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mentordesk.config import load_config  # noqa: E402
from mentordesk.flows.desks import build_desks  # noqa: E402
from mentordesk.mailer.compose import Renderer  # noqa: E402
from mentordesk.state.records import request_status  # noqa: E402
from mentordesk.state.store import Store, StoreWriter, iso  # noqa: E402
from mentordesk.tokens import FORM_FIELD, form_token, verify  # noqa: E402
from mentordesk.web import WebApp  # noqa: E402
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
    urls_get: list[str], urls_post: list[tuple[str, dict[str, str]]], clients: int, conn: Any
) -> None:
    """The load generator, in its own process."""
    import aiohttp

    async def run(method: str, urls: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
        queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue()
        for url in urls:
            queue.put_nowait(url)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def worker() -> None:
                while not queue.empty():
                    url, form = queue.get_nowait()
                    start = time.perf_counter()
                    # A POST carries the page's form token, as the browser's button does.
                    async with session.request(method, url, data=form or None) as response:
                        await response.read()
                        statuses[response.status] = statuses.get(response.status, 0) + 1
                    latencies.append(time.perf_counter() - start)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            elapsed = time.perf_counter() - began
        return {"latencies": latencies, "elapsed": elapsed, "statuses": statuses}

    async def main() -> None:
        gets = [(url, {}) for url in urls_get]
        conn.send({"GET": await run("GET", gets), "POST": await run("POST", urls_post)})

    asyncio.run(main())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def serve_and_measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="md-claims-") as tmp:
        port = free_port()
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(
            f'[program]\nname = "Bench"\naddress = "mentors@program.test"\n'
            f'coordinator = "coord@program.test"\nbase_url = "http://127.0.0.1:{port}"\n'
            f'[web]\nhost = "127.0.0.1"\nport = {port}\n[state]\nfsync = true\n',
            encoding="utf-8",
        )
        config = load_config(config_path, environ={"MENTORDESK_SECRET": "bench-" * 4})
        now = datetime.now(UTC)
        writer = StoreWriter(lambda: Store(config.state.path, fsync=config.state.fsync))
        await writer.start()
        store = writer.store
        assert store is not None
        await writer.call(seed, store, args.mentors, args.requests, now)
        # The real desks, as the daemon builds them: a claim books a session too.
        claims = build_desks(config, store, Renderer()).claims
        app = WebApp(config, writer, lambda: claims, lambda: datetime.now(UTC))
        await app.start()

        requests = [store.request(n) for n in range(1, args.requests + 1)]
        get_urls = [
            claims.links("claim", random.choice(r["invited"])["email"], str(r["number"]), now)
            for r in random.choices([r for r in requests if r], k=args.gets)
        ]
        post_urls: list[tuple[str, dict[str, str]]] = []
        for r in requests[: args.posts // INVITED_PER_REQUEST]:
            assert r is not None
            for invited in r["invited"]:
                url = claims.links("claim", invited["email"], str(r["number"]), now)
                granted = verify(config.secret, url.rsplit("/", 1)[1], purpose="claim", now=now)
                post_urls.append((url, {FORM_FIELD: form_token(config.secret, granted)}))
        random.shuffle(post_urls)

        parent, child = mp.Pipe()
        process = mp.Process(target=_load, args=(get_urls, post_urls, args.clients, child))
        process.start()
        results: dict[str, Any] = await asyncio.to_thread(parent.recv)
        await asyncio.to_thread(process.join)
        won = sum(1 for r in store.requests() if request_status(r).held)
        await app.stop()
        await writer.close()
        results["won"] = won
        results["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections")
    parser.add_argument("--gets", type=int, default=10_000, help="GET requests")
    parser.add_argument("--posts", type=int, default=2_000, help="POST requests")
    parser.add_argument("--mentors", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=1_000)
    args = parser.parse_args()
    results = asyncio.run(serve_and_measure(args))

    print(f"\nClaim endpoint, {args.clients} concurrent clients from a separate process")
    print(f"{'':6} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for method in ("GET", "POST"):
        run = results[method]
        lat = run["latencies"]
        print(
            f"{method:6} {len(lat):>9} {len(lat) / run['elapsed']:>8.0f} "
            f"{statistics.median(lat) * 1000:>8.1f} {percentile(lat, 0.99) * 1000:>8.1f}  "
            f"{dict(sorted(run['statuses'].items()))}"
        )
    get = results["GET"]
    get_rate = len(get["latencies"]) / get["elapsed"]
    get_p99 = percentile(get["latencies"], 0.99) * 1000
    post_p99 = percentile(results["POST"]["latencies"], 0.99) * 1000
    contested = args.posts // INVITED_PER_REQUEST
    print()
    print(
        f"GET throughput  {get_rate:.0f}/s   target ≥ {TARGET_GET_PER_S:g}/s   "
        f"{'OK' if get_rate >= TARGET_GET_PER_S else 'MISSED'}"
    )
    print(
        f"GET p99         {get_p99:.1f} ms   target < {TARGET_P99_MS:g} ms   "
        f"{'OK' if get_p99 < TARGET_P99_MS else 'MISSED'}"
    )
    print(
        f"POST p99        {post_p99:.1f} ms   target < {TARGET_P99_MS:g} ms   "
        f"{'OK' if post_p99 < TARGET_P99_MS else 'MISSED'}"
    )
    print(
        f"winners         {results['won']} of {contested} contested requests "
        f"({INVITED_PER_REQUEST} POSTs each): exactly one each = "
        f"{'OK' if results['won'] == contested else 'WRONG'}"
    )
    print(f"peak RSS        {results['rss_mb']:.0f} MB (server process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
