"""What the coordinator's desk shows: read-only queries over the store (no writes, no mail).

Each function takes the store, the config and the clock and returns plain data for one
page of ``desk_web.py``; they run on the store's writer thread (``StoreWriter.call``),
as every page's reads do. Where another part already computes something (the digest's
standing and chart, the feedback results, an office-hours series' description), it is
reused, not counted again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config
from .flows.coordinator import CoordinatorDesk
from .flows.digest import compute_digest
from .flows.digest_events import age
from .flows.digest_mail import chart_rows
from .flows.feedback_results import (
    RATINGS,
    SessionResults,
    SurveyResults,
    session_results,
    survey_results,
)
from .flows.office_hours import OfficeHoursDesk
from .state.records import (
    HELD,
    NOT_FINISHED,
    MentorStatus,
    RequestStatus,
    mentor_status,
    request_status,
    term_over,
)
from .state.store import Store, from_iso, iso
from .views import request_view, tag

__all__ = [
    "RATINGS",
    "REQUEST_FILTERS",
    "RequestFilter",
    "attention",
    "chart",
    "feedback",
    "mentor_rows",
    "office_hours",
    "request_rows",
    "request_summary",
    "sessions_this_week",
]

#: The status choices of the requests page: a status, or these groups.
REQUEST_FILTERS = ("waiting", "all", *(s.value for s in RequestStatus))
_ASSIGNABLE = frozenset({RequestStatus.OPEN, *HELD})
#: Rows on one page of requests at most (the filters narrow it down).
MAX_ROWS = 200


def _when(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %-d %b %Y %H:%M")


def _when_iso(value: Any, zone: str) -> str:
    return _when(from_iso(value), zone) if isinstance(value, str) and value else ""


# --- what needs a person now ---------------------------------------------------------------


def attention(store: Store, config: Config, desk: CoordinatorDesk, now: datetime) -> dict[str, Any]:
    """The coordinator desk's ``needs_a_person`` (unclaimed requests by age, escalated
    marked; bounced addresses; mail nobody could place), with the digest's requests held
    by someone who left or waiting for a time, mentors waiting for approval, and emails
    the relay refused for good."""
    zone = config.program.timezone
    needs = desk.needs_a_person(now)
    standing = compute_digest(store, config, now, now - timedelta(days=1)).standing
    waiting = []
    for w in needs.unclaimed:
        doc = store.request(w.number) or {}
        waiting.append(
            {
                "number": w.number,
                "tag": w.tag,
                "name": doc.get("name") or "",
                "skills": w.skills,
                "waited": age(now - w.since) if w.since else "",
                "asked": len(doc.get("invited") or ()),
                "escalated": w.escalated,
            }
        )
    bounced = {a["email"]: a for a in store.bounced_addresses()}
    return {
        "waiting": waiting,
        "escalated": [r for r in waiting if r["escalated"]],
        "astray": standing.astray,
        "picking": standing.picking,
        "pending": [
            {"name": m.get("name") or m["email"], "email": m["email"]}
            for m in store.mentors()
            if mentor_status(m) is MentorStatus.PENDING
        ],
        "bounced": [
            {
                "email": email,
                "reason": bounced.get(email, {}).get("reason") or "",
                "since": _when_iso(bounced.get(email, {}).get("since"), zone),
            }
            for email in needs.bounced
        ],
        "unplaced": [
            {
                "at": _when_iso(m.get("at"), zone),
                "what": "quarantined" if m.get("status") == "quarantined" else "not understood",
                "error": m.get("error") or "",
            }
            for m in needs.unplaced
        ],
        "failed": [
            {
                "to": ", ".join(o.get("recipients") or ()),
                "kind": o.get("kind") or "",
                "error": o.get("error") or "",
                "at": _when_iso(o.get("failed") or o.get("created"), zone),
            }
            for o in store.outbox("failed")
        ],
    }


# --- requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFilter:
    """The requests page's filters, read from its query string (never trusted)."""

    status: str = "waiting"
    skill: str = ""
    min_days: int = 0

    @classmethod
    def of(cls, unsafe_query: Mapping[str, str]) -> RequestFilter:
        status = unsafe_query.get("status", "waiting")
        skill = " ".join(unsafe_query.get("skill", "").split())[:60].lower()
        unsafe_days = unsafe_query.get("older_than", "").strip()
        days = int(unsafe_days) if unsafe_days.isdigit() and len(unsafe_days) <= 4 else 0
        return cls(status if status in REQUEST_FILTERS else "waiting", skill, days)


def request_rows(
    store: Store, config: Config, wanted: RequestFilter, now: datetime
) -> tuple[list[dict[str, Any]], int]:
    """The requests that pass the filter, newest first: (at most MAX_ROWS rows, how many)."""
    synonyms = config.matching.synonyms
    skill = synonyms.get(wanted.skill, wanted.skill)
    cutoff = now - timedelta(days=wanted.min_days)
    numbers: list[int] = []

    def take(doc: Mapping[str, Any]) -> bool:
        status = request_status(doc)
        if wanted.status == "waiting" and status not in NOT_FINISHED:
            return False
        if wanted.status not in ("waiting", "all") and status.value != wanted.status:
            return False
        skills = [str(s) for s in doc.get("skills") or ()]
        if skill and not any(skill in synonyms.get(s.lower(), s.lower()) for s in skills):
            return False
        if wanted.min_days and from_iso(str(doc["created"])) > cutoff:
            return False
        numbers.append(int(doc["number"]))
        return False  # nothing copied out

    # The status filter is answered by the store's index: the page reads only those.
    statuses: list[str] | None
    if wanted.status == "waiting":
        statuses = [s.value for s in NOT_FINISHED]
    elif wanted.status == "all":
        statuses = None
    else:
        statuses = [wanted.status]
    store.requests_where(take, statuses=statuses)
    numbers.sort(reverse=True)
    rows = []
    for number in numbers[:MAX_ROWS]:  # only the rows shown are made
        doc = store.request(number) or {}
        rows.append(
            {
                "number": number,
                "tag": tag(number),
                "name": doc.get("name") or "",
                "skills": ", ".join(str(s) for s in doc.get("skills") or ()),
                "status": request_status(doc).value,
                "age": age(now - from_iso(str(doc["created"]))),
                "holder": doc.get("claimed_by") or "",
            }
        )
    return rows, len(numbers)


def request_summary(
    store: Store, config: Config, desk: CoordinatorDesk, number: int, now: datetime
) -> dict[str, Any] | None:
    """One request for its page: what it is, where it stands, its whole history (the
    coordinator desk's) and the mentors who could take it, best first. None when there
    is no such request."""
    doc = store.request(number)
    history = desk.request_history(number)
    if doc is None or history is None:
        return None
    status = request_status(doc)
    return {
        "request": request_view(doc),
        "mentee": doc.get("mentee") or "",
        "holder": desk.name_of(doc["claimed_by"]) if status in HELD else "",
        "status": status.value,
        "held": status in HELD,
        "met": status is RequestStatus.MET,
        "finished": status.finished,
        "live_session": store.live_session_of(number) is not None,
        "invited": [
            str(i.get("email") if isinstance(i, dict) else i) for i in doc.get("invited") or ()
        ],
        "history": history,
        "candidates": desk.candidates(number, now) if status in _ASSIGNABLE else [],
    }


# --- mentors ---------------------------------------------------------------------------


def mentor_rows(
    store: Store, config: Config, desk: CoordinatorDesk, now: datetime
) -> list[dict[str, Any]]:
    """The coordinator desk's ``mentor_rows`` (load, holdings, term end, latest held
    session) for the page: who needs approval first, then the active, then the rest."""
    zone = config.program.timezone
    rows: list[dict[str, Any]] = []
    for m in desk.mentor_rows(now):
        status = MentorStatus(m.status)
        doc = {"status": m.status, "term_end": iso(m.term_end) if m.term_end else None}
        rows.append(
            {
                "email": m.email,
                "name": m.name,
                "status": m.status,
                "term_over": term_over(doc, now) and not status.left,
                "taken": m.taken,
                "capacity": m.capacity,
                "held": m.holds,
                "term_end": m.term_end.date().isoformat() if m.term_end else "",
                "last_session": _when(m.last_session, zone) if m.last_session else "",
                "skills": ", ".join(m.skills),
                "pending": status is MentorStatus.PENDING,
                "active": status is MentorStatus.ACTIVE,
                "paused": status is MentorStatus.PAUSED,
            }
        )
    order = {s.value: i for i, s in enumerate(MentorStatus)}
    rows.sort(key=lambda r: order.get(r["status"], 9))  # stable: by name within
    return rows


# --- sessions, office hours, feedback, the chart -------------------------------------------


def sessions_this_week(
    store: Store, config: Config, desk: CoordinatorDesk, now: datetime
) -> dict[str, Any]:
    """Sessions in calendars that start this week: today and the six days after (the
    program's zone)."""
    zone = config.program.timezone
    today = now.astimezone(ZoneInfo(zone)).replace(hour=0, minute=0, second=0, microsecond=0)
    high = today + timedelta(days=7)
    names = {m["email"]: m.get("name") or m["email"] for m in store.mentors()}
    rows = []
    for s in desk.sessions_between(today, high):
        number = s.get("request")
        request = store.request(int(number)) if number is not None else None
        rows.append(
            {
                "when": _when_iso(s.get("start"), zone),
                "number": number,
                "tag": tag(int(number)) if number is not None else "",
                "mentor": names.get(s.get("mentor") or "", s.get("mentor") or ""),
                "mentee": (request or {}).get("name") or s.get("mentee") or "",
                "status": s.get("status") or "",
            }
        )
    return {
        "from": today.strftime("%a %-d %b"),
        "to": (high - timedelta(days=1)).strftime("%a %-d %b"),
        "rows": rows,
    }


def office_hours(store: Store, desk: OfficeHoursDesk, now: datetime) -> list[dict[str, Any]]:
    """Every office-hours series, as ``mentordesk office-hours list`` describes it."""
    return [desk.commands.describe(series, now) for series in store.all_series()]


def feedback(store: Store, now: datetime) -> tuple[list[SurveyResults], SessionResults]:
    """Every feedback round, and a year of after-session answers."""
    rounds = [r for s in store.surveys() if (r := survey_results(store, int(s["year"])))]
    return rounds, session_results(store, now - timedelta(days=365), now)


def chart(store: Store, config: Config, now: datetime) -> list[dict[str, Any]]:
    """The digest's chart: requests a week and the median wait for a mentor."""
    return chart_rows(compute_digest(store, config, now, now - timedelta(days=1)).weeks)


def counts_text(counts: Sequence[int]) -> str:
    """'1: 0 · 2: 1 · …': how many gave each rating."""
    return " · ".join(f"{n}: {c}" for (n, _), c in zip(RATINGS, counts, strict=True))
