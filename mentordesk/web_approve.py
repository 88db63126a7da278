"""The coordinator's one-click approval of a new mentor ([program] approve_mentors).

    GET  /approve/{token}   "approve Ada as a mentor?" with a button (changes nothing)
    POST /approve/{token}   approve: the mentor is welcomed by email

The token is the one in the email the coordinator got (purpose "approve", person the
coordinator, object the mentor's address); the button sends the page's form token, and a
POST without it changes nothing while the mentor is still pending. The approval itself
is ``CoordinatorDesk.approve``, recorded with who did it ("link:<coordinator>").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .flows.escalation import may_assign
from .inbox.hours import format_windows
from .state.records import MentorStatus, mentor_status
from .views import windows_from_doc

if TYPE_CHECKING:
    from .web import WebApp

__all__ = ["ApprovalPages"]

PURPOSE = "approve"


class ApprovalPages:
    """The two handlers, served by the web endpoint (``WebApp``)."""

    def __init__(self, app: WebApp) -> None:
        self.app = app

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"/{PURPOSE}/{{token}}", self.show),
            web.post(f"/{PURPOSE}/{{token}}", self.approve),
        ]

    async def show(self, request: web.Request) -> web.Response:
        app = self.app
        claims = app._verify(request, PURPOSE)
        if not may_assign(app.config, claims.person):
            return app.page("approve.html", {"outcome": "not_allowed"}, status=403)
        mentor = await app.writer.call(self._mentor, claims.obj)
        if mentor is None:
            return app._gone()
        return app.page("approve.html", {**_shown(mentor, _outcome(mentor)), **app._form(claims)})

    async def approve(self, request: web.Request) -> web.Response:
        app = self.app
        claims = app._verify(request, PURPOSE)
        if not may_assign(app.config, claims.person):
            return app.page("approve.html", {"outcome": "not_allowed"}, status=403)
        forged = await app._forged(request, claims)
        email = claims.obj

        def approve_it() -> tuple[dict[str, Any] | None, bool]:
            mentor = self._mentor(email)
            if mentor is None or mentor_status(mentor) is not MentorStatus.PENDING:
                return mentor, False
            if forged is not None:
                raise forged  # it would change something: only our page's button may
            outcome = app._coordinator().approve(email, by=f"link:{claims.person}", now=app.clock())
            return self._mentor(email), outcome.done

        mentor, done = await app.writer.call(approve_it)
        if mentor is None:
            return app._gone()
        app.changed()
        outcome = "approved" if done else _outcome(mentor)
        return app.page("approve.html", {**_shown(mentor, outcome), **app._form(claims)})

    def _mentor(self, email: str) -> dict[str, Any] | None:
        store = self.app.writer.store
        if store is None:
            raise RuntimeError("the store is not open")
        mentor = store.mentor(email)
        return dict(mentor) if mentor is not None else None


def _shown(mentor: dict[str, Any], outcome: str) -> dict[str, Any]:
    """What the page shows of ``mentor``."""
    hours = format_windows(windows_from_doc(mentor.get("availability") or []))
    return {"outcome": outcome, "mentor": mentor, "hours": hours}


def _outcome(mentor: dict[str, Any]) -> str:
    return "pending" if mentor_status(mentor) is MentorStatus.PENDING else "not_pending"
