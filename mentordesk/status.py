"""``mentordesk status``: a readable table of mentors, open requests (and whom each waits
on), and the sessions in people's calendars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config
from .inbox.fields import format_windows
from .state.records import WAITING, MentorStatus, RequestStatus, mentor_status, request_status
from .state.store import Store, from_iso
from .views import tag, windows_from_doc


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text table, columns as wide as their widest cell."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines)


def age(since_iso: str, now: datetime) -> str:
    delta = now - from_iso(since_iso)
    if delta.days >= 1:
        return f"{delta.days}d"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours}h" if hours else f"{int(delta.total_seconds() // 60)}m"


def waits_on(request: Mapping[str, Any], session: Mapping[str, Any] | None) -> str:
    """Whom a waiting request waits on, in a few words."""
    status = request_status(request)
    if status is RequestStatus.INCOMPLETE:
        return "the mentee: details asked"
    if status is RequestStatus.OPEN:
        invited = len(request.get("invited") or ())
        if not invited:
            return "a person: nobody matches"
        return f"mentors: {invited} invited"
    holder = str(request.get("claimed_by") or "the mentor")
    if session is None:
        if request.get("schedule") == "mentor picks":
            return f"{holder}: to pick a time"
        return holder
    answers = session.get("answers") or {}
    unanswered = sorted(who for who, answer in answers.items() if answer == "NEEDS-ACTION")
    if unanswered:
        return "answers: " + ", ".join(unanswered)
    return "the session"


def session_rows(store: Store, zone: str) -> list[list[str]]:
    """The live sessions, soonest first: request, when (in ``zone``), who, status."""
    rows = []
    local = ZoneInfo(zone)
    for session in sorted(store.live_sessions(), key=lambda d: str(d.get("start"))):
        start = from_iso(session["start"]).astimezone(local)
        rows.append(
            [
                tag(int(session["request"])),
                f"{start:%a %Y-%m-%d %H:%M}",
                session["mentor"],
                session["mentee"],
                str(session.get("status") or ""),
                str(session.get("sequence") or 0),
            ]
        )
    return rows


def render_status(store: Store, now: datetime, zone: str = "UTC") -> str:
    mentors = sorted(
        store.mentors(),
        key=lambda m: (mentor_status(m) is not MentorStatus.ACTIVE, m["name"].lower()),
    )
    mentor_rows = [
        [
            m["name"],
            m["email"],
            m["status"],
            ", ".join(m.get("skills", [])),
            m.get("timezone") or "",
            format_windows(windows_from_doc(m.get("availability", []))),
            str(m.get("capacity", "")),
            (m.get("term_end") or "")[:10],
        ]
        for m in mentors
    ]
    requests = sorted(store.requests(WAITING), key=lambda r: r["number"])
    request_rows = [
        [
            tag(r["number"]),
            r["status"],
            r.get("name") or "",
            r["mentee"],
            ", ".join(r.get("skills", [])) or "?",
            age(r["created"], now),
            waits_on(r, store.live_session_of(int(r["number"]))),
        ]
        for r in requests
    ]
    sessions = session_rows(store, zone)
    pending = len(store.outbox("pending"))
    failed = len(store.outbox("failed"))
    quarantined = len(store.messages("quarantined"))
    parts = [
        f"Mentors ({sum(mentor_status(m) is MentorStatus.ACTIVE for m in mentors)} active "
        f"of {len(mentors)})",
        table(
            [
                "name",
                "email",
                "status",
                "skills",
                "timezone",
                "availability",
                "cap/mo",
                "term ends",
            ],
            mentor_rows,
        )
        if mentor_rows
        else "  none yet",
        "",
        f"Open requests ({len(requests)})",
        table(["request", "status", "name", "mentee", "skills", "age", "waits on"], request_rows)
        if request_rows
        else "  none",
        "",
        f"Sessions in calendars ({len(sessions)}; times in {zone})",
        table(["request", "when", "mentor", "mentee", "status", "seq"], sessions)
        if sessions
        else "  none",
        "",
        f"Outbox: {pending} waiting, {failed} failed.  Quarantined messages: {quarantined}.",
    ]
    return "\n".join(parts)


def print_status(config: Config) -> int:
    store = Store(config.state.path, fsync=False, read_only=True)
    try:
        print(render_status(store, datetime.now(UTC), config.program.timezone))
    finally:
        store.close()
    return 0
