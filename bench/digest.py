"""The coordinator's digest over a big program: 10,000 open requests and 2,000 mentors.

    .venv/bin/python bench/digest.py                 # the state of issue 5, 5 runs
    .venv/bin/python bench/digest.py --open 20000 --runs 3

Builds a state like a busy program's after a couple of months: ``--mentors`` mentors,
``--open`` open requests waiting (some escalated), ``--history`` requests claimed over
the last eight weeks with their sessions, audit events, processed messages and sent
mail, plus a day's worth of new events for the digest to report. Then it times, on the
store the daemon would hold:

* ``compute_digest`` — reading the store into the digest's data (the pure half);
* ``send_digest`` — the whole daily job: data, both templates, MIME, the outbox write.

Prints the median and the slowest of ``--runs`` runs against the target of issue 5
(the digest for that state under 1 s). Asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mentordesk.config import load_config  # noqa: E402
from mentordesk.core import Coordinator  # noqa: E402
from mentordesk.flows.digest import compute_digest  # noqa: E402
from mentordesk.flows.digest_mail import send_digest  # noqa: E402
from mentordesk.mailer.compose import Renderer  # noqa: E402
from mentordesk.state.store import Store, iso  # noqa: E402

TARGET_S = 1.0
SKILLS = ["python", "javascript", "career advice", "devops", "data science", "go", "java"]


def seed(store: Store, *, mentors: int, open_requests: int, history: int, now: datetime) -> None:
    rng = random.Random(5)
    emails = [f"mentor{n}@example.com" for n in range(mentors)]
    with store.transaction():
        for n, email in enumerate(emails):
            store.save_mentor(
                {
                    "email": email,
                    "name": f"Mentor {n}",
                    "skills": rng.sample(SKILLS, 2),
                    "timezone": "Europe/Berlin",
                    "availability": [[1, 1080, 1200], [5, 600, 720]],
                    "capacity": rng.choice([1, 2, 3, 4]),
                    "about": "Backend engineer.",
                    "status": rng.choices(["active", "paused", "resigned"], [90, 7, 3])[0],
                    "term_end": iso(now + timedelta(days=rng.randint(-30, 700))),
                    "enrolled": iso(now - timedelta(days=400)),
                    "updated": iso(now),
                }
            )
    number = 0

    def request(status: str, created: datetime, **extra: object) -> None:
        nonlocal number
        number += 1
        store.save_request(
            {
                "number": number,
                "mentee": f"mentee{number}@example.net",
                "name": f"Mentee {number}",
                "skills": rng.sample(SKILLS, 1),
                "details": "I would like a review of my first project and advice. " * 3,
                "timezone": "America/New_York",
                "availability": [[1, 720, 840]],
                "status": status,
                "created": iso(created),
                "opened": iso(created),
                "updated": iso(created),
                "invited": [{"email": e, "at": iso(created)} for e in rng.sample(emails, 3)],
                **extra,
            }
        )
        store.audit("request opened", now=created, request=number, mentee=f"m{number}")

    with store.transaction():
        for _ in range(open_requests):
            created = now - timedelta(hours=rng.uniform(0, 24 * 20))
            escalated = now - created > timedelta(days=10)
            request("open", created, ladder={"escalate": iso(now)} if escalated else {})
            if escalated and rng.random() < 0.05:
                store.audit("ladder escalate", now=now - timedelta(hours=2), request=number)
    with store.transaction():
        for _ in range(history):
            created = now - timedelta(hours=rng.uniform(0, 24 * 56))
            claimed_at = created + timedelta(hours=rng.uniform(1, 120))
            if claimed_at > now:
                claimed_at = now - timedelta(minutes=5)
            mentor = rng.choice(emails)
            request(
                rng.choice(["claimed", "done"]),
                created,
                claimed_by=mentor,
                claimed_at=iso(claimed_at),
            )
            store.audit("claimed", now=claimed_at, request=number, mentor=mentor, via="web")
            start = claimed_at + timedelta(days=2)
            store.save_session(
                {
                    "uid": f"s{number}@bench",
                    "request": number,
                    "mentor": mentor,
                    "mentee": f"mentee{number}@example.net",
                    "start": iso(start),
                    "end": iso(start + timedelta(minutes=30)),
                    "sequence": 0,
                    "status": "done" if start < now else "confirmed",
                    "answers": {},
                    "created": iso(claimed_at),
                    "updated": iso(claimed_at),
                }
            )
    with store.transaction():
        for n in range(history * 3):
            at = now - timedelta(hours=rng.uniform(0, 24 * 56))
            store.record_message(f"<in{n}@client>", key=f"k{n}", kind="request", now=at)
        for n in range(history * 3):
            at = now - timedelta(hours=rng.uniform(0, 24 * 56))
            item = store.enqueue(
                message_id=f"<out{n}@program.test>",
                sender="mentors@program.test",
                recipients=[f"mentee{n}@example.net"],
                data=b"x" * 200,
                kind="request_ack",
                now=at,
            )
            store.mark_sent(item, at)
    store.set_meta("digest", {"day": "", "at": iso(now - timedelta(days=1))})


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mentors", type=int, default=2_000)
    parser.add_argument("--open", type=int, default=10_000, help="open requests")
    parser.add_argument("--history", type=int, default=5_000, help="claimed requests")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="md-digest-") as tmp:
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(
            '[program]\nname = "Bench"\naddress = "mentors@program.test"\n'
            'coordinator = "coord@program.test"\ntimezone = "America/New_York"\n'
            "[state]\nfsync = false\n",
            encoding="utf-8",
        )
        config = load_config(config_path, environ={"MENTORDESK_SECRET": "bench-" * 4})
        now = datetime.now(UTC)
        store = Store(config.state.path, fsync=False)
        began = time.perf_counter()
        seed(store, mentors=args.mentors, open_requests=args.open, history=args.history, now=now)
        seeded_s = time.perf_counter() - began
        coordinator = Coordinator(config, store, Renderer())

        computes, sends = [], []
        digest = None
        for run in range(args.runs):
            began = time.perf_counter()
            digest = compute_digest(store, config, now, now - timedelta(days=1))
            computes.append(time.perf_counter() - began)
            store.set_meta("digest", {"day": "", "at": iso(now - timedelta(days=1))})
            began = time.perf_counter()
            assert send_digest(coordinator, now + timedelta(seconds=run)) == 1
            sends.append(time.perf_counter() - began)
        store.close()

    assert digest is not None
    print(
        f"\nDigest over {args.mentors:,} mentors, {args.open:,} open requests, "
        f"{args.history:,} claimed ones with sessions (seeded in {seeded_s:.1f} s)"
    )
    print(
        f"  reports {digest.waiting.count:,} waiting, "
        f"{sum(s.count for s in digest.happened):,} events since yesterday, "
        f"{len(digest.weeks)} weeks in the chart"
    )
    print(f"{'':16} {'median ms':>10} {'max ms':>8}")
    for name, times in (("compute_digest", computes), ("send_digest", sends)):
        print(f"{name:16} {statistics.median(times) * 1000:>10.0f} {max(times) * 1000:>8.0f}")
    worst = max(sends)
    verdict = "ok" if worst < TARGET_S else "OVER TARGET"
    print(f"target: the whole digest under {TARGET_S:.0f} s — slowest run {worst:.2f} s: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
