"""Weekly series at a fixed local time: when their occurrences are (pure: no store, no mail).

An office-hours series is a weekly rule (RRULE FREQ=WEEKLY, RFC 5545 §3.3.10) anchored at
a wall-clock time in an IANA zone: 18:00 in Berlin stays 18:00 across DST changes, so the
UTC time moves twice a year. One occurrence may be cancelled (EXDATE, RFC 5545 §3.8.5.1)
or moved (an override naming its RECURRENCE-ID, §3.8.4.4); an occurrence is always named
by its original local date, whatever became of it.

Names say the kind of time: ``*_local`` and ``wall`` are in the rule's zone (aware, or a
naive wall-clock time), ``*_utc`` aware UTC. Lengths are elapsed time (``end_of``), never
wall-clock arithmetic, so an occurrence across a DST change still lasts its length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

__all__ = [
    "CHECK_WEEKS",
    "LOOKAHEAD",
    "WEEKDAYS",
    "Occurrence",
    "WeeklyRule",
    "clock_trouble",
    "end_of",
    "first_date",
    "is_rule_date",
    "local_start",
    "next_occurrence",
    "occurrences",
    "pattern",
    "trouble_ahead",
    "weekly_until",
    "when",
]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Local times are checked against DST changes this far ahead (or up to the series' end).
CHECK_WEEKS = 5 * 52
# A series counts as running while it has an occurrence within this time.
LOOKAHEAD = timedelta(days=400)


@dataclass(frozen=True)
class WeeklyRule:
    """When a weekly series happens: every week from ``first`` at ``wall`` in ``zone``."""

    zone: ZoneInfo
    wall: time
    length: timedelta
    first: date  # the first occurrence's local date; the weekday of every other
    until: date | None = None  # the last possible occurrence's local date, or open-ended
    cancelled: frozenset[date] = frozenset()  # original dates
    moved: Mapping[date, datetime] = field(default_factory=dict)  # original → new start_local
    interval: int = 1  # every this many weeks (RRULE INTERVAL): pairings meet fortnightly

    @classmethod
    def of(cls, series: Mapping[str, Any]) -> WeeklyRule:
        """The rule of a stored series document (``flows.office_hours`` lists its fields)."""
        zone = ZoneInfo(series["zone"])
        exceptions: Mapping[str, Mapping[str, Any]] = series.get("exceptions") or {}
        return cls(
            zone=zone,
            wall=time.fromisoformat(series["time"]),
            length=timedelta(minutes=int(series["length_minutes"])),
            first=date.fromisoformat(series["first"]),
            until=date.fromisoformat(series["until"]) if series.get("until") else None,
            cancelled=frozenset(
                date.fromisoformat(key)
                for key, change in exceptions.items()
                if change.get("status") == "cancelled"
            ),
            moved={
                date.fromisoformat(key): datetime.fromisoformat(change["start"]).replace(
                    tzinfo=zone
                )
                for key, change in exceptions.items()
                if change.get("status") == "moved"
            },
            interval=int(series.get("interval_weeks") or 1),
        )


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series: its original local date and when it actually happens."""

    original: date  # the date of the rule's occurrence (what RECURRENCE-ID names)
    start: datetime  # aware, in the series' zone (moved, if it was)
    end: datetime
    moved: bool


def local_start(rule: WeeklyRule, day: date) -> datetime:
    """The rule's start on ``day``, aware, in the rule's zone (moved or not)."""
    return datetime.combine(day, rule.wall, rule.zone)


def end_of(start: datetime, length: timedelta) -> datetime:
    """``start + length`` in elapsed time, in ``start``'s zone."""
    assert start.tzinfo is not None
    return (start.astimezone(UTC) + length).astimezone(start.tzinfo)


def weekly_until(rule: WeeklyRule) -> datetime | None:
    """The last possible start (RRULE UNTIL, inclusive), or None for an open-ended rule."""
    return local_start(rule, rule.until) if rule.until else None


def is_rule_date(rule: WeeklyRule, day: date) -> bool:
    """Does the weekly rule have an occurrence on ``day`` (cancelled or not)?"""
    in_range = day >= rule.first and (rule.until is None or day <= rule.until)
    return in_range and (day - rule.first).days % (7 * rule.interval) == 0


def occurrences(rule: WeeklyRule, start_utc: datetime, end_utc: datetime) -> list[Occurrence]:
    """The occurrences of ``rule`` overlapping ``[start_utc, end_utc)``, in time order.

    Weekly from ``first`` to ``until`` at the local time in the rule's zone (so the UTC
    time follows DST), minus cancelled ones; moved ones at their new time.
    """
    zone, length = rule.zone, rule.length
    found: list[Occurrence] = []

    def overlaps(start: datetime) -> bool:
        return start < end_utc and end_of(start, length) > start_utc

    # A day either side: local dates differ from UTC ones by up to a day.
    day = max(rule.first, (start_utc - length).astimezone(zone).date() - timedelta(days=1))
    period = 7 * rule.interval
    day += timedelta(days=-(day - rule.first).days % period)
    last = end_utc.astimezone(zone).date() + timedelta(days=1)
    if rule.until is not None:
        last = min(last, rule.until)
    while day <= last:
        if day not in rule.cancelled and day not in rule.moved:
            start = local_start(rule, day)
            if overlaps(start):
                found.append(Occurrence(day, start, end_of(start, length), False))
        day += timedelta(days=period)
    for original, start in rule.moved.items():
        if overlaps(start):
            found.append(Occurrence(original, start, end_of(start, length), True))
    found.sort(key=lambda o: (o.start, o.original))
    return found


def next_occurrence(
    rule: WeeklyRule, now: datetime, within: timedelta = LOOKAHEAD
) -> Occurrence | None:
    """The first occurrence that has not ended by ``now`` (within ``within``)."""
    found = occurrences(rule, now, now + within)
    return found[0] if found else None


def clock_trouble(zone: ZoneInfo, wall: time, days: Sequence[date]) -> date | None:
    """The first of ``days`` on which ``wall`` is skipped or repeated by a DST change.

    Calendar clients disagree about such times (see ``calendar.invite.series_request``),
    so they are refused rather than guessed.
    """
    for day in days:
        early = datetime.combine(day, wall, zone)
        if early.utcoffset() != early.replace(fold=1).utcoffset():
            return day
    return None


def trouble_ahead(zone: ZoneInfo, wall: time, first: date, until: date | None) -> date | None:
    """``clock_trouble`` over the weekly dates from ``first`` (``CHECK_WEEKS``, or to ``until``)."""
    days = [first + timedelta(weeks=k) for k in range(CHECK_WEEKS)]
    return clock_trouble(zone, wall, [d for d in days if until is None or d <= until])


def first_date(weekday: int, wall: time, zone: ZoneInfo, now: datetime) -> date:
    """The first local date on ``weekday`` (0 = Monday) whose ``wall`` time is after ``now``."""
    today = now.astimezone(zone).date()
    first = today + timedelta(days=(weekday - today.weekday()) % 7)
    if datetime.combine(first, wall, zone) <= now:
        first += timedelta(weeks=1)
    return first


# --- in words ---------------------------------------------------------------------------


def pattern(rule: WeeklyRule, *, short: bool = False) -> str:
    """'every Thursday, 18:00–19:00 (Europe/Berlin)'; short: 'every Thursday at 18:00 (…)'.

    The short form is plain ASCII, for subjects: headers with non-ASCII text become
    RFC 2047 encoded words, which some clients show with stray spaces where folded.
    """
    start = local_start(rule, rule.first)
    day = WEEKDAYS[rule.first.weekday()]
    if rule.interval == 2:
        day = f"other {day}"
    elif rule.interval > 2:
        day = f"{rule.interval} weeks on {day}"
    if short:
        return f"every {day} at {start:%H:%M} ({rule.zone.key})"
    return f"every {day}, {start:%H:%M}–{end_of(start, rule.length):%H:%M} ({rule.zone.key})"


def when(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """'Thursday 26 November, 18:00–19:00 (Europe/Berlin)'."""
    local, local_end = start.astimezone(zone), end.astimezone(zone)
    return f"{local:%A %-d %B}, {local:%H:%M}–{local_end:%H:%M} ({zone.key})"
