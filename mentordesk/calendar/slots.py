"""Finding a free 30-minute slot that suits a mentor and a mentee.

Availability is a list of weekly windows ``(weekday, start_minute, end_minute)`` —
weekday 0 is Monday, minutes count from local midnight — read in the owner's own IANA
timezone. The windows are expanded day by day into concrete UTC intervals with
``zoneinfo``, so every daylight-saving change on either side is honoured. Where a window
edge is a local time that does not happen or happens twice, it is resolved to the
*earliest instant whose local clock reads that time or later*:

- a time inside a spring-forward gap (02:30 when clocks jump from 02:00 to 03:00) moves
  to the end of the gap (03:00, the instant of the change): the gap itself is skipped;
- a time that occurs twice when clocks fall back (01:30 in New York in November) means
  its first occurrence (01:30 daylight time), as a DATE-TIME does in RFC 5545 §3.3.5.

Candidate starts lie on ``step`` boundaries of the mentor's local clock (:00 and :30 for
the default step) and are checked against both people's windows and the mentor's busy
intervals. Everything here is pure: ``now`` is passed in, nothing is read or stored.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

__all__ = ["Busy", "Window", "candidate_slots", "find_slot"]

Window = tuple[int, int, int]
"""``(weekday 0=Mon..6=Sun, start_minute, end_minute)`` in the owner's local time.

``end_minute`` may be 1440 (midnight at the end of the day); an end before the start
means the window runs past midnight into the next day.
"""

_MINUTES_PER_DAY = 24 * 60
_Interval = tuple[datetime, datetime]  # [start, end) in UTC


@dataclass(frozen=True)
class Busy:
    """An interval the mentor is already committed to: ``[start, end)``, aware datetimes."""

    start: datetime
    end: datetime


def find_slot(
    mentor_windows: Sequence[Window],
    mentor_zone: str,
    mentee_windows: Sequence[Window],
    mentee_zone: str | None,
    busy: Sequence[Busy],
    now: datetime,
    *,
    notice: timedelta = timedelta(hours=24),
    length: timedelta = timedelta(minutes=30),
    horizon: timedelta = timedelta(days=28),
    step: timedelta = timedelta(minutes=30),
) -> datetime | None:
    """Return the UTC start of the earliest slot that suits both people, or None.

    A slot ``[start, start + length)`` lies wholly inside one mentor window and one
    mentee window, does not overlap any ``busy`` interval, starts on a ``step`` boundary
    of the mentor's local clock and satisfies ``now + notice <= start < now + horizon``.
    A mentee without windows can meet whenever the mentor can. ``mentee_zone`` None
    reads the mentee's windows in the mentor's zone. Raises ValueError for a naive
    ``now``, an unknown zone or a malformed window.
    """
    for start in _iter_slots(
        mentor_windows,
        mentor_zone,
        mentee_windows,
        mentee_zone,
        busy,
        now,
        notice=notice,
        length=length,
        horizon=horizon,
        step=step,
    ):
        return start
    return None


def candidate_slots(
    mentor_windows: Sequence[Window],
    mentor_zone: str,
    mentee_windows: Sequence[Window],
    mentee_zone: str | None,
    busy: Sequence[Busy],
    now: datetime,
    *,
    notice: timedelta = timedelta(hours=24),
    length: timedelta = timedelta(minutes=30),
    horizon: timedelta = timedelta(days=28),
    step: timedelta = timedelta(minutes=30),
    limit: int = 10,
) -> list[datetime]:
    """Return up to ``limit`` slot starts (UTC, earliest first) under ``find_slot``'s rules."""
    if limit <= 0:
        return []
    slots: list[datetime] = []
    for start in _iter_slots(
        mentor_windows,
        mentor_zone,
        mentee_windows,
        mentee_zone,
        busy,
        now,
        notice=notice,
        length=length,
        horizon=horizon,
        step=step,
    ):
        slots.append(start)
        if len(slots) >= limit:
            break
    return slots


# --- the search ----------------------------------------------------------------------


def _iter_slots(
    mentor_windows: Sequence[Window],
    mentor_zone: str,
    mentee_windows: Sequence[Window],
    mentee_zone: str | None,
    busy: Sequence[Busy],
    now: datetime,
    *,
    notice: timedelta,
    length: timedelta,
    horizon: timedelta,
    step: timedelta,
) -> Iterator[datetime]:
    """Yield every valid slot start in order; the shared engine of the two public calls."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    if length <= timedelta(0):
        raise ValueError(f"length must be positive, got {length}")
    step_s = int(step.total_seconds())
    if step_s <= 0 or step != timedelta(seconds=step_s) or (24 * 3600) % step_s:
        raise ValueError(f"step must be whole seconds dividing a day, got {step}")

    mentor_tz = _zone(mentor_zone)
    mentee_tz = _zone(mentee_zone) if mentee_zone else mentor_tz
    earliest = (now + notice).astimezone(UTC)
    latest = (now + horizon).astimezone(UTC)  # exclusive bound on a slot's start

    # The last slot may start just before `latest` and end `length` later.
    until = latest + length
    free = _expand(mentor_windows, mentor_tz, earliest, until)
    if mentee_windows:
        free = _intersect(free, _expand(mentee_windows, mentee_tz, earliest, until))
    blocked = _merge(
        sorted((b.start.astimezone(UTC), b.end.astimezone(UTC)) for b in busy if b.end > b.start)
    )
    blocked_starts = [b[0] for b in blocked]
    blocked_ends = [b[1] for b in blocked]

    for lo, hi in free:
        start = _align(max(lo, earliest), mentor_tz, step_s)
        while start < latest and start + length <= hi:
            # The first busy interval ending after `start` is the only one that can
            # overlap [start, start + length): the merged intervals are disjoint.
            i = bisect_right(blocked_ends, start)
            if i < len(blocked) and blocked_starts[i] < start + length:
                start = _align(blocked_ends[i], mentor_tz, step_s)
                continue
            yield start
            start = _align(start + step, mentor_tz, step_s)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown timezone {name!r}: use an IANA name") from exc


def _expand(
    windows: Sequence[Window], zone: ZoneInfo, start: datetime, end: datetime
) -> list[_Interval]:
    """Concrete UTC intervals of weekly ``windows`` overlapping ``[start, end)``, merged."""
    by_weekday: dict[int, list[tuple[int, int]]] = {}
    for window in windows:
        weekday, first, last = _check_window(window)
        by_weekday.setdefault(weekday, []).append((first, last))

    # One local day either side: a window of the day before can run past midnight, and
    # the UTC bounds can fall on another local date than the zone's own.
    day = start.astimezone(zone).date() - timedelta(days=1)
    last_day = end.astimezone(zone).date() + timedelta(days=1)
    intervals: list[_Interval] = []
    while day <= last_day:
        for first, last in by_weekday.get(day.weekday(), ()):
            lo = _local_to_utc(day, first, zone)
            hi = _local_to_utc(day, last if last > first else last + _MINUTES_PER_DAY, zone)
            if lo < end and hi > start and hi > lo:
                intervals.append((lo, hi))
        day += timedelta(days=1)
    intervals.sort()
    return _merge(intervals)


def _check_window(window: Window) -> Window:
    weekday, first, last = window
    if not (
        0 <= weekday <= 6
        and 0 <= first < _MINUTES_PER_DAY
        and 0 <= last <= _MINUTES_PER_DAY
        and first != last
    ):
        raise ValueError(
            f"bad availability window {window!r}: want (weekday 0-6, start minute 0-1439, "
            "end minute 0-1440, end != start)"
        )
    return window


def _local_to_utc(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The earliest instant whose wall clock in ``zone`` reads ``day`` + ``minute`` or later.

    Ambiguous times (clocks falling back) take their first occurrence; times inside a
    spring-forward gap become the instant of the change.
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists; fold=0 is the first occurrence when ambiguous
    # In a gap zoneinfo reads `wall` with the offset from before the change, so `first`
    # lies after the change and fold=1 (the offset after it) lies before: bisect.
    lo = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def _merge(intervals: Sequence[_Interval]) -> list[_Interval]:
    """Union of sorted intervals; touching intervals join."""
    merged: list[_Interval] = []
    for lo, hi in intervals:
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _intersect(a: Sequence[_Interval], b: Sequence[_Interval]) -> list[_Interval]:
    """Intersection of two sorted, disjoint interval lists (two-pointer walk)."""
    out: list[_Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _align(instant: datetime, zone: tzinfo, step_s: int) -> datetime:
    """The first instant at or after ``instant`` on a ``step_s`` boundary of the local clock."""
    while True:
        local = instant.astimezone(zone)
        into = (local.hour * 3600 + local.minute * 60 + local.second) % step_s
        if into == 0 and local.microsecond == 0:
            return instant
        # An offset change between here and the boundary can shift the local grid;
        # the loop re-checks, and every round moves forward.
        instant += timedelta(seconds=step_s - into, microseconds=-local.microsecond)
