"""Mentor ranking: who is left out, the order, and availability compared in real time."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mentordesk.flows.ranking import (
    Candidate,
    MatchInput,
    eligible,
    rank_mentors,
    weekly_overlap_minutes,
)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
ALL_WEEK = [[day, 0, 1440] for day in range(7)]
NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)  # a Monday, no clock change near it
# Friday before the US clocks go forward (Sunday 8 March 2026); the UK follows on 29 March.
BEFORE_US_CHANGE = datetime(2026, 3, 6, tzinfo=UTC)
# Friday before the US clocks go back (Sunday 1 November 2026).
BEFORE_US_FALL_BACK = datetime(2026, 10, 30, tzinfo=UTC)
NO_COUNTS = MatchInput(sessions_this_month={}, recent_sessions={})


def at(hour: int, minute: int = 0) -> int:
    return hour * 60 + minute


def mentor(email: str, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "email": email,
        "name": email.split("@")[0].title(),
        "skills": ["python"],
        "timezone": "UTC",
        "availability": [[TUE, at(18), at(20)]],
        "capacity": 2,
        "status": "active",
        "term_end": "2028-11-23T17:00:00+00:00",
    }
    doc.update(fields)
    return doc


def request(**fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "number": 42,
        "mentee": "mentee@example.net",
        "skills": ["python"],
        "timezone": "UTC",
        "availability": [[TUE, at(18), at(20)]],
        "details": "A review of my first Python project.",
    }
    doc.update(fields)
    return doc


def emails(candidates: Sequence[Candidate]) -> list[str]:
    return [candidate.email for candidate in candidates]


# --- who is a candidate -------------------------------------------------------------


def test_skill_overlap_outranks_everything_else() -> None:
    mentors = [
        mentor("fits-the-hours@example.org", skills=["python"]),
        mentor("knows-both@example.org", skills=["python", "sql"], availability=[]),
    ]
    ranked = rank_mentors(request(skills=["python", "sql"]), mentors, NOW, NO_COUNTS)
    assert emails(ranked) == ["knows-both@example.org", "fits-the-hours@example.org"]
    assert [(c.skill_overlap, c.overlap_minutes) for c in ranked] == [(2, 0), (1, 120)]


def test_mentors_without_a_shared_skill_are_left_out() -> None:
    mentors = [mentor("rustacean@example.org", skills=["rust", "c"])]
    assert rank_mentors(request(skills=["python"]), mentors, NOW, NO_COUNTS) == []


def test_request_without_skills_matches_nobody() -> None:
    assert rank_mentors(request(skills=[]), [mentor("a@example.org")], NOW, NO_COUNTS) == []


@pytest.mark.parametrize(
    ("fields", "sessions", "excluded"),
    [
        pytest.param({"status": "paused"}, 0, False, id="paused"),
        pytest.param({"status": "resigned"}, 0, False, id="resigned"),
        pytest.param({"term_end": "2026-01-01T00:00:00+00:00"}, 0, False, id="term-ended"),
        pytest.param({"term_end": NOW.isoformat()}, 0, False, id="term-ends-now"),
        pytest.param({"term_end": "next spring"}, 0, False, id="term-unreadable"),
        pytest.param({"capacity": 2}, 2, False, id="at-capacity"),
        pytest.param({"capacity": 0}, 0, False, id="no-capacity"),
        pytest.param({}, 0, True, id="excluded"),
    ],
)
def test_unavailable_mentors_are_skipped(
    fields: dict[str, Any], sessions: int, excluded: bool
) -> None:
    skipped = mentor("skipped@example.org", **fields)
    data = MatchInput(
        sessions_this_month={"skipped@example.org": sessions},
        recent_sessions={},
        excluded=frozenset({"skipped@example.org"} if excluded else ()),
    )
    ranked = rank_mentors(request(), [skipped, mentor("ok@example.org")], NOW, data)
    assert emails(ranked) == ["ok@example.org"]


def test_eligible_reads_term_end_and_capacity() -> None:
    assert eligible(mentor("a@example.org", term_end=None), NOW, 0)
    assert eligible(mentor("a@example.org", term_end="2026-01-12T09:00:01+00:00"), NOW, 1)
    assert not eligible(mentor("a@example.org", term_end="2026-01-12T09:00:00+00:00"), NOW, 0)
    # Another zone's spelling of the same instant is still that instant.
    assert not eligible(mentor("a@example.org", term_end="2026-01-12T10:00:00+01:00"), NOW, 0)
    assert eligible(mentor("a@example.org", term_end="2026-01-12T09:30:00"), NOW, 0)
    assert not eligible(mentor("a@example.org", capacity=3), NOW, 3)


# --- the order ----------------------------------------------------------------------


def test_order_is_skills_then_hours_then_spare_capacity_then_fewest_recent_sessions() -> None:
    mentors = [
        mentor("busy@example.org", capacity=2),
        mentor("recent@example.org", capacity=3),
        mentor("free@example.org", capacity=3),
        mentor("one-hour@example.org", availability=[[TUE, at(19), at(21)]], capacity=9),
        mentor("two-skills@example.org", skills=["python", "sql"], availability=[]),
    ]
    data = MatchInput(
        sessions_this_month={"busy@example.org": 1},
        recent_sessions={"recent@example.org": 4, "free@example.org": 1},
    )
    ranked = rank_mentors(request(skills=["python", "sql"]), mentors, NOW, data)
    assert ranked == [
        Candidate("two-skills@example.org", 2, 0, 2, 0),
        Candidate("free@example.org", 1, 120, 3, 1),
        Candidate("recent@example.org", 1, 120, 3, 4),
        Candidate("busy@example.org", 1, 120, 1, 0),
        Candidate("one-hour@example.org", 1, 60, 9, 0),
    ]


def test_ties_are_broken_by_email_whatever_the_input_order() -> None:
    mentors = [mentor(f"m{n}@example.org") for n in (3, 1, 4, 5, 9, 2, 6)]
    expected = sorted(m["email"] for m in mentors)
    shuffler = random.Random(7)
    for _ in range(5):
        shuffler.shuffle(mentors)
        assert emails(rank_mentors(request(), mentors, NOW, NO_COUNTS)) == expected


def test_request_without_availability_overlaps_by_the_mentors_own_hours() -> None:
    mentors = [
        mentor("two-hours@example.org", availability=[[MON, at(18), at(20)]]),
        mentor("three-hours@example.org", availability=[[MON, at(10), at(11)], [SAT, 0, 120]]),
        mentor("no-hours@example.org", availability=[]),
    ]
    ranked = rank_mentors(request(availability=[], timezone=None), mentors, NOW, NO_COUNTS)
    assert [(c.email, c.overlap_minutes) for c in ranked] == [
        ("three-hours@example.org", 180),
        ("two-hours@example.org", 120),
        ("no-hours@example.org", 0),
    ]


def test_ranking_uses_real_time_in_the_week_the_us_clocks_change() -> None:
    # New York 09:00-11:00 on Monday 9 March is 13:00-15:00 UTC (EDT). Read with the
    # offset of the Friday before (EST) it would be 14:00-16:00 and the order would flip.
    mentee = request(timezone="America/New_York", availability=[[MON, at(9), at(11)]])
    mentors = [
        mentor("late@example.org", timezone="Europe/London", availability=[[MON, at(14), at(16)]]),
        mentor("early@example.org", timezone="Europe/London", availability=[[MON, at(13), at(15)]]),
    ]
    ranked = rank_mentors(mentee, mentors, BEFORE_US_CHANGE, NO_COUNTS)
    assert [(c.email, c.overlap_minutes) for c in ranked] == [
        ("early@example.org", 120),
        ("late@example.org", 60),
    ]


# --- availability in real time ------------------------------------------------------


def test_berlin_evening_meets_new_york_lunchtime() -> None:
    berlin = [[TUE, at(18), at(20)]]
    new_york = [[TUE, at(12), at(14)]]
    assert weekly_overlap_minutes(berlin, "Europe/Berlin", new_york, "America/New_York", NOW) == 120


def test_berlin_and_new_york_are_five_hours_apart_for_three_weeks_in_march() -> None:
    berlin = [[TUE, at(18), at(20)]]
    new_york = [[TUE, at(12), at(14)]]
    after_us_change = datetime(2026, 3, 9, tzinfo=UTC)
    overlap = weekly_overlap_minutes(
        berlin, "Europe/Berlin", new_york, "America/New_York", after_us_change
    )
    assert overlap == 60


def test_tokyo_tuesday_morning_is_los_angeles_monday_afternoon() -> None:
    tokyo = [[TUE, at(9), at(11)]]
    los_angeles = [[MON, at(16), at(18)]]
    overlap = weekly_overlap_minutes(tokyo, "Asia/Tokyo", los_angeles, "America/Los_Angeles", NOW)
    assert overlap == 120
    assert (
        weekly_overlap_minutes(
            tokyo, "Asia/Tokyo", [[TUE, at(16), at(18)]], "America/Los_Angeles", NOW
        )
        == 0
    )


def test_the_week_of_the_us_clock_change() -> None:
    # New York and London are 5 h apart until Sunday 8 March 2026, then 4 h until 29 March.
    new_york = [[FRI, at(9), at(11)], [MON, at(9), at(11)]]
    london = [[FRI, at(14), at(16)], [MON, at(14), at(16)]]
    overlap = weekly_overlap_minutes(
        new_york, "America/New_York", london, "Europe/London", BEFORE_US_CHANGE
    )
    assert overlap == 120 + 60  # Friday 6 March in full; Monday 9 March an hour apart


@pytest.mark.parametrize(
    ("window", "minutes"),
    [
        pytest.param([SUN, at(2), at(4)], 60, id="02:00-04:00 loses the skipped hour"),
        pytest.param([SUN, at(2, 30), at(3, 30)], 30, id="start skipped: from the jump"),
        pytest.param([SUN, at(2), at(2, 30)], 0, id="wholly skipped"),
        pytest.param([SUN, at(1), at(2, 30)], 60, id="end skipped: until the jump"),
        pytest.param([SUN, 0, 1440], 23 * 60, id="the whole 23-hour day"),
    ],
)
def test_spring_forward_day(window: list[int], minutes: int) -> None:
    overlap = weekly_overlap_minutes([window], "America/New_York", ALL_WEEK, None, BEFORE_US_CHANGE)
    assert overlap == minutes


@pytest.mark.parametrize(
    ("window", "minutes"),
    [
        pytest.param([SUN, at(1), at(2)], 120, id="the repeated hour, both passes"),
        pytest.param([SUN, at(0, 30), at(1, 30)], 120, id="ends in it: to the second pass"),
        pytest.param([SUN, at(1, 30), at(3)], 150, id="starts in it: from the first pass"),
        pytest.param([SUN, at(3), at(5)], 120, id="after it"),
        pytest.param([SUN, 0, 1440], 25 * 60, id="the whole 25-hour day"),
    ],
)
def test_fall_back_day(window: list[int], minutes: int) -> None:
    overlap = weekly_overlap_minutes(
        [window], "America/New_York", ALL_WEEK, None, BEFORE_US_FALL_BACK
    )
    assert overlap == minutes


def test_only_the_next_seven_days_count() -> None:
    both = [[TUE, at(18), at(20)]]
    # From Tuesday 19:00 the week holds 19:00-20:00 today and 18:00-19:00 next Tuesday.
    tuesday_evening = datetime(2026, 1, 13, 19, 0, 30, tzinfo=UTC)
    assert weekly_overlap_minutes(both, "UTC", both, "UTC", tuesday_evening) == 120
    for days in range(8):
        assert weekly_overlap_minutes(both, "UTC", both, "UTC", NOW + timedelta(days=days)) == 120


def test_windows_meeting_at_midnight_join_up() -> None:
    late_and_early = [[MON, at(23), 1440], [TUE, 0, at(1)]]
    across_midnight = [[MON, at(23, 30), 1440], [TUE, 0, at(0, 30)]]
    assert weekly_overlap_minutes(late_and_early, "UTC", across_midnight, "UTC", NOW) == 60


def test_unknown_or_missing_zone_reads_as_utc() -> None:
    windows = [[WED, at(9), at(10)]]
    for zone in (None, "", "Mars/Olympus_Mons", "America", "../etc/passwd"):
        assert weekly_overlap_minutes(windows, zone, windows, "UTC", NOW) == 60


def test_malformed_windows_are_ignored() -> None:
    windows = [[WED, at(9), at(10)], [7, 0, 60], [WED, at(12), at(11)], [WED, 0, 1441], [WED, 5]]
    assert weekly_overlap_minutes(windows, "UTC", ALL_WEEK, "UTC", NOW) == 60


def test_no_windows_means_no_overlap() -> None:
    assert weekly_overlap_minutes([], "UTC", ALL_WEEK, "UTC", NOW) == 0
    assert weekly_overlap_minutes(ALL_WEEK, "UTC", [], "UTC", NOW) == 0


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        weekly_overlap_minutes(ALL_WEEK, "UTC", ALL_WEEK, "UTC", datetime(2026, 1, 12))


# --- against a brute-force count ----------------------------------------------------

TRICKY_ZONES = [
    "America/New_York", "Europe/London", "Europe/Berlin", "Asia/Tokyo", "Asia/Kolkata",
    "Asia/Kathmandu", "Australia/Lord_Howe", "Australia/Adelaide", "Pacific/Auckland",
    "Pacific/Chatham", "America/Santiago", "America/Havana", "America/St_Johns",
    "Africa/Casablanca", "Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC",
]  # fmt: skip
STEP = timedelta(minutes=15)  # every window, offset and transition here is on a quarter hour


def brute_force_overlap(
    a: list[list[int]], a_zone: str, b: list[list[int]], b_zone: str, now: datetime
) -> int:
    """Quarter hours in the next week when both clocks read a time inside a window."""

    def inside(windows: list[list[int]], zone: str, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(zone))
        minute = local.hour * 60 + local.minute
        return any(d == local.weekday() and s <= minute < e for d, s, e in windows)

    steps = (now + STEP * n for n in range(7 * 24 * 4))
    return 15 * sum(
        1 for moment in steps if inside(a, a_zone, moment) and inside(b, b_zone, moment)
    )


def repeats_an_hour(zone: str, now: datetime) -> bool:
    """Whether the zone's clocks go back within a day of the coming week."""
    tz = ZoneInfo(zone)
    hours = (now + timedelta(hours=h) for h in range(-24, 8 * 24))
    offsets = [hour.astimezone(tz).utcoffset() or timedelta(0) for hour in hours]
    return any(later < earlier for earlier, later in itertools.pairwise(offsets))


def random_windows(rng: random.Random) -> list[list[int]]:
    windows = []
    for _ in range(rng.randint(1, 5)):
        start = rng.randrange(0, 96) * 15
        windows.append([rng.randrange(7), start, rng.randrange(start + 15, 1441, 15)])
    return windows


def clocks_go_forward(zone: str, year: int) -> list[datetime]:
    """The instants in ``year`` at which the zone's clocks jump forward."""
    tz = ZoneInfo(zone)

    def offset(moment: datetime) -> timedelta | None:
        return moment.astimezone(tz).utcoffset()

    jumps = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        low, high = day, day + timedelta(days=1)
        before, after = offset(low), offset(high)
        if before is not None and after is not None and after > before:
            while high - low > timedelta(minutes=1):
                middle = low + timedelta(minutes=(high - low) // timedelta(minutes=2))
                low, high = (middle, high) if offset(middle) == before else (low, middle)
            jumps.append(high)
        day += timedelta(days=1)
    return jumps


def test_overlap_agrees_with_a_brute_force_count_across_zones_and_clock_changes() -> None:
    # The brute force reads "inside a window" quarter hour by quarter hour, which is the
    # rule for skipped hours too; on days an hour repeats the rule differs on purpose (a
    # window stays one stretch), so those weeks are tested above instead.
    rng = random.Random(20260308)
    cases: list[tuple[list[list[int]], str, datetime]] = []
    for zone in TRICKY_ZONES:
        for jump in clocks_go_forward(zone, 2026):
            local = jump.astimezone(ZoneInfo(zone))
            jump_ends = local.hour * 60 + local.minute  # the first wall time after the gap
            for _ in range(4):
                # A window starting and ending somewhere around the skipped wall times.
                start = max(0, jump_ends - rng.randrange(0, 12) * 15)
                end = min(1440, max(start + 15, jump_ends + rng.randrange(-4, 8) * 15))
                windows = [[local.weekday(), start, end], *random_windows(rng)]
                cases.append((windows, zone, jump - STEP * rng.randrange(1, 7 * 24 * 4)))
    assert len(cases) > 40  # the zones above jump at least 11 times in 2026
    for _ in range(40):  # and some ordinary weeks
        now = datetime(2026, 1, 1, tzinfo=UTC) + STEP * rng.randrange(365 * 24 * 4)
        cases.append((random_windows(rng), rng.choice(TRICKY_ZONES), now))

    compared = 0
    for a, a_zone, now in cases:
        b_zone = rng.choice(TRICKY_ZONES)
        b = ALL_WEEK if rng.random() < 0.5 else random_windows(rng)
        if repeats_an_hour(a_zone, now) or repeats_an_hour(b_zone, now):
            continue
        expected = brute_force_overlap(a, a_zone, b, b_zone, now)
        assert weekly_overlap_minutes(a, a_zone, b, b_zone, now) == expected, (a_zone, b_zone, now)
        compared += 1
    assert compared > 60


def test_ranking_the_first_few_gives_the_head_of_the_whole_ranking() -> None:
    rng = random.Random(3)
    skills = ["python", "sql", "go", "design"]
    mentors = [
        mentor(
            f"m{n:03d}@example.org",
            skills=rng.sample(skills, rng.randint(1, 3)),
            capacity=rng.randint(0, 4),
            availability=[[rng.randrange(7), at(rng.randrange(8, 18)), at(20)]],
            timezone=rng.choice(["Europe/Berlin", "America/New_York", None]),
        )
        for n in range(300)
    ]
    data = MatchInput(
        sessions_this_month={m["email"]: rng.randint(0, 3) for m in mentors[::3]},
        recent_sessions={m["email"]: rng.randint(0, 5) for m in mentors[::2]},
        excluded=frozenset(m["email"] for m in mentors[::7]),
    )
    wanted = request(skills=["python", "sql"])
    whole = rank_mentors(wanted, mentors, NOW, data)
    assert len(whole) > 20
    for limit in (0, 1, 3, 10, 1000):
        assert rank_mentors(wanted, mentors, NOW, data, limit) == whole[:limit]
