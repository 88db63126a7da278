"""The store's outgoing mail: the outbox, addresses that bounced, and the per-sender
reply counts (SPEC §5). Part of ``Store`` (``store.py``), whose indexes it keeps."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tinydb.table import Table

from ..health import OutboxFacts
from .history import History
from .tables import Doc, copy_of, from_iso, iso, plain

__all__ = ["DRAFT", "SUBJECT_CAP", "OutboxItem", "OutboxRecords"]

#: The field of an outgoing email stored as a draft, written when it is sent
#: (mailer/drafts.py), in place of ``data``, its bytes.
DRAFT = "draft"

#: The longest Subject an outbox record keeps for people to read (the email has it all).
SUBJECT_CAP = 200


@dataclass(frozen=True)
class OutboxItem:
    """One stored outgoing email."""

    id: int
    message_id: str
    sender: str
    recipients: list[str]
    data: bytes | None  # None for a draft, written when it is sent (mailer/drafts.py)
    attempts: int
    kind: str
    request: int | None
    draft: Mapping[str, Any] | None = None


class OutboxRecords(History):
    """Outgoing emails, bounced addresses and reply counts (see ``Store``)."""

    _outbox: Table
    _addresses: Table
    _rates: Table
    _pending_outbox: dict[int, datetime]
    _address_ids: dict[str, int]
    _rate_ids: dict[str, int]

    # --- outbox ----------------------------------------------------------------------

    def enqueue(
        self,
        *,
        message_id: str,
        sender: str,
        recipients: list[str],
        data: bytes | None,
        kind: str,
        now: datetime,
        request: int | None = None,
        due: datetime | None = None,
        subject: str = "",
        draft: Mapping[str, Any] | None = None,
    ) -> int:
        """Store an outgoing email, as its bytes or as a ``draft`` (mailer/drafts.py);
        the sender loop delivers it from ``due`` (default now).

        ``subject`` (as a person reads it) stays on record after the bytes are gone
        (``mark_all_sent``): a request's history names the email by it."""
        if (data is None) == (draft is None):
            raise ValueError("an outgoing email is stored as its bytes or as a draft")
        due = due or now
        # latin-1 maps every byte to one code point: lossless bytes in JSON.
        body = {"data": data.decode("latin-1")} if data is not None else {DRAFT: draft}
        doc_id = self._outbox.insert(
            {
                "message_id": message_id,
                "sender": sender,
                "recipients": recipients,
                **body,
                "kind": kind,
                "subject": " ".join(subject.split())[:SUBJECT_CAP],
                "request": request,
                "status": "pending",
                "attempts": 0,
                "created": iso(now),
                "due": iso(due),
                "sent": None,
                "error": "",
            }
        )
        self._pending_outbox[doc_id] = from_iso(iso(due))
        self._outbox_ids[message_id] = doc_id
        if request is not None:
            self._outbox_of.setdefault(int(request), []).append(doc_id)
        return doc_id

    def due_outbox(
        self, now: datetime, limit: int = 100, skip: Collection[int] = ()
    ) -> list[OutboxItem]:
        """Pending emails whose next attempt is due, oldest first, but for those in ``skip``
        (the sender's own, already on their way)."""
        due: list[OutboxItem] = []
        for doc_id in sorted(self._pending_outbox):
            if doc_id in skip or self._pending_outbox[doc_id] > now:
                continue
            doc = self._outbox.get(doc_id=doc_id)
            if doc is None:
                continue
            due.append(
                OutboxItem(
                    id=doc_id,
                    message_id=doc["message_id"],
                    sender=doc["sender"],
                    recipients=list(doc["recipients"]),
                    data=doc["data"].encode("latin-1") if "data" in doc else None,
                    attempts=doc["attempts"],
                    kind=doc["kind"],
                    request=doc["request"],
                    draft=doc.get(DRAFT),
                )
            )
            if len(due) >= limit:
                break
        return due

    def due_outbox_count(self, now: datetime) -> int:
        """How many pending emails are due at ``now``: the sender's backlog."""
        return sum(1 for due in self._pending_outbox.values() if due <= now)

    def outbox_facts(self, now: datetime) -> OutboxFacts:
        """How many emails wait, how many are due, and how long the oldest due one has
        waited since it was stored (for /healthz and /metrics)."""
        due = [doc_id for doc_id, at in self._pending_outbox.items() if at <= now]
        oldest = timedelta(0)
        if due:
            doc = self._outbox.get(doc_id=min(due))  # ids grow: the lowest is the oldest
            if doc is not None and not isinstance(doc, list):
                oldest = max(timedelta(0), now - from_iso(doc["created"]))
        return OutboxFacts(pending=len(self._pending_outbox), due=len(due), oldest_due_age=oldest)

    def next_outbox_due(self, skip: Collection[int] = ()) -> datetime | None:
        """When the next pending email not in ``skip`` is due (None: there is none)."""
        return min(
            (due for doc_id, due in self._pending_outbox.items() if doc_id not in skip),
            default=None,
        )

    def outbox(self, status: str | None = None) -> list[Doc]:
        """Every email ever stored (the archive's too), or the working set's with
        ``status``."""
        return self._ever_or_with_status("outbox", status)

    def outbox_of(self, request: int) -> list[Doc]:
        """The emails stored for one request, oldest first (found by index)."""
        found = (self._outbox.get(doc_id=doc_id) for doc_id in self._outbox_of.get(request, ()))
        live = [plain(d) for d in found if d is not None and not isinstance(d, list)]
        return self._archived_of("outbox", request) + live

    def outbox_by_message_id(self, message_id: str) -> Doc | None:
        doc_id = self._outbox_ids.get(message_id)
        if doc_id is not None:
            return plain(self._outbox.get(doc_id=doc_id))
        for _, doc in self.archive.by_key("outbox", message_id):
            return doc
        return None

    def sent_to(self, message_id: str | None) -> frozenset[str]:
        """The addresses (lower-case) our email ``message_id`` was for; none when it is
        not one of ours. A bounce counts for an address only when this names it."""
        doc = None if message_id is None else self.outbox_by_message_id(message_id)
        if not doc:
            return frozenset()
        return frozenset(str(address).lower() for address in doc["recipients"])

    def mark_sent(self, item_id: int, now: datetime) -> None:
        self.mark_all_sent([item_id], now)

    def mark_all_sent(self, item_ids: Iterable[int], now: datetime) -> None:
        """Mark several emails sent at ``now``, in one write.

        A sent email's bytes (or draft) are not kept: the whole state lives in memory, and what was
        sent stays on record in the item itself (kind, recipients, Message-ID, request)
        and in the audit log. Failed emails keep theirs.
        """
        ids = list(item_ids)
        sent_at = iso(now)

        def sent(doc: MutableMapping[str, Any]) -> None:
            doc.update(status="sent", sent=sent_at, error="")
            doc.pop("data", None)
            doc.pop(DRAFT, None)

        self._outbox.update(sent, doc_ids=ids)
        for item_id in ids:
            self._pending_outbox.pop(item_id, None)

    def mark_retry(self, item_id: int, *, error: str, due: datetime) -> int:
        attempts = int(copy_of(self._outbox, item_id).get("attempts", 0)) + 1
        self._outbox.update(
            {"attempts": attempts, "error": error, "due": iso(due)}, doc_ids=[item_id]
        )
        if item_id in self._pending_outbox:
            self._pending_outbox[item_id] = from_iso(iso(due))
        return int(attempts)

    def mark_failed(self, item_id: int, *, error: str, now: datetime) -> None:
        attempts = int(copy_of(self._outbox, item_id).get("attempts", 0)) + 1
        self._outbox.update(
            {
                "status": "failed",
                "attempts": attempts,
                "error": error,
                "sent": None,
                "failed": iso(now),
            },
            doc_ids=[item_id],
        )
        self._pending_outbox.pop(item_id, None)

    # --- addresses that bounced --------------------------------------------------------

    def address(self, email: str) -> Doc | None:
        doc_id = self._address_ids.get(email.lower())
        return None if doc_id is None else plain(self._addresses.get(doc_id=doc_id))

    def is_bounced(self, email: str) -> bool:
        doc = self.address(email)
        return bool(doc and doc["bounced"])

    def mark_bounced(
        self, email: str, *, reason: str, now: datetime, origin: str = "report"
    ) -> bool:
        """Mark ``email`` undeliverable. True when it was not marked before.

        ``origin`` says who said so: ``"report"`` (a delivery or feedback report that
        came back by mail) or ``"relay"`` (our own SMTP server refused it for good).
        """
        email = email.lower()
        fields = {
            "email": email,
            "bounced": True,
            "reason": reason,
            "since": iso(now),
            "origin": origin,
        }
        doc_id = self._address_ids.get(email)
        if doc_id is None:
            self._address_ids[email] = self._addresses.insert(fields)
            return True
        was = bool(copy_of(self._addresses, doc_id).get("bounced"))
        if not was:
            self._addresses.update(fields, doc_ids=[doc_id])
        return not was

    def clear_bounce(self, email: str) -> bool:
        """Lift the mark on ``email``; True when there was one."""
        doc_id = self._address_ids.get(email.lower())
        if doc_id is None or not copy_of(self._addresses, doc_id).get("bounced"):
            return False
        self._addresses.update({"bounced": False}, doc_ids=[doc_id])
        return True

    def bounced_addresses(self) -> list[Doc]:
        """Every address currently marked undeliverable (email, reason, since)."""
        return [plain(d) for d in self._addresses.all() if d.get("bounced")]

    # --- per-sender reply limit (SPEC §5) -----------------------------------------------

    def take_reply_slot(self, email: str, *, now: datetime, per_hour: int) -> bool:
        """Count one automatic reply to ``email``; False when the hourly limit is reached."""
        email = email.lower()
        doc_id = self._rate_ids.get(email)
        recent: list[str] = []
        if doc_id is not None:
            cutoff = now - timedelta(hours=1)
            doc = copy_of(self._rates, doc_id)
            recent = [t for t in doc.get("sent", []) if from_iso(t) > cutoff]
        if len(recent) >= per_hour:
            return False
        recent.append(iso(now))
        if doc_id is None:
            self._rate_ids[email] = self._rates.insert({"email": email, "sent": recent})
        else:
            self._rates.update({"sent": recent}, doc_ids=[doc_id])
        return True

    def drop_reply_counts(self, before: datetime) -> int:
        """Forget the reply counts of senders last answered before ``before`` (a count
        only looks back an hour); how many."""
        cutoff = iso(before)
        stale = [
            doc_id
            for doc_id, doc in self.db.stored_all("rates")
            if max(doc.get("sent") or [""]) < cutoff
        ]
        if stale:
            self._rates.remove(doc_ids=stale)
            dropped = set(stale)
            self._rate_ids = {e: i for e, i in self._rate_ids.items() if i not in dropped}
        return len(stale)
