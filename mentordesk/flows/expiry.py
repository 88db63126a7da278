"""Requests nobody took (SPEC §3a): after ``[timers] request_max_age`` they expire.

A request still ``incomplete`` or ``open`` whose current wait began longer ago than the
maximum age — the latest of when it was created, opened, or re-opened after a release —
is closed by ``Lifecycle.expire``: the mentee is told (and may write again), nothing
more is sent about it. Expiring is a change of state, not a message due at a moment, so
it has no grace window: a request found old after downtime expires then.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..state.records import RequestStatus, parse_time, request_status
from ..state.store import iso
from ..views import tag

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["EXPIRING", "expired", "expiry_step", "waiting_since"]

log = logging.getLogger(__name__)

# The statuses in which nobody holds the request and it may grow old.
EXPIRING = frozenset({RequestStatus.INCOMPLETE, RequestStatus.OPEN})
_SINCE_FIELDS = ("reopened", "opened", "created")


def waiting_since(request: Mapping[str, Any]) -> datetime | None:
    """When the request's current wait began: the latest of created, opened, re-opened."""
    moments = [m for key in _SINCE_FIELDS if (m := parse_time(request.get(key))) is not None]
    return max(moments, default=None)


def expired(request: Mapping[str, Any], now: datetime, max_age: timedelta) -> bool:
    """Has ``request`` waited longer than ``max_age`` at ``now``, with nobody holding it?"""
    if request_status(request) not in EXPIRING:
        return False
    since = waiting_since(request)
    return since is not None and now - since >= max_age


def expiry_step(coordinator: Coordinator, now: datetime) -> int:
    """Expire every request that waited too long; returns how many expired.

    The stored times are ISO strings in UTC (the store writes only those), so a string
    comparison picks out the few candidates before any is parsed.
    """
    max_age = coordinator.config.timers.request_max_age
    cutoff = iso(now - max_age)
    store = coordinator.store

    def old(doc: Mapping[str, Any]) -> bool:
        if doc.get("status") not in EXPIRING:
            return False
        # A wait re-opened began after it opened, which was after it was created.
        began = doc.get("reopened") or doc.get("opened") or doc.get("created")
        return isinstance(began, str) and began <= cutoff and expired(doc, now, max_age)

    count = 0

    def moment(doc: Mapping[str, Any]) -> str | None:
        since = waiting_since(doc) if doc.get("status") in EXPIRING else None
        return None if since is None else iso(since + max_age)

    due = store.requests_due("expiry", moment, version=max_age, upto=now, test=old)
    for request in due:
        number = int(request["number"])
        try:
            with store.transaction():
                if coordinator.lifecycle.expire(number, now, max_age):
                    count += 1
        except Exception:
            log.exception("expiry: %s failed; the next sweep tries again", tag(number))
    return count
