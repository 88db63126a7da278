"""The iCalendar objects of a weekly series (iMIP, RFC 6047; iTIP, RFC 5546) — pure.

Every copy of a series shares a ``SeriesEvent``: its UID, the master's SEQUENCE, the rule
and the words; only the ATTENDEE list differs between people (each sees the staffing
mentors and themself). SEQUENCE is kept per component (RFC 5545 §3.8.7.4): the master
VEVENT has the series' own; each cancelled or moved occurrence has its own, higher than
anything sent for that occurrence before, so clients apply an occurrence's change beside
the master they keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .invite import (
    Attendee,
    EventHead,
    WeeklyTime,
    occurrence_cancel,
    occurrence_move,
    series_cancel,
    series_request,
)
from .recurrence import WeeklyRule, local_start, weekly_until

__all__ = [
    "SeriesEvent",
    "drop_in_description",
    "occurrence_cancellation",
    "occurrence_override",
    "series_invitation",
    "series_removal",
]


@dataclass(frozen=True)
class SeriesEvent:
    """What every calendar copy of a series has in common."""

    uid: str
    sequence: int  # the master VEVENT's
    rule: WeeklyRule
    summary: str
    description: str
    location: str
    organizer: Attendee  # the program's address and name
    # The SEQUENCE last sent for each cancelled or moved occurrence, by original date.
    sequences: Mapping[date, int] = field(default_factory=dict)

    @classmethod
    def of(cls, series: Mapping[str, Any], *, description: str, organizer: Attendee) -> SeriesEvent:
        """The event of a stored series document (``flows.office_hours`` lists its fields)."""
        return cls(
            uid=series["uid"],
            sequence=int(series["sequence"]),
            rule=WeeklyRule.of(series),
            summary=series["title"],
            description=description,
            location=series["location"],
            organizer=organizer,
            sequences={
                date.fromisoformat(key): int(change["sequence"])
                for key, change in series["exceptions"].items()
            },
        )

    def sequence_of(self, original: date | None) -> int:
        """The SEQUENCE last sent for the master (``original`` None) or one occurrence."""
        if original is None:
            return self.sequence
        return self.sequences.get(original, self.sequence)

    def next_sequence(self, original: date) -> int:
        """The SEQUENCE for a new change of one occurrence: above the master's and its own."""
        return max(self.sequence, self.sequence_of(original)) + 1

    def head(self, sequence: int, attendees: Sequence[Attendee], now: datetime) -> EventHead:
        return EventHead(self.uid, sequence, self.summary, self.organizer, attendees, now)

    def weekly_time(self) -> WeeklyTime:
        rule = self.rule
        return WeeklyTime(
            local_start(rule, rule.first), rule.length, weekly_until(rule), rule.interval
        )


def drop_in_description(program: Attendee, hosts: str) -> str:
    """The DESCRIPTION of a series: who hosts it ("Ada and Linus"), how to stop getting it."""
    return (
        f"Drop-in office hours of {program.name}{' with ' + hosts if hosts else ''}. "
        "No booking needed: bring a question, a project or just say hello.\n"
        f"To stop getting these, email {program.email} "
        'with the subject "office hours leave".'
    )


def series_invitation(event: SeriesEvent, attendees: Sequence[Attendee], now: datetime) -> bytes:
    """METHOD:REQUEST of the series with its cancelled (EXDATE) and moved occurrences.

    A moved occurrence travels as an overriding VEVENT of the same UID beside the master
    (RFC 5545 §3.8.4.4), with its own SEQUENCE.
    """
    rule = event.rule
    master = series_request(
        event.head(event.sequence, attendees, now),
        event.weekly_time(),
        description=event.description,
        location=event.location,
        exdates=[local_start(rule, day) for day in sorted(rule.cancelled)],
    )
    overrides = [
        occurrence_override(event, original, attendees, now) for original in sorted(rule.moved)
    ]
    return _with_overrides(master, overrides)


def series_removal(event: SeriesEvent, attendees: Sequence[Attendee], now: datetime) -> bytes:
    """METHOD:CANCEL of the whole series for ``attendees`` only: it takes them off.

    RFC 5546 §3.2.5: the CANCEL that removes attendees names just them. Removing someone
    is no change of the event itself, so the SEQUENCE stays the master's and the later
    DTSTAMP makes this the newer message (§2.1.5); everyone else's copy stays valid.
    """
    return series_cancel(event.head(event.sequence, attendees, now), event.weekly_time())


def occurrence_cancellation(
    event: SeriesEvent, original: date, attendees: Sequence[Attendee], now: datetime
) -> bytes:
    """METHOD:CANCEL of the occurrence originally on ``original`` (RECURRENCE-ID)."""
    return occurrence_cancel(
        event.head(event.sequence_of(original), attendees, now),
        local_start(event.rule, original),
        event.rule.length,
    )


def occurrence_override(
    event: SeriesEvent, original: date, attendees: Sequence[Attendee], now: datetime
) -> bytes:
    """METHOD:REQUEST of the occurrence originally on ``original`` at its new time."""
    return occurrence_move(
        event.head(event.sequence_of(original), attendees, now),
        local_start(event.rule, original),
        event.rule.moved[original],
        event.rule.length,
        description=event.description,
        location=event.location,
    )


def _with_overrides(master: bytes, overrides: Sequence[bytes]) -> bytes:
    """``master`` with the VEVENTs of ``overrides`` added before its END:VCALENDAR.

    The overrides are built in the master's zone, whose VTIMEZONE the master already has.
    """
    events = b""
    for override in overrides:
        begin = override.index(b"BEGIN:VEVENT\r\n")
        end = override.rindex(b"END:VEVENT\r\n") + len(b"END:VEVENT\r\n")
        events += override[begin:end]
    at = master.rindex(b"END:VCALENDAR\r\n")
    return master[:at] + events + master[at:]
