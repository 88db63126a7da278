"""The coordinator's daily digest (SPEC §3 flow 8).

Two halves, kept apart so the first can be tested without any I/O:

- :func:`compute_digest` reads the store at ``now`` and returns a :class:`Digest`: what
  happened since the last digest (new requests, claims, bookings, escalations, declines,
  no-shows, mail nobody could place, delivery failures, feedback), what is waiting and
  for how long, the mentors' load this month, and a weekly series for the chart.
- :func:`digest_context` turns a Digest into what the ``digest`` / ``digest_quiet``
  email templates show, including the chart's bars.

:func:`send_digest` is the daily job (``fn(coordinator, now) -> int``): one digest per
local day in the program's zone, remembered in the store, so running it again the same
day (a restart, a changed ``digest_time``) sends nothing twice.
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

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..flows.matching import month_start
from ..state.store import Store, from_iso, iso
from ..timers import register_daily
from ..views import tag
from .feedback import SessionResults, SurveyResults, session_results, survey_results

if TYPE_CHECKING:
    from ..core import Coordinator

#: How many lines a section lists before "… and N more" (the counts stay exact).
MAX_ITEMS = 15
#: Weeks in the chart, the current one last.
CHART_WEEKS = 8
#: Widest bar in the HTML chart, in pixels (the column fits a phone).
BAR_PX = 160
#: Widest bar in the text chart, in characters.
BAR_CHARS = 24
#: How long the results of a feedback round stay in the digest.
SURVEY_SHOWN_FOR = timedelta(days=60)
# The audit event of an escalation (written by the ladder, followup/ladder.py).
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


@dataclass(frozen=True)
class Week:
    """One bar of the chart: requests that came in that week, and how long the
    requests claimed that week had waited (median, hours)."""

    start: date
    requests: int
    claims: int
    median_claim_hours: float | None


@dataclass(frozen=True)
class Load:
    """The mentors this calendar month: who is full, who has nothing yet."""

    active: int
    paused: int
    term_ended: int
    claims_this_month: int
    full: tuple[str, ...]  # "Ada Lovelace 2/2"
    busiest: tuple[str, ...]  # the top five, "Ada Lovelace 2/2"
    idle: int  # active mentors with no claim this month


@dataclass(frozen=True)
class Digest:
    """Everything the daily digest says, computed from the store at ``now``."""

    day: date  # the local day it is for
    zone: str
    since: datetime  # the previous digest (or a day before now)
    now: datetime
    happened: tuple[Section, ...]  # what is new since ``since``; all empty → quiet
    waiting: Section  # open requests nobody has claimed, oldest first
    waiting_by_age: tuple[tuple[str, int], ...]  # ("3–10 days", 4), ...
    oldest_waiting: str  # how long the oldest open request has waited ("" when none)
    incomplete: int  # requests waiting for the mentee's details
    load: Load
    sessions: SessionResults  # after-session answers since ``since``
    survey: SurveyResults | None  # this year's round while it is recent
    survey_answers_since: int
    weeks: tuple[Week, ...]

    @property
    def quiet(self) -> bool:
        """Nothing new since the last digest (waiting requests are not news)."""
        return (
            not any(s.count for s in self.happened)
            and not self.sessions.ratings.answered
            and not self.survey_answers_since
        )

    def section(self, key: str) -> Section:
        for found in (*self.happened, self.waiting):
            if found.key == key:
                return found
        raise KeyError(key)


# --- computing (pure: the store and the clock in, a Digest out) ----------------------------


def compute_digest(store: Store, config: Config, now: datetime, since: datetime) -> Digest:
    """The digest for the day of ``now`` (in the program's zone) covering ``[since, now)``."""
    zone = ZoneInfo(config.program.timezone)
    low, high = iso(since), iso(now)

    def new(value: Any) -> bool:
        return isinstance(value, str) and low <= value < high

    requests = _request_rows(store)
    by_number = {int(r["number"]): r for r in requests}
    mentors = {m["email"]: m for m in store.mentors()}
    events = sorted((e for e in store.audit_since(since) if e["at"] < high), key=lambda e: e["at"])

    def name_of(email: str, number: Any = None) -> str:
        """A mentor's name, or the mentee's of request ``number``; else the address."""
        request = by_number.get(int(number)) if number is not None else None
        if request and request["mentee"] == email and request.get("name"):
            return str(request["name"])
        return str((mentors.get(email) or {}).get("name") or email)

    def label(number: Any) -> str:
        return tag(int(number)) if number is not None else "—"

    # New requests
    fresh = sorted((r for r in requests if new(r.get("created"))), key=lambda r: r["number"])
    new_items = [
        f"{tag(r['number'])}  {r.get('name') or '?'} <{r['mentee']}> · "
        f"{', '.join(r.get('skills') or []) or 'no skill yet'} · {r['status']}"
        for r in fresh
    ]

    # Waiting for a mentor, by age
    timers = config.timers
    open_requests = sorted(
        (r for r in requests if r["status"] == "open"),
        key=lambda r: (waiting_since(r), r["number"]),
    )
    buckets = [
        (f"under {_days(timers.bump_after)}", timedelta(0)),
        (f"{_days(timers.bump_after)}–{_days(timers.escalate_after)}", timers.bump_after),
        (f"over {_days(timers.escalate_after)}", timers.escalate_after),
    ]
    by_age = dict.fromkeys((name for name, _ in buckets), 0)
    waiting_items: list[str] = []
    for r in open_requests:
        waited = now - from_iso(waiting_since(r))
        bucket = [name for name, floor in buckets if waited >= floor][-1]
        by_age[bucket] += 1
        if len(waiting_items) < MAX_ITEMS:
            escalated = " · escalated" if r["escalated"] else ""
            waiting_items.append(
                f"{tag(r['number'])}  waiting {_age(waited)} · "
                f"{', '.join(r['skills'])} · {r['asked']} mentors asked{escalated}"
            )

    # Claimed, escalated, declined (from the audit log: it says who and when)
    claimed_items: list[str] = []
    escalated_items: list[str] = []
    declined_items: list[str] = []
    person_items: list[str] = []
    for e in events:
        number = e.get("request")
        if e["event"] == "claimed":
            request = by_number.get(int(number)) if number is not None else None
            after = ""
            if request and request.get("claimed_at") == e["at"]:
                started = waiting_since(request)
                after = f" after {_age(from_iso(e['at']) - from_iso(started))}"
            claimed_items.append(f"{label(number)}  by {name_of(e.get('mentor', ''))}{after}")
        elif e["event"] == ESCALATION_EVENT:
            contacts = e.get("contacts")
            to = ", ".join(contacts) if isinstance(contacts, list) else ""
            escalated_items.append(f"{label(number)}  escalated{f' to {to}' if to else ''}")
        elif e["event"] == "calendar answer" and e.get("partstat") == "DECLINED":
            who = name_of(e.get("attendee", ""), number)
            declined_items.append(f"{label(number)}  {who} declined the proposed time")
        elif e["event"] == "session cancelled":
            who = e.get("by") or ""
            declined_items.append(
                f"{label(number)}  session cancelled{f' by {name_of(who)}' if who else ''}"
            )
        elif e["event"] == "released":
            declined_items.append(f"{label(number)}  given back by {name_of(e.get('mentor', ''))}")
        elif e["event"] == "quarantined":
            person_items.append(f"quarantined: {e.get('message_id')} ({e.get('error') or 'error'})")
        elif e["event"] == "coordinator told" and e.get("reason") not in _TOLD_ELSEWHERE:
            reason = "not understood" if e.get("reason") == "unclassified" else e.get("reason")
            person_items.append(f"{reason}: {e.get('message_id') or '(no message)'}")
        elif e["event"] == "no mentor matches":
            person_items.append(f"{label(number)}  no mentor matches")

    # Booked: sessions proposed since, still on
    booked_items: list[str] = []
    fresh_sessions = store.sessions_where(
        lambda s: new(s.get("created")) and s["status"] != "cancelled"
    )
    for s in sorted(fresh_sessions, key=lambda s: s["start"]):
        when = from_iso(s["start"]).astimezone(zone).strftime("%a %-d %b %H:%M")
        booked_items.append(
            f"{tag(int(s['request']))}  {name_of(s['mentor'])} with "
            f"{(by_number.get(int(s['request'])) or {}).get('name') or s['mentee']}, "
            f"{when} ({s['status']})"
        )

    # After the session
    sessions = session_results(store, since, now)
    no_show_items = [
        f"{n['tag']}  {(by_number.get(n['request']) or {}).get('name') or n['mentee']} "
        f"did not come to the session with {name_of(n['mentor'])}"
        for n in sessions.no_shows
    ]

    # Delivery failures
    failure_items = [
        f"{', '.join(o['recipients'])} · {o['kind']} · {o.get('error') or 'refused'}"
        for o in store.outbox("failed")
        if new(o.get("failed"))
    ]
    failure_items += [
        f"{a['email']} bounced: {a.get('reason') or ''}".rstrip(": ")
        for a in store.bounced_addresses()
        if new(a.get("since"))
    ]

    happened = (
        _section("new", "New requests", new_items),
        _section("claimed", "Claimed", claimed_items),
        _section("booked", "Sessions booked", booked_items),
        _section("escalated", "Escalated", escalated_items),
        _section("declined", "Declined, cancelled or given back", declined_items),
        _section("no_shows", "No-shows", no_show_items),
        _section(
            "follow_ups",
            "Follow-ups asked for",
            [f"{f['tag']}  follow-up of {f['of']} for {f['mentee']}" for f in sessions.followups],
        ),
        _section("unplaced", "Needs a person", person_items),
        _section("failures", "Delivery failures", failure_items),
    )

    # The survey: shown for a while after a round starts
    year = now.astimezone(zone).year
    survey = survey_results(store, year)
    if survey is not None and now - from_iso(survey.started) > SURVEY_SHOWN_FOR:
        survey = None
    survey_answers_since = sum(1 for a in store.feedback_all("survey:") if new(a.get("updated")))

    return Digest(
        day=now.astimezone(zone).date(),
        zone=config.program.timezone,
        since=since,
        now=now,
        happened=happened,
        waiting=Section(
            "waiting", "Waiting for a mentor", len(open_requests), tuple(waiting_items)
        ),
        waiting_by_age=tuple(by_age.items()),
        oldest_waiting=_age(now - from_iso(waiting_since(open_requests[0])))
        if open_requests
        else "",
        incomplete=sum(1 for r in requests if r["status"] == "incomplete"),
        load=_load(store, config, now, mentors.values()),
        sessions=sessions,
        survey=survey,
        survey_answers_since=survey_answers_since,
        weeks=_weeks(requests, now, zone),
    )


# Notices to the coordinator that other sections show already.
_TOLD_ELSEWHERE = frozenset({"quarantined", "delivery failure"})


def _request_rows(store: Store) -> list[dict[str, Any]]:
    """What the digest needs of every request, read in place.

    Copying every stored request (with its list of invited mentors) is what costs at
    10,000 open requests; the test given to ``requests_where`` sees each document
    uncopied, so it takes the few fields it needs and keeps none of the document.
    """
    rows: list[dict[str, Any]] = []

    def take(doc: Mapping[str, Any]) -> bool:
        rows.append(
            {
                "number": int(doc["number"]),
                "mentee": doc["mentee"],
                "name": doc.get("name") or "",
                "skills": tuple(doc.get("skills") or ()),
                "status": doc["status"],
                "created": doc["created"],
                "opened": doc.get("opened"),
                "reopened": doc.get("reopened"),
                "claimed_by": doc.get("claimed_by"),
                "claimed_at": doc.get("claimed_at"),
                "asked": len(doc.get("invited") or ()),
                "escalated": bool((doc.get("ladder") or {}).get("escalate")),
            }
        )
        return False  # nothing to copy out

    store.requests_where(take)
    return rows


def waiting_since(request: Mapping[str, Any]) -> str:
    """When the request's current wait began: re-opened after a release, or opened."""
    return str(request.get("reopened") or request.get("opened") or request["created"])


def _section(key: str, title: str, items: Sequence[str]) -> Section:
    return Section(key, title, len(items), tuple(items[:MAX_ITEMS]))


def _load(
    store: Store, config: Config, now: datetime, mentors: Iterable[Mapping[str, Any]]
) -> Load:
    taken = store.claims_since(month_start(now, config.program.timezone))
    default = config.matching.default_capacity
    active = paused = ended = idle = 0
    rows: list[tuple[int, str, str]] = []
    full: list[str] = []
    for m in mentors:
        if m.get("status") == "resigned":
            continue
        if (m.get("term_end") or "") <= iso(now):
            ended += 1
            continue
        if m.get("status") == "paused":
            paused += 1
            continue
        active += 1
        count = taken.get(m["email"], 0)
        capacity = int(m.get("capacity") or default)
        line = f"{m.get('name') or m['email']} {count}/{capacity}"
        if count == 0:
            idle += 1
        else:
            rows.append((count, str(m.get("name") or m["email"]).lower(), line))
        if count >= capacity:
            full.append(line)
    rows.sort(key=lambda row: (-row[0], row[1]))
    return Load(
        active=active,
        paused=paused,
        term_ended=ended,
        claims_this_month=sum(taken.values()),
        full=tuple(sorted(full)[:MAX_ITEMS]),
        busiest=tuple(line for _, _, line in rows[:5]),
        idle=idle,
    )


def _weeks(
    requests: Iterable[Mapping[str, Any]], now: datetime, zone: ZoneInfo
) -> tuple[Week, ...]:
    """CHART_WEEKS Monday-to-Sunday weeks in the program's zone, this one last."""
    today = now.astimezone(zone).date()
    first = today - timedelta(days=today.weekday() + 7 * (CHART_WEEKS - 1))
    counts = [0] * CHART_WEEKS
    waits: list[list[float]] = [[] for _ in range(CHART_WEEKS)]

    def week_of(value: str) -> int | None:
        index = (from_iso(value).astimezone(zone).date() - first).days // 7
        return index if 0 <= index < CHART_WEEKS else None

    for r in requests:
        created = week_of(r["created"])
        if created is not None:
            counts[created] += 1
        claimed_at = r.get("claimed_at")
        if claimed_at and r.get("claimed_by"):
            claimed = week_of(claimed_at)
            if claimed is not None:
                started = from_iso(waiting_since(r))
                waits[claimed].append((from_iso(claimed_at) - started).total_seconds() / 3600)
    return tuple(
        Week(
            start=first + timedelta(days=7 * n),
            requests=counts[n],
            claims=len(waits[n]),
            median_claim_hours=round(statistics.median(waits[n]), 1) if waits[n] else None,
        )
        for n in range(CHART_WEEKS)
    )


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    return f"{days:g} days" if days != 1 else "1 day"


def _age(span: timedelta) -> str:
    """'4d 3h', '5h', '12m': how long something waited, roughly."""
    minutes = max(0, int(span.total_seconds() // 60))
    if minutes >= 1440:
        days, hours = divmod(minutes // 60, 24)
        return f"{days}d {hours}h" if hours else f"{days}d"
    if minutes >= 60:
        return f"{minutes // 60}h"
    return f"{minutes}m"


# --- rendering: a Digest → the templates' context -------------------------------------------


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
)


def digest_context(digest: Digest) -> dict[str, Any]:
    """What the digest templates need, all of it plain data."""
    zone = ZoneInfo(digest.zone)
    since = digest.since.astimezone(zone)
    waiting = digest.waiting
    headline_parts = [
        f"{s.count} {word if s.count == 1 else plural}"
        for s in digest.happened
        for key, word, plural in _HEADLINE
        if s.key == key and s.count
    ]
    headline_parts.append(f"{waiting.count} waiting")
    return {
        "day": digest.day.strftime("%a %-d %b"),
        "since": since.strftime("%a %-d %b %H:%M"),
        "headline": ", ".join(headline_parts),
        "happened": [s for s in digest.happened if s.count],
        "waiting": waiting,
        "waiting_by_age": digest.waiting_by_age,
        "oldest": digest.oldest_waiting,
        "incomplete": digest.incomplete,
        "load": digest.load,
        "sessions": digest.sessions,
        "survey": digest.survey,
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
    since = from_iso(last["at"]) if last.get("at") else now - timedelta(days=1)
    digest = compute_digest(store, config, now, since)
    sent = 0
    with store.transaction():
        if not digest.quiet or config.timers.digest_when_quiet == "line":
            coordinator.postman.send(
                "digest_quiet" if digest.quiet else "digest",
                to=config.program.coordinator,
                now=now,
                context=digest_context(digest),
            )
            sent = 1
        store.set_meta("digest", {"day": today, "at": iso(now), "quiet": digest.quiet})
        store.audit("digest", now=now, sent=bool(sent), quiet=digest.quiet)
    return sent


register_daily("digest", send_digest)
