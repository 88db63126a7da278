"""How the follow-through flows say numbers and spans of time to people (pure).

One home for "1 request" / "2 requests" and "3 days" / "8 months", so every email and
the digest say them the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["local_time", "plural", "span"]


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 request', '2 requests', '0 requests'; ``many`` for irregular words."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def span(delta: timedelta) -> str:
    """A span as people say it, roughly: '8 months', '13 days', '5 hours', '20 minutes'.

    Whole units, rounded down (a request that waited 13 days and 2 hours waited
    "13 days"); months from 60 days on, counted as 30-day months.
    """
    seconds = max(0, int(delta.total_seconds()))
    days = seconds // 86400
    if days >= 60:
        return plural(days // 30, "month")
    if days >= 1:
        return plural(days, "day")
    if seconds >= 3600:
        return plural(seconds // 3600, "hour")
    return plural(seconds // 60, "minute")


def local_time(moment: datetime, zone: str) -> str:
    """'Tue 10 Mar 09:00' in ``zone``: how the digest and escalations show a moment."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %-d %b %H:%M")
