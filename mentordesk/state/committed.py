"""Point reads of the durably committed state, from any thread (the web's GET pages).

Every store call runs on the one writer thread (``writer.py``), so a page that only
reads would queue behind claims, "sent" marks and intake. ``CommittedView`` lets such a
page read without the writer: a request by number, a mentor by email, how many claims
a mentor made since a moment. It is safe because:

- only the writer changes it (``publish``), between its jobs, after the group's records
  are on disk: a reader never sees a write that a crash could lose, nor one that a
  failing transaction rolls back, nor half of a transaction;
- what it holds are the stored documents themselves, which the database never changes
  in place (it replaces them: copy on write, ``db.py``), and tuples: a document read
  stays as it was, whatever the writer does next;
- a read is one ``dict.get``, atomic under the GIL. Nothing here is ever iterated while
  the writer may change it, so this must stay a set of point reads: a question that
  needs a scan belongs on the writer.

Two reads are each committed, but not necessarily of the same commit (a request, then
its holder's name, may straddle one): fine for a page, not for a decision. Decisions
(the claim itself) run on the writer.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from typing import Any

from .db import Database
from .records import counted_claim

__all__ = ["CommittedView"]

_REQUESTS = "requests"
_MENTORS = "mentors"


class CommittedView:
    """Requests by number, mentors by email and claims by mentor, as last made durable."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._requests: dict[int, Mapping[str, Any]] = {}
        self._mentors: dict[str, Mapping[str, Any]] = {}
        # mentor → ((claimed_at, number), ...) of the claims counting against capacity,
        # oldest first; each value a tuple, replaced whole, so that a reader may walk it.
        self._claims: dict[str, tuple[tuple[str, int], ...]] = {}
        # document key → what it was published under, to unpublish it when it changes.
        self._request_keys: dict[str, tuple[int, tuple[str, str] | None]] = {}
        self._mentor_keys: dict[str, str] = {}
        for table in (_REQUESTS, _MENTORS):
            self._publish_table(table)

    # Reads: any thread ----------------------------------------------------------------

    def request(self, number: int) -> Mapping[str, Any] | None:
        """The committed request ``number`` (read-only), None if there is none."""
        return self._requests.get(number)

    def mentor(self, email: str) -> Mapping[str, Any] | None:
        """The committed mentor with ``email`` (read-only), None if there is none."""
        return self._mentors.get(email.lower())

    def claims_since(self, email: str, cutoff: str) -> int:
        """How many committed claims of ``email`` that count against capacity were made
        at or after ``cutoff`` (an ISO time in UTC: such strings sort as times do)."""
        claims = self._claims.get(email.lower(), ())
        return len(claims) - bisect_left(claims, (cutoff,))

    # Writes: the writer thread only, once what changed is durable ---------------------

    def publish(self, touched: Iterable[tuple[str, str | None]]) -> None:
        """Show the current content of the documents ``touched`` (table, key; key None
        for a whole table), which the writer has just made durable."""
        tables: set[str] = set()
        for table, key in touched:
            if table not in (_REQUESTS, _MENTORS) or table in tables:
                continue
            if key is None:
                tables.add(table)
            elif table == _REQUESTS:
                self._publish_request(key)
            else:
                self._publish_mentor(key)
        for table in tables:
            self._publish_table(table)

    def _publish_table(self, table: str) -> None:
        keys = self._request_keys if table == _REQUESTS else self._mentor_keys
        current = {str(doc_id) for doc_id, _ in self._db.stored_all(table)}
        for key in set(keys) | current:
            if table == _REQUESTS:
                self._publish_request(key)
            else:
                self._publish_mentor(key)

    def _publish_request(self, key: str) -> None:
        doc = self._stored(_REQUESTS, key)
        number, claim = self._request_keys.pop(key, (None, None))
        if number is not None:
            if doc is None or int(doc["number"]) != number:
                self._requests.pop(number, None)
            if claim is not None:
                self._drop_claim(claim[0], number)
        if doc is None:
            return
        number = int(doc["number"])
        claim = counted_claim(doc)
        self._requests[number] = doc
        self._request_keys[key] = (number, claim)
        if claim is not None:
            mentor, at = claim
            claims = list(self._claims.get(mentor, ()))
            insort(claims, (at, number))
            self._claims[mentor] = tuple(claims)

    def _drop_claim(self, mentor: str, number: int) -> None:
        kept = tuple(claim for claim in self._claims.get(mentor, ()) if claim[1] != number)
        if kept:
            self._claims[mentor] = kept
        else:
            self._claims.pop(mentor, None)

    def _publish_mentor(self, key: str) -> None:
        doc = self._stored(_MENTORS, key)
        email = self._mentor_keys.pop(key, None)
        if email is not None and (doc is None or doc["email"] != email):
            self._mentors.pop(email, None)
        if doc is None:
            return
        self._mentors[doc["email"]] = doc
        self._mentor_keys[key] = doc["email"]

    def _stored(self, table: str, key: str) -> Mapping[str, Any] | None:
        # The stored document itself behind a read-only view: never changed in place.
        return self._db.stored(table, int(key))
