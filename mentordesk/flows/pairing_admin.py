"""The coordinator's pairing commands: list the pairings, cancel or move one session.

A reply to a pairing's invitation ("can we skip the 17th?") reaches the coordinator, who
changes that one occurrence for both with ``mentordesk pairings cancel|move`` (through
the running daemon, as the office-hours commands go; see ``admin.ask_daemon``). The
dates and times are read as office hours read theirs (``flows.office_hours_admin``).

    {"action": "list"}
    {"action": "cancel", "id": 1, "date": "2026-04-07"}
    {"action": "move", "id": 1, "date": "2026-04-07", "to": "19:00"}   (or "2026-04-08 19:00")
    {"action": "release", "id": 1}     take it from a quiet mentor: the series is cancelled,
                                       the request goes back to matching (the lifecycle's
                                       release, by the coordinator)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..calendar.recurrence import WeeklyRule, occurrences, pattern
from ..errors import OfficeHoursError
from ..state.pairings import all_pairings, pairing, pairing_status
from ..state.store import from_iso
from ..views import tag
from .office_hours_admin import _day, _new_time, _text
from .pairings import PairingDesk

__all__ = ["describe", "pairing_admin"]

NEXT_SHOWN = 4


def pairing_admin(desk: PairingDesk, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Apply one coordinator command and say what happened (OfficeHoursError if it cannot)."""
    store = desk.store
    action = command.get("action")
    if action == "list":
        return {"pairings": [describe(doc, now) for doc in all_pairings(store)]}
    if action in ("cancel", "move", "release"):
        pairing_id = command.get("id")
        if isinstance(pairing_id, bool) or not isinstance(pairing_id, int):
            raise OfficeHoursError(f"id must be a pairing number, got {pairing_id!r}")
        if action == "release":
            return {"pairing": describe(_release(desk, pairing_id, now), now)}
        day = _day(_text(command, "date"))
        with store.transaction():
            if action == "cancel":
                doc = desk.cancel_occurrence(pairing_id, day, now)
            else:
                doc = desk.move_occurrence(pairing_id, day, _new_time(command, day), now)
        return {"pairing": describe(doc, now)}
    raise OfficeHoursError(f"unknown action {action!r}: want list, cancel, move or release")


def _release(desk: PairingDesk, pairing_id: int, now: datetime) -> dict[str, Any]:
    doc = pairing(desk.store, pairing_id)
    if doc is None or not pairing_status(doc).live:
        raise OfficeHoursError(f"pairing {pairing_id} is not running")
    assert desk.release is not None
    with desk.store.transaction():
        desk.release(int(doc["request"]), "coordinator", now, why="released")
    after = pairing(desk.store, pairing_id)
    assert after is not None
    return after


def describe(doc: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A pairing in words for the CLI."""
    rule = WeeklyRule.of(doc["series"])
    upcoming = occurrences(rule, now, now + timedelta(weeks=rule.interval * NEXT_SHOWN))
    return {
        "id": doc["id"],
        "request": tag(int(doc["request"])),
        "mentor": doc["mentor"],
        "mentee": doc["mentee"],
        "status": pairing_status(doc).value,
        "when": pattern(rule),
        "term_end": from_iso(doc["term_end"]).date().isoformat(),
        "next": [f"{o.start:%a %Y-%m-%d %H:%M}" for o in upcoming[:NEXT_SHOWN]],
        "cancelled": sorted(d.isoformat() for d in rule.cancelled),
        "moved": {d.isoformat(): f"{s:%Y-%m-%d %H:%M}" for d, s in sorted(rule.moved.items())},
    }
