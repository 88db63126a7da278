"""Reports for the coordinator: ``mentordesk report [TOPIC]`` and ``mentordesk export --csv``.

The insights the reference program got from Airtable, as plain-text tables: requests per
month, how long a request waits for a mentor (median and 90th percentile), claims per
mentor and people who come back with more requests. Both commands open the state
read-only, so they work while the daemon runs and change nothing.

Topics are registered by name (``register_report``): "overview" is this module's and the
default; "feedback" is the feedback round's (``flows/feedback_results.py``).

``export_csv`` writes one CSV file per table of the state (UTF-8, a header row, nested
values as JSON, weekly hours as people read them: "Mon 12:00–15:00"; times are ISO
8601). Outgoing emails are exported without their bodies, and the internal bookkeeping
tables (meta, threads, rates) are left out. A cell that a spreadsheet would
run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
gets a leading ``'``: mentees and mentors write some of this text.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config
from .errors import MentordeskError
from .flows.feedback_results import feedback_report
from .inbox.hours import format_windows
from .state.outbox_records import DRAFT
from .state.records import RequestStatus, request_status
from .state.store import Store, from_iso
from .status import table
from .views import tag, windows_from_doc

__all__ = [
    "REPORTS",
    "export_csv",
    "format_duration",
    "overview",
    "percentile",
    "register_report",
    "render_report",
    "topics_help",
]

Report = Callable[[Store, Config, datetime], str]
REPORTS: dict[str, Report] = {}
DEFAULT_TOPIC = "overview"

# Exported first, in this order; any other table follows alphabetically.
EXPORT_ORDER = ("mentors", "requests", "sessions", "outbox", "audit", "messages", "addresses")
NOT_EXPORTED = frozenset({"meta", "threads", "rates"})
# Columns never exported, per table: every email's bytes or draft (its whole text).
DROPPED_COLUMNS = {"outbox": frozenset({"data", DRAFT})}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def register_report(name: str, fn: Report) -> Report:
    """Make ``mentordesk report NAME`` print ``fn(store, config, now)``."""
    known = REPORTS.get(name)
    if known is not None and known is not fn and known.__qualname__ != fn.__qualname__:
        raise ValueError(f"a report called {name!r} is registered already")
    REPORTS[name] = fn
    return fn


def render_report(store: Store, config: Config, now: datetime, topic: str | None = None) -> str:
    """The report ``topic`` (default: the overview); MentordeskError for an unknown one."""
    name = topic or DEFAULT_TOPIC
    report = REPORTS.get(name)
    if report is None:
        known = ", ".join(sorted(REPORTS))
        raise MentordeskError(f"no report called {name!r}; known reports: {known}")
    return report(store, config, now)


# --- figures --------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with ``fraction`` of all at or below."""
    if not values:
        raise ValueError("percentile of nothing")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def format_duration(delta: timedelta) -> str:
    """'2d 4h', '5h 10m', '12m': the two largest units people read at a glance."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {mins}m" if mins else f"{hours}h"
    return f"{mins}m"


@dataclass(frozen=True)
class _Waits:
    """Times to claim, in seconds."""

    seconds: tuple[float, ...]

    def median(self) -> str:
        if not self.seconds:
            return "-"
        return format_duration(timedelta(seconds=statistics.median(self.seconds)))

    def p90(self) -> str:
        if not self.seconds:
            return "-"
        return format_duration(timedelta(seconds=percentile(self.seconds, 0.9)))


def _time_to_claim(request: Mapping[str, Any]) -> float | None:
    """Seconds from complete (opened) to the claim that holds it; None if never claimed."""
    opened, claimed = request.get("opened"), request.get("claimed_at")
    if not opened or not claimed:
        return None
    seconds = (from_iso(claimed) - from_iso(opened)).total_seconds()
    return seconds if seconds >= 0 else None


def _month(text: str | None, zone: ZoneInfo) -> str:
    return from_iso(text).astimezone(zone).strftime("%Y-%m") if text else "?"


# --- the overview --------------------------------------------------------------------------


def overview(store: Store, config: Config, now: datetime) -> str:
    """Requests per month, time to claim, claims per mentor, repeat requesters."""
    zone = ZoneInfo(config.program.timezone)
    requests = sorted(store.requests(), key=lambda r: int(r["number"]))
    mentors = store.mentors()
    audit = store.audit_log()
    parts = [
        f"{config.program.name}: report of {now.astimezone(zone):%Y-%m-%d %H:%M} "
        f"({config.program.timezone})",
        "",
        _per_month(requests, zone),
        "",
        _claims_per_mentor(mentors, requests, audit, now, zone),
        "",
        _repeat_requesters(requests, zone),
    ]
    return "\n".join(parts)


def _per_month(requests: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> str:
    months: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for request in requests:
        months[_month(request.get("created"), zone)].append(request)
    headers = [
        "month",
        "received",
        "complete",
        "claimed",
        "withdrawn",
        "expired",
        "still open",
        "escalated",
        "median to claim",
        "p90 to claim",
    ]
    rows = [_month_row(month, group) for month, group in sorted(months.items())]
    if not rows:
        return "Requests per month\n  none yet"
    rows.append(_month_row("all", requests))
    waits = [w for r in requests if (w := _time_to_claim(r)) is not None]
    note = (
        f"Time to claim runs from a complete request to the mentor who has it now "
        f"({len(waits)} claimed)."
    )
    return "\n".join(["Requests per month (by the day they came in)", table(headers, rows), note])


def _month_row(month: str, group: Sequence[Mapping[str, Any]]) -> list[str]:
    waits = _Waits(tuple(w for r in group if (w := _time_to_claim(r)) is not None))
    statuses = Counter(request_status(r) for r in group)
    return [
        month,
        str(len(group)),
        str(sum(1 for r in group if r.get("opened"))),
        str(sum(1 for r in group if r.get("claimed_at"))),
        str(statuses[RequestStatus.WITHDRAWN]),
        str(statuses[RequestStatus.EXPIRED]),
        str(statuses[RequestStatus.OPEN] + statuses[RequestStatus.INCOMPLETE]),
        str(sum(1 for r in group if (r.get("ladder") or {}).get("escalate"))),
        waits.median(),
        waits.p90(),
    ]


def _claims_per_mentor(
    mentors: Sequence[Mapping[str, Any]],
    requests: Sequence[Mapping[str, Any]],
    audit: Iterable[Mapping[str, Any]],
    now: datetime,
    zone: ZoneInfo,
) -> str:
    claims: Counter[str] = Counter()
    recent: Counter[str] = Counter()
    released: Counter[str] = Counter()
    last: dict[str, str] = {}
    cutoff = now - timedelta(days=90)
    for event in audit:
        mentor = event.get("mentor")
        if not isinstance(mentor, str):
            continue
        if event.get("event") == "claimed":
            claims[mentor] += 1
            at = str(event.get("at") or "")
            last[mentor] = max(last.get(mentor, ""), at)
            if at and from_iso(at) >= cutoff:
                recent[mentor] += 1
        elif event.get("event") == "released":
            released[mentor] += 1
    holding = Counter(
        r["claimed_by"] for r in requests if request_status(r).held and r.get("claimed_by")
    )
    emails = {m["email"] for m in mentors} | set(claims)
    names = {m["email"]: m.get("name") or "" for m in mentors}
    statuses = {m["email"]: m.get("status") or "" for m in mentors}
    order = sorted(emails, key=lambda e: (-claims[e], names.get(e, "").lower(), e))
    rows = [
        [
            names.get(e, ""),
            e,
            statuses.get(e, "gone"),
            str(claims[e]),
            str(recent[e]),
            str(released[e]),
            str(holding[e]),
            from_iso(last[e]).astimezone(zone).strftime("%Y-%m-%d") if last.get(e) else "-",
        ]
        for e in order
    ]
    if not rows:
        return "Claims per mentor\n  no mentors yet"
    headers = ["mentor", "email", "status", "claims", "last 90d", "gave back", "has now", "last"]
    return "\n".join(["Claims per mentor", table(headers, rows)])


def _repeat_requesters(requests: Sequence[Mapping[str, Any]], zone: ZoneInfo) -> str:
    by_mentee: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for request in requests:
        by_mentee[request["mentee"]].append(request)
    repeat = {mentee: group for mentee, group in by_mentee.items() if len(group) > 1}
    title = f"Repeat requesters ({len(repeat)} of {len(by_mentee)} mentees asked more than once)"
    if not repeat:
        return f"{title}\n  none"
    rows = []
    for mentee, group in sorted(repeat.items(), key=lambda item: (-len(item[1]), item[0])):
        dates = sorted(from_iso(r["created"]) for r in group if r.get("created"))
        rows.append(
            [
                next((str(r.get("name")) for r in reversed(group) if r.get("name")), ""),
                mentee,
                str(len(group)),
                str(sum(1 for r in group if r.get("claimed_at"))),
                dates[0].astimezone(zone).strftime("%Y-%m-%d") if dates else "?",
                dates[-1].astimezone(zone).strftime("%Y-%m-%d") if dates else "?",
                " ".join(tag(int(r["number"])) for r in group),
            ]
        )
    headers = ["mentee", "email", "requests", "claimed", "first", "last", "references"]
    return "\n".join([title, table(headers, rows)])


register_report(DEFAULT_TOPIC, overview)
register_report("feedback", feedback_report)


# --- CSV export ---------------------------------------------------------------------------


def export_csv(store: Store, folder: Path) -> dict[str, int]:
    """One ``<table>.csv`` per table in ``folder`` (created if missing); table → rows."""
    folder.mkdir(parents=True, exist_ok=True)
    # The main tables always get a file, empty or not; others once they exist.
    names = (set(store.db.tinydb.tables()) | set(EXPORT_ORDER)) - NOT_EXPORTED
    ordered = [n for n in EXPORT_ORDER if n in names] + sorted(names - set(EXPORT_ORDER))
    written: dict[str, int] = {}
    for name in ordered:
        docs = store.history_items(name)  # the archive's history too
        dropped = DROPPED_COLUMNS.get(name, frozenset())
        columns: dict[str, None] = {"id": None}  # insertion-ordered set
        for _, doc in docs:
            columns.update((key, None) for key in doc if key not in dropped)
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(list(columns))
            for doc_id, doc in docs:
                row = {**doc, "id": doc_id}
                writer.writerow([_cell(_readable(column, row.get(column))) for column in columns])
        written[name] = len(docs)
    return written


def _readable(column: str, value: Any) -> Any:
    """Weekly hours as people read them ("Mon 12:00–15:00"), not stored minute triples."""
    if column == "availability" and isinstance(value, list):
        try:
            return format_windows(windows_from_doc(value))
        except (TypeError, ValueError, IndexError):
            return value  # a damaged value is exported as it is, for a person to see
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


# --- the commands ---------------------------------------------------------------------------


def topics_help() -> str:
    """The topics ``mentordesk report --help`` lists, each with its docstring's summary."""
    lines = ["topics:"]
    width = max(len(name) for name in REPORTS)
    for name, fn in sorted(REPORTS.items()):
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        default = " (the default)" if name == DEFAULT_TOPIC else ""
        lines.append(f"  {name.ljust(width)}  {summary}{default}")
    return "\n".join(lines)


def print_report(config: Config, topic: str | None = None) -> int:
    """``mentordesk report [TOPIC]``: read the state without locking it, print a report."""
    from datetime import UTC

    store = Store(config.state.path, fsync=False, read_only=True)
    try:
        print(render_report(store, config, datetime.now(UTC), topic))
    finally:
        store.close()
    return 0


def run_export(config: Config, folder: Path) -> int:
    """``mentordesk export --csv DIR``: one CSV per table, read without locking the state."""
    store = Store(config.state.path, fsync=False, read_only=True)
    try:
        written = export_csv(store, folder)
    finally:
        store.close()
    for name, rows in written.items():
        print(f"{folder / (name + '.csv')}: {rows} row{'s' if rows != 1 else ''}")
    return 0
