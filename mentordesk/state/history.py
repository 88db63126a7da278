"""The store's history: reads that go on into the archive, and the moves to it.

What leaves memory and when is decided here (``History.archive_history``; the sweep's
step in ``flows/archiving.py`` says how old); the archive itself is ``archive.py``.
Part of ``Store`` (``store.py``), whose indexes it keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from .archive import Archive, ArchivedDoc
from .db import Database
from .indexes import ClaimIndex, KeysByValue, MomentOrder, PeopleIndex
from .records import LIVE, request_status, session_status
from .tables import Doc, Uncached, iso, plain

__all__ = ["FINISHED", "History", "finished_at"]


class History:
    """Reading on into the archive, and moving history to it (see ``Store``)."""

    db: Database
    archive: Archive
    transaction: Callable[[], AbstractContextManager[None]]
    _moment_orders: dict[str, MomentOrder]
    _request_ids: dict[int, int]
    _by_mentee: dict[str, set[int]]
    _open_by_mentee: dict[str, set[int]]
    _claims: ClaimIndex
    _request_statuses: KeysByValue[int]
    _session_ids: dict[str, int]
    _sessions_by_request: dict[int, set[str]]
    _session_people: PeopleIndex
    _live_people: PeopleIndex
    _followup: KeysByValue[str]
    _outbox_ids: dict[str, int]
    _outbox_of: dict[int, list[int]]
    _pending_outbox: dict[int, datetime]
    _thread_refs: dict[str, int]
    _message_ids: dict[str, list[int]]
    _message_requests: KeysByValue[int]
    _audit_of: dict[Any, list[int]]

    def history(self, table: str) -> list[Doc]:
        """Every document ``table`` ever held, the archive's and the working set's,
        oldest first. It reads the whole archive: for reports and export, not events."""
        return [doc for _, doc in self.history_items(table)]

    def history_items(self, table: str) -> list[tuple[int, Doc]]:
        """(id, document) for every document ``table`` ever held, by id (see history)."""
        live = {doc.doc_id: plain(doc) for doc in self.db.table(table).all()}
        docs = [(i, d) for i, d in self.archive.all(table) if i not in live]
        docs.extend(live.items())
        return sorted(docs, key=lambda pair: pair[0])

    def _ever_or_with_status(self, table: str, status: str | None) -> list[Doc]:
        """Every document ``table`` ever held (``history``), or the working set's with
        ``status``: only the matches are copied out."""
        if status is None:
            return self.history(table)
        matches = Uncached(lambda d: d["status"] == status)
        return [plain(d) for d in self.db.table(table).search(matches)]

    def _archived_of(self, table: str, request: int) -> list[Doc]:
        """The archived documents of ``table`` about ``request``, oldest first."""
        found = self.archive.of_request(table, request)
        return [doc for doc_id, doc in found if self._archived_only(table, doc_id)]

    def _archived_only(self, table: str, doc_id: int) -> bool:
        # A crash between the archive's commit and the working set's leaves a document in
        # both; the working set's copy is the one read.
        return self.db.stored(table, doc_id) is None

    def archive_history(
        self,
        *,
        before: datetime,
        mail_before: datetime | None = None,
        keep: Callable[[str, Mapping[str, Any]], bool] | None = None,
        limit: int = 1000,
    ) -> int:
        """Move history last changed before ``before`` to the archive; how many documents
        moved (at most about ``limit``, so that one call stays short on the writer).

        What moves: each finished request (closed, withdrawn, expired) with its sessions,
        once none of them is live or awaiting the after-session mail and none of its
        emails or messages is in motion. And, from ``mail_before`` (default ``before``),
        whatever request they are about: emails sent or failed with their thread links,
        inbound messages dealt with, audit events — but those ``keep`` accepts (table,
        document: what still needs a person) wait until ``before``.
        """
        cutoff = iso(before)
        mail_cutoff = max(cutoff, iso(mail_before or before))
        moving: list[ArchivedDoc] = []
        for number in self._moment_orders[FINISHED].upto(cutoff):
            if len(moving) >= limit:
                break
            doc_id = self._request_ids.get(number)
            doc = None if doc_id is None else self.db.stored("requests", doc_id)
            if doc_id is not None and doc is not None:
                moving.extend(self._request_history(number, doc_id, doc))
        moving.extend(self._mail_history(mail_cutoff, cutoff, keep, max(limit - len(moving), 0)))
        if not moving:
            return 0
        self.archive.put(moving)  # durable before anything leaves the working set
        by_table: dict[str, list[ArchivedDoc]] = {}
        for each in moving:
            by_table.setdefault(each.table, []).append(each)
        with self.transaction():
            for table, docs in by_table.items():
                self.db.table(table).remove(doc_ids=[d.doc_id for d in docs])
        for each in moving:
            self._forget(each)
        return len(moving)

    def _request_history(
        self, number: int, doc_id: int, doc: Mapping[str, Any]
    ) -> list[ArchivedDoc]:
        """A finished request and its sessions, or nothing while any of its sessions,
        emails or messages is still in motion. (Its mail moves by age: ``_mail_history``.)"""
        moving = [ArchivedDoc("requests", doc_id, dict(doc))]
        for uid in sorted(self._sessions_by_request.get(number, ())):
            session_id = self._session_ids.get(uid)
            session = None if session_id is None else self.db.stored("sessions", session_id)
            if session_id is None or session is None:
                continue
            if session_status(session) in LIVE or self._followup.value_of(uid):
                return []
            moving.append(ArchivedDoc("sessions", session_id, dict(session)))
        mail = (
            ("outbox", self._outbox_of.get(number, ())),
            ("messages", self._message_requests.keys([str(number)])),
        )
        for table, ids in mail:
            for item_id in ids:
                item = self.db.stored(table, item_id)
                if item is not None and _in_motion(table, item):
                    return []
        return moving

    def _email_history(self, item_id: int, email: Mapping[str, Any]) -> list[ArchivedDoc]:
        """An email and the thread link its replies are routed by."""
        moving = [ArchivedDoc("outbox", item_id, dict(email))]
        thread_id = self._thread_refs.get(email.get("message_id") or "")
        thread = None if thread_id is None else self.db.stored("threads", thread_id)
        if thread is not None and thread_id is not None:
            moving.append(ArchivedDoc("threads", thread_id, dict(thread)))
        return moving

    def _mail_history(
        self,
        cutoff: str,
        kept_cutoff: str,
        keep: Callable[[str, Mapping[str, Any]], bool] | None,
        limit: int,
    ) -> list[ArchivedDoc]:
        """Emails, inbound messages and audit events older than ``cutoff`` (those
        ``keep`` accepts: older than ``kept_cutoff``), oldest first."""
        moving: list[ArchivedDoc] = []
        moment = {"outbox": "created", "messages": "at", "audit": "at"}
        for table, field in moment.items():
            # Ids grow with time: the oldest come first, and the first young one ends it.
            for doc_id, doc in self.db.stored_oldest(table):
                at = doc.get(field) or ""
                if len(moving) >= limit or at >= cutoff:
                    break
                if _in_motion(table, doc):
                    continue
                if keep is not None and at >= kept_cutoff and keep(table, doc):
                    continue
                if table == "outbox":
                    moving.extend(self._email_history(doc_id, doc))
                else:
                    moving.append(ArchivedDoc(table, doc_id, dict(doc)))
        return moving

    def _forget(self, moved: ArchivedDoc) -> None:
        """Take a document that moved to the archive out of the working set's indexes."""
        doc, doc_id = moved.doc, moved.doc_id
        if moved.table == "requests":
            number = int(doc["number"])
            self._request_ids.pop(number, None)
            self._by_mentee.get(doc["mentee"], set()).discard(number)
            self._open_by_mentee.get(doc["mentee"], set()).discard(number)
            self._claims.drop(number)
            self._request_statuses.put(number, None)
            self._sessions_by_request.pop(number, None)
            for order in self._moment_orders.values():
                order.drop(number)
        elif moved.table == "sessions":
            uid = str(doc["uid"])
            self._session_ids.pop(uid, None)
            self._session_people.put(uid, ())
            self._live_people.put(uid, ())
            self._followup.put(uid, None)
        elif moved.table == "outbox":
            if self._outbox_ids.get(doc["message_id"]) == doc_id:
                del self._outbox_ids[doc["message_id"]]
            _discard(self._outbox_of, doc.get("request"), doc_id)
            self._pending_outbox.pop(doc_id, None)
        elif moved.table == "threads":
            if self._thread_refs.get(doc["message_id"]) == doc_id:
                del self._thread_refs[doc["message_id"]]
        elif moved.table == "messages":
            _discard(self._message_ids, doc["message_id"], doc_id)
            self._message_requests.put(doc_id, None)
        elif moved.table == "audit":
            _discard(self._audit_of, doc.get("request"), doc_id)


FINISHED = "finished"  # the order of requests by when they finished

# Statuses of what is still being worked on (an email to send, a message to try again):
# it stays in memory, and so does its request.
_IN_MOTION = {"outbox": "pending", "messages": "failing"}


def _in_motion(table: str, doc: Mapping[str, Any]) -> bool:
    return table in _IN_MOTION and doc.get("status") == _IN_MOTION[table]


def finished_at(doc: Mapping[str, Any]) -> str | None:
    """When a finished request last changed (None while it is not finished)."""
    if not request_status(doc).finished:
        return None
    return str(doc.get("updated") or doc.get("created") or "") or None


def _discard(index: dict[Any, list[int]], key: Any, doc_id: int) -> None:
    """Take ``doc_id`` out of the list ``index[key]`` (and the key once it is empty)."""
    ids = index.get(key)
    if ids is not None and doc_id in ids:
        ids.remove(doc_id)
        if not ids:
            del index[key]
