"""Where pairings are kept: one document each in the store's ``pairings`` table.

A pairing document (``flows/pairings`` writes it):

    id, request, mentor, mentee     who, and the request it serves
    status                          ``records.PairingStatus``
    started, term_end               ISO times (UTC); the term ends at term_end
    checkins                        the quarters (1, 2, 3 …) whose check-in was done
    answers                         "<quarter>|<email>" → going-well | needs-help
    term_asked                      the term_end whose "extend, change or end?" went out
    choices                         email → extend | change | end (for the current term)
    series                          the recurring series, fields as office hours keep
                                    them (``calendar.recurrence.WeeklyRule.of``), plus
                                    interval_weeks

The table joins the store's transactions like every other (``state.db``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .records import PairingStatus
from .store import Store

__all__ = [
    "TABLE",
    "all_pairings",
    "live_pairing_of",
    "live_pairings",
    "new_pairing_id",
    "pairing",
    "pairing_status",
    "save_pairing",
]

TABLE = "pairings"
Doc = dict[str, Any]


def pairing_status(doc: Mapping[str, Any]) -> PairingStatus:
    return PairingStatus(str(doc.get("status") or PairingStatus.ORIENTING))


def new_pairing_id(store: Store) -> int:
    number = int(store.meta("next_pairing", 1))
    store.set_meta("next_pairing", number + 1)
    return number


def pairing(store: Store, pairing_id: int) -> Doc | None:
    for doc in store.db.table(TABLE):
        if doc.get("id") == pairing_id:
            return dict(doc)
    return None


def all_pairings(store: Store) -> list[Doc]:
    return sorted((dict(d) for d in store.db.table(TABLE)), key=lambda d: int(d["id"]))


def live_pairings(store: Store) -> list[Doc]:
    return [d for d in all_pairings(store) if pairing_status(d).live]


def live_pairing_of(store: Store, number: int) -> Doc | None:
    """The request's live pairing, if it has one."""
    found = [d for d in live_pairings(store) if int(d["request"]) == number]
    return found[0] if found else None


def save_pairing(store: Store, doc: Mapping[str, Any]) -> Doc:
    """Insert or replace the pairing keyed by ``doc["id"]``."""
    table = store.db.table(TABLE)
    pairing_id = int(doc["id"])
    ids = [d.doc_id for d in table if d.get("id") == pairing_id]
    if ids:
        table.update(dict(doc), doc_ids=ids)
    else:
        table.insert(dict(doc))
    return dict(doc)
