"""Pairings: a mentor and a mentee meeting every few weeks for a term (issue: Mozilla Reps).

With ``[pairings] enabled``, a request whose words ask for an ongoing mentor
(``inbox.ongoing.asks_for_ongoing``), or every request with ``all_requests``, becomes a
pairing when a mentor claims it. Instead of one session:

- **the series**: every ``every_weeks`` weeks, 30 minutes, at the earliest time that suits
  both (the session desk's candidates), as one iMIP series (RRULE with INTERVAL and UNTIL
  at the term's end, VTIMEZONE) in the mentor's zone, so its wall-clock time holds
  across DST changes. One occurrence is cancelled or moved with RECURRENCE-ID, as office
  hours are (``calendar.series``).
- **orientation**: the mentor's invitation has an "orientation done" link (GET shows,
  POST acts); it closes the orientation period (``PairingEvent.ORIENTED``).
- **check-ins, the term's end, going quiet**: timed steps (``flows.pairing_steps``).
- **the end**: each person chooses extend, change mentor or end (``decide_term``).

The request stays ``claimed`` (held by the mentor) while its pairing is live. Every way a
request leaves its holder goes through ``flows.lifecycle`` (withdraw, release, the
mentor resigning, the pairing ending), which calls ``end_for`` here: the series is
cancelled in both calendars and the pairing is over. Runs on the store's writer thread;
callers hold the transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar.invite import new_uid
from ..calendar.recurrence import (
    Occurrence,
    WeeklyRule,
    is_rule_date,
    occurrences,
)
from ..calendar.series import (
    occurrence_cancellation,
    occurrence_override,
)
from ..calendar.slots import Busy
from ..config import Config
from ..errors import OfficeHoursError
from ..inbox.ongoing import asks_for_ongoing
from ..mailer.outbox import Asking, Postman
from ..state.lifecycle import PairingEvent, next_pairing_status
from ..state.pairings import (
    live_pairing_of,
    live_pairings,
    new_pairing_id,
    pairing,
    pairing_status,
    save_pairing,
)
from ..state.records import PairingStatus, RequestStatus, request_status
from ..state.store import Store, from_iso, iso
from ..tokens import Links
from ..views import request_view, tag
from .pairing_mail import CHECK_IN, CHOICES, PAIRING_PURPOSE, PairingMail
from .sessions import SessionDesk

__all__ = [
    "ACTIONS",
    "CHOICES",
    "PAIRING_PURPOSE",
    "PairingDesk",
    "decide_term",
    "is_pairing",
    "pairing_busy",
]

log = logging.getLogger(__name__)

# What a pairing link may do: orientation (the mentor), a check-in answer, a term choice.
ACTIONS = frozenset({"oriented", *CHECK_IN, *CHOICES})

Book = Callable[[int, datetime], object]


def is_pairing(config: Config, request: Mapping[str, Any]) -> bool:
    """Does this request become a pairing when claimed? (pure)"""
    if not config.pairings.enabled:
        return False
    if request.get("pairing") or config.pairings.all_requests:
        return True
    return asks_for_ongoing(str(request.get("details") or ""))


def decide_term(choices: Mapping[str, str], people: tuple[str, str]) -> str | None:
    """What the term's end comes to: "end" as soon as one chooses it, else "change" as
    soon as one asks for another mentor, "extend" when both chose it; None: waiting."""
    said = [choices.get(person) for person in people]
    if "end" in said:
        return "end"
    if "change" in said:
        return "change"
    if all(choice == "extend" for choice in said):
        return "extend"
    return None


class PairingDesk(PairingMail):
    """Starts pairings, changes their series, and carries out what people choose."""

    def __init__(
        self,
        config: Config,
        store: Store,
        postman: Postman,
        links: Links,
        *,
        candidates: Callable[..., list[datetime]],
        book_once: Book,
    ) -> None:
        super().__init__(config, store, postman, links)
        self.candidates = candidates  # SessionDesk.candidates: times that suit both
        self.book_once = book_once  # SessionDesk.book: the one-off session
        # Set once the lifecycle exists (it needs this desk, this desk needs it).
        self.release: Callable[..., bool] | None = None
        self.close: Callable[..., bool] | None = None

    # Starting ------------------------------------------------------------------------------

    def book(self, number: int, now: datetime) -> object:
        """What a claim leads to: a pairing's series, or the usual one-off session."""
        request = self.store.request(number)
        if request is None or not is_pairing(self.config, request):
            return self.book_once(number, now)
        if request_status(request) is not RequestStatus.CLAIMED:
            return None
        if live_pairing_of(self.store, number) is not None:
            return None
        # Never booked blind: without the mentee's zone and hours, or with no time that
        # suits both weeks, the request gets its one session as any request does (the
        # mentee or the mentor picks it) and no pairing starts.
        unknown = SessionDesk.unknown_week(request)
        slots = [] if unknown else self.candidates(number, now, limit=1)
        if not slots:
            why = f"unknown {' and '.join(unknown)}" if unknown else "no common time"
            self.store.audit("pairing not started", now=now, request=number, why=why)
            return self.book_once(number, now)
        return self.start(request, slots[0], now)

    def start(self, request: dict[str, Any], first_utc: datetime, now: datetime) -> dict[str, Any]:
        number = int(request["number"])
        mentor = self.store.mentor(request["claimed_by"]) or {}
        zone = ZoneInfo(mentor.get("timezone") or self.config.program.timezone)
        first_local = first_utc.astimezone(zone)
        term_end = first_utc + self.config.pairings.term
        doc: dict[str, Any] = {
            "id": new_pairing_id(self.store),
            "request": number,
            "mentor": request["claimed_by"],
            "mentee": request["mentee"],
            "status": PairingStatus.ORIENTING.value,
            "started": iso(first_utc),
            "term_end": iso(term_end),
            "terms": 1,
            "checkins": [],
            "answers": {},
            "term_asked": None,
            "choices": {},
            "created": iso(now),
            "series": {
                "uid": new_uid(self.config.program.domain),
                "sequence": 0,
                "title": self._title(request, mentor),
                "location": self.config.sessions.location,
                "zone": zone.key,
                "time": first_local.strftime("%H:%M"),
                "length_minutes": int(self.config.sessions.length.total_seconds() // 60),
                "first": first_local.date().isoformat(),
                "until": _last_day(term_end, zone).isoformat(),
                "interval_weeks": self.config.pairings.every_weeks,
                "exceptions": {},
            },
        }
        save_pairing(self.store, doc)
        request["pairing"] = True
        request["schedule"] = "pairing"
        request["updated"] = iso(now)
        self.store.save_request(request)
        self.store.audit("pairing started", now=now, request=number, pairing=doc["id"])
        self._invite(doc, now, change="new")
        return doc

    # Replies -------------------------------------------------------------------------------

    def pass_on(self, msg: Asking, pairing_id: int, now: datetime) -> int | None:
        """A reply in a pairing's thread ("can we skip the 17th?") goes to the coordinator,
        who changes the session for both (``mentordesk pairings``). Returns the request."""
        doc = pairing(self.store, pairing_id)
        number = int(doc["request"]) if doc else None
        self.postman.tell_coordinator(
            f"a message about pairing {pairing_id}" + (f" ({tag(number)})" if number else ""),
            now,
            msg=msg,
            error=f"to skip or move one session for both: mentordesk pairings cancel|move "
            f"{pairing_id} DATE",
            request=number,
        )
        return number

    # One occurrence ------------------------------------------------------------------------

    def cancel_occurrence(self, pairing_id: int, day: date, now: datetime) -> dict[str, Any]:
        """Cancel the occurrence originally on ``day`` for both (RECURRENCE-ID)."""
        doc, rule = self._live_rule(pairing_id, day)
        was = _occurrence(rule, day)
        self._set_exception(doc, day, {"status": "cancelled"})
        save_pairing(self.store, doc)
        self.store.audit("pairing occurrence cancelled", now=now, pairing=pairing_id, day=str(day))
        event = self._event(doc)
        for person in self._people(doc):
            ics = occurrence_cancellation(event, day, self._attendees(doc), now)
            self._send_change(doc, person, ics, "CANCEL", was, None, now)
        return doc

    def move_occurrence(
        self, pairing_id: int, day: date, new_start_local: datetime, now: datetime
    ) -> dict[str, Any]:
        """Move the occurrence originally on ``day`` to ``new_start_local`` (the series'
        zone, naive or aware) for both."""
        doc, rule = self._live_rule(pairing_id, day)
        was = _occurrence(rule, day)
        start = new_start_local.replace(tzinfo=rule.zone)
        self._set_exception(
            doc, day, {"status": "moved", "start": start.replace(tzinfo=None).isoformat()}
        )
        save_pairing(self.store, doc)
        moved = _occurrence(WeeklyRule.of(doc["series"]), day)
        self.store.audit("pairing occurrence moved", now=now, pairing=pairing_id, day=str(day))
        event = self._event(doc)
        for person in self._people(doc):
            ics = occurrence_override(event, day, self._attendees(doc), now)
            self._send_change(doc, person, ics, "REQUEST", was, moved, now)
        return doc

    def _live_rule(self, pairing_id: int, day: date) -> tuple[dict[str, Any], WeeklyRule]:
        doc = pairing(self.store, pairing_id)
        if doc is None or not pairing_status(doc).live:
            raise OfficeHoursError(f"pairing {pairing_id} is not running")
        rule = WeeklyRule.of(doc["series"])
        if not is_rule_date(rule, day) or day in rule.cancelled:
            raise OfficeHoursError(f"pairing {pairing_id} has no session on {day}")
        return doc, rule

    def _set_exception(self, doc: dict[str, Any], day: date, change: dict[str, Any]) -> None:
        series = doc["series"]
        event = self._event(doc)
        series["exceptions"][day.isoformat()] = {**change, "sequence": event.next_sequence(day)}

    # The lifecycle's consequence ----------------------------------------------------------------

    def end_for(self, number: int, now: datetime, *, why: str) -> bool:
        """The request left its holder (``flows.lifecycle``): cancel the live pairing's
        series in both calendars. True when there was one."""
        doc = live_pairing_of(self.store, number)
        if doc is None:
            return False
        event = PairingEvent.ENDED if why == "ended" else PairingEvent.LEFT_HOLDER
        after = next_pairing_status(pairing_status(doc), event)
        if after is None:
            return False
        doc["status"] = after.value
        doc["ended"] = iso(now)
        doc["why"] = why
        doc["series"]["sequence"] = int(doc["series"]["sequence"]) + 1
        save_pairing(self.store, doc)
        self.store.audit("pairing over", now=now, request=number, pairing=doc["id"], why=why)
        self._cancel_series(doc, now, why)
        return True

    # What people click ---------------------------------------------------------------------

    def view(self, pairing_id: int, person: str, action: str) -> dict[str, Any]:
        """What a pairing link's page shows (GET): the question, or why nothing is asked."""
        doc = pairing(self.store, pairing_id)
        if doc is None or action not in ACTIONS:
            return {"outcome": "unknown", "action": action}
        if person not in (doc["mentor"], doc["mentee"]):
            return {"outcome": "not_yours", "action": action}
        outcome = "ask" if pairing_status(doc).live else "over"
        if action == "oriented" and doc.get("oriented"):
            outcome = "done"
        return {"outcome": outcome, "action": action, **self._view(doc, person)}

    def act(self, pairing_id: int, person: str, action: str, now: datetime) -> dict[str, Any]:
        """Carry out a pairing link's button (POST), in one transaction."""
        with self.store.transaction():
            return self._act(pairing_id, person, action, now)

    def _act(self, pairing_id: int, person: str, action: str, now: datetime) -> dict[str, Any]:
        shown = self.view(pairing_id, person, action)
        if shown["outcome"] != "ask":
            return shown
        doc = pairing(self.store, pairing_id)
        assert doc is not None
        if action == "oriented":
            return {**shown, "outcome": self._orient(doc, person, now)}
        if action in CHECK_IN:
            return {**shown, "outcome": self._check_in(doc, person, action, now)}
        return {**shown, "outcome": self._choose(doc, person, action, now)}

    def _orient(self, doc: dict[str, Any], person: str, now: datetime) -> str:
        if person != doc["mentor"]:
            return "not_yours"
        after = next_pairing_status(pairing_status(doc), PairingEvent.ORIENTED)
        if after is None:
            return "done"
        doc.update(status=after.value, oriented=iso(now))
        save_pairing(self.store, doc)
        self.store.audit("pairing oriented", now=now, pairing=doc["id"], request=doc["request"])
        return "recorded"

    def _check_in(self, doc: dict[str, Any], person: str, answer: str, now: datetime) -> str:
        quarter = max(doc.get("checkins") or [0])
        key = f"{quarter}|{person}"
        before = doc["answers"].get(key)
        doc["answers"][key] = answer
        save_pairing(self.store, doc)
        self.store.audit(
            "pairing check-in", now=now, pairing=doc["id"], person=person, answer=answer
        )
        if answer == "needs-help":
            request = self.store.request(int(doc["request"])) or {"number": doc["request"]}
            self.postman.tell_coordinator(
                f"a pairing needs help ({request_view(request)['tag']})",
                now,
                template="coordinator_pairing",
                once=f"pairing-help:{doc['id']}:{quarter}:{person}",
                request=int(doc["request"]),
                context={"situation": "needs-help", **self.coordinator_view(doc, person)},
            )
        return "updated" if before else "recorded"

    def _choose(self, doc: dict[str, Any], person: str, choice: str, now: datetime) -> str:
        if not doc.get("term_asked"):
            return "early"
        doc["choices"][person] = choice
        save_pairing(self.store, doc)
        self.store.audit("pairing choice", now=now, pairing=doc["id"], person=person, choice=choice)
        decided = decide_term(doc["choices"], (doc["mentor"], doc["mentee"]))
        if decided is None:
            return "recorded"
        return self.carry_out(doc, decided, now, by=person)

    def carry_out(self, doc: dict[str, Any], decided: str, now: datetime, *, by: str) -> str:
        """Extend the pairing, send the request back to matching, or end it."""
        number = int(doc["request"])
        if decided == "extend":
            self._extend(doc, now)
            return "extended"
        if decided == "change":
            assert self.release is not None
            self.release(number, by, now, why="released")
            return "changed"
        assert self.close is not None
        self.close(number, by, now)
        return "ended"

    def _extend(self, doc: dict[str, Any], now: datetime) -> None:
        term_end = from_iso(doc["term_end"]) + self.config.pairings.term
        series = doc["series"]
        zone = ZoneInfo(series["zone"])
        doc.update(
            term_end=iso(term_end),
            terms=int(doc.get("terms") or 1) + 1,
            term_asked=None,
            choices={},
        )
        series["until"] = _last_day(term_end, zone).isoformat()
        series["sequence"] = int(series["sequence"]) + 1
        save_pairing(self.store, doc)
        self.store.audit("pairing extended", now=now, pairing=doc["id"], term_end=iso(term_end))
        self._invite(doc, now, change="extended")


def pairing_busy(store: Store, mentor: str, start_utc: datetime, end_utc: datetime) -> list[Busy]:
    """The sessions of ``mentor``'s live pairings that overlap ``[start_utc, end_utc)``."""
    email = mentor.strip().lower()
    return [
        Busy(o.start.astimezone(UTC), o.end.astimezone(UTC))
        for doc in live_pairings(store)
        if str(doc["mentor"]).lower() == email
        for o in occurrences(WeeklyRule.of(doc["series"]), start_utc, end_utc)
    ]


def _occurrence(rule: WeeklyRule, day: date) -> Occurrence:
    """The occurrence originally on ``day`` as it stands (moved or not)."""
    start = rule.moved.get(day) or datetime.combine(day, rule.wall, rule.zone)
    found = occurrences(rule, start.astimezone(UTC), start + timedelta(minutes=1))
    for occurrence in found:
        if occurrence.original == day:
            return occurrence
    end = start + rule.length
    return Occurrence(day, start, end, day in rule.moved)


def _last_day(term_end: datetime, zone: ZoneInfo) -> date:
    """The series' last possible date: the day before the term's end, local."""
    return (term_end.astimezone(zone) - timedelta(days=1)).date()
