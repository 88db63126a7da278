"""``mentordesk status``: a readable table of mentors and open requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from .config import Config
from .inbox.fields import format_windows
from .state.records import WAITING, MentorStatus, mentor_status
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


def render_status(store: Store, now: datetime) -> str:
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
        ]
        for r in requests
    ]
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
        table(["request", "status", "name", "mentee", "skills", "age"], request_rows)
        if request_rows
        else "  none",
        "",
        f"Outbox: {pending} waiting, {failed} failed.  Quarantined messages: {quarantined}.",
    ]
    return "\n".join(parts)


def print_status(config: Config) -> int:
    store = Store(config.state.path, fsync=False, read_only=True)
    try:
        print(render_status(store, datetime.now(UTC)))
    finally:
        store.close()
    return 0
