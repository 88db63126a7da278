"""The coordinator's daily digest, its data (SPEC §3 flow 8): the truth, from the records.

Three steps, kept apart so the first can be tested without any I/O:

- :func:`compute_digest` (here) reads the store at ``now`` and returns a :class:`Digest`;
- ``digest_mail.digest_context`` turns it into what the ``digest`` / ``digest_quiet``
  templates show;
- ``digest_mail.send_digest`` is the daily job that sends it.

What a Digest holds:

- **where things stand** (``Standing``): every request counted by its lifecycle status,
  the live sessions, and what waits on whom — on a mentor (``open``, by age), on the
  mentee's details (``incomplete``), on the holder to pick a time (``claimed`` with no
  live session), booked (a live session). A request held by a mentor who has left, or
  booked with no live session, should not exist after the lifecycle; if the records
  show one, it is listed for a person;
- **what happened** since the last digest: new requests, claims, sessions booked (only
  those still live, for a request still booked: a session of a withdrawn or given-back
  request is not "booked"), escalations, declines, cancellations and give-backs,
  no-shows, follow-ups, requests withdrawn or expired, mentors who joined or left, mail
  nobody could place (sender, subject and date; never a raw Message-ID), delivery
  failures, and every timed step skipped because its moment passed too long ago;
- the mentors' load this month, feedback, and a weekly series for the chart.

Every count is recomputable from the records (SPEC §3a invariant); the tests do so.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..config import Config
from ..state.records import MentorStatus, RequestStatus, mentor_status, request_status, term_over
from ..state.store import Store, from_iso, iso
from ..views import tag
from .digest_events import MAX_ITEMS, Names, Section, age, happened, section, waiting_since
from .feedback_results import SessionResults, SurveyResults, session_results, survey_results
from .matching import month_start
from .words import plural

__all__ = [
    "CHART_WEEKS",
    "MAX_ITEMS",
    "Digest",
    "Load",
    "Section",
    "Standing",
    "Week",
    "compute_digest",
    "waiting_since",
]

#: Weeks in the chart, the current one last.
CHART_WEEKS = 8
#: How long the results of a feedback round stay in the digest.
SURVEY_SHOWN_FOR = timedelta(days=60)


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
    pending: int
    claims_this_month: int
    full: tuple[str, ...]  # "Ada Lovelace 2/2"
    busiest: tuple[str, ...]  # the top five, "Ada Lovelace 2/2"
    idle: int  # active mentors with no claim this month


@dataclass(frozen=True)
class Standing:
    """Where things stand at ``now``, straight from the lifecycle statuses."""

    requests: Mapping[RequestStatus, int]  # every status, zeros included
    live_sessions: int
    waiting: Section  # open: waiting for a mentor, oldest first
    waiting_by_age: tuple[tuple[str, int], ...]  # ("3 days–10 days", 4), ...
    oldest_waiting: str  # how long the oldest open request has waited ("" when none)
    picking: Section  # claimed, no live session: the holder is to pick a time
    astray: Section  # held by a mentor who left, or booked with no live session

    def count(self, status: RequestStatus) -> int:
        return self.requests.get(status, 0)


@dataclass(frozen=True)
class Digest:
    """Everything the daily digest says, computed from the store at ``now``."""

    day: date  # the local day it is for
    zone: str
    since: datetime  # the previous digest (or a day before now)
    now: datetime
    happened: tuple[Section, ...]  # what is new since ``since``; all empty → quiet
    standing: Standing
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
            and not self.standing.astray.count
        )

    @property
    def waiting(self) -> Section:
        return self.standing.waiting

    def section(self, key: str) -> Section:
        standing = self.standing
        for found in (*self.happened, standing.waiting, standing.picking, standing.astray):
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
    mentors = {m["email"]: m for m in store.mentors()}
    live = {int(s["request"]): s for s in store.live_sessions() if s.get("request") is not None}
    names = Names(mentors, {r["number"]: r for r in requests})
    sessions = session_results(store, since, now)
    news = happened(store, config, since, now, requests, names, sessions)

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
        happened=news,
        standing=_standing(requests, live, mentors, names, config, now),
        load=_load(store, config, now, mentors.values()),
        sessions=sessions,
        survey=survey,
        survey_answers_since=survey_answers_since,
        weeks=_weeks(requests, now, zone),
    )


def _standing(
    requests: Sequence[Mapping[str, Any]],
    live: Mapping[int, Mapping[str, Any]],
    mentors: Mapping[str, Mapping[str, Any]],
    names: Names,
    config: Config,
    now: datetime,
) -> Standing:
    counts = Counter(r["status"] for r in requests)
    timers = config.timers

    # Waiting for a mentor, by age
    open_requests = sorted(
        (r for r in requests if r["status"] is RequestStatus.OPEN),
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
                f"{tag(r['number'])}  waiting {age(waited)} · "
                f"{', '.join(r['skills'])} · {plural(r['asked'], 'mentor')} asked{escalated}"
            )

    # Claimed with no session: the holder is to pick a time (or to book one).
    picking: list[str] = []
    astray: list[str] = []
    for r in requests:
        status = r["status"]
        if not status.held:
            continue
        holder = r.get("claimed_by") or ""
        mentor = mentors.get(holder)
        since = from_iso(r["claimed_at"]) if r.get("claimed_at") else None
        held_for = f" for {age(now - since)}" if since else ""
        if mentor is None or mentor_status(mentor).left or term_over(mentor, now):
            why = "is not a mentor" if mentor is None else _gone(mentor, now)
            astray.append(f"{tag(r['number'])}  held by {names.of(holder)}, who {why}")
        elif status is RequestStatus.BOOKED and r["number"] not in live:
            astray.append(f"{tag(r['number'])}  booked, but no session is on")
        elif status is RequestStatus.CLAIMED and r.get("schedule") == "pairing":
            pass  # a pairing: its series stands in for the session (flows/pairings)
        elif status is RequestStatus.CLAIMED and r["number"] not in live:
            how = "to pick a time" if r.get("schedule") == "mentor picks" else "to book a time"
            picking.append(f"{tag(r['number'])}  {names.of(holder)} has it{held_for}; {how}")

    return Standing(
        requests={status: counts.get(status, 0) for status in RequestStatus},
        live_sessions=len(live),
        waiting=Section(
            "waiting", "Waiting for a mentor", len(open_requests), tuple(waiting_items)
        ),
        waiting_by_age=tuple(by_age.items()),
        oldest_waiting=age(now - from_iso(waiting_since(open_requests[0])))
        if open_requests
        else "",
        picking=section("picking", "Claimed, waiting for the mentor to set a time", picking),
        astray=section(
            "astray", "Held by a mentor who has left, or booked with no session", astray
        ),
    )


def _gone(mentor: Mapping[str, Any], now: datetime) -> str:
    status = mentor_status(mentor)
    if status is MentorStatus.RESIGNED:
        return "resigned"
    return "has left" if status.left else "is past the end of their term"


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
                "status": request_status(doc),
                "created": doc["created"],
                "opened": doc.get("opened"),
                "reopened": doc.get("reopened"),
                "claimed_by": doc.get("claimed_by"),
                "claimed_at": doc.get("claimed_at"),
                "schedule": doc.get("schedule"),
                "asked": len(doc.get("invited") or ()),
                "escalated": bool((doc.get("ladder") or {}).get("escalate")),
            }
        )
        return False  # nothing to copy out

    store.requests_where(take)
    return rows


def _load(
    store: Store, config: Config, now: datetime, mentors: Iterable[Mapping[str, Any]]
) -> Load:
    taken = store.claims_since(month_start(now, config.program.timezone))
    default = config.matching.default_capacity
    # By standing; a term past its end counts as ended whatever the status says yet.
    counts: Counter[MentorStatus] = Counter()
    idle = 0
    rows: list[tuple[int, str, str]] = []
    full: list[str] = []
    for m in mentors:
        status = mentor_status(m)
        if status is not MentorStatus.RESIGNED and term_over(m, now):
            status = MentorStatus.TERM_ENDED
        counts[status] += 1
        if status is not MentorStatus.ACTIVE:
            continue
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
        active=counts[MentorStatus.ACTIVE],
        paused=counts[MentorStatus.PAUSED],
        term_ended=counts[MentorStatus.TERM_ENDED],
        pending=counts[MentorStatus.PENDING],
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
