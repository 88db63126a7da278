"""The program's state: mentors, requests, processed messages, outbox, audit log.

``Store`` is a small domain interface over the journaled TinyDB ``Database``. It is not
thread-safe: exactly one writer owns it (``StoreWriter`` runs every call on one thread),
which is also what makes a claim a compare-and-set. Lookups that happen on every message
(by Message-ID, by thread, by email) go through in-memory indexes rebuilt at open, so a
write stays O(1) however much history the file holds.

What is in memory is the working set; older history is in the archive (``history.py``,
``archive.py``). Reads by key, request, person or time, and ``history``, read on into
the archive; scans (``*_where``, lists by status) see the working set only.

Timestamps are stored as ISO-8601 UTC strings; callers pass aware datetimes.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import (
    Callable,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb.table import Table

from .archive import Archive, archive_path
from .db import Database
from .history import FINISHED, finished_at
from .indexes import (
    ClaimIndex,
    GroupedOrder,
    KeysByValue,
    MomentOrder,
    PeopleIndex,
    Placement,
    SkillIndex,
)
from .messages import content_fingerprint as content_fingerprint
from .messages import same_message
from .outbox_records import SUBJECT_CAP as SUBJECT_CAP
from .outbox_records import OutboxItem as OutboxItem
from .outbox_records import OutboxRecords
from .records import (
    LIVE,
    RequestStatus,
    SessionStatus,
    counted_claim,
    request_status,
    session_status,
)
from .tables import Doc, Uncached, copy_of, plain
from .tables import from_iso as from_iso
from .tables import iso as iso
from .writer import StoreWriter as StoreWriter

log = logging.getLogger(__name__)

#: The state's layout. 1: before the lifecycle (request "done", session "confirmed" and
#: "done"); 2: the lifecycle's statuses (SPEC §3a). Opening an older state upgrades it.
SCHEMA_VERSION = 2


class Store(OutboxRecords):
    """Domain reads and writes. Every public write is atomic; group them with transaction()."""

    def __init__(self, path: Path, *, fsync: bool = True, read_only: bool = False) -> None:
        # Loading makes millions of objects and no garbage cycles: the cyclic collector
        # would walk the growing heap again and again (about half of opening a large
        # state). It runs again once the state is in memory.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._open(path, fsync=fsync, read_only=read_only)
        finally:
            if collecting:
                gc.enable()

    def _open(self, path: Path, *, fsync: bool, read_only: bool) -> None:
        self.db = Database(path, fsync=fsync, read_only=read_only)
        try:
            self.archive = Archive(archive_path(self.db.path), fsync=fsync, read_only=read_only)
        except BaseException:
            self.db.close()
            raise
        # An id once given out is never given again, archived or not (readers tell the
        # working set's copy of a document from the archive's by it).
        for name, top in self.archive.max_ids().items():
            self.db.keep_ids_above(name, top)
        self._mentors = self.db.table("mentors")
        self._requests = self.db.table("requests")
        self._messages = self.db.table("messages")
        self._threads = self.db.table("threads")
        self._outbox = self.db.table("outbox")
        self._addresses = self.db.table("addresses")
        self._audit = self.db.table("audit")
        self._meta = self.db.table("meta")
        self._rates = self.db.table("rates")
        self._sessions = self.db.table("sessions")
        self._office_hours = self.db.table("office_hours")
        self._feedback = self.db.table("feedback")
        self._surveys = self.db.table("surveys")
        # Requests ordered by when they finished (see requests_due): what may be archived.
        self._moment_orders: dict[str, MomentOrder] = {FINISHED: MomentOrder(finished_at, FINISHED)}
        self._mentor_groups: dict[str, GroupedOrder] = {}  # see mentor_groups
        self._rebuild_indexes()
        if not read_only:
            self.upgrade()

    def close(self) -> None:
        self.db.close()
        self.archive.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside survive a crash together or not at all."""
        try:
            with self.db.transaction():
                yield
        except BaseException:
            # Memory was rolled back by the database; indexes follow it.
            self._rebuild_indexes()
            raise

    # --- indexes -------------------------------------------------------------------

    def _rebuild_indexes(self) -> None:
        # Built from the stored documents themselves: nothing is copied.
        def stored(table: Table) -> list[tuple[int, Mapping[str, Any]]]:
            return list(self.db.stored_all(table.name))

        def ids(table: Table, field: str) -> dict[Any, int]:
            return {doc[field]: doc_id for doc_id, doc in stored(table)}

        # Message-ID → its records: usually one; more when other messages reused the ID.
        # And each record → the request it went to (as text), for a request's history.
        self._message_ids: dict[str, list[int]] = {}
        self._message_requests = KeysByValue[int]()
        for doc_id, doc in stored(self._messages):
            self._message_ids.setdefault(doc["message_id"], []).append(doc_id)
            self._index_message(doc_id, doc)
        mentors = stored(self._mentors)
        self._mentor_ids = {d["email"]: doc_id for doc_id, d in mentors}
        self._skills = SkillIndex()
        for name, groups in list(self._mentor_groups.items()):
            self._mentor_groups[name] = GroupedOrder(groups.place, groups.version)
        for _, d in mentors:
            self._skills.put(d["email"], d.get("skills") or ())
            for groups in self._mentor_groups.values():
                groups.put(d["email"], d)
        self._request_ids = ids(self._requests, "number")
        # The highest number stored since the state was read (new_request_number).
        self._top_request = max(self._request_ids, default=0)
        self._thread_refs = ids(self._threads, "message_id")
        self._address_ids = ids(self._addresses, "email")
        self._rate_ids = ids(self._rates, "email")
        self._meta_ids = ids(self._meta, "key")
        self._session_ids = ids(self._sessions, "uid")
        self._series_ids = ids(self._office_hours, "id")
        self._feedback_ids = ids(self._feedback, "key")
        self._survey_ids = ids(self._surveys, "year")
        # request number → UID of its live session (at most one, SPEC §3a)
        self._live_sessions: dict[int, str] = {}
        self._live_people = PeopleIndex()  # person → UIDs of their live sessions
        self._session_people = PeopleIndex()  # person → UIDs of all their sessions
        self._sessions_by_request: dict[int, set[str]] = {}  # request → its sessions' UIDs
        # UID → "due" for held sessions not yet asked (or skipped) about afterwards
        self._followup = KeysByValue[str]()
        for _, doc in stored(self._sessions):
            self._index_session(doc)
        # Pending outbox items → when each is due: the sender asks often, and a scan of the
        # documents would copy every pending email each time. Our Message-ID → its outbox
        # item: a bounce names the email it returns. (One copy of the outbox for both; a
        # sent email's bytes are gone by then.)
        outbox = stored(self._outbox)
        self._pending_outbox = {
            doc_id: from_iso(d["due"]) for doc_id, d in outbox if d["status"] == "pending"
        }
        self._outbox_ids = {d["message_id"]: doc_id for doc_id, d in outbox}
        # request → ids of its outgoing emails, oldest first (a request's history)
        self._outbox_of: dict[int, list[int]] = {}
        for doc_id, d in outbox:
            if d.get("request") is not None:
                self._outbox_of.setdefault(int(d["request"]), []).append(doc_id)
        # request → ids of its audit events, oldest first (a request's history)
        self._audit_of: dict[Any, list[int]] = {}
        for doc_id, doc in stored(self._audit):
            if doc.get("request") is not None:
                self._audit_of.setdefault(doc["request"], []).append(doc_id)
        self._open_by_mentee: dict[str, set[int]] = {}
        self._by_mentee: dict[str, set[int]] = {}  # every request of each mentee
        self._claims = ClaimIndex()
        self._request_statuses = KeysByValue[int]()
        for name, order in list(self._moment_orders.items()):
            self._moment_orders[name] = MomentOrder(order.moment, order.version)
        for _, doc in stored(self._requests):
            self._index_request(doc)

    def _index_message(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        number = doc.get("request")
        self._message_requests.put(doc_id, None if number is None else str(number))

    def _index_request(self, doc: Mapping[str, Any]) -> None:
        number = int(doc["number"])
        self._by_mentee.setdefault(doc["mentee"], set()).add(number)
        open_set = self._open_by_mentee.setdefault(doc["mentee"], set())
        status = request_status(doc)
        if status.waiting:
            open_set.add(number)
        else:
            open_set.discard(number)
        claim = counted_claim(doc)
        if claim is not None:
            self._claims.put(number, *claim)
        else:
            self._claims.drop(number)
        self._request_statuses.put(number, str(doc.get("status") or ""))
        for order in self._moment_orders.values():
            order.put(number, doc)

    def _index_session(self, doc: Mapping[str, Any]) -> None:
        uid = str(doc["uid"])
        status = session_status(doc)
        live = status in LIVE
        people = (doc.get("mentor") or "", doc.get("mentee") or "")
        self._live_people.put(uid, people if live else ())
        self._session_people.put(uid, people)
        settled = doc.get("followup_asked") or doc.get("followup_skipped")
        self._followup.put(uid, "due" if status is SessionStatus.HELD and not settled else None)
        number = doc.get("request")
        if number is None:
            return
        self._sessions_by_request.setdefault(int(number), set()).add(uid)
        if live:
            self._live_sessions[int(number)] = uid
        elif self._live_sessions.get(int(number)) == uid:
            del self._live_sessions[int(number)]

    # --- schema ------------------------------------------------------------------------

    def upgrade(self) -> int:
        """Bring an older state up to ``SCHEMA_VERSION``; returns the version found.

        A new state is written at the current version. Version 1 spelled some statuses
        differently; ``records`` maps them, and this rewrites them once, so every later
        reader sees only the lifecycle's words.
        """
        found = int(self.meta("schema", 0)) or (1 if self._requests.all() else SCHEMA_VERSION)
        if found >= SCHEMA_VERSION:
            if not self.meta("schema"):
                self.set_meta("schema", SCHEMA_VERSION)
            return found
        # The state as it was, whole, before anything is rewritten: an upgrade gone wrong
        # (or a step back to an older mentordesk) restores from it.
        kept = self.db.path.with_name(f"{self.db.path.name}.v{found}.bak")
        self.db.copy_to(kept)
        log.warning(
            "upgrading the state %s from schema %d to %d; the old state is kept in %s",
            self.db.path,
            found,
            SCHEMA_VERSION,
            kept,
        )
        with self.transaction():
            for doc in self._sessions.all():
                status = session_status(doc)
                if status != doc.get("status"):
                    self._sessions.update({"status": status.value}, doc_ids=[doc.doc_id])
            asked = {  # requests whose after-session questions went out before
                d.get("request") for d in self._sessions.all() if d.get("followup_asked")
            }
            for doc in self._requests.all():
                request = request_status(doc)
                if request.held and doc.get("claimed_by"):
                    live = self._live_sessions.get(int(doc["number"]))
                    request = RequestStatus.BOOKED if live else RequestStatus.CLAIMED
                elif request is RequestStatus.MET and doc["number"] in asked:
                    request = RequestStatus.CLOSED
                if request != doc.get("status"):
                    self._requests.update({"status": request.value}, doc_ids=[doc.doc_id])
            self.set_meta("schema", SCHEMA_VERSION)
        self._rebuild_indexes()
        return found

    # --- meta ----------------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        doc_id = self._meta_ids.get(key)
        if doc_id is None:
            return default
        doc = self._meta.get(doc_id=doc_id)
        return default if doc is None else doc["value"]

    def set_meta(self, key: str, value: Any) -> None:
        doc_id = self._meta_ids.get(key)
        if doc_id is None:
            self._meta_ids[key] = self._meta.insert({"key": key, "value": value})
        else:
            self._meta.update({"value": value}, doc_ids=[doc_id])

    # --- processed messages ----------------------------------------------------------

    def message(self, message_id: str, *, key: str = "", fingerprint: str = "") -> Doc | None:
        """The record of the message with ``message_id`` that is the same message as the
        one at mailbox ``key`` with content ``fingerprint`` (``same_message``)."""
        doc_id = self._message_record(message_id, key, fingerprint)
        if doc_id is not None:
            return plain(self._messages.get(doc_id=doc_id))
        for archived_id, doc in self.archive.by_key("messages", message_id):
            if self._archived_only("messages", archived_id) and same_message(
                doc, key=key, fingerprint=fingerprint
            ):
                return doc
        return None

    def is_processed(self, message_id: str, *, key: str = "", fingerprint: str = "") -> bool:
        """Whether this message was dealt with already (done or quarantined).

        SPEC §5: a message is recognised by its Message-ID together with its place in the
        mailbox (``key``: IMAP UIDVALIDITY and UID, or the Maildir name) — read again after
        a crash — or with its content (``fingerprint``) — delivered twice, or read again
        after the server renumbered the folder. Another message reusing the Message-ID is
        not processed (see ``same_message``).
        """
        doc = self.message(message_id, key=key, fingerprint=fingerprint)
        return doc is not None and doc["status"] != "failing"

    def record_message(
        self,
        message_id: str,
        *,
        key: str,
        kind: str,
        now: datetime,
        status: str = "done",
        request: int | None = None,
        error: str = "",
        fingerprint: str = "",
    ) -> Doc:
        """Record what became of an inbound message (status done, failing or quarantined).

        Each "failing" counts one attempt. The record is the one of the same message
        (``message(message_id, key=key, fingerprint=fingerprint)``), else a new one.
        """
        fields = {
            "message_id": message_id,
            "key": key,
            "fingerprint": fingerprint,
            "kind": kind,
            "status": status,
            "request": request,
            "at": iso(now),
            "error": error,
        }
        doc_id = self._message_record(message_id, key, fingerprint)
        if doc_id is None:
            fields["attempts"] = 1 if status == "failing" else 0
            doc_id = self._messages.insert(fields)
            self._message_ids.setdefault(message_id, []).append(doc_id)
        else:
            previous = copy_of(self._messages, doc_id)
            attempts = int(previous.get("attempts", 0)) + (status == "failing")
            fingerprint = fingerprint or previous.get("fingerprint", "")
            self._messages.update(
                {**fields, "fingerprint": fingerprint, "attempts": attempts}, doc_ids=[doc_id]
            )
        self._index_message(doc_id, fields)
        return copy_of(self._messages, doc_id) or fields

    def _message_record(self, message_id: str, key: str, fingerprint: str) -> int | None:
        for doc_id in self._message_ids.get(message_id, ()):
            if same_message(copy_of(self._messages, doc_id), key=key, fingerprint=fingerprint):
                return doc_id
        return None

    def messages(self, status: str | None = None) -> list[Doc]:
        """Every inbound record ever (the archive's too), or the working set's with
        ``status``."""
        return self._ever_or_with_status("messages", status)

    # --- threads: our outgoing Message-IDs → what they were about -------------------

    def messages_of(self, request: int) -> list[Doc]:
        """The records of the inbound messages that went to one request, oldest first
        (found by index)."""
        ids = sorted(self._message_requests.keys([str(request)]))
        found = (self._messages.get(doc_id=doc_id) for doc_id in ids)
        live = [plain(d) for d in found if d is not None and not isinstance(d, list)]
        return self._archived_of("messages", request) + live

    def messages_where(self, test: Callable[[Mapping[str, Any]], object]) -> list[Doc]:
        """Copies of the inbound records ``test`` accepts (see ``requests_where``)."""
        return [plain(d) for d in self._messages.search(Uncached(test))]

    def link_thread(self, message_id: str, *, kind: str, ref: Any) -> None:
        if message_id in self._thread_refs:
            return
        self._thread_refs[message_id] = self._threads.insert(
            {"message_id": message_id, "kind": kind, "ref": ref}
        )

    def thread(self, message_ids: Iterable[str]) -> Doc | None:
        """The newest known thread among ``message_ids`` (References order: oldest first)."""
        for message_id in reversed(list(message_ids)):
            doc_id = self._thread_refs.get(message_id)
            if doc_id is not None:
                return plain(self._threads.get(doc_id=doc_id))
            for _, doc in self.archive.by_key("threads", message_id):
                return doc
        return None

    # --- mentors ---------------------------------------------------------------------

    def mentor(self, email: str) -> Doc | None:
        doc_id = self._mentor_ids.get(email.lower())
        return None if doc_id is None else plain(self._mentors.get(doc_id=doc_id))

    def mentors(self) -> list[Doc]:
        return [plain(d) for d in self._mentors.all()]

    def mentor_skills(self) -> set[str]:
        """Every skill at least one mentor (of any status) has."""
        return set(self._skills.all_skills())

    def mentors_where(self, test: Callable[[Mapping[str, Any]], object]) -> list[Doc]:
        """Copies of the mentors ``test`` accepts (see ``requests_where``)."""
        return [plain(d) for d in self._mentors.search(Uncached(test))]

    def mentors_with_skills(self, wanted: Iterable[str]) -> list[Mapping[str, Any]]:
        """The stored mentors who have at least one of ``wanted``, found by index and
        not copied: read-only views, for ranking, valid until the next write."""
        found = []
        for email in self._skills.having_any(wanted):
            doc_id = self._mentor_ids.get(email)
            doc = None if doc_id is None else self.db.stored("mentors", doc_id)
            if doc is not None:
                found.append(doc)
        return found

    def save_mentor(self, doc: Mapping[str, Any]) -> Doc:
        """Insert or replace the mentor keyed by ``doc["email"]``."""
        email = doc["email"].lower()
        data = {**doc, "email": email}
        doc_id = self._mentor_ids.get(email)
        if doc_id is None:
            self._mentor_ids[email] = self._mentors.insert(data)
        else:
            self._mentors.update(data, doc_ids=[doc_id])
        self._skills.put(email, data.get("skills") or ())
        stored = self.db.stored("mentors", self._mentor_ids[email])
        for groups in self._mentor_groups.values():
            groups.put(email, stored)
        return self.mentor(email) or data

    def stored_mentor(self, email: str) -> Mapping[str, Any] | None:
        """The stored mentor itself, uncopied, behind a read-only view (see
        ``mentors_with_skills``)."""
        doc_id = self._mentor_ids.get(email.lower())
        return None if doc_id is None else self.db.stored("mentors", doc_id)

    def mentor_groups(
        self,
        name: str,
        place: Callable[[Mapping[str, Any]], Placement | None],
        *,
        version: Hashable,
    ) -> GroupedOrder:
        """The mentors grouped and ordered by ``place`` (``indexes.GroupedOrder``), kept
        under ``name`` and updated at every write; a new ``version`` rebuilds it once.
        Read-only for the caller, and valid until the next write."""
        groups = self._mentor_groups.get(name)
        if groups is None or groups.version != version:
            groups = self._mentor_groups[name] = GroupedOrder(place, version)
            for _, doc in self.db.stored_all("mentors"):
                groups.put(doc["email"], doc)
        return groups

    # --- requests --------------------------------------------------------------------

    def new_request_number(self) -> int:
        """The next request number: never one given out before (MD-0019 is one request).

        Above the counter, every stored request and the database's high-water mark, which
        outlives a journal that lost its tail and a restore from a backup (``db.py``).
        """
        number = max(
            int(self.meta("next_request", 1)),
            self._top_request + 1,
            self.db.high_water("request") + 1,
        )
        self.db.raise_high_water("request", number)
        self.set_meta("next_request", number + 1)
        return number

    def request(self, number: int) -> Doc | None:
        """Request ``number``, from the working set or, finished long ago, the archive."""
        doc_id = self._request_ids.get(number)
        if doc_id is not None:
            return plain(self._requests.get(doc_id=doc_id))
        for _, doc in self.archive.by_key("requests", str(number)):
            return doc
        return None

    def requests(self, statuses: Iterable[str] | None = None) -> list[Doc]:
        """Every request ever (the archive's too), or those in the working set with one
        of ``statuses`` (found by index), oldest first."""
        if statuses is None:
            return self.history("requests")
        return self.requests_where(lambda d: True, statuses=statuses)

    def requests_where(
        self,
        test: Callable[[Mapping[str, Any]], object],
        *,
        statuses: Iterable[str] | None = None,
    ) -> list[Doc]:
        """Copies of the requests ``test`` accepts, oldest first.

        ``test`` sees each stored document itself, uncopied, so a scan costs little when
        few match (the timers' sweep); it must not change what it is shown. Given
        ``statuses``, only requests with one of them are shown to ``test``, found by
        index: a sweep over the open requests does not grow with the closed ones.
        """
        if statuses is None:
            return [plain(d) for d in self._requests.search(Uncached(test))]
        return self._requests_among(self._request_statuses.keys(statuses), test)

    def requests_due(
        self,
        name: str,
        moment: Callable[[Mapping[str, Any]], str | None],
        *,
        version: Hashable,
        upto: datetime,
        test: Callable[[Mapping[str, Any]], object],
    ) -> list[Doc]:
        """Copies of the requests ``test`` accepts among those whose ``moment`` has come by
        ``upto``, oldest first: what a sweep step has to look at, found by index.

        ``moment(doc)`` is when something is next due for a request (an ISO time in UTC,
        None for never); it must be a pure function of the document, never later than
        the moment ``test`` first accepts it. The store keeps the requests ordered by it
        under ``name``, updated at every write; a new ``version`` (the function made from
        other settings) rebuilds the order once.
        """
        order = self._moment_orders.get(name)
        if order is None or order.version != version:
            order = self._moment_orders[name] = MomentOrder(moment, version)
            for each in self._requests.all():
                order.put(int(each["number"]), each)
        return self._requests_among(order.upto(iso(upto)), test)

    def _requests_among(
        self, numbers: Iterable[int], test: Callable[[Mapping[str, Any]], object]
    ) -> list[Doc]:
        """Copies of the requests ``numbers`` (found by an index) that ``test`` accepts,
        oldest first; only those are copied."""
        ids = sorted(
            doc_id for number in numbers if (doc_id := self._request_ids.get(number)) is not None
        )
        found = []
        for doc_id in ids:
            doc = self.db.stored("requests", doc_id)
            if doc is not None and test(doc):
                found.append(plain(self._requests.get(doc_id=doc_id)))
        return found

    def open_requests_of(self, mentee: str) -> list[Doc]:
        numbers = sorted(self._open_by_mentee.get(mentee.lower(), ()))
        return [doc for n in numbers if (doc := self.request(n)) is not None]

    def request_numbers_of(self, mentee: str) -> list[int]:
        """The numbers of every request ``mentee`` ever sent, oldest first (by index)."""
        archived = self.archive.of_people("requests", [mentee], columns=("mentee",))
        numbers = {int(doc["number"]) for _, doc in archived}
        return sorted(numbers | self._by_mentee.get(mentee.lower(), set()))

    def save_request(self, doc: Mapping[str, Any]) -> Doc:
        """Insert or replace the request keyed by ``doc["number"]``."""
        number = int(doc["number"])
        data = {**doc, "mentee": doc["mentee"].lower()}
        doc_id = self._request_ids.get(number)
        if doc_id is None:
            self._request_ids[number] = self._requests.insert(data)
            self._top_request = max(self._top_request, number)
        else:
            self._requests.update(data, doc_ids=[doc_id])
        self._index_request(data)
        return self.request(number) or data

    def claims_since(self, since: datetime) -> dict[str, int]:
        """Mentor email → requests they hold that they claimed at or after ``since``."""
        return self._claims.counts_since(iso(since))

    # --- sessions (calendar) -----------------------------------------------------------

    def session(self, uid: str) -> Doc | None:
        doc_id = self._session_ids.get(uid)
        if doc_id is not None:
            return plain(self._sessions.get(doc_id=doc_id))
        for _, doc in self.archive.by_key("sessions", uid):
            return doc
        return None

    def sessions(self, statuses: Iterable[str] | None = None) -> list[Doc]:
        """Every session ever (the archive's too), or the working set's with one of
        ``statuses``."""
        if statuses is None:
            return self.history("sessions")
        wanted = set(statuses)
        return self.sessions_where(lambda d: d["status"] in wanted)

    def sessions_where(self, test: Callable[[Mapping[str, Any]], object]) -> list[Doc]:
        """Copies of the sessions ``test`` accepts (see ``requests_where``)."""
        return [plain(d) for d in self._sessions.search(Uncached(test))]

    def save_session(self, doc: Mapping[str, Any]) -> Doc:
        """Insert or replace the session keyed by ``doc["uid"]`` (the iCalendar UID)."""
        uid = doc["uid"]
        doc_id = self._session_ids.get(uid)
        if doc_id is None:
            self._session_ids[uid] = self._sessions.insert(dict(doc))
        else:
            self._sessions.update(dict(doc), doc_ids=[doc_id])
        self._index_session(doc)
        return self.session(uid) or dict(doc)

    def live_session_of(self, number: int) -> Doc | None:
        """The request's live session (proposed, accepted or declined), if any."""
        uid = self._live_sessions.get(number)
        return None if uid is None else self.session(uid)

    def live_sessions(self) -> list[Doc]:
        """Every live session (reminders, busy times): found by index, not by scan."""
        return [doc for uid in list(self._live_sessions.values()) if (doc := self.session(uid))]

    def live_sessions_of(self, *people: str) -> list[Doc]:
        """The live sessions any of ``people`` (emails) is in, oldest first, by index."""
        found = [doc for uid in self._live_people.of(*people) if (doc := self.session(uid))]
        return sorted(found, key=lambda d: self._session_ids.get(d["uid"], 0))

    def sessions_of(self, *people: str) -> list[Doc]:
        """Every session any of ``people`` (emails) is in, the archive's first, then the
        working set's, oldest first, by index."""
        found = [doc for uid in self._session_people.of(*people) if (doc := self.session(uid))]
        live = sorted(found, key=lambda d: self._session_ids.get(d["uid"], 0))
        archived = self.archive.of_people("sessions", people)
        return [d for i, d in archived if self._archived_only("sessions", i)] + live

    def sessions_awaiting_followup(self) -> list[Doc]:
        """Held sessions nobody was asked about afterwards yet (nor skipped), by index."""
        found = [doc for uid in self._followup.keys(["due"]) if (doc := self.session(uid))]
        return sorted(found, key=lambda d: self._session_ids.get(d["uid"], 0))

    # --- office hours (weekly series) ------------------------------------------------------

    def new_series_id(self) -> int:
        number = int(self.meta("next_office_hours", 1))
        self.set_meta("next_office_hours", number + 1)
        return number

    def series(self, series_id: int) -> Doc | None:
        doc_id = self._series_ids.get(series_id)
        return None if doc_id is None else plain(self._office_hours.get(doc_id=doc_id))

    def all_series(self) -> list[Doc]:
        return sorted((plain(d) for d in self._office_hours.all()), key=lambda d: int(d["id"]))

    def save_series(self, doc: Mapping[str, Any]) -> Doc:
        """Insert or replace the office-hours series keyed by ``doc["id"]``."""
        series_id = int(doc["id"])
        doc_id = self._series_ids.get(series_id)
        if doc_id is None:
            self._series_ids[series_id] = self._office_hours.insert(dict(doc))
        else:
            self._office_hours.update(dict(doc), doc_ids=[doc_id])
        return self.series(series_id) or dict(doc)

    # --- feedback: ratings of sessions and survey answers, one per person and object ---

    def feedback(self, obj: str, person: str) -> Doc | None:
        doc_id = self._feedback_ids.get(f"{obj}|{person.lower()}")
        return None if doc_id is None else plain(self._feedback.get(doc_id=doc_id))

    def feedback_all(self, prefix: str = "") -> list[Doc]:
        """Every answer whose object starts with ``prefix`` ("session:", "survey:2025")."""
        return [plain(d) for d in self._feedback.all() if d["obj"].startswith(prefix)]

    def save_feedback(self, doc: Mapping[str, Any]) -> Doc:
        """Insert or replace the answer keyed by (``doc["obj"]``, ``doc["person"]``)."""
        person = doc["person"].lower()
        key = f"{doc['obj']}|{person}"
        data = {**doc, "person": person, "key": key}
        doc_id = self._feedback_ids.get(key)
        if doc_id is None:
            self._feedback_ids[key] = self._feedback.insert(data)
        else:
            self._feedback.update(data, doc_ids=[doc_id])
        return self.feedback(doc["obj"], person) or data

    def survey(self, year: int) -> Doc | None:
        doc_id = self._survey_ids.get(year)
        return None if doc_id is None else plain(self._surveys.get(doc_id=doc_id))

    def surveys(self) -> list[Doc]:
        return sorted((plain(d) for d in self._surveys.all()), key=lambda d: int(d["year"]))

    def save_survey(self, doc: Mapping[str, Any]) -> Doc:
        """Insert or replace the feedback round keyed by ``doc["year"]``."""
        year = int(doc["year"])
        doc_id = self._survey_ids.get(year)
        if doc_id is None:
            self._survey_ids[year] = self._surveys.insert(dict(doc))
        else:
            self._surveys.update(dict(doc), doc_ids=[doc_id])
        return self.survey(year) or dict(doc)

    # --- audit log ---------------------------------------------------------------------

    def audit(self, event: str, *, now: datetime, **detail: Any) -> None:
        """Append one event: who did what to which request or mentor, and when."""
        doc_id = self._audit.insert({"event": event, "at": iso(now), **detail})
        if detail.get("request") is not None:
            self._audit_of.setdefault(detail["request"], []).append(doc_id)

    def audit_log(self, request: int | None = None) -> list[Doc]:
        """Every event ever, or one request's (found by index), oldest first."""
        if request is None:
            return self.history("audit")
        found = (self._audit.get(doc_id=doc_id) for doc_id in self._audit_of.get(request, ()))
        live = [plain(d) for d in found if d is not None]
        return self._archived_of("audit", request) + live

    def audit_has(self, request: int, event: str) -> bool:
        """Whether one of the request's events (found by index) is ``event``; nothing
        is copied (the desk asks this for every open request)."""
        for doc_id in self._audit_of.get(request, ()):
            doc = self.db.stored("audit", doc_id)
            if doc is not None and doc.get("event") == event:
                return True
        return any(d.get("event") == event for d in self._archived_of("audit", request))

    def audit_since(self, since: datetime) -> list[Doc]:
        """Events at or after ``since``, oldest first; only those are copied out."""
        cutoff = iso(since)
        found = self._audit.search(Uncached(lambda d: d["at"] >= cutoff))
        archived = self.archive.since("audit", cutoff)
        live = [plain(d) for d in sorted(found, key=lambda d: d.doc_id)]
        return [d for i, d in archived if self._archived_only("audit", i)] + live
