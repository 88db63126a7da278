"""Mentor terms (SPEC §3 flow 10): a renewal reminder before the end, a word at the end.

A mentor's term ends at ``mentor["term_end"]`` (set at enrollment to ``[timers]
term_length`` ahead; "renew" by email sets it that far from the day of renewing, also
after it ended). Matching stops offering requests once it has passed
(``matching.eligible``). This module adds the two emails, each once per term:

    reminder  from ``renewal_notice`` before the end: "reply renew to stay on"
    ended     once the end has passed: "you get no new requests; renew any time"

A term is known by its end: ``mentor["term_reminded"]`` and ``mentor["term_ended_told"]``
hold the ``term_end`` each email was sent for, so renewing (a new ``term_end``) makes
the new term get its own reminder. A reminder not sent before the end (the daemon was
down, the term was short) is skipped: the "ended" email says the same and more.
Resigned mentors get neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from ..config import TimersConfig
from ..core import Coordinator
from ..timers import register_sweep_step

__all__ = ["term_notice", "terms_step"]

log = logging.getLogger(__name__)

NOTIFIED_STATUSES = ("active", "paused")


def term_notice(mentor: Mapping[str, Any], timers: TimersConfig, now: datetime) -> str | None:
    """ "reminder", "ended" or None: which term email ``mentor`` is due at ``now``."""
    if mentor.get("status") not in NOTIFIED_STATUSES:
        return None
    term_end = mentor.get("term_end")
    if not isinstance(term_end, str) or not term_end:
        return None
    try:
        end = datetime.fromisoformat(term_end)
    except ValueError:
        return None
    if end.tzinfo is None:
        return None
    if now >= end:
        return None if mentor.get("term_ended_told") == term_end else "ended"
    if now >= end - timers.renewal_notice and mentor.get("term_reminded") != term_end:
        return "reminder"
    return None


def terms_step(coordinator: Coordinator, now: datetime) -> int:
    """Send the term emails that are due; returns how many."""
    timers = coordinator.config.timers
    store = coordinator.store
    sent = 0
    for mentor in store.mentors_where(lambda doc: term_notice(doc, timers, now)):
        notice = term_notice(mentor, timers, now)
        try:
            with store.transaction():
                sent += _notify(coordinator, mentor, str(notice), now)
        except Exception:
            log.exception("terms: %s failed; the next sweep tries again", mentor.get("email"))
    return sent


def _notify(coordinator: Coordinator, mentor: dict[str, Any], notice: str, now: datetime) -> int:
    """Record that ``notice`` went out for this term, and send it."""
    store, timers = coordinator.store, coordinator.config.timers
    email = mentor["email"]
    term_end = mentor["term_end"]
    field = "term_reminded" if notice == "reminder" else "term_ended_told"
    mentor[field] = term_end
    store.save_mentor(mentor)
    store.audit(f"term {notice}", now=now, mentor=email, term_end=term_end)
    if store.is_bounced(email):
        return 0
    coordinator.postman.send(
        "term_reminder" if notice == "reminder" else "term_ended",
        to=email,
        to_name=mentor.get("name", ""),
        now=now,
        context={
            "mentor": mentor,
            "term_end": _local_date(term_end, mentor.get("timezone")),
            "term_years": _years(timers),
        },
        # A reply "renew" to this email is a command in the mentor's thread.
        thread=("mentor", email),
    )
    return 1


def _local_date(text: str, zone: Any) -> str:
    try:
        tz = ZoneInfo(zone) if isinstance(zone, str) and zone else ZoneInfo("UTC")
    except (KeyError, ValueError):
        tz = ZoneInfo("UTC")
    return datetime.fromisoformat(text).astimezone(tz).strftime("%A %-d %B %Y")


def _years(timers: TimersConfig) -> str:
    """The term length as people say it: "2 years", "6 months", "90 days"."""
    days = timers.term_length.days
    if days >= 360 and days % 365 in (0, 1):
        years = round(days / 365)
        return f"{years} year{'s' if years != 1 else ''}"
    if days >= 28 and days % 30 == 0:
        months = days // 30
        return f"{months} month{'s' if months != 1 else ''}"
    return f"{days} day{'s' if days != 1 else ''}"


register_sweep_step("terms", terms_step)
