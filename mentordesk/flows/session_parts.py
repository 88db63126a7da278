"""The shared ground of the session desk's parts (``flows/sessions.py`` joins them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..calendar.invite import (
    Attendee,
    EventHead,
)
from ..calendar.reply import CalendarReply
from ..calendar.slots import Busy
from ..config import Config
from ..mailer.outbox import Postman
from ..state.store import Store
from ..tokens import Links

BusyElsewhere = Callable[[str, datetime, datetime], list[Busy]]  # office hours
OtherReplies = Callable[[CalendarReply, str, datetime], bool]  # office hours


class SessionParts:
    """What the parts of the session desk share: its collaborators, and (for the type
    checker) the methods one part calls on another. ``SessionDesk`` joins the parts."""

    config: Config
    store: Store
    postman: Postman
    links: Links
    busy_elsewhere: BusyElsewhere
    other_replies: OtherReplies

    if TYPE_CHECKING:

        def _zone(self, zone: str | None) -> str: ...
        def _busy(
            self, mentor: str, now: datetime, except_uid: str = "", mentee: str = ""
        ) -> list[Busy]: ...
        def candidates(
            self,
            number: int,
            now: datetime,
            *,
            avoid: Sequence[str] = (),
            except_uid: str = "",
            limit: int = 10,
        ) -> list[datetime]: ...
        def propose(
            self,
            number: int,
            start: datetime,
            now: datetime,
            *,
            basis: str = ...,
            chosen_by: str = ...,
        ) -> dict[str, Any]: ...
        def session_of(self, number: int) -> dict[str, Any] | None: ...
        def other_times(self, session: Mapping[str, Any], now: datetime) -> list[datetime]: ...
        def other_time_links(
            self,
            session: Mapping[str, Any],
            email: str,
            zone: str,
            starts: list[datetime],
            now: datetime,
        ) -> list[dict[str, str]]: ...
        def _people(self, session: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]: ...
        def _head(
            self, session: Mapping[str, Any], attendees: Sequence[Attendee], now: datetime
        ) -> EventHead: ...
        def _summary(self, session: Mapping[str, Any]) -> str: ...
        def _ask_mentor_to_pick(
            self, request: Mapping[str, Any], now: datetime, reason: str
        ) -> None: ...
        def _ask_mentee_to_pick(self, request: Mapping[str, Any], now: datetime) -> None: ...
        @staticmethod
        def unknown_week(request: Mapping[str, Any]) -> list[str]: ...
