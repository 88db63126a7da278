"""The coordinator's daily digest, as an email (SPEC §3 flow 8).

:func:`digest_context` turns a :class:`~mentordesk.flows.digest.Digest` into what the
``digest`` / ``digest_quiet`` email templates show, the chart's bars and every number
in words ("1 request", "2 requests"). :func:`send_digest` is the daily job
(``fn(coordinator, now) -> int``): one digest per local day in the program's zone,
remembered in the store, so running it again the same day (a restart, a changed
``digest_time``) sends nothing twice. A day's digest missed by downtime is sent later
that day or not at all (the next one covers the same ground, and says it was skipped).
A day with nothing new gets a one-line digest or none (``[timers] digest_when_quiet``).

About the chart. Mail clients differ more here than anywhere: Gmail removes inline
``<svg>`` and ``data:`` images, Outlook on Windows (Word's HTML engine) renders no SVG
and ignores CSS widths on ``<div>``, and many clients hold back images until the reader
allows them. A PNG attached as a related part (``cid:``) would survive most of that, but
needs an image encoder and still shows nothing with images off. Bars made of table cells
with a pixel ``width`` and a ``bgcolor`` render in every client, images on or off, need
no dependency, and carry their numbers as text for screen readers — so that is the chart.
The plain-text part draws the same bars with ``#``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..state.records import RequestStatus
from ..state.store import from_iso, iso
from .digest import Digest, Week, compute_digest
from .words import plural

if TYPE_CHECKING:
    from ..config import Config
    from ..core import Coordinator
    from ..mailer.outbox import Postman
    from ..state.store import Store

__all__ = [
    "BAR_CHARS",
    "BAR_PX",
    "chart_rows",
    "digest_context",
    "hours_text",
    "send_digest",
    "send_digest_now",
]

#: Widest bar in the HTML chart, in pixels (the column fits a phone).
BAR_PX = 160
#: Widest bar in the text chart, in characters.
BAR_CHARS = 24


def hours_text(hours: float | None) -> str:
    if hours is None:
        return "–"
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:.1f} d"


def chart_rows(weeks: Sequence[Week]) -> list[dict[str, Any]]:
    """One row per week: labels, and each series' bar in pixels (HTML) and '#'s (text),
    scaled to the largest value of that series."""
    most_requests = max((w.requests for w in weeks), default=0) or 1
    most_hours = max((w.median_claim_hours or 0.0 for w in weeks), default=0.0) or 1.0
    rows = []
    for w in weeks:
        hours = w.median_claim_hours or 0.0
        rows.append(
            {
                "label": w.start.strftime("%-d %b"),
                "requests": w.requests,
                "requests_px": round(BAR_PX * w.requests / most_requests),
                "requests_bar": "#" * round(BAR_CHARS * w.requests / most_requests),
                "claim": hours_text(w.median_claim_hours),
                "claim_px": round(BAR_PX * hours / most_hours),
                "claim_bar": "#" * round(BAR_CHARS * hours / most_hours),
            }
        )
    return rows


# What the subject line counts: (section, one, many).
_HEADLINE = (
    ("new", "new request", "new requests"),
    ("claimed", "claimed", "claimed"),
    ("escalated", "escalated", "escalated"),
    ("no_shows", "no-show", "no-shows"),
    ("failures", "delivery failure", "delivery failures"),
    ("skipped", "step skipped", "steps skipped"),
)


def standing_lines(digest: Digest) -> list[str]:
    """Where things stand, a line per kind of wait, from the lifecycle's counts."""
    standing = digest.standing
    lines = []
    open_count = standing.count(RequestStatus.OPEN)
    oldest = f" (the oldest for {standing.oldest_waiting})" if open_count else ""
    lines.append(f"{_requests(open_count)} waiting for a mentor{oldest}")
    incomplete = standing.count(RequestStatus.INCOMPLETE)
    if incomplete:
        lines.append(f"{_requests(incomplete)} waiting for the mentee's details")
    if standing.picking.count:
        lines.append(
            f"{_requests(standing.picking.count)} claimed, waiting for the mentor to set a time"
        )
    booked = standing.count(RequestStatus.BOOKED)
    lines.append(
        f"{_requests(booked)} booked; {plural(standing.live_sessions, 'session')} in calendars"
    )
    met = standing.count(RequestStatus.MET)
    if met:
        lines.append(f"{_requests(met)} met, the questions after the session to go out")
    if standing.astray.count:
        lines.append(f"{_requests(standing.astray.count)} astray: a person should look (below)")
    return lines


def _requests(count: int) -> str:
    """'1 request is', '2 requests are': the subject of a line about waiting requests."""
    return f"{plural(count, 'request')} {'is' if count == 1 else 'are'}"


def digest_context(digest: Digest) -> dict[str, Any]:
    """What the digest templates need, all of it plain data."""
    zone = ZoneInfo(digest.zone)
    since = digest.since.astimezone(zone)
    standing = digest.standing
    waiting = standing.waiting
    headline_parts = [
        f"{s.count} {word if s.count == 1 else many}"
        for s in digest.happened
        for key, word, many in _HEADLINE
        if s.key == key and s.count
    ]
    headline_parts.append(f"{waiting.count} waiting")
    load = digest.load
    sessions = digest.sessions
    return {
        "day": digest.day.strftime("%a %-d %b"),
        "since": since.strftime("%a %-d %b %H:%M"),
        "headline": ", ".join(headline_parts),
        "happened": [s for s in digest.happened if s.count],
        "standing": standing_lines(digest),
        "waiting": waiting,
        "waiting_text": _requests(waiting.count),
        "waiting_by_age": standing.waiting_by_age,
        "oldest": standing.oldest_waiting,
        "incomplete": standing.count(RequestStatus.INCOMPLETE),
        "picking": standing.picking,
        "astray": standing.astray,
        "load": load,
        "load_text": (
            f"{load.active} active, {load.paused} paused, "
            f"{load.term_ended} past the end of their term"
            + (f", {load.pending} waiting for approval" if load.pending else "")
            + f"; {plural(load.claims_this_month, 'request')} taken this month."
        ),
        "sessions": sessions,
        "sessions_text": (
            f"asked {sessions.asked}, {sessions.took_place} took place, "
            f"{plural(len(sessions.no_shows), 'no-show')}."
        ),
        "survey": digest.survey,
        "survey_answers_text": plural(digest.survey_answers_since, "new answer"),
        "survey_answers_since": digest.survey_answers_since,
        "chart": chart_rows(digest.weeks),
        "bar_px": BAR_PX,
        "ratings": [n for n in range(1, 6)],
    }


# --- the job ------------------------------------------------------------------------------------


def send_digest(coordinator: Coordinator, now: datetime) -> int:
    """Daily job: send today's digest to the coordinator unless it went out already.

    Returns 1 when a digest was sent, 0 otherwise (already sent, or a quiet day with
    ``digest_when_quiet = "none"``). Runs on the writer thread in one transaction.
    """
    store, config = coordinator.store, coordinator.config
    zone = ZoneInfo(config.program.timezone)
    today = now.astimezone(zone).date().isoformat()
    last = store.meta("digest") or {}
    if last.get("day") == today:
        return 0
    digest = compute_digest(store, config, now, _since(last, now))
    sent = 0
    with store.transaction():
        if not digest.quiet or config.timers.digest_when_quiet == "line":
            message_id = coordinator.postman.send(
                "digest_quiet" if digest.quiet else "digest",
                to=config.program.coordinator,
                now=now,
                context=digest_context(digest),
            )
            sent = 0 if message_id is None else 1
        store.set_meta("digest", {"day": today, "at": iso(now), "quiet": digest.quiet})
        store.audit("digest", now=now, sent=bool(sent), quiet=digest.quiet)
    return sent


def send_digest_now(store: Store, config: Config, postman: Postman, now: datetime, to: str) -> bool:
    """A digest on demand (``mentordesk digest --now``): what the next daily one would
    say so far, sent to ``to``. The daily digest still goes out as usual. True when sent
    (False: the mail gate refuses ``to``)."""
    digest = compute_digest(store, config, now, _since(store.meta("digest") or {}, now))
    message_id = postman.send(
        "digest_quiet" if digest.quiet else "digest",
        to=to,
        now=now,
        context=digest_context(digest),
    )
    store.audit("digest on demand", now=now, to=to, sent=message_id is not None)
    return message_id is not None


def _since(last: dict[str, Any], now: datetime) -> datetime:
    """Where the next digest starts: the last one sent, else a day ago."""
    return from_iso(last["at"]) if last.get("at") else now - timedelta(days=1)
