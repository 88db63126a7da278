"""What happened since the last digest (SPEC §3 flow 8): the digest's news sections.

Read from the audit log (it says who did what, and when) and from the records:
new requests, claims, sessions booked (still live, for a request still booked),
escalations, declines, cancellations and give-backs, no-shows, follow-ups, requests
withdrawn or expired, mentors who joined or left, mail a person must look at (sender,
subject and date, never a raw Message-ID), delivery failures, and the timed steps
skipped because their moment had passed too long ago (``skipped: late``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..state.records import LIVE, MentorStatus, RequestStatus, parse_time, session_status
from ..state.store import Store, from_iso, iso
from ..timers import SKIPPED_LATE
from ..views import tag
from .feedback_results import SessionResults
from .words import local_time

__all__ = ["MAX_ITEMS", "Names", "Section", "age", "happened", "section", "waiting_since"]

#: How many lines a section lists before "… and N more" (the counts stay exact).
MAX_ITEMS = 15
# The audit event of an escalation (written by the ladder, flows/ladder.py).
ESCALATION_EVENT = "ladder escalate"


@dataclass(frozen=True)
class Section:
    """One heading of the digest: an exact count and the first MAX_ITEMS lines."""

    key: str
    title: str
    count: int
    items: tuple[str, ...]

    @property
    def more(self) -> int:
        return self.count - len(self.items)


def happened(
    store: Store,
    config: Config,
    since: datetime,
    now: datetime,
    requests: Sequence[Mapping[str, Any]],
    names: Names,
    sessions: SessionResults,
) -> tuple[Section, ...]:
    """The news sections for ``[since, now)``, in the order the email shows them."""
    zone = ZoneInfo(config.program.timezone)
    low, high = iso(since), iso(now)

    def new(value: Any) -> bool:
        return isinstance(value, str) and low <= value < high

    by_number = {int(r["number"]): r for r in requests}
    events = sorted((e for e in store.audit_since(since) if e["at"] < high), key=lambda e: e["at"])
    no_shows = [
        f"{n['tag']}  {names.mentee(n['request'], n['mentee'])} did not come to "
        f"the session with {names.of(n['mentor'])}"
        for n in sessions.no_shows
    ]
    follow_ups = [
        f"{f['tag']}  follow-up of {f['of']} for {f['mentee']}" for f in sessions.followups
    ]
    return _ordered(
        (
            section("new", "New requests", _new_items(requests, new)),
            section("booked", "Sessions booked", _booked_items(store, new, by_number, names, zone)),
            section("no_shows", "No-shows", no_shows),
            section("follow_ups", "Follow-ups asked for", follow_ups),
            section("failures", "Delivery failures", _failure_items(store, new)),
            *_event_sections(events, names, by_number, config),
        )
    )


# The order of the "what happened" sections in the email.
_ORDER = (
    "new",
    "claimed",
    "booked",
    "escalated",
    "declined",
    "no_shows",
    "follow_ups",
    "ended",
    "mentors",
    "unplaced",
    "failures",
    "skipped",
)


def _ordered(sections: Iterable[Section]) -> tuple[Section, ...]:
    by_key = {s.key: s for s in sections}
    return tuple(by_key[key] for key in _ORDER)


class Names:
    """People as the coordinator reads them: a mentor's name, a mentee's, else the address."""

    def __init__(self, mentors: Mapping[str, Mapping[str, Any]], requests: Mapping[int, Any]):
        self.mentors = mentors
        self.requests = requests

    def of(self, email: Any) -> str:
        if not isinstance(email, str) or not email:
            return "someone"
        return str((self.mentors.get(email) or {}).get("name") or email)

    def mentee(self, number: Any, email: str) -> str:
        request = self.requests.get(int(number)) if number is not None else None
        if request and request["mentee"] == email and request.get("name"):
            return str(request["name"])
        return self.of(email)


def _label(number: Any) -> str:
    return tag(int(number)) if number is not None else "—"


def _new_items(requests: Sequence[Mapping[str, Any]], new: Callable[[Any], bool]) -> list[str]:
    fresh = sorted((r for r in requests if new(r.get("created"))), key=lambda r: r["number"])
    return [
        f"{tag(r['number'])}  {r.get('name') or '?'} <{r['mentee']}> · "
        f"{', '.join(r.get('skills') or []) or 'no skill yet'} · {r['status'].value}"
        for r in fresh
    ]


def _event_sections(
    events: Sequence[Mapping[str, Any]],
    names: Names,
    by_number: Mapping[int, Mapping[str, Any]],
    config: Config,
) -> tuple[Section, ...]:
    """The sections read from the audit log: it says who did what, and when."""
    zone = config.program.timezone
    items: dict[str, list[str]] = {
        key: [] for key in ("claimed", "escalated", "declined", "ended", "mentors", "unplaced")
    }
    skipped: list[str] = []
    # The notice to the coordinator names the email (sender, subject, date); the
    # quarantine event of the same message is shown with those.
    told = {
        e["message_id"]: e
        for e in events
        if e["event"] == "coordinator told" and e.get("message_id") and e.get("sender")
    }
    for e in events:
        kind, number = e["event"], e.get("request")
        if kind == "claimed":
            request = by_number.get(int(number)) if number is not None else None
            after = ""
            if request and request.get("claimed_at") == e["at"]:
                after = f" after {age(from_iso(e['at']) - from_iso(waiting_since(request)))}"
            items["claimed"].append(f"{_label(number)}  by {names.of(e.get('mentor'))}{after}")
        elif kind == ESCALATION_EVENT:
            contacts = e.get("contacts")
            to = ", ".join(contacts) if isinstance(contacts, list) else ""
            items["escalated"].append(f"{_label(number)}  escalated{f' to {to}' if to else ''}")
        elif kind == "calendar answer" and e.get("partstat") == "DECLINED":
            who = names.mentee(number, e.get("attendee", ""))
            items["declined"].append(f"{_label(number)}  {who} declined the proposed time")
        elif kind == "session cancelled":
            by = f" by {names.of(e['by'])}" if e.get("by") else ""
            why = e.get("why")
            because = f" ({why})" if why and why != "asked" else ""
            items["declined"].append(f"{_label(number)}  session cancelled{by}{because}")
        elif kind == "released":
            why = e.get("why")
            because = f" ({why})" if why and why != "released" else ""
            items["declined"].append(
                f"{_label(number)}  given back by {names.of(e.get('mentor'))}{because}"
            )
        elif kind in ("request withdrawn", "request expired"):
            items["ended"].append(f"{_label(number)}  {kind.removeprefix('request ')}")
        elif kind in _MENTOR_EVENTS:
            items["mentors"].append(_MENTOR_EVENTS[kind](names.of(e.get("mentor")), e))
        elif kind == "quarantined":
            about = {**told.get(e.get("message_id") or "", {}), **e}
            items["unplaced"].append(
                f"quarantined: {_email_line(about, zone)} · {e.get('error') or 'error'}"
            )
        elif kind == "coordinator told" and e.get("reason") not in _TOLD_ELSEWHERE:
            reason = "not understood" if e.get("reason") == "unclassified" else e.get("reason")
            items["unplaced"].append(f"{reason}: {_email_line(e, zone)}")
        elif kind == "no mentor matches":
            items["unplaced"].append(f"{_label(number)}  no mentor matches")
        elif kind == SKIPPED_LATE:
            due = parse_time(e.get("due"))
            when = f", due {local_time(due, zone)}" if due else ""
            what = f" for {e['what']}" if e.get("what") else ""
            skipped.append(f"{e.get('step')}{what}{when}, {e.get('late')} late ({e.get('rule')})")
    return (
        section("claimed", "Claimed", items["claimed"]),
        section("escalated", "Escalated", items["escalated"]),
        section("declined", "Declined, cancelled or given back", items["declined"]),
        section("ended", "Withdrawn or expired", items["ended"]),
        section("mentors", "Mentors who joined or left", items["mentors"]),
        section("unplaced", "Needs a person", items["unplaced"]),
        section("skipped", "Skipped: too late", skipped),
    )


# Notices to the coordinator that other sections show already.
_TOLD_ELSEWHERE = frozenset({"quarantined", "delivery failure"})

# Mentor events (core.py, flows/lifecycle.py) → the line the digest shows.
_MENTOR_EVENTS: dict[str, Callable[[str, Mapping[str, Any]], str]] = {
    "enrolled": lambda who, e: f"{who} enrolled",
    "mentor renew": lambda who, e: f"{who} renewed their term",
    f"mentor {MentorStatus.RESIGNED.value}": lambda who, e: f"{who} resigned{_handed_back(e)}",
    f"mentor {MentorStatus.TERM_ENDED.value}": lambda who, e: f"{who}: term ended{_handed_back(e)}",
}


def _handed_back(event: Mapping[str, Any]) -> str:
    released = [tag(int(n)) for n in event.get("released") or ()]
    return f"; {', '.join(released)} went back to matching" if released else ""


def _email_line(event: Mapping[str, Any], zone: str) -> str:
    """An email a person must look at, as a person finds it: sender, subject, date.

    The event carries them when the mail gate recorded them; otherwise the date the
    notice went to the coordinator is all there is (never the raw Message-ID).
    """
    sender = event.get("sender")
    name = event.get("sender_name")
    subject = event.get("subject")
    received = parse_time(event.get("date")) or parse_time(event.get("at"))
    when = local_time(received, zone) if received else ""
    if not sender:
        return f"an email of {when} (the notice sent to you then names the sender)"
    who = f"{name} <{sender}>" if name else str(sender)
    return f"{who} · “{subject or '(no subject)'}” · {when}"


def _booked_items(
    store: Store,
    new: Callable[[Any], bool],
    by_number: Mapping[int, Mapping[str, Any]],
    names: Names,
    zone: ZoneInfo,
) -> list[str]:
    """Sessions proposed since, still live, for a request still booked with that mentor."""

    def still_booked(s: Mapping[str, Any]) -> bool:
        request = by_number.get(int(s["request"])) if s.get("request") is not None else None
        return (
            request is not None
            and request["status"] is RequestStatus.BOOKED
            and request.get("claimed_by") == s.get("mentor")
        )

    fresh = store.sessions_where(
        lambda s: new(s.get("created")) and session_status(s) in LIVE and still_booked(s)
    )
    return [
        f"{tag(int(s['request']))}  {names.of(s['mentor'])} with "
        f"{names.mentee(s['request'], s['mentee'])}, "
        f"{from_iso(s['start']).astimezone(zone).strftime('%a %-d %b %H:%M')} "
        f"({session_status(s).value})"
        for s in sorted(fresh, key=lambda s: s["start"])
    ]


def _failure_items(store: Store, new: Callable[[Any], bool]) -> list[str]:
    items = [
        f"{', '.join(o['recipients'])} · {o['kind']} · {o.get('error') or 'refused'}"
        for o in store.outbox("failed")
        if new(o.get("failed"))
    ]
    items += [
        f"{a['email']} bounced: {a.get('reason') or ''}".rstrip(": ")
        for a in store.bounced_addresses()
        if new(a.get("since"))
    ]
    return items


def section(key: str, title: str, items: Sequence[str]) -> Section:
    return Section(key, title, len(items), tuple(items[:MAX_ITEMS]))


def waiting_since(request: Mapping[str, Any]) -> str:
    """When the request's current wait began: re-opened after a release, or opened."""
    return str(request.get("reopened") or request.get("opened") or request["created"])


def age(span: timedelta) -> str:
    """'4d 3h', '5h', '12m': how long something waited, roughly."""
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes >= 1440:
        days, hours = divmod(minutes // 60, 24)
        return f"{days}d {hours}h" if hours else f"{days}d"
    if minutes >= 60:
        return f"{minutes // 60}h"
    return f"{minutes}m"
