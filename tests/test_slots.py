"""calendar/slots.py: the earliest slot two people share, DST-correct in both zones.

Expected instants are written out in UTC from the published offsets, not computed with
the code under test: New York is UTC-5 (EST) / UTC-4 (EDT, 2026-03-08 to 2026-11-01),
Berlin is UTC+1 (CET) / UTC+2 (CEST, 2026-03-29 to 2026-10-25).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from mentordesk.calendar.slots import Busy, candidate_slots, find_slot

NY = "America/New_York"
BERLIN = "Europe/Berlin"
MON, TUE, SUN = 0, 1, 6


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hm(hours: int, minutes: int = 0) -> int:
    return hours * 60 + minutes


# The mentor is free Tue 12:00-14:00 New York time, the mentee Tue 18:00-19:00 Berlin
# time. Six hours apart most of the year, the two meet at 12:00 New York; in the weeks
# when only one side has changed its clocks they are five hours apart and meet at 13:00.
MENTOR_TUE = [(TUE, hm(12), hm(14))]
MENTEE_TUE = [(TUE, hm(18), hm(19))]


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(utc(2026, 3, 1, 12), utc(2026, 3, 3, 17), id="both-standard"),
        pytest.param(utc(2026, 3, 8, 12), utc(2026, 3, 10, 17), id="after-us-change"),
        pytest.param(utc(2026, 3, 22, 12), utc(2026, 3, 24, 17), id="before-eu-change"),
        pytest.param(utc(2026, 3, 29, 12), utc(2026, 3, 31, 16), id="after-eu-change"),
        pytest.param(utc(2026, 10, 18, 12), utc(2026, 10, 20, 16), id="both-summer"),
        pytest.param(utc(2026, 10, 25, 12), utc(2026, 10, 27, 17), id="after-eu-fallback"),
        pytest.param(utc(2026, 11, 1, 12), utc(2026, 11, 3, 17), id="after-us-fallback"),
    ],
)
def test_both_zones_follow_their_own_dst(now: datetime, expected: datetime) -> None:
    assert find_slot(MENTOR_TUE, NY, MENTEE_TUE, BERLIN, [], now) == expected


def test_weeks_where_the_windows_slip_apart_are_skipped() -> None:
    # 12:00-13:00 New York meets 18:00-19:00 Berlin only when the offsets differ by six
    # hours: not from the US change (03-08) until the EU change (03-29).
    mentor = [(TUE, hm(12), hm(13))]
    assert find_slot(mentor, NY, MENTEE_TUE, BERLIN, [], utc(2026, 3, 1, 12)) == utc(2026, 3, 3, 17)
    assert find_slot(mentor, NY, MENTEE_TUE, BERLIN, [], utc(2026, 3, 4, 12)) == utc(
        2026, 3, 31, 16
    )
    # And in autumn from the EU change (10-25) until the US one (11-01).
    assert find_slot(mentor, NY, MENTEE_TUE, BERLIN, [], utc(2026, 10, 21, 12)) == utc(
        2026, 11, 3, 17
    )


def test_spring_forward_gap_is_skipped() -> None:
    # Sunday 2026-03-08 in New York: 02:00-03:00 local does not exist.
    slots = candidate_slots([(SUN, hm(1), hm(4))], NY, [], None, [], utc(2026, 3, 6, 12))
    assert slots[:4] == [
        utc(2026, 3, 8, 6),
        utc(2026, 3, 8, 6, 30),  # 01:00, 01:30 EST
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 7, 30),
    ]  # 03:00, 03:30 EDT


def test_window_starting_inside_the_gap_starts_when_the_clocks_jump() -> None:
    slots = candidate_slots([(SUN, hm(2, 30), hm(4))], NY, [], None, [], utc(2026, 3, 6))
    assert slots[:2] == [utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 30)]


def test_fall_back_hour_happens_twice_inside_a_window() -> None:
    # Sunday 2026-11-01 in New York: 01:00-02:00 local lasts two hours.
    slots = candidate_slots([(SUN, hm(1), hm(2))], NY, [], None, [], utc(2026, 10, 30))
    assert slots[:4] == [
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 5, 30),  # 01:00, 01:30 EDT
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 6, 30),
    ]  # 01:00, 01:30 EST
    assert slots[4] == utc(2026, 11, 8, 6)


def test_ambiguous_window_edge_takes_the_first_occurrence() -> None:
    # 00:30-01:30 on the fall-back night ends at the first 01:30 (EDT).
    slots = candidate_slots([(SUN, hm(0, 30), hm(1, 30))], NY, [], None, [], utc(2026, 10, 30))
    assert slots[:3] == [utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 5), utc(2026, 11, 8, 5, 30)]


def test_mentee_side_of_the_eu_fall_back() -> None:
    # Berlin 2026-10-25 02:00-03:00 happens twice; the window 02:00-03:30 runs from the
    # first 02:00 (CEST, 00:00Z) to 03:30 CET (02:30Z).
    mentor = [(SUN, hm(0), hm(24))]
    mentee = [(SUN, hm(2), hm(3, 30))]
    slots = candidate_slots(mentor, "UTC", mentee, BERLIN, [], utc(2026, 10, 23))
    assert slots[:6] == [
        utc(2026, 10, 25, 0),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 25, 2),
        utc(2026, 11, 1, 1),
    ]


def test_no_overlap_gives_none() -> None:
    mentor = [(MON, hm(9), hm(10))]
    mentee = [(MON, hm(9), hm(10))]  # 09:00 Berlin is 03:00 or 04:00 in New York
    assert find_slot(mentor, NY, mentee, BERLIN, [], utc(2026, 1, 1)) is None
    assert candidate_slots(mentor, NY, mentee, BERLIN, [], utc(2026, 1, 1)) == []


def test_no_mentor_windows_gives_none() -> None:
    assert find_slot([], NY, [], None, [], utc(2026, 1, 1)) is None


def test_notice_is_respected() -> None:
    every_day = [(d, hm(9), hm(17)) for d in range(7)]
    now = utc(2026, 1, 12, 15)  # Mon 10:00 in New York
    assert find_slot(every_day, NY, [], None, [], now) == utc(2026, 1, 13, 15)
    # Off the grid: the next :00 or :30 after now + notice.
    assert find_slot(every_day, NY, [], None, [], now + timedelta(minutes=10)) == utc(
        2026, 1, 13, 15, 30
    )
    assert find_slot(every_day, NY, [], None, [], now, notice=timedelta(hours=2)) == utc(
        2026, 1, 12, 17
    )
    # 16:45 + 24 h leaves no 30 minutes before 17:00: the next morning.
    assert find_slot(every_day, NY, [], None, [], utc(2026, 1, 12, 21, 45)) == utc(2026, 1, 14, 14)


def test_busy_sessions_are_skipped() -> None:
    window = [(TUE, hm(10), hm(12))]
    now = utc(2026, 1, 1)
    first = utc(2026, 1, 6, 15)  # Tue 10:00 New York
    assert find_slot(window, NY, [], None, [], now) == first
    busy = [
        Busy(first, first + timedelta(minutes=30)),
        Busy(first + timedelta(minutes=45), first + timedelta(minutes=75)),  # off the grid
    ]
    # 10:30 overlaps 10:45-11:15 and 11:00 too; 11:30 is free.
    assert find_slot(window, NY, [], None, busy, now) == first + timedelta(minutes=90)
    assert candidate_slots(window, NY, [], None, busy, now, limit=2) == [
        first + timedelta(minutes=90),
        first + timedelta(weeks=1),
    ]


def test_touching_busy_interval_does_not_block() -> None:
    window = [(TUE, hm(10), hm(11))]
    start = utc(2026, 1, 6, 15)
    busy = [
        Busy(start - timedelta(hours=1), start),
        Busy(start + timedelta(minutes=30), start + timedelta(hours=2)),
    ]
    assert find_slot(window, NY, [], None, busy, utc(2026, 1, 1)) == start


def test_many_busy_sessions_in_any_order_and_zone() -> None:
    every_day = [(d, hm(9), hm(17)) for d in range(7)]
    now = utc(2026, 1, 1)
    first = utc(2026, 1, 2, 14)  # Fri 09:00 New York
    # Fill the first 100 half-hours of availability, listed backwards and in +01:00.
    taken = candidate_slots(every_day, NY, [], None, [], now, limit=100)
    busy = [
        Busy(s.astimezone(ZoneInfo(BERLIN)), s + timedelta(minutes=30)) for s in reversed(taken)
    ]
    assert taken[0] == first
    after = find_slot(every_day, NY, [], None, busy, now)
    assert after is not None and after > taken[-1]
    assert after == candidate_slots(every_day, NY, [], None, [], now, limit=101)[-1]


def test_mentee_without_windows_takes_the_mentors() -> None:
    assert find_slot(MENTOR_TUE, NY, [], BERLIN, [], utc(2026, 3, 1, 12)) == utc(2026, 3, 3, 17)
    assert find_slot(MENTOR_TUE, NY, [], None, [], utc(2026, 3, 1, 12)) == utc(2026, 3, 3, 17)


def test_mentee_without_zone_is_read_in_the_mentors_zone() -> None:
    mentee = [(TUE, hm(13), hm(14))]
    assert find_slot(MENTOR_TUE, NY, mentee, None, [], utc(2026, 3, 1, 12)) == utc(2026, 3, 3, 18)


def test_horizon_limits_the_search() -> None:
    window = [(TUE, hm(12), hm(13))]
    now = utc(2026, 3, 1, 12)  # Sunday; the next Tuesday 12:00 NY is 2026-03-03 17:00Z
    assert find_slot(window, NY, [], None, [], now, horizon=timedelta(days=2)) is None
    assert find_slot(window, NY, [], None, [], now, horizon=timedelta(days=3)) == utc(
        2026, 3, 3, 17
    )


def test_candidates_are_ordered_unique_and_limited() -> None:
    every_day = [(d, hm(9), hm(17)) for d in range(7)]
    slots = candidate_slots(every_day, NY, [], None, [], utc(2026, 1, 1), limit=20)
    assert len(slots) == 20
    assert slots == sorted(set(slots))
    assert all(b - a >= timedelta(minutes=30) for a, b in pairwise(slots))
    assert candidate_slots(every_day, NY, [], None, [], utc(2026, 1, 1), limit=0) == []


def test_steps_follow_the_mentors_local_clock() -> None:
    # Kathmandu is UTC+05:45: local :00 and :30 are :15 and :45 UTC.
    slots = candidate_slots(
        [(MON, hm(10), hm(11))], "Asia/Kathmandu", [], None, [], utc(2026, 1, 1)
    )
    assert slots[:2] == [utc(2026, 1, 5, 4, 15), utc(2026, 1, 5, 4, 45)]


def test_longer_sessions_need_room() -> None:
    window = [(TUE, hm(10), hm(11))]
    assert find_slot(window, NY, [], None, [], utc(2026, 1, 1), length=timedelta(hours=1)) == utc(
        2026, 1, 6, 15
    )
    assert (
        find_slot(window, NY, [], None, [], utc(2026, 1, 1), length=timedelta(minutes=90)) is None
    )


def test_windows_past_midnight_and_to_midnight() -> None:
    late = [(MON, hm(23), hm(1))]  # Mon 23:00 to Tue 01:00
    assert candidate_slots(late, "UTC", [], None, [], utc(2026, 1, 1), limit=4) == [
        utc(2026, 1, 5, 23),
        utc(2026, 1, 5, 23, 30),
        utc(2026, 1, 6, 0),
        utc(2026, 1, 6, 0, 30),
    ]
    to_midnight = [(MON, hm(23), 1440)]
    assert candidate_slots(to_midnight, "UTC", [], None, [], utc(2026, 1, 1), limit=2) == [
        utc(2026, 1, 5, 23),
        utc(2026, 1, 5, 23, 30),
    ]


@pytest.mark.parametrize("window", [(7, 0, 60), (0, -1, 60), (0, 60, 1441), (0, 60, 60)])
def test_bad_windows_are_refused(window: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="bad availability window"):
        find_slot([window], NY, [], None, [], utc(2026, 1, 1))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        find_slot(MENTOR_TUE, NY, [], None, [], datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown timezone"):
        find_slot(MENTOR_TUE, "Mars/Olympus_Mons", [], None, [], utc(2026, 1, 1))
    with pytest.raises(ValueError, match="unknown timezone"):
        find_slot(MENTOR_TUE, NY, MENTEE_TUE, "../etc/passwd", [], utc(2026, 1, 1))
    with pytest.raises(ValueError, match="step"):
        find_slot(MENTOR_TUE, NY, [], None, [], utc(2026, 1, 1), step=timedelta(minutes=7))
