"""What a pairing sends, and how it reads in emails and pages (``flows/pairings``).

Every email about a pairing goes to both people, each in their own zone, threaded as
``("pairing", id)`` so that a reply finds its way back; calendar objects are built by
``calendar.series`` from the pairing's series, as office hours build theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..calendar.invite import Attendee, calendar_mime_parts, series_cancel
from ..calendar.recurrence import Occurrence, WeeklyRule, pattern, when
from ..calendar.series import SeriesEvent, series_invitation
from ..config import Config
from ..feed import feed_url
from ..mailer.outbox import Postman
from ..state.pairings import live_pairings, pairing_status
from ..state.store import Store, from_iso
from ..tokens import Links, sign
from ..views import request_view

__all__ = ["CHECK_IN", "CHOICES", "LINK_LIFETIME", "PAIRING_PURPOSE", "PairingMail"]

PAIRING_PURPOSE = "pairing"
THREAD = "pairing"
# What a link may do: a check-in answer, a term choice (and "oriented", the mentor's).
CHECK_IN = ("going-well", "needs-help")
CHOICES = ("extend", "change", "end")
# A term's choice is asked three weeks ahead: its links must work on the last day.
LINK_LIFETIME = timedelta(days=60)


class PairingMail:
    """The emails and views of pairings; ``PairingDesk`` decides when they go."""

    def __init__(self, config: Config, store: Store, postman: Postman, links: Links) -> None:
        self.config = config
        self.store = store
        self.postman = postman
        self.links = links

    # Emails --------------------------------------------------------------------------------

    def _invite(self, doc: Mapping[str, Any], now: datetime, *, change: str) -> None:
        ics = series_invitation(self._event(doc), self._attendees(doc), now)
        for person in self._people(doc):
            context: dict[str, Any] = {
                "change": change,
                "oriented_url": "",
                **self._view(doc, person["email"]),
            }
            if person["email"] == doc["mentor"] and not doc.get("oriented"):
                context["oriented_url"] = self.link(doc, person["email"], "oriented", now)
            self._send(doc, person, "pairing_invite", context, ics, "REQUEST", now)

    def _cancel_series(self, doc: Mapping[str, Any], now: datetime, why: str) -> None:
        event = self._event(doc)
        ics = series_cancel(
            event.head(event.sequence, self._attendees(doc), now), event.weekly_time()
        )
        for person in self._people(doc):
            context = {"why": why, **self._view(doc, person["email"])}
            self._send(doc, person, "pairing_over", context, ics, "CANCEL", now)

    def _send_change(
        self,
        doc: Mapping[str, Any],
        person: Mapping[str, Any],
        ics: bytes,
        method: str,
        was: Occurrence,
        moved: Occurrence | None,
        now: datetime,
    ) -> None:
        zone = ZoneInfo(person["zone"])
        context = {
            **self._view(doc, person["email"]),
            "was": when(was.start, was.end, zone),
            "was_day": f"{was.start.astimezone(zone):%a %-d %b}",
            "moved_to": when(moved.start, moved.end, zone) if moved else "",
        }
        self._send(doc, person, "pairing_change", context, ics, method, now)

    def send_letter(
        self, doc: Mapping[str, Any], template: str, now: datetime, **extra: Any
    ) -> None:
        """A plain email about the pairing to both (the timed steps' check-ins and terms)."""
        for person in self._people(doc):
            email = person["email"]
            context = {**self._view(doc, email), **extra}
            links = CHECK_IN if template == "pairing_check_in" else CHOICES
            context["links"] = {action: self.link(doc, email, action, now) for action in links}
            # Orientation still open: the mentor's check-in carries its link again.
            oriented = email == doc["mentor"] and not doc.get("oriented")
            context["oriented_url"] = self.link(doc, email, "oriented", now) if oriented else ""
            self._send(doc, person, template, context, None, "", now)

    def _send(
        self,
        doc: Mapping[str, Any],
        person: Mapping[str, Any],
        template: str,
        context: Mapping[str, Any],
        ics: bytes | None,
        method: str,
        now: datetime,
    ) -> None:
        alternatives, attachments = [], []
        if ics is not None:
            inline, attachment = calendar_mime_parts(ics, method)
            alternatives, attachments = [inline], [attachment]
        self.postman.send(
            template,
            to=person["email"],
            to_name=person.get("name") or "",
            now=now,
            context={
                "person": person,
                "feed_url": feed_url(self.config, person["email"], now),
                **context,
            },
            alternatives=alternatives,
            attachments=attachments,
            thread=(THREAD, doc["id"]),
            request=int(doc["request"]),
        )

    def link(self, doc: Mapping[str, Any], email: str, action: str, now: datetime) -> str:
        """A pairing link, good for at least ``LINK_LIFETIME``: a term's choice is asked
        three weeks ahead and must still work on the last day."""
        lifetime = max(self.links.lifetime, LINK_LIFETIME)
        token = sign(
            self.config.secret,
            purpose=PAIRING_PURPOSE,
            person=email,
            obj=f"{doc['id']}:{action}",
            expires=now + lifetime,
        )
        return f"{self.config.program.base_url.rstrip('/')}/{PAIRING_PURPOSE}/{token}"

    # Views ---------------------------------------------------------------------------------

    def _people(self, doc: Mapping[str, Any]) -> list[dict[str, Any]]:
        request = self.store.request(int(doc["request"])) or {}
        mentor = self.store.mentor(doc["mentor"]) or {}
        program_zone = self.config.program.timezone
        return [
            {
                "email": doc["mentor"],
                "name": mentor.get("name") or "",
                "zone": mentor.get("timezone") or program_zone,
            },
            {
                "email": doc["mentee"],
                "name": request.get("name") or "",
                "zone": request.get("timezone") or program_zone,
            },
        ]

    def _attendees(self, doc: Mapping[str, Any]) -> list[Attendee]:
        return [Attendee(p["email"], p["name"]) for p in self._people(doc)]

    def _event(self, doc: Mapping[str, Any]) -> SeriesEvent:
        program = Attendee(self.config.program.address, self.config.program.name)
        request = self.store.request(int(doc["request"])) or {"number": doc["request"]}
        view = request_view(request)
        description = (
            f"{view['tag']}: {view.get('skills', '')}\n\n"
            f"A session every {self.config.pairings.every_weeks} weeks until "
            f"{doc['series']['until']}.\n{doc['series']['location']}\n"
            "To skip or move one, reply to the invitation email."
        )
        return SeriesEvent.of(doc["series"], description=description, organizer=program)

    def _view(self, doc: Mapping[str, Any], email: str) -> dict[str, Any]:
        people = self._people(doc)
        me = next((p for p in people if p["email"] == email), people[0])
        other = next(p for p in people if p["email"] != me["email"])
        rule = WeeklyRule.of(doc["series"])
        request = self.store.request(int(doc["request"])) or {"number": doc["request"]}
        return {
            "pairing": {
                "id": doc["id"],
                "pattern": _pattern_for(rule, me["zone"]),
                "pattern_short": _pattern_for(rule, me["zone"], short=True),
                "until": rule.until.isoformat() if rule.until else "",
                "term_end": _day(from_iso(doc["term_end"]), me["zone"]),
                "weeks": rule.interval,
                "location": doc["series"]["location"],
                "first": _first_text(rule, me["zone"]),
                "status": pairing_status(doc).value,
            },
            "is_mentor": me["email"] == doc["mentor"],
            "other": other,
            "request": request_view(request),
        }

    def coordinator_view(self, doc: Mapping[str, Any], person: str = "") -> dict[str, Any]:
        """What the coordinator's emails about a pairing show."""
        mentor, mentee = self._people(doc)
        who = mentee if person == mentee["email"] else mentor
        return {
            **self._view(doc, who["email"]),
            "person": who,
            "other": mentee if who is mentor else mentor,
            "mentor": mentor,
            "mentee": mentee,
            "weeks": self.config.pairings.quiet_weeks,
        }

    def feed_series(self, email: str, now: datetime) -> list[SeriesEvent]:
        """The live pairings' series ``email`` takes part in, for their calendar feed."""
        email = email.strip().lower()
        return [
            self._event(doc)
            for doc in live_pairings(self.store)
            if email in (str(doc["mentor"]).lower(), str(doc["mentee"]).lower())
        ]

    def _title(self, request: Mapping[str, Any], mentor: Mapping[str, Any]) -> str:
        return (
            f"Mentoring: {request.get('name') or 'mentee'} and {mentor.get('name') or 'mentor'} "
            f"(MD-{int(request['number']):04d})"
        )


def _day(moment: datetime, zone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(zone)):%A %-d %B %Y}"


def _pattern_for(rule: WeeklyRule, zone: str, *, short: bool = False) -> str:
    """'every other Tuesday, 12:00–12:30 (America/New_York)': the series as the reader's
    clock shows its first session (short: 'at 12:00', ASCII, for subjects). In the
    series' zone it is exact; in another it holds but for the weeks when only one of the
    two zones is on summer time (the calendar shows those right)."""
    if zone == rule.zone.key:
        return pattern(rule, short=short)
    first = datetime.combine(rule.first, rule.wall, rule.zone).astimezone(ZoneInfo(zone))
    other = replace(rule, zone=ZoneInfo(zone), wall=first.time(), first=first.date())
    return pattern(other, short=short)


def _first_text(rule: WeeklyRule, zone: str) -> str:
    start = datetime.combine(rule.first, rule.wall, rule.zone)
    return when(start, start + rule.length, ZoneInfo(zone))
