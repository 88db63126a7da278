"""A claim's effects that were left for after the answer, done by the sweep after a crash.

The claim page answers the mentor as soon as the claim is stored (``ClaimDesk.claim``
with ``defer_effects``); the introductions, the "taken" notices and the booking follow
in a job of the writer's deferred lane (``ClaimDesk.settle``), once no page waits for the
writer. The request carries ``effects_due`` from the first transaction until the second,
so a crash in between loses nothing: this sweep step settles every request still marked
that no running writer has in hand (after a restart: all of them), once (the mark is
cleared with the mail stored), and only while the claim stands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..state.store import iso
from ..views import tag

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["LEFT_AFTER", "claim_effects_step", "effects_due"]

log = logging.getLogger(__name__)

#: How long a claim's effects may stay due before the sweep takes them as left by a
#: crash: far more than the writer's deferred lane ever makes them wait
#: (``state.writer.DEFER_AT_MOST_S``).
LEFT_AFTER = timedelta(minutes=1)


def effects_due(request: Mapping[str, Any]) -> str | None:
    """Since when the request's claim effects are due (ISO, UTC), None if none are."""
    due = request.get("effects_due")
    return due if isinstance(due, str) and due else None


def claim_effects_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: settle the claims whose effects a stopped process left; returns how
    many. Those this process answered are its writer's, waiting in the deferred lane
    behind the pages people wait for: not for this step, one long job in front of those
    pages, unless they have been due for ``LEFT_AFTER``. (Both settling one is harmless,
    ``settle`` is once: just work done for nothing.)"""
    store = coordinator.store
    desk = coordinator.claims
    late = iso(now - LEFT_AFTER)
    pending = store.requests_due(
        "claim effects", effects_due, version=1, upto=now, test=lambda d: bool(effects_due(d))
    )
    settled = 0
    for request in pending:
        number = int(request["number"])
        if desk.settling_here(number) and (effects_due(request) or "") > late:
            continue
        try:
            settled += coordinator.claims.settle(number, now)
        except Exception:
            log.exception("claim effects: %s failed; the next sweep tries again", tag(number))
    return settled
