"""Timer sweep benchmark: the daemon's periodic sweep over a large program.

    .venv/bin/python bench/sweep.py                     # 10,000 open requests, 2,000 mentors
    .venv/bin/python bench/sweep.py --requests 20000 --rounds 50

The state is a program in its steady state: --requests open requests opened evenly over
the last --spread days, each with the ladder rungs already done that its age calls for,
and --mentors mentors whose terms end evenly over the next two years (reminded where
due). So a sweep a minute later finds what a real one does: nearly nothing, plus the
few requests and mentors that crossed a threshold in that minute.

It runs the daemon's own ``timers.Scheduler`` with every registered step (the ladder,
terms and every other step ``mentordesk.flows.steps`` registers) through the store's writer
thread, and prints wall-clock figures for:

- the steady sweep, one minute apart (target: under 200 ms, issue 5);
- the decision alone (``plan_climb`` over every open request);
- a sweep after an hour of downtime, which has real work to do (emails rendered and
  stored), for scale;
- the coordinator's daily digest over the same state (target: under 1 s, issue 5;
  bench/digest.py times it over a state with weeks of history as well).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mentordesk import event_loop  # noqa: E402
from mentordesk.config import Config, load_config  # noqa: E402
from mentordesk.core import Coordinator  # noqa: E402
from mentordesk.flows.digest_mail import send_digest  # noqa: E402
from mentordesk.flows.ladder import Ladder, plan_climb  # noqa: E402
from mentordesk.flows.steps import register_steps  # noqa: E402
from mentordesk.mailer.compose import Renderer  # noqa: E402
from mentordesk.state.store import Store, StoreWriter, iso  # noqa: E402
from mentordesk.timers import Registry, Scheduler  # noqa: E402

TARGET_MS = 200.0
DIGEST_TARGET_MS = 1000.0
SKILLS = ["python", "javascript", "career advice", "devops", "data science", "design"]


def seed(store: Store, config: Config, args: argparse.Namespace, now: datetime) -> None:
    ladder = Ladder.from_config(config.timers)
    notice = config.timers.renewal_notice
    with store.transaction():
        for n in range(args.mentors):
            term_end = now + timedelta(days=730 * (n + 0.5) / args.mentors)
            doc: dict[str, Any] = {
                "email": f"mentor{n}@example.com",
                "name": f"Mentor {n}",
                "skills": [SKILLS[n % len(SKILLS)], SKILLS[(n * 7 + 1) % len(SKILLS)]],
                "timezone": "Europe/Berlin",
                "availability": [[1, 1080, 1200], [5, 600, 720]],
                "capacity": 4,
                "about": "",
                "status": "active" if n % 10 else "paused",
                "term_end": iso(term_end),
                "enrolled": iso(now - timedelta(days=100)),
                "updated": iso(now),
            }
            if term_end - notice <= now:
                doc["term_reminded"] = iso(term_end)
            store.save_mentor(doc)
        spread = timedelta(days=args.spread)
        for number in range(1, args.requests + 1):
            opened = now - spread * (number - 0.5) / args.requests
            age = now - opened
            invited = [
                {
                    "email": f"mentor{(number * 3 + k) % args.mentors}@example.com",
                    "at": iso(opened),
                    "message_id": f"<inv-{number}-{k}@program.test>",
                }
                for k in range(3)
            ]
            store.save_request(
                {
                    "number": number,
                    "mentee": f"mentee{number}@example.net",
                    "name": f"Mentee {number}",
                    "skills": [SKILLS[number % len(SKILLS)]],
                    "details": "I would like a review of my first project and some advice. " * 3,
                    "timezone": "America/New_York",
                    "availability": [[1, 720, 840]],
                    "status": "open",
                    "created": iso(opened),
                    "opened": iso(opened),
                    "updated": iso(opened),
                    "subject": "Mentor request",
                    "source": f"<req-{number}@client.test>",
                    "invited": invited,
                    "ladder": {rung: iso(now) for rung, after in ladder.rungs if age >= after},
                }
            )
        store.set_meta("next_request", args.requests + 1)


def timed_registry(durations: dict[str, list[float]]) -> Registry:
    """The registered steps, each wrapped to record how long it takes."""
    steps = register_steps(Registry())
    registry = Registry()

    def timed(name: str, fn: Callable[[Any, datetime], int]) -> Callable[[Any, datetime], int]:
        def step(coordinator: Any, now: datetime) -> int:
            began = time.perf_counter()
            try:
                return fn(coordinator, now)
            finally:
                durations.setdefault(name, []).append(time.perf_counter() - began)

        step.__qualname__ = f"timed_{name}"
        return step

    for name, fn in steps.sweep_steps.items():
        registry.register_sweep_step(name, timed(name, fn))
    for name, job in steps.calendar_jobs.items():
        if job.on is None:
            registry.register_daily(name, timed(name, job.fn), at=job.at)
        else:
            assert job.grace is not None
            registry.register_yearly(
                name, timed(name, job.fn), on=job.on, at=job.at, grace=job.grace
            )
    return registry


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


async def run(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="md-sweep-") as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(
            '[program]\nname = "Bench"\naddress = "mentors@program.test"\n'
            'coordinator = "coord@program.test"\nescalation = ["boss@program.test"]\n'
            f'timezone = "America/New_York"\n[state]\nfsync = {str(args.fsync).lower()}\n',
            encoding="utf-8",
        )
        config = load_config(path, environ={"MENTORDESK_SECRET": "bench-" * 4})
        now = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)  # a Monday; no digest or survey due
        writer = StoreWriter(lambda: Store(config.state.path, fsync=config.state.fsync))
        await writer.start()
        store = writer.store
        assert store is not None
        began = time.perf_counter()
        await writer.call(seed, store, config, args, now)
        print(
            f"state: {args.requests:,} open requests over {args.spread} days, "
            f"{args.mentors:,} mentors (seeded in {time.perf_counter() - began:.1f} s, "
            f"fsync={args.fsync})"
        )
        durations: dict[str, list[float]] = {}
        clock = [now]
        coordinator = Coordinator(config, store, Renderer())
        scheduler = Scheduler(
            config,
            writer,
            coordinator,
            lambda: clock[0],
            registry=timed_registry(durations),
            load=False,
        )
        await scheduler.sweep()  # the first: daily and yearly jobs take their baseline

        ladder = Ladder.from_config(config.timers)
        requests = store.requests(["open"])
        began = time.perf_counter()
        due = sum(1 for r in requests if plan_climb(r, ladder, now + timedelta(minutes=1)))
        decision = time.perf_counter() - began
        durations.clear()

        walls: list[float] = []
        actions = 0
        for _ in range(args.rounds):
            clock[0] += timedelta(minutes=1)
            began = time.perf_counter()
            done = await scheduler.sweep()
            walls.append(time.perf_counter() - began)
            actions += sum(done.values())
            if args.verbose:
                print(f"  {ms(walls[-1])}  {done}")
        steps = {name: statistics.median(values) for name, values in durations.items()}

        clock[0] += timedelta(hours=1)
        began = time.perf_counter()
        catch_up = await scheduler.sweep()
        catch_up_s = time.perf_counter() - began

        digests: list[float] = []
        for day in range(1, 4):  # one digest a day: each run is a new day's
            began = time.perf_counter()
            await writer.call(send_digest, coordinator, clock[0] + timedelta(days=day))
            digests.append(time.perf_counter() - began)
        await writer.close()

    median = statistics.median(walls)
    p90 = sorted(walls)[max(0, round(0.9 * len(walls)) - 1)]
    ok = median < TARGET_MS / 1000 and max(walls) < TARGET_MS / 1000
    print(f"steady sweep, {args.rounds} rounds a minute apart ({actions} emails in all):")
    print(
        f"  median {ms(median)}   p90 {ms(p90)}   max {ms(max(walls))}"
        f"   target < {TARGET_MS:.0f} ms"
    )
    for name, seconds in steps.items():
        print(f"    step {name:<26} median {ms(seconds)}")
    print(
        f"decision alone: plan_climb over {len(requests):,} requests {ms(decision)} "
        f"({decision / len(requests) * 1e6:.2f} µs each; {due} due a minute on)"
    )
    print(
        f"after an hour's downtime: {ms(catch_up_s)} for "
        + ", ".join(f"{name} {count}" for name, count in catch_up.items() if count)
        + " emails"
    )
    print(
        f"daily digest over this state: median {ms(statistics.median(digests))}"
        f"   max {ms(max(digests))}   target < {DIGEST_TARGET_MS:.0f} ms"
    )
    ok = ok and max(digests) < DIGEST_TARGET_MS / 1000
    print("OK" if ok else "TOO SLOW")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="open requests")
    parser.add_argument("--mentors", type=int, default=2_000, help="mentors")
    parser.add_argument("--spread", type=int, default=20, help="days the requests opened over")
    parser.add_argument("--rounds", type=int, default=30, help="sweeps to time")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sweep")
    parser.add_argument(
        "--no-fsync", dest="fsync", action="store_false", help="do not fsync commits"
    )
    return 0 if event_loop.run(run(parser.parse_args())) else 1


if __name__ == "__main__":
    raise SystemExit(main())
