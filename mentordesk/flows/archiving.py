"""History older than ``[state] archive_after`` leaves memory for the archive on disk;
emails, inbound messages and audit events after ``MAIL_KEPT`` (30 days).

Each sweep moves one batch (``BATCH`` documents at most, so the writer is never held
long); a state that has years to catch up on, after an upgrade, clears in a few hours.
What moves and how it stays safe across a crash is the store's (``Store.archive_history``,
``state/archive.py``); reports, export, the desk and replies to old emails read on into
the archive.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .coordinator_views import is_unplaced

if TYPE_CHECKING:
    from ..core import Coordinator
    from ..state.store import Store

__all__ = ["BATCH", "MAIL_KEPT", "archive_once", "archive_step", "needs_a_person"]

log = logging.getLogger(__name__)

BATCH = 1000  # documents per sweep: a few milliseconds on the writer
REPLY_COUNTS_KEPT = timedelta(days=1)  # a per-sender reply count looks back an hour
# Emails, inbound messages and audit events are read by Message-ID, by request or by
# time (all of which read on into the archive); nothing scans them over a longer window
# than the digest's day, but what still needs a person.
MAIL_KEPT = timedelta(days=30)


def needs_a_person(table: str, doc: Mapping[str, Any]) -> bool:
    """Whether the desk still lists this document for the coordinator (an email that
    failed, a message nobody could place): it stays until ``[state] archive_after``."""
    if table == "outbox":
        return doc.get("status") == "failed"
    if table == "messages":
        return is_unplaced(doc)
    return False


def archive_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: move one batch of old history to the archive; how many documents."""
    return archive_once(coordinator.store, now, coordinator.config.state.archive_after)


def archive_once(store: Store, now: datetime, archive_after: timedelta) -> int:
    """One batch: reply counts not needed for a day are dropped, then history past its
    time moves to the archive; how many documents moved."""
    store.drop_reply_counts(now - REPLY_COUNTS_KEPT)
    moved = store.archive_history(
        before=now - archive_after,
        mail_before=now - MAIL_KEPT,
        keep=needs_a_person,
        limit=BATCH,
    )
    if moved:
        log.debug("archived %d documents", moved)
    return moved
