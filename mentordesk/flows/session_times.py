"""Session times as people read them, and the choice of times to offer: pure functions.

``when_text`` shows a moment on a reader's clock, naming the zone (callers pass the
program's zone for a reader whose own is unknown, as the README says); ``proposed_start``
turns a time said in words ("Thursday at 6pm", "7:30am instead") into a moment;
``spread_choices`` picks the times a mentee's pick page offers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..inbox.intents import ProposedTime

__all__ = [
    "DAYTIME",
    "proposed_start",
    "slot_fits",
    "spread_choices",
    "when_short",
    "when_text",
]

# The mentee's pick page: up to this many times, a few a day, hours apart.
CHOICES = 15
CHOICES_PER_DAY = 3
CHOICES_APART = timedelta(hours=2)
DAYTIME = [(day, 9 * 60, 21 * 60) for day in range(7)]


def when_text(start: datetime, end: datetime, zone: str) -> str:
    """'Tuesday 24 November, 18:00–18:30 (Europe/Berlin)' in the reader's zone (callers
    pass the program's zone for a reader whose own is unknown)."""
    tz = ZoneInfo(zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    return (
        f"{local_start.strftime('%A %-d %B')}, {local_start.strftime('%H:%M')}–"
        f"{local_end.strftime('%H:%M')} ({zone})"
    )


def when_short(start: datetime, zone: str) -> str:
    """'Tue 24 Nov 18:00 (Europe/Berlin)': plain ASCII, for subject lines."""
    local = start.astimezone(ZoneInfo(zone))
    return f"{local.strftime('%a %-d %b %H:%M')} ({zone})"


def proposed_start(
    proposed: ProposedTime, zone: str, current: datetime | None, now: datetime, notice: timedelta
) -> datetime | None:
    """The moment a time said in words means on the writer's clock in ``zone``
    ("Thursday at 6pm", "7:30am instead", "tomorrow at 8"), at least ``notice`` after
    ``now``. A time with no day keeps the day of ``current`` (the session it would move)
    if that is still far enough ahead, else the first day it is; a day with no time keeps
    ``current``'s time. None when no definite moment was said, or it is too soon."""
    tz = ZoneInfo(zone)
    earliest = now + notice
    today = now.astimezone(tz).date()
    local_current = current.astimezone(tz) if current is not None else None
    minute = proposed.minute
    if minute is None:
        if local_current is None:
            return None
        minute = local_current.hour * 60 + local_current.minute

    def at(day: date) -> datetime:
        return (datetime.combine(day, time(), tzinfo=tz) + timedelta(minutes=minute)).astimezone(
            UTC
        )

    if proposed.days_ahead is not None:
        moment = at(today + timedelta(days=proposed.days_ahead))
        return moment if moment >= earliest else None
    days = [today + timedelta(days=offset) for offset in range(15)]
    if proposed.weekday is not None:
        days = [day for day in days if day.weekday() == proposed.weekday]
    elif local_current is not None and at(local_current.date()) >= earliest:
        return at(local_current.date())
    return next((at(day) for day in days if at(day) >= earliest), None)


def slot_fits(
    start: datetime, length: timedelta, windows: Sequence[Sequence[int]], zone: str
) -> bool:
    """Does ``[start, start+length)`` lie inside one of the weekly ``windows`` in ``zone``?"""
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    end_local = (start + length).astimezone(tz)
    if end_local.date() != local.date() and not (end_local.hour == 0 and end_local.minute == 0):
        return False
    first = local.hour * 60 + local.minute
    last = first + int(length.total_seconds() // 60)
    return any(w[0] == local.weekday() and w[1] <= first and last <= w[2] for w in windows)


def spread_choices(
    slots: Iterable[datetime], zone: str, preferred: Callable[[datetime], bool]
) -> list[datetime]:
    """Up to ``CHOICES`` of ``slots`` (sorted), a few a day on the clock of ``zone`` and
    hours apart: ``preferred`` ones first, then others if there are too few."""
    found = list(slots)
    chosen: list[datetime] = []
    per_day: dict[date, list[datetime]] = {}
    for wanted in (preferred, lambda slot: True):
        for slot in found:
            day = per_day.setdefault(slot.astimezone(ZoneInfo(zone)).date(), [])
            apart = all(abs(slot - other) >= CHOICES_APART for other in day)
            room = len(chosen) < CHOICES and len(day) < CHOICES_PER_DAY
            if room and apart and wanted(slot) and slot not in chosen:
                day.append(slot)
                chosen.append(slot)
    return sorted(chosen)
