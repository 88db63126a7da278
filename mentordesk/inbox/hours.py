"""Weekly hours: what people type after an ``Availability:`` label, and how to show it.

``parse_availability`` reads "Tue 18:00-20:00, Sat 10am to noon", "Mon-Fri 9-17" or
"weekends 10am to noon"; ``format_windows`` writes windows back ("Mon–Fri 19:00–21:00");
``hours_for_reader`` shows someone's hours to a reader in another zone. Hours said in
sentences ("weekday evenings after 6pm") are read by ``inbox/prose_hours.py``. A window
is wall-clock time in the person's own zone.

Pure functions over strings and dates; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from .zones import resolve_timezone

__all__ = [
    "RANGE_SEPARATOR",
    "Window",
    "availability_error",
    "clock",
    "clock_minutes",
    "format_windows",
    "hours_for_reader",
    "merge_windows",
    "parse_availability",
    "read_availability",
    "time_pattern",
    "time_range",
    "weekday_number",
    "windows_in_zone",
]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, order=True)
class Window:
    """One weekly availability window in the person's own timezone."""

    weekday: int  # 0 = Monday
    start_minute: int  # minutes after local midnight
    end_minute: int  # > start_minute, ≤ 1440


def _shown(text: str, limit: int = 80) -> str:
    """``text`` as quoted back in a problem sentence: one line, not too long."""
    line = re.sub(r"\s+", " ", text).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


# --- Availability: values -------------------------------------------------------------

_DAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_PATTERN = (
    r"(?:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:s|nesday)?|thu(?:rs?(?:day)?)?"
    r"|fri(?:day)?|sat(?:urday)?|sun(?:day)?)s?"
)
_DAY_GROUPS = {
    "weekday": range(5), "weekdays": range(5), "workday": range(5), "workdays": range(5),
    "work day": range(5), "work days": range(5), "weekend": range(5, 7),
    "weekends": range(5, 7), "daily": range(7), "every day": range(7),
    "everyday": range(7), "any day": range(7), "all week": range(7),
}  # fmt: skip


def time_pattern(name: str) -> str:
    return (
        rf"(?:(?<![\w:.])(?P<{name}h>\d{{1,2}})(?:[:.h](?P<{name}m>\d{{2}}))?(?!\d)"
        rf"\s*+(?P<{name}ap>[ap]m\b)?h?|(?P<{name}w>noon|midday|midnight))"
    )


RANGE_SEPARATOR = r"\s*(?:-|to|till|until|til|thru|through)\s*"
_ITEM = re.compile(
    rf"(?P<range>{time_pattern('s')}{RANGE_SEPARATOR}{time_pattern('e')})"
    rf"|\b(?P<d1>{_DAY_PATTERN})\s*(?:-|to|through|thru|till|until)\s*(?P<d2>{_DAY_PATTERN})\b"
    rf"|\b(?P<group>{'|'.join(sorted(_DAY_GROUPS, key=len, reverse=True))})\b"
    rf"|\b(?P<day>{_DAY_PATTERN})\b",
    re.IGNORECASE,
)
_CHUNK_SEPARATOR = re.compile(r"[,;\n|]|\.(?=\s|$)|\s/\s")
_AVAILABILITY_FILLER = frozenset(
    {"and", "or", "also", "my", "time", "local", "timezone", "please", "on", "at", "from", "every"}
)


def weekday_number(word: str) -> int:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(word[:3].lower())


def clock_minutes(match: re.Match[str], name: str) -> tuple[int, str | None] | None:
    """(minutes after midnight, "am"/"pm"/None); None when it is no time of day."""
    word = (match.group(f"{name}w") or "").lower()
    if word:
        return (0 if word == "midnight" else 720), ("pm" if word != "midnight" else "am")
    hours, minutes = int(match.group(f"{name}h")), int(match.group(f"{name}m") or 0)
    meridiem = (match.group(f"{name}ap") or "").lower() or None
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    if meridiem:
        if not 1 <= hours <= 12:
            return None
        hours = hours % 12 + (12 if meridiem == "pm" else 0)
    return hours * 60 + minutes, meridiem


def time_range(match: re.Match[str]) -> tuple[int, int] | None:
    """(start, end) minutes; end may be ≤ start for a window that runs past midnight."""
    start, end = clock_minutes(match, "s"), clock_minutes(match, "e")
    if start is None or end is None:
        return None
    (start_minute, start_meridiem), (end_minute, end_meridiem) = start, end
    if (match.group("ew") or "").lower() == "midnight":
        end_minute = 1440
    if end_meridiem and not start_meridiem and match.group("sh"):
        # "6-8pm": the start shares the end's half of the day if that keeps it first.
        hours = int(match.group("sh"))
        shifted = (hours % 12 + (12 if end_meridiem == "pm" else 0)) * 60 + start_minute % 60
        if 1 <= hours <= 12 and shifted < end_minute:
            start_minute = shifted
    elif not end_meridiem and match.group("eh") and end_minute <= start_minute < 1440:
        # "9-5" and "6pm-8" mean 9:00-17:00 and 18:00-20:00; "22-1" stays overnight.
        later = end_minute + 720
        if end_minute < 720 and later > start_minute and (start_meridiem or start_minute < 780):
            end_minute = later
    if end_minute == 0 and start_minute > 0:
        end_minute = 1440  # "22:00-0:00" ends at midnight
    if start_minute >= 1440 or start_minute == end_minute:
        return None
    return start_minute, end_minute


def read_availability(text: str) -> tuple[tuple[Window, ...], list[str]]:
    """Windows read from ``text`` and the pieces of it that could not be read.

    Days carry forward to the next time ("Mon, Wed 18-20"), a time with no days of its
    own uses the days before it ("Sat 10-12, 14-16"), and a time may come first
    ("18:00-20:00 on Tuesdays").
    """
    # Runs of spaces collapsed: the item pattern has adjacent optional spaces.
    normal = re.sub(r"[ \t]+", " ", re.sub(r"[‐-―−]", "-", _CONTROL.sub(" ", text)))
    normal = re.sub(r"\b([ap])\.m\.?", r"\1m", normal, flags=re.IGNORECASE)
    normal = re.sub(r"\bbetween\s+(\S+)\s+and\b", r"\1 to", normal, flags=re.IGNORECASE)

    windows: list[Window] = []
    unread: list[str] = []
    pending: set[int] = set()  # days still waiting for a time
    pending_text: list[str] = []  # ... and where they were written
    last_days: set[int] = set()  # days that got the latest time

    def emit(days: Iterable[int], ranges: list[tuple[int, int]]) -> None:
        nonlocal last_days
        last_days = set(days)
        for day in last_days:
            for start, end in ranges:
                windows.extend(_windows(day, start, end))

    for chunk in _CHUNK_SEPARATOR.split(normal):
        items, leftover, bad = _scan(chunk)
        if bad or (not items and not _ignorable(leftover)):
            unread.append(chunk.strip())
        days, ranges, leading = set(pending), list[tuple[int, int]](), list[tuple[int, int]]()
        pending = set()
        if items and not any(isinstance(item, tuple) for item in items):
            pending_text.append(chunk.strip())
        elif items:
            pending_text = []
        for item in items:
            if isinstance(item, tuple):
                ranges.append(item)
            elif ranges and days:  # "Tue 18-20 Sat 10-12": a new group starts
                emit(days, ranges)
                days, ranges = set(item), []
            else:
                if ranges:  # "18-20 on Tue"
                    leading, ranges = ranges, []
                days |= item
        if days and (ranges or leading):
            emit(days, ranges or leading)
        elif days:
            pending = days
        elif ranges and last_days:
            emit(last_days, ranges)
        elif ranges and not bad:
            unread.append(chunk.strip())
    if pending:
        unread.append(", ".join(pending_text))  # days that never got a time
    return merge_windows(windows), [chunk for chunk in unread if chunk]


def _scan(chunk: str) -> tuple[list[set[int] | tuple[int, int]], str, bool]:
    """Day sets and (start, end) ranges in ``chunk`` in order; the text left; any bad time."""
    items: list[set[int] | tuple[int, int]] = []
    bad = False
    for match in _ITEM.finditer(chunk):
        if match.group("range"):
            span = time_range(match)
            if span is None:
                bad = True
            else:
                items.append(span)
        elif match.group("d1"):
            first, last = weekday_number(match.group("d1")), weekday_number(match.group("d2"))
            items.append({(first + i) % 7 for i in range((last - first) % 7 + 1)})
        elif match.group("group"):
            group = re.sub(r"\s+", " ", match.group("group").lower())
            items.append(set(_DAY_GROUPS[group]))
        else:
            items.append({weekday_number(match.group("day"))})
    return items, _ITEM.sub(" ", chunk), bad


def _ignorable(leftover: str) -> bool:
    words = re.findall(r"[^\W_]+", leftover.lower())
    return all(word in _AVAILABILITY_FILLER for word in words) or bool(resolve_timezone(leftover))


def _windows(day: int, start: int, end: int) -> list[Window]:
    if end > start:
        return [Window(day, start, end)]
    # Past midnight: the rest of the day, then the early hours of the next.
    tonight = Window(day, start, 1440)
    return [tonight, Window((day + 1) % 7, 0, end)] if end > 0 else [tonight]


def merge_windows(windows: Iterable[Window]) -> tuple[Window, ...]:
    merged: list[Window] = []
    for window in sorted(windows):
        last = merged[-1] if merged else None
        if last and last.weekday == window.weekday and window.start_minute <= last.end_minute:
            end = max(last.end_minute, window.end_minute)
            merged[-1] = Window(last.weekday, last.start_minute, end)
        else:
            merged.append(window)
    return tuple(merged)


def availability_error(text: str) -> str:
    return (
        f"I couldn't read any days and times in “{_shown(text)}”. Please write them like "
        "Tue 18:00-20:00, Sat 10:00-12:00."
    )


def parse_availability(text: str) -> tuple[Window, ...]:
    """Weekly windows from text like "Tue 18:00-20:00, Sat 10am to noon", sorted and merged.

    Unreadable pieces are skipped; ValueError (a sentence to show the sender) when nothing
    at all can be read.
    """
    windows, _ = read_availability(text)
    if not windows:
        raise ValueError(availability_error(text))
    return windows


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_windows(windows: Sequence[Window]) -> str:
    """ "Mon–Fri 19:00–21:00, Sat 10:00–12:00" (en dash; a window to midnight ends at 24:00).

    Days sharing the same hours are grouped, and a run of three or more consecutive days
    is written as a range, so a confirmation echoes back what people wrote, not a list.
    """
    by_hours: dict[tuple[int, int], list[int]] = {}
    for w in sorted(windows):
        days = by_hours.setdefault((w.start_minute, w.end_minute), [])
        if w.weekday not in days:
            days.append(w.weekday)
    groups = sorted(by_hours.items(), key=lambda item: (min(item[1]), item[0]))
    return ", ".join(
        f"{_day_list(days)} {clock(start)}–{clock(end)}" for (start, end), days in groups
    )


def _day_list(days: Sequence[int]) -> str:
    """[0, 1, 2, 3, 4, 6] → "Mon–Fri, Sun"; [1, 3] → "Tue, Thu"."""
    runs: list[list[int]] = []
    for day in sorted(days):
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        names = [_DAY_ABBREVIATIONS[d] for d in run]
        parts.append(f"{names[0]}–{names[-1]}" if len(run) >= 3 else ", ".join(names))
    return ", ".join(parts)


# --- in another zone -------------------------------------------------------------------


def windows_in_zone(
    windows: Iterable[Window], zone: str, reader_zone: str, now: datetime
) -> tuple[Window, ...]:
    """Weekly ``windows`` of someone in ``zone`` as a clock in ``reader_zone`` reads them
    in the coming week from ``now`` (the offsets of that week, DST included)."""
    source, target = ZoneInfo(zone), ZoneInfo(reader_zone)
    today = now.astimezone(source).date()
    shifted: list[Window] = []
    for window in windows:
        day = today + timedelta(days=(window.weekday - today.weekday()) % 7)
        midnight = datetime.combine(day, time(), tzinfo=source)
        start = (midnight + timedelta(minutes=window.start_minute)).astimezone(target)
        end = (midnight + timedelta(minutes=window.end_minute)).astimezone(target)
        while start < end:
            next_midnight = datetime.combine(
                start.date() + timedelta(days=1), time(), tzinfo=target
            )
            stop = min(end, next_midnight)
            first = start.hour * 60 + start.minute
            last = 1440 if stop == next_midnight else stop.hour * 60 + stop.minute
            if last > first:
                shifted.append(Window(start.weekday(), first, last))
            start = stop
    return merge_windows(shifted)


def hours_for_reader(windows: Sequence[Window], zone: str, reader_zone: str, now: datetime) -> str:
    """Someone's weekly hours as a reader elsewhere reads them, their own in brackets:
    "Mon–Fri 21:30–23:30 your time (07:00–09:00 in America/Los_Angeles)"."""
    own = format_windows(windows)
    if zone == reader_zone:
        return f"{own} (your time zone too)"
    theirs = windows_in_zone(windows, zone, reader_zone, now)
    mine = format_windows(theirs)
    same_days = _day_sets(windows) == _day_sets(theirs)
    bracket = _hours_only(windows) if same_days else own
    return f"{mine} your time ({bracket} in {zone})"


def _day_sets(windows: Sequence[Window]) -> list[tuple[int, ...]]:
    by_hours: dict[tuple[int, int], list[int]] = {}
    for w in sorted(windows):
        by_hours.setdefault((w.start_minute, w.end_minute), []).append(w.weekday)
    return sorted(tuple(days) for days in by_hours.values())


def _hours_only(windows: Sequence[Window]) -> str:
    spans = sorted({(w.start_minute, w.end_minute) for w in windows})
    return ", ".join(f"{clock(start)}–{clock(end)}" for start, end in spans)
