"""A claim's effects that were left for after the answer, done by the sweep after a crash.

The claim page answers the mentor as soon as the claim is stored (``ClaimDesk.claim``
with ``defer_effects``); the introductions, the "taken" notices and the booking follow
in a job of the writer's deferred lane (``ClaimDesk.settle``), once no page waits for the
writer. The request carries ``effects_due`` from the first transaction until the second,
so a crash in between loses nothing: this sweep step settles every request still marked
a minute later, once (the mark is cleared with the mail stored), and only while the
claim stands.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

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
    """Sweep step: settle the claims whose effects have been due for ``LEFT_AFTER``;
    returns how many. (Younger ones are the running writer's, waiting in its deferred
    lane behind the pages people wait for: not to be done here, in one long job in
    front of them. Both doing one is harmless, ``settle`` is once, just wasted work.)"""
    store = coordinator.store
    pending = store.requests_due(
        "claim effects",
        effects_due,
        version=1,
        upto=now - LEFT_AFTER,
        test=lambda d: bool(effects_due(d)),
    )
    settled = 0
    for request in pending:
        number = int(request["number"])
        try:
            settled += coordinator.claims.settle(number, now)
        except Exception:
            log.exception("claim effects: %s failed; the next sweep tries again", tag(number))
    return settled
