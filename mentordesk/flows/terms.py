"""Mentor terms (SPEC §3 flow 10, §3a): a renewal reminder before the end; at the end,
the mentor leaves through the lifecycle.

A mentor's term ends at ``mentor["term_end"]`` (set at enrollment to ``[timers]
term_length`` ahead; "renew" by email sets it that far from the day of renewing, also
after it ended, and makes them active again). Whether it has ended is decided in one
place, ``state.records.term_over``. For active and paused mentors this module does:

    reminder  from ``renewal_notice`` before the end: "reply renew to stay on"
    ended     once the end has passed: ``Lifecycle.mentor_left(…, TERM_ENDED)`` hands
              back the requests they hold (the mentees and the coordinator are told) and
              takes them off office hours; then one "your term has ended" email

Each email goes once per term: ``mentor["term_reminded"]`` and
``mentor["term_ended_told"]`` hold the ``term_end`` each was sent for, so renewing (a
new ``term_end``) makes the new term get its own reminder. A reminder is done only
before the end: one not sent by then (the daemon was down, the term was short) is
skipped and written down (``skipped: late``); the "ended" email says the same and more.
Resigned mentors get neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..config import TimersConfig
from ..state.records import MentorStatus, mentor_status, parse_time, term_over
from ..state.store import iso
from ..timers import skip_late
from ..views import tag
from .words import plural

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["term_notice", "terms_step"]

log = logging.getLogger(__name__)

# Mentors whose term this module watches; the others have left (or are not in yet).
IN_PROGRAM = frozenset({MentorStatus.ACTIVE, MentorStatus.PAUSED})


# A stored term end as a time; remembered, as the sweep reads every mentor's each minute.
_end_of = lru_cache(maxsize=8192)(parse_time)


def term_notice(mentor: Mapping[str, Any], timers: TimersConfig, now: datetime) -> str | None:
    """ "reminder", "ended" or None: what ``mentor``'s term calls for at ``now``.

    "ended" is due for every mentor still in the program whose term is over (the
    email itself goes once per term); an unreadable end counts as over, as
    ``term_over`` says.
    """
    if mentor_status(mentor) not in IN_PROGRAM or not mentor.get("term_end"):
        return None
    if term_over(mentor, now):
        return "ended"
    end = parse_time(mentor["term_end"])
    if end is not None and now >= end - timers.renewal_notice:
        return None if mentor.get("term_reminded") == mentor["term_end"] else "reminder"
    return None


def terms_step(coordinator: Coordinator, now: datetime) -> int:
    """End the terms that are over and send the term emails due; returns the emails sent."""
    timers = coordinator.config.timers
    store = coordinator.store
    sent = 0

    # Most mentors are far from the end of their term: they are passed over with one
    # comparison (each stored end is read once, then remembered); the others, and any
    # end that cannot be read, get the full decision.
    window = now + timers.renewal_notice

    def due(doc: Mapping[str, Any]) -> bool:
        if doc.get("status") not in IN_PROGRAM:
            return False
        raw = doc.get("term_end")
        end = _end_of(raw) if isinstance(raw, str) else None
        if end is not None and end > window:
            return False
        return bool(term_notice(doc, timers, now))

    for mentor in store.mentors_where(due):
        notice = term_notice(mentor, timers, now)
        try:
            with store.transaction():
                if notice == "ended":
                    sent += _end_term(coordinator, mentor, now)
                else:
                    sent += _remind(coordinator, mentor, now)
        except Exception:
            log.exception("terms: %s failed; the next sweep tries again", mentor.get("email"))
    return sent


def _remind(coordinator: Coordinator, mentor: dict[str, Any], now: datetime) -> int:
    """Record that the reminder went out for this term, and send it."""
    store = coordinator.store
    email, term_end = mentor["email"], mentor["term_end"]
    mentor["term_reminded"] = term_end
    store.save_mentor(mentor)
    store.audit("term reminder", now=now, mentor=email, term_end=term_end)
    sent = coordinator.postman.send(
        "term_reminder",
        to=email,
        to_name=mentor.get("name", ""),
        now=now,
        context={
            "mentor": mentor,
            "term_end": _local_date(term_end, mentor.get("timezone")),
            "term_years": _years(coordinator.config.timers),
        },
        # A reply "renew" to this email is a command in the mentor's thread.
        thread=("mentor", email),
    )
    return 0 if sent is None else 1


def _end_term(coordinator: Coordinator, mentor: dict[str, Any], now: datetime) -> int:
    """The mentor leaves through the lifecycle; they hear of it once per term."""
    store, timers = coordinator.store, coordinator.config.timers
    email, term_end = mentor["email"], mentor["term_end"]
    end = parse_time(term_end)
    if end is not None and mentor.get("term_reminded") != term_end:
        skip_late(
            store,
            now,
            step="term reminder",
            what=str(mentor.get("name") or email),
            due=end - timers.renewal_notice,
            rule="a renewal reminder goes only before the term ends",
            mentor=email,
        )
        mentor["term_reminded"] = term_end
        store.save_mentor(mentor)
    if end is None:
        coordinator.postman.tell_coordinator(
            f"{email}: the term end {term_end!r} cannot be read; the term is treated as over",
            now,
            once=f"term-unreadable:{email}:{term_end}",
        )
    released = coordinator.lifecycle.mentor_left(email, MentorStatus.TERM_ENDED, now)
    mentor = store.mentor(email) or mentor
    if mentor.get("term_ended_told") == term_end:
        return 0  # told before (by a version that did not yet hand back requests)
    mentor["term_ended_told"] = term_end
    mentor["updated"] = iso(now)
    store.save_mentor(mentor)
    sent = coordinator.postman.send(
        "term_ended",
        to=email,
        to_name=mentor.get("name", ""),
        now=now,
        context={
            "mentor": mentor,
            "term_end": _local_date(term_end, mentor.get("timezone")) if end else "",
            "term_years": _years(timers),
            "released": [tag(n) for n in released],
        },
        thread=("mentor", email),
    )
    return 0 if sent is None else 1


def _local_date(text: str, zone: Any) -> str:
    try:
        tz = ZoneInfo(zone) if isinstance(zone, str) and zone else ZoneInfo("UTC")
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")
    moment = parse_time(text)
    return moment.astimezone(tz).strftime("%A %-d %B %Y") if moment else ""


def _years(timers: TimersConfig) -> str:
    """The term length as people say it: "2 years", "6 months", "90 days"."""
    days = timers.term_length.days
    if days >= 360 and days % 365 in (0, 1):
        return plural(round(days / 365), "year")
    if days >= 28 and days % 30 == 0:
        return plural(days // 30, "month")
    return plural(days, "day")
