"""History older than ``[state] archive_after`` leaves memory for the archive on disk.

Each sweep moves one batch (``BATCH`` documents at most, so the writer is never held
long); a state that has years to catch up on, after an upgrade, clears in a few hours.
What moves and how it stays safe across a crash is the store's (``Store.archive_history``,
``state/archive.py``); reports, export, the desk and replies to old emails read on into
the archive.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core import Coordinator

__all__ = ["BATCH", "archive_step"]

log = logging.getLogger(__name__)

BATCH = 1000  # documents per sweep: a few milliseconds on the writer
REPLY_COUNTS_KEPT = timedelta(days=1)  # a per-sender reply count looks back an hour


def archive_step(coordinator: Coordinator, now: datetime) -> int:
    """Sweep step: move one batch of old history to the archive; how many documents.
    Reply counts of senders not answered for a day are dropped on the way."""
    store = coordinator.store
    store.drop_reply_counts(now - REPLY_COUNTS_KEPT)
    moved = store.archive_history(before=now - coordinator.config.state.archive_after, limit=BATCH)
    if moved:
        log.debug("archived %d documents older than %s", moved, now.date())
    return moved
