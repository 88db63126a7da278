"""Calendar benchmark: slot finding and invitation building (prints, never asserts).

    .venv/bin/python bench/calendar_bench.py
    .venv/bin/python bench/calendar_bench.py --rounds 5000

- slot finding for a mentor with 200 booked sessions (New York, evenings and weekends)
  and a mentee in Berlin, including the busy list's sort: mean and p99 per call,
  target < 5 ms;
- building and serialising one invitation (single session; weekly series with its
  VTIMEZONE): mean and p99, target < 2 ms; and, for information, the one-off cost of a
  zone's first VTIMEZONE in a process.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from mentordesk.calendar import invite  # noqa: E402
from mentordesk.calendar.invite import (  # noqa: E402
    Attendee,
    EventHead,
    WeeklyTime,
    series_request,
    session_request,
)
from mentordesk.calendar.slots import Busy, candidate_slots, find_slot  # noqa: E402

SLOT_TARGET_MS = 5.0
INVITE_TARGET_MS = 2.0
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)
NY, BERLIN = "America/New_York", "Europe/Berlin"
# Weekday evenings and weekend mornings in New York; the mentee in Berlin is free on
# weekend afternoons (the mentor's weekend mornings) and weekday mornings (no overlap).
MENTOR = [(d, 18 * 60, 21 * 60) for d in range(5)] + [(5, 9 * 60, 13 * 60), (6, 9 * 60, 13 * 60)]
MENTEE = [(5, 14 * 60, 20 * 60), (6, 14 * 60, 20 * 60)] + [(d, 7 * 60, 9 * 60) for d in range(5)]
PEOPLE = [Attendee("alex@example.org", "Alex Mentor"), Attendee("dana@example.net", "Dana M")]
ORGANIZER = Attendee("mentors@program.org", "Code Mentors")


def measure(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Mean and p99 wall time of ``call`` in milliseconds."""
    call()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.fmean(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def report(label: str, mean: float, p99: float, target: float | None) -> None:
    if target is None:
        verdict = "once per zone and years per process, then cached"
    else:
        verdict = f"target < {target} ms: " + ("ok" if p99 < target else "OVER TARGET")
    print(f"{label:<58} mean {mean:7.3f} ms   p99 {p99:7.3f} ms   ({verdict})")


def booked_sessions() -> list[Busy]:
    """200 sessions: 140 in the past half year, then the next 60 free slots, shuffled."""
    half_hour = timedelta(minutes=30)
    past = candidate_slots(
        MENTOR,
        NY,
        [],
        None,
        [],
        NOW - timedelta(days=182),
        notice=timedelta(0),
        limit=140,
        horizon=timedelta(days=180),
    )
    upcoming = candidate_slots(MENTOR, NY, [], None, [], NOW, limit=60)
    busy = [Busy(start, start + half_hour) for start in past + upcoming]
    random.Random(42).shuffle(busy)
    return busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()

    busy = booked_sessions()

    def first_slot() -> datetime | None:
        return find_slot(MENTOR, NY, MENTEE, BERLIN, busy, NOW)

    def free_mentor_slot() -> datetime | None:
        return find_slot(MENTOR, NY, [], None, busy, NOW)

    def ten_slots() -> list[datetime]:
        return candidate_slots(MENTOR, NY, MENTEE, BERLIN, busy, NOW, limit=10)

    print(
        f"mentor with {len(busy)} booked sessions: first shared slot {first_slot()}, "
        f"first mentor slot {free_mentor_slot()}"
    )
    report(
        "find_slot: 200 busy, NY mentor + Berlin mentee",
        *measure(first_slot, args.rounds),
        SLOT_TARGET_MS,
    )
    report(
        "find_slot: 200 busy, mentee without windows",
        *measure(free_mentor_slot, args.rounds),
        SLOT_TARGET_MS,
    )
    report(
        "candidate_slots(limit=10): 200 busy, NY + Berlin",
        *measure(ten_slots, args.rounds),
        SLOT_TARGET_MS,
    )

    start = datetime(2026, 3, 10, 23, tzinfo=UTC)

    def single() -> bytes:
        return session_request(
            EventHead("u@program.org", 0, "Mentoring session", ORGANIZER, PEOPLE, NOW),
            start,
            timedelta(minutes=30),
            description="Your first session.",
            location="https://meet.example.org/x",
        )

    def weekly() -> bytes:
        return series_request(
            EventHead("s@program.org", 0, "Office hours", ORGANIZER, PEOPLE, NOW),
            WeeklyTime(
                datetime(2026, 3, 3, 18, tzinfo=ZoneInfo("America/New_York")),
                timedelta(hours=1),
                None,
            ),
            description="Drop in.",
            location="https://meet.example.org/oh",
        )

    def weekly_cold() -> bytes:
        invite._observances.cache_clear()
        invite._vtimezone_ical.cache_clear()
        return weekly()

    print(
        f"single-session invitation: {len(single())} bytes; "
        f"weekly series with VTIMEZONE: {len(weekly())} bytes"
    )
    report("session_request: build + serialise", *measure(single, args.rounds), INVITE_TARGET_MS)
    report(
        "series_request: build + serialise (VTIMEZONE rules cached)",
        *measure(weekly, args.rounds),
        INVITE_TARGET_MS,
    )
    report(
        "series_request: first use of a zone (VTIMEZONE computed)",
        *measure(weekly_cold, max(args.rounds // 20, 10)),
        None,
    )


if __name__ == "__main__":
    main()
