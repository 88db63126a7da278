"""Ranking mentors for a request (SPEC §3, flow 3).

Pure functions over the store's plain dicts; the caller passes ``now`` and whatever
counts it keeps (sessions this month, recent sessions, who is excluded) and takes the
first few candidates of the ranking.

The order is: skill overlap, then availability overlap, then spare capacity, then
fewest recent sessions, then e-mail address so that equal candidates always come out
in the same order.

Time model
----------
An availability window ``[weekday, start_minute, end_minute]`` (Monday = 0, minutes
after local midnight, ``end_minute`` up to 1440) is wall-clock time in the person's
zone. Two people are compared in real time: each side's windows are laid out as UTC
intervals over ``[now, now + 7 days)`` with zoneinfo, so a DST change inside that week
shifts the days after it by an hour, as it will really happen.

A window runs from the first moment the person's clock reads its start to the last
moment the clock reads a time before its end. On the days the clocks change:

- spring forward: a start or end the clock skips moves to the moment of the jump, so
  in New York on the change day 02:30-03:30 is 30 real minutes and 02:00-02:30 none;
- fall back: a window touching the repeated hour covers both passes of it, so
  01:00-02:00 in New York on the change day is 120 real minutes.

A zone of ``None``, or a name zoneinfo does not know, is read as UTC rather than failing
the ranking of everyone else. Malformed windows are ignored. Times are counted in whole
minutes (``now`` is taken to the minute).

Cost
----
Each (zone, windows) pair is laid out once per UTC week and cached, each zone's offsets
once per week too, and the request once per call; the per-mentor work is a set
intersection of skills (which rejects most mentors), a few dictionary reads, a cache
hit and the merge of two short interval lists.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..state.indexes import GroupedOrder, Placement
from ..state.records import MentorStatus, term_over

__all__ = [
    "Candidate",
    "MatchInput",
    "Profile",
    "eligible",
    "mentor_placement",
    "rank_grouped",
    "rank_mentors",
    "weekly_overlap_minutes",
]

_DAY = 24 * 60  # minutes
_WEEK = 7 * _DAY
# 1970-01-01, day 0 of the epoch, was a Thursday (weekday 3 with Monday = 0).
_EPOCH_WEEKDAY = 3
# Offsets run from -12:00 to +14:00, so local days one either side of a UTC stretch can
# reach into it; the offsets are looked up two days either side to be safe.
_OFFSET_MARGIN_DAYS = 2
# Offsets are sampled this often and transitions found by bisection between samples;
# no zone changes its offset twice within three hours.
_SAMPLE_MINUTES = 3 * 60
_FAR_PAST = -(2**62)
_FAR_FUTURE = 2**62
# Must exceed the number of distinct (zone, windows) pairs among the mentors: with an
# LRU cache, a scan over more keys than it holds evicts every entry before its reuse.
_LAYOUT_CACHE_SIZE = 2**15

Interval = tuple[int, int]  # [start, end) in minutes since the Unix epoch, UTC
Windows = tuple[tuple[int, ...], ...]
# A stretch of constant UTC offset: [begin, end) in UTC minutes, offset in minutes.
Segment = tuple[int, int, int]


@dataclass(frozen=True)
class Candidate:
    """One mentor who may be invited for a request, with the figures that ranked them."""

    email: str
    skill_overlap: int  # how many of the request's skills the mentor has
    overlap_minutes: int  # minutes both are available over the next 7 days, in real time
    spare_capacity: int  # capacity minus sessions this month; at least 1
    recent_sessions: int  # sessions in the last 90 days


@dataclass(frozen=True)
class MatchInput:
    """Everything ranking needs besides the mentors and the request."""

    sessions_this_month: Mapping[str, int]  # email → claims/sessions counted against capacity
    recent_sessions: Mapping[str, int]  # email → sessions in the last 90 days
    excluded: frozenset[str] = frozenset()  # invited, released, bounced, the mentee themself


def eligible(mentor: Mapping[str, Any], now: datetime, sessions_this_month: int) -> bool:
    """True when the mentor may take a new request at ``now``: active, in term
    (:func:`~mentordesk.state.records.term_over`) and under their monthly capacity."""
    if mentor.get("status") != MentorStatus.ACTIVE:
        return False
    if sessions_this_month >= (mentor.get("capacity") or 0):
        return False
    return not term_over(mentor, now)


def rank_mentors(
    request: Mapping[str, Any],
    mentors: Sequence[Mapping[str, Any]],
    now: datetime,
    data: MatchInput,
    limit: int | None = None,
) -> list[Candidate]:
    """The mentors who could take ``request``, best first (the first ``limit`` only,
    when given: the same as slicing the whole ranking, for less work).

    Skipped: mentors sharing none of the request's skills, those in ``data.excluded``
    and those not :func:`eligible`. A request without availability ("any time") overlaps
    each mentor by all of the mentor's own minutes over the next 7 days.
    """
    wanted = frozenset(request.get("skills") or ())
    if not wanted:
        return []
    week = _week_of(_utc_minute(now))
    request_layout = _request_layout(request, now)

    excluded = data.excluded
    used = data.sessions_this_month
    recent = data.recent_sessions
    ranked: list[tuple[int, int, int, int, str]] = []
    for mentor in mentors:
        # Cheapest test first: most mentors share no skill with a given request.
        skills = mentor.get("skills") or ()
        if wanted.isdisjoint(skills):
            continue
        email = mentor["email"]
        if email in excluded:
            continue
        sessions = used.get(email, 0)
        if not eligible(mentor, now, sessions):
            continue
        mentor_layout = _layout(
            mentor.get("timezone"), _windows_key(mentor.get("availability") or ()), week
        )
        # The ranking key itself (the module docstring's order, ascending; the email last
        # so that equal candidates always come out in the same order). Candidates are
        # made for the winners only.
        ranked.append(
            (
                -len(wanted.intersection(skills)),
                -_overlap(request_layout, mentor_layout),
                -((mentor.get("capacity") or 0) - sessions),
                recent.get(email, 0),
                email,
            )
        )
    best = sorted(ranked) if limit is None else heapq.nsmallest(limit, ranked)
    return _candidates(best)


# --- ranking by groups of mentors alike ------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """What ranks mentors alike for any request: their skills, zone and weekly hours."""

    skills: frozenset[str]
    zone: str | None
    windows: Windows


# The name and version of the store's grouping of mentors (``Store.mentor_groups``);
# a change to ``mentor_placement`` needs a new version.
GROUPS = "ranking"
GROUPS_VERSION = 1


def mentor_placement(mentor: Mapping[str, Any]) -> Placement | None:
    """Where the store files a mentor for ranking: with those of the same ``Profile``,
    in the order ranking puts them when none has sessions counted (most capacity first;
    the store adds the email). None for a mentor who could not be eligible whatever the
    time and counts: not active, no capacity, no skill, unreadable hours."""
    skills = frozenset(mentor.get("skills") or ())
    capacity = mentor.get("capacity") or 0
    if mentor.get("status") != MentorStatus.ACTIVE or not skills:
        return None
    if not isinstance(capacity, int | float) or capacity <= 0:
        return None
    try:
        windows = _windows_key(mentor.get("availability") or ())
    except TypeError:
        return None
    return Placement(Profile(skills, mentor.get("timezone"), windows), (-capacity,), skills)


def rank_grouped(
    request: Mapping[str, Any],
    groups: GroupedOrder,
    mentor_of: Callable[[str], Mapping[str, Any] | None],
    now: datetime,
    data: MatchInput,
    limit: int | None = None,
    *,
    mailable: Callable[[str], bool] = lambda email: True,
) -> list[Candidate]:
    """``rank_mentors`` over the mentors filed by ``mentor_placement`` in ``groups``
    (``mentor_of`` reads one), leaving out also those ``mailable`` refuses: the same
    ranking, for work that does not grow with the mentors who are not chosen.

    Mentors of one profile share skill overlap and hours; those without sessions counted
    then rank by capacity and email: their group's own order. So each group is weighed
    once, groups of equal weight are merged in order, and only their first few mentors
    are read (checked for exclusion and eligibility one by one); mentors with sessions
    counted are ranked one by one as ``rank_mentors`` does, in the tiers reached only.
    """
    wanted = frozenset(request.get("skills") or ())
    if not wanted or limit == 0:
        return []
    week = _week_of(_utc_minute(now))
    request_layout = _request_layout(request, now)
    weights: dict[Hashable, tuple[int, int]] = {}

    def weight(profile: Hashable) -> tuple[int, int]:
        if profile not in weights:
            assert isinstance(profile, Profile)
            mentor_layout = _layout(profile.zone, profile.windows, week)
            weights[profile] = (
                -len(wanted & profile.skills),
                -_overlap(request_layout, mentor_layout),
            )
        return weights[profile]

    excluded = data.excluded
    used = data.sessions_this_month
    recent = data.recent_sessions
    # Each tier (skill overlap, hours overlap) holds the profiles that weigh so much.
    tiers: dict[tuple[int, int], list[tuple[Hashable, Sequence[tuple[tuple[Any, ...], str]]]]]
    tiers = {}
    for profile, members in groups.groups_tagged(wanted):
        tiers.setdefault(weight(profile), []).append((profile, members))
    # Mentors with sessions counted (in a program that has run a while, most of those
    # who take requests) rank one by one, but only in the tiers ranking gets to: filed
    # by profile here, read there.
    counted = set(used) | set(recent)
    by_profile: dict[Hashable, list[tuple[tuple[Any, ...], str]]] | None = None

    def counted_of(
        profile: Hashable, members: Sequence[tuple[tuple[Any, ...], str]]
    ) -> Iterable[tuple[tuple[Any, ...], str]]:
        # The counted members of one profile, as (order, email): read from the profile
        # when it is smaller than the counted set, else from the counted set filed by
        # profile (once).
        nonlocal by_profile
        if len(members) <= len(counted):
            return [member for member in members if member[1] in counted]
        if by_profile is None:
            by_profile = {}
            for email in counted:
                placement = groups.placement(email)
                if placement is not None:
                    by_profile.setdefault(placement.group, []).append((placement.order, email))
        return by_profile.get(profile, ())

    ranked: list[tuple[int, int, int, int, str]] = []
    for tier in sorted(tiers):
        room = None if limit is None else limit - len(ranked)
        # Mentors without sessions counted first: their own groups' order is theirs.
        found: list[tuple[int, int, int, int, str]] = []
        for (minus_capacity, *_), email in heapq.merge(*(m for _, m in tiers[tier])):
            if room is not None and len(found) >= room:
                break
            if email in counted or email in excluded or not mailable(email):
                continue
            mentor = mentor_of(email)
            if mentor is None or not eligible(mentor, now, 0):
                continue
            found.append((*tier, minus_capacity, 0, email))
        # Then the counted, most capacity first. Having sessions counted, one ranks at
        # best as (-capacity, 1): once the last place taken is better than that, no
        # one after them can take it, and they are not read at all.
        for (minus_capacity, *_), email in sorted(
            member for profile, members in tiers[tier] for member in counted_of(profile, members)
        ):
            if room is not None and len(found) >= room and (minus_capacity, 1) > found[-1][2:4]:
                break
            if email in excluded or not mailable(email):
                continue
            mentor = mentor_of(email)
            sessions = used.get(email, 0)
            if mentor is None or not eligible(mentor, now, sessions):
                continue
            spare = (mentor.get("capacity") or 0) - sessions
            insort(found, (*tier, -spare, recent.get(email, 0), email))
            if room is not None:
                del found[room:]
        ranked += found
        if limit is not None and len(ranked) >= limit:
            break
    return _candidates(ranked)


def _candidates(ranked: Iterable[tuple[int, int, int, int, str]]) -> list[Candidate]:
    """Candidates from ranking keys (negated: the best sorts first)."""
    return [
        Candidate(
            email=email,
            skill_overlap=-skill,
            overlap_minutes=-overlap,
            spare_capacity=-spare,
            recent_sessions=recent_count,
        )
        for skill, overlap, spare, recent_count, email in ranked
    ]


def _request_layout(request: Mapping[str, Any], now: datetime) -> tuple[Interval, ...]:
    """The request's hours over ``[now, now + 7 days)`` in UTC; no hours: all of it."""
    start = _utc_minute(now)
    if not request.get("availability"):
        return ((start, start + _WEEK),)
    week = _week_of(start)
    layout = _layout(request.get("timezone"), _windows_key(request["availability"]), week)
    return _clip(layout, start, start + _WEEK)


def weekly_overlap_minutes(
    a_windows: Iterable[Sequence[int]],
    a_zone: str | None,
    b_windows: Iterable[Sequence[int]],
    b_zone: str | None,
    now: datetime,
) -> int:
    """Minutes in ``[now, now + 7 days)`` when both sides are available, in real time.

    Each side is weekly windows local to its zone (see the module docstring for DST
    days and unknown zones). No windows means never available: the result is 0.
    """
    start = _utc_minute(now)
    week = _week_of(start)
    a_layout = _clip(_layout(a_zone, _windows_key(a_windows), week), start, start + _WEEK)
    return _overlap(a_layout, _layout(b_zone, _windows_key(b_windows), week))


# --- ranking -------------------------------------------------------------------------


# --- intervals -----------------------------------------------------------------------


def _utc_minute(moment: datetime) -> int:
    """Aware datetime → whole minutes since the Unix epoch (seconds dropped)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to matching; pass an aware UTC datetime")
    return int(moment.timestamp()) // 60


def _week_of(minute: int) -> int:
    """Epoch day number of the Monday (UTC) starting the week that holds ``minute``."""
    day = minute // _DAY
    return day - (day + _EPOCH_WEEKDAY) % 7


def _windows_key(windows: Iterable[Sequence[int]]) -> Windows:
    """The store's ``[[weekday, start, end], ...]`` as a hashable cache key."""
    return tuple(map(tuple, windows))


def _clip(layout: tuple[Interval, ...], start: int, stop: int) -> tuple[Interval, ...]:
    """The parts of sorted, disjoint ``layout`` inside ``[start, stop)``."""
    return tuple(
        (max(begin, start), min(end, stop)) for begin, end in layout if end > start and begin < stop
    )


def _overlap(a: tuple[Interval, ...], b: tuple[Interval, ...]) -> int:
    """Total length of the intersection of two sorted lists of disjoint intervals.

    ``b`` may reach far outside ``a`` (a cached fortnight against one clipped week): the
    walk starts at the last interval of ``b`` beginning before ``a`` does.
    """
    if not a:
        return 0
    j = max(bisect_left(b, (a[0][0],)) - 1, 0)
    total = i = 0
    while i < len(a) and j < len(b):
        a_begin, a_end = a[i]
        b_begin, b_end = b[j]
        if a_end <= b_begin:
            i += 1
        elif b_end <= a_begin:
            j += 1
        else:
            total += min(a_end, b_end) - max(a_begin, b_begin)
            # Drop whichever ends first; the other may still meet the next interval.
            if a_end < b_end:
                i += 1
            else:
                j += 1
    return total


@lru_cache(maxsize=_LAYOUT_CACHE_SIZE)
def _layout(zone_name: str | None, windows: Windows, week: int) -> tuple[Interval, ...]:
    """UTC intervals of weekly local ``windows``, sorted and merged.

    They cover at least the fortnight from the Monday ``week`` (an epoch day number),
    which holds any ``[now, now + 7 days)`` with ``now`` in that week; callers clip.
    """
    segments = _segments(zone_name, week)
    # Local days from the one before the fortnight to the one after can reach into it.
    first_day, last_day = week - 1, week + 14
    intervals: list[Interval] = []
    for window in windows:
        if len(window) != 3:
            continue
        weekday, begin, end = window
        if not (0 <= weekday <= 6 and 0 <= begin < end <= _DAY):
            continue
        day = first_day + (weekday - first_day - _EPOCH_WEEKDAY) % 7
        for midnight in range(day * _DAY, last_day * _DAY + 1, _WEEK):
            if len(segments) == 1:  # no clock change near this week: plain arithmetic
                offset = segments[0][2]
                utc_begin, utc_end = midnight + begin - offset, midnight + end - offset
            else:
                utc_begin = _first_reading(segments, midnight + begin)
                utc_end = _last_reading(segments, midnight + end)
            if utc_begin < utc_end:
                intervals.append((utc_begin, utc_end))
    return _merge(intervals)


def _merge(intervals: list[Interval]) -> tuple[Interval, ...]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for begin, end in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return tuple(merged)


# --- clocks --------------------------------------------------------------------------


def _first_reading(segments: tuple[Segment, ...], wall: int) -> int:
    """Earliest UTC minute at which the local clock reads ``wall`` or later.

    For a skipped wall time that is the moment of the jump; for a repeated one, its
    first pass. ``wall`` is in minutes since the epoch as read on the local clock.
    """
    for begin, end, offset in segments:
        if wall - offset < end:  # this stretch's clock reaches `wall` before it ends
            return max(begin, wall - offset)
    return _FAR_FUTURE


def _last_reading(segments: tuple[Segment, ...], wall: int) -> int:
    """Latest UTC minute up to which the local clock reads times before ``wall``.

    For a skipped wall time that is the moment of the jump; for a repeated one, its
    second pass.
    """
    for begin, end, offset in reversed(segments):
        if wall - offset > begin:  # this stretch's clock reads earlier than `wall`
            return min(end, wall - offset)
    return _FAR_PAST


@lru_cache(maxsize=1024)
def _segments(zone_name: str | None, week: int) -> tuple[Segment, ...]:
    """The zone's stretches of constant UTC offset around the fortnight from ``week``.

    The first stretch starts in the far past and the last ends in the far future, so
    any wall time maps somewhere; only those near the fortnight are exact.
    """
    zone = _zone(zone_name)
    if zone is None:
        return ((_FAR_PAST, _FAR_FUTURE, 0),)

    def offset_at(minute: int) -> int:
        delta = datetime.fromtimestamp(minute * 60, zone).utcoffset()
        return 0 if delta is None else int(delta.total_seconds()) // 60

    first = (week - _OFFSET_MARGIN_DAYS) * _DAY
    last = (week + 14 + _OFFSET_MARGIN_DAYS) * _DAY
    changes: list[tuple[int, int]] = [(_FAR_PAST, offset_at(first))]
    for sample in range(first, last, _SAMPLE_MINUTES):
        following = sample + _SAMPLE_MINUTES
        if offset_at(following) == changes[-1][1]:
            continue
        # The offset changed in (sample, following]: find the first minute of the new one.
        low, high = sample, following
        while high - low > 1:
            middle = (low + high) // 2
            if offset_at(middle) == changes[-1][1]:
                low = middle
            else:
                high = middle
        changes.append((high, offset_at(high)))
    ends = [begin for begin, _ in changes[1:]] + [_FAR_FUTURE]
    return tuple((begin, end, offset) for (begin, offset), end in zip(changes, ends, strict=True))


@lru_cache(maxsize=1024)
def _zone(name: str | None) -> ZoneInfo | None:
    """The zone called ``name``, or None (read as UTC) when there is none by that name."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None
