"""What the coordinator's desk shows (read-only): the ranked candidates for a request,
one request's whole history, what needs a person now; and the desk's plain types (a
move's ``DeskOutcome``, a request reference read by ``parse_ref``).

A mixin of ``CoordinatorDesk`` (``flows/coordinator.py``); nothing here changes the
store. The ranking is matching's (``MatchingDesk.ranking``), the audit's sentences the
escalation email's (``escalation.describe_events``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import TYPE_CHECKING, Any

from ..state.records import (
    HELD,
    LIVE,
    RequestStatus,
    SessionStatus,
    mentor_status,
    parse_time,
    request_status,
)
from ..state.store import iso
from ..views import tag
from .escalation import describe_events, moment_text
from .matching import month_start

if TYPE_CHECKING:
    from ..config import Config
    from ..state.store import Store
    from .matching import MatchingDesk

__all__ = [
    "Candidate",
    "CoordinatorViews",
    "DeskOutcome",
    "HistoryLine",
    "MentorRow",
    "NeedsAPerson",
    "Waiting",
    "parse_ref",
]

# Inbound mail nobody could place, or that failed until quarantined.
_UNPLACED_KINDS = frozenset({"unknown"})
_UNPLACED_STATUSES = frozenset({"quarantined"})


def is_unplaced(message: Mapping[str, Any]) -> bool:
    """An inbound message nobody could place (the desk lists it for a person)."""
    return message.get("kind") in _UNPLACED_KINDS or message.get("status") in _UNPLACED_STATUSES


_REF = re.compile(r"\s*(?:\[?\s*MD-|#)?0*(\d{1,9})\s*\]?\s*", re.IGNORECASE)


def parse_ref(ref: str | int) -> int | None:
    """The request number in "MD-0042", "md-42", "#42" or "42"; None otherwise."""
    if isinstance(ref, int):
        return ref if ref > 0 else None
    found = _REF.fullmatch(ref)
    return int(found.group(1)) if found and int(found.group(1)) > 0 else None


@dataclass(frozen=True)
class DeskOutcome:
    """What a coordinator's move came to, for a person to read."""

    done: bool
    message: str
    unknown: bool = False  # the reference or address names nothing we know


@dataclass(frozen=True)
class Candidate:
    """A mentor who could take a request now, in matching's order (rank 1 fits best)."""

    rank: int
    email: str
    name: str
    skills: tuple[str, ...]
    timezone: str
    status: str
    taken: int  # requests counted against this month's capacity
    capacity: int
    overlap_minutes: int  # weekly hours in common with the mentee, next 7 days
    invited: bool  # got a claim email for this request


@dataclass(frozen=True)
class HistoryLine:
    """One thing that happened to a request: an event, an email in or out, a session."""

    at: datetime | None
    local: str  # ``at`` as people read it, in [program] timezone
    kind: str  # event | email out | email in | session
    text: str


@dataclass(frozen=True)
class Waiting:
    """An open request nobody holds yet."""

    number: int
    tag: str
    skills: str
    since: datetime | None
    days: int
    escalated: bool


@dataclass(frozen=True)
class MentorRow:
    """A mentor as the desk lists them."""

    email: str
    name: str
    status: str
    skills: tuple[str, ...]
    taken: int  # this month, against the capacity
    capacity: int
    holds: int  # requests they hold now
    term_end: datetime | None
    last_session: datetime | None  # the end of their latest session that was held


@dataclass(frozen=True)
class NeedsAPerson:
    """What a coordinator should look at now."""

    unclaimed: tuple[Waiting, ...]  # oldest first
    bounced: tuple[str, ...]  # addresses we no longer write to
    unplaced: tuple[dict[str, Any], ...]  # inbound mail nobody could place (records)


class CoordinatorViews:
    """The desk's read-only questions."""

    config: Config
    store: Store
    matching: MatchingDesk

    def candidates(self, ref: str | int, now: datetime | None = None) -> list[Candidate]:
        """Who could take the request, best first (the holder, if any, left out)."""
        now = now or datetime.now(UTC)
        number = parse_ref(ref)
        request = self.store.request(number) if number is not None else None
        if request is None:
            return []
        holder = request.get("claimed_by") if request_status(request).held else None
        ranked, data = self.matching.ranking(request, now, excluded={holder} if holder else ())
        invited = {i["email"] for i in request.get("invited") or ()}
        found = []
        for rank, candidate in enumerate(ranked, start=1):
            mentor = self.store.mentor(candidate.email) or {}
            load = self.matching.load_of(candidate.email, now, data.sessions_this_month)
            found.append(
                Candidate(
                    rank=rank,
                    email=candidate.email,
                    name=str(mentor.get("name") or candidate.email),
                    skills=tuple(mentor.get("skills") or ()),
                    timezone=str(mentor.get("timezone") or ""),
                    status=mentor_status(mentor).value,
                    taken=load["taken"],
                    capacity=load["capacity"],
                    overlap_minutes=candidate.overlap_minutes,
                    invited=candidate.email in invited,
                )
            )
        return found

    def request_history(self, ref: str | int) -> list[HistoryLine] | None:
        """Everything about one request, oldest first: the audit's events, the emails in
        and out, its sessions. None when there is no such request."""
        number = parse_ref(ref)
        request = self.store.request(number) if number is not None else None
        if number is None or request is None:
            return None
        zone = self.config.program.timezone
        lines: list[HistoryLine] = []

        def add(at: Any, kind: str, text: str) -> None:
            lines.append(HistoryLine(parse_time(at), moment_text(at, zone), kind, text))

        for event, text in describe_events(self.store, self.store.audit_log(number)):
            add(event.get("at"), "event", text)
        for item in self.store.outbox_of(number):
            add(item.get("created"), "email out", _email_line(item, zone))
        for record in self.store.messages_of(number):
            add(
                record.get("at"),
                "email in",
                f"A {record.get('kind')} email ({record.get('status')})",
            )
        mentee = str(request.get("mentee") or "")
        for session in self.store.sessions_of(mentee):
            if session.get("request") != number:
                continue
            when = moment_text(session.get("start"), zone)
            add(
                session.get("created"),
                "session",
                f"Session on {when} with {session.get('mentor')}: {session.get('status')} "
                f"(SEQUENCE {session.get('sequence')})",
            )
        lines.sort(key=lambda line: line.at or datetime.min.replace(tzinfo=UTC))
        return lines

    def mentor_rows(self, now: datetime | None = None) -> list[MentorRow]:
        """Every mentor with their load, standing, term end and latest held session;
        by name."""
        now = now or datetime.now(UTC)
        taken = self.store.claims_since(month_start(now, self.config.program.timezone))
        holds: dict[str, int] = {}
        for request in self.store.requests([s.value for s in HELD]):
            holder = str(request.get("claimed_by") or "")
            holds[holder] = holds.get(holder, 0) + 1
        last: dict[str, str] = {}
        for session in self.store.sessions([SessionStatus.HELD.value]):
            host, end = str(session.get("mentor")), str(session.get("end") or "")
            last[host] = max(last.get(host, ""), end)
        rows = []
        for mentor in self.store.mentors():
            email = str(mentor["email"])
            load = self.matching.load_of(email, now, taken)
            rows.append(
                MentorRow(
                    email=email,
                    name=str(mentor.get("name") or email),
                    status=mentor_status(mentor).value,
                    skills=tuple(mentor.get("skills") or ()),
                    taken=load["taken"],
                    capacity=load["capacity"],
                    holds=holds.get(email, 0),
                    term_end=parse_time(mentor.get("term_end")),
                    last_session=parse_time(last.get(email)),
                )
            )
        rows.sort(key=lambda row: (row.name.lower(), row.email))
        return rows

    def sessions_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """The sessions in people's calendars (live) that start in ``[start, end)``,
        soonest first."""
        low, high = iso(start), iso(end)
        found = self.store.sessions_where(
            lambda d: d.get("status") in LIVE and low <= str(d.get("start") or "") < high
        )
        return sorted((dict(s) for s in found), key=lambda s: str(s.get("start")))

    def needs_a_person(self, now: datetime | None = None) -> NeedsAPerson:
        """Open requests nobody took (oldest first, escalated marked), addresses that
        bounce, and inbound mail nobody could place."""
        now = now or datetime.now(UTC)
        waiting = []
        for request in self.store.requests([RequestStatus.OPEN.value]):
            since = parse_time(request.get("reopened") or request.get("created"))
            number = int(request["number"])
            # This request's events only (by index), never the whole audit log.
            escalated = self.store.audit_has(number, "ladder escalate")
            waiting.append(
                Waiting(
                    number=number,
                    tag=tag(number),
                    skills=", ".join(request.get("skills") or ()),
                    since=since,
                    days=(now - since).days if since else 0,
                    escalated=escalated,
                )
            )
        waiting.sort(key=lambda w: w.since or now)
        unplaced = tuple(  # only these are copied, not every message ever read
            self.store.messages_where(is_unplaced)
        )
        return NeedsAPerson(
            unclaimed=tuple(waiting),
            bounced=tuple(str(a["email"]) for a in self.store.bounced_addresses()),
            unplaced=unplaced,
        )


def _email_line(item: dict[str, Any], zone: str) -> str:
    """One outgoing email as "Subject — to whom — sent/pending/failed — when"."""
    to = ", ".join(item.get("recipients") or ())
    state = str(item.get("status") or "pending")
    moment = {"sent": item.get("sent"), "failed": item.get("failed")}.get(state) or item.get("due")
    when = moment_text(moment, zone)
    return " — ".join(part for part in (_subject(item), f"to {to}", state, when) if part)


def _subject(item: dict[str, Any]) -> str:
    """The Subject of a stored outgoing email as a person reads it: the one kept on
    record, else (older records) the one in its bytes while they are kept, else the
    name of its template."""
    if item.get("subject"):
        return str(item["subject"])
    data = str(item.get("data") or "")
    if not data:
        return str(item.get("kind") or "")
    headers = BytesHeaderParser(policy=default_policy).parsebytes(data.encode("latin-1"))
    return str(headers.get("Subject") or item.get("kind") or "")
