"""The timed steps of pairings (``flows/pairings``): check-ins, the term's end, going quiet.

For each live pairing, in one transaction each, a sweep does what is due:

    check-in     every ``[pairings] check_in_every`` (91 days) from the first session,
                 before the term's end: "going well / needs help" to both, once per
                 quarter (``checkins`` holds the quarters done). Late only within
                 ``[timers] after_session_grace``; later it is skipped and written down.
    term choice  from ``TERM_NOTICE`` before the term's end: "another term, a change of
                 mentor, or an end?" to both, once per term (``term_asked`` holds the
                 term_end it went out for). What they choose is ``pairings.decide_term``.
    term over    the end passed and nobody chose: the pairing ends (the request is
                 closed through the lifecycle; the series, whose UNTIL was the end,
                 gets its CANCEL too).
    quiet        no session held for ``[pairings] quiet_weeks`` (every occurrence in that
                 time cancelled): the coordinator is told, once per pairing.

``decide`` is pure: it says which of these a pairing calls for at ``now``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..calendar.recurrence import WeeklyRule, occurrences
from ..config import Config
from ..state.pairings import live_pairings, pairing, pairing_status, save_pairing
from ..state.store import from_iso, iso
from ..timers import skip_late, too_late
from ..views import tag

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["TERM_NOTICE", "Due", "decide", "pairings_step"]

log = logging.getLogger(__name__)

# The choice at the term's end goes out this long before it.
TERM_NOTICE = timedelta(days=21)


@dataclass(frozen=True)
class Due:
    """What a pairing calls for at a moment."""

    check_in: int | None = None  # the quarter whose check-in is due
    check_in_at: datetime | None = None
    ask_term: bool = False
    term_over: bool = False
    quiet: bool = False


def decide(doc: Mapping[str, Any], config: Config, now: datetime) -> Due:
    """Which timed steps the pairing ``doc`` calls for at ``now`` (pure)."""
    if not pairing_status(doc).live:
        return Due()
    settings = config.pairings
    started, term_end = from_iso(doc["started"]), from_iso(doc["term_end"])
    if now >= term_end:
        return Due(term_over=True)
    quarter = int((now - started) / settings.check_in_every) if now > started else 0
    moment = started + quarter * settings.check_in_every
    check_in = quarter if quarter >= 1 and quarter not in (doc.get("checkins") or []) else None
    ask_term = now >= term_end - TERM_NOTICE and doc.get("term_asked") != doc["term_end"]
    return Due(
        check_in=check_in,
        check_in_at=moment if check_in else None,
        ask_term=ask_term,
        quiet=_quiet(doc, settings.quiet_weeks, now) and not doc.get("quiet_told"),
    )


def _quiet(doc: Mapping[str, Any], weeks: int, now: datetime) -> bool:
    """No occurrence took place in the last ``weeks`` weeks, though the pairing was on."""
    window = timedelta(weeks=weeks)
    if now - from_iso(doc["started"]) < window:
        return False
    rule = WeeklyRule.of(doc["series"])
    held = [o for o in occurrences(rule, now - window, now) if o.end <= now]
    return not held


def pairings_step(coordinator: Coordinator, now: datetime) -> int:
    """Do the pairings' timed steps that are due; returns the emails sent."""
    # Pairings already running go on to their end even if [pairings] is switched off.
    config = coordinator.config
    store = coordinator.store
    sent = 0
    for doc in live_pairings(store):
        due = decide(doc, config, now)
        if due == Due():
            continue
        try:
            with store.transaction():
                sent += _apply(coordinator, int(doc["id"]), due, now)
        except Exception:
            log.exception("pairings: pairing %s failed; the next sweep tries again", doc["id"])
    return sent


def _apply(coordinator: Coordinator, pairing_id: int, due: Due, now: datetime) -> int:
    store, desk = coordinator.store, coordinator.desks.pairings
    doc = pairing(store, pairing_id)
    if doc is None:
        return 0
    number = int(doc["request"])
    if due.term_over:
        store.audit("pairing term over", now=now, pairing=pairing_id, request=number)
        desk.carry_out(doc, "end", now, by="")
        return 2
    sent = 0
    if due.check_in is not None and due.check_in_at is not None:
        doc["checkins"] = [*(doc.get("checkins") or []), due.check_in]
        save_pairing(store, doc)
        grace = coordinator.config.timers.after_session_grace
        if too_late(due.check_in_at, now, grace):
            skip_late(
                store,
                now,
                step="pairing check-in",
                what=tag(number),
                due=due.check_in_at,
                rule="a check-in goes out late only within the after-session grace",
                request=number,
            )
        else:
            months = round((due.check_in_at - from_iso(doc["started"])).days / 30.4)
            desk.send_letter(doc, "pairing_check_in", now, months=months)
            store.audit("pairing check-in sent", now=now, pairing=pairing_id, quarter=due.check_in)
            sent += 2
    if due.ask_term:
        doc["term_asked"] = doc["term_end"]
        doc["choices"] = {}
        save_pairing(store, doc)
        desk.send_letter(doc, "pairing_term", now)
        store.audit("pairing term asked", now=now, pairing=pairing_id, term_end=doc["term_end"])
        sent += 2
    if due.quiet:
        doc["quiet_told"] = iso(now)
        save_pairing(store, doc)
        told = coordinator.postman.tell_coordinator(
            f"pairing {pairing_id} has gone quiet",
            now,
            template="coordinator_pairing",
            once=f"pairing-quiet:{pairing_id}",
            request=number,
            context={"situation": "quiet", **desk.coordinator_view(doc)},
        )
        sent += told is not None
    return sent
