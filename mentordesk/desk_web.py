"""The coordinator's desk at /desk: pages to see the program and step in (SPEC §10).

Sign-in, sessions and form tokens are ``desk_auth.py``'s; what the pages show comes
from ``desk_views.py``; the actions are the coordinator desk's (``flows/coordinator.py``),
the same the CLI uses, each recorded with who did it. Reads and writes run on the store's
writer thread like every other page. A GET never changes anything; every POST carries
the form token of the page it came from (bound to the desk session and the form's path)
and passes the endpoint's cross-site check (``web.py``).

    GET  /desk                      what needs a person now
    GET  /desk/sign-in              the address form        POST: mail a link (coordinators)
    GET  /desk/sign-in/{token}      a "Sign in" button      POST: spend the link, sign in
    POST /desk/sign-out             end the session
    GET  /desk/requests             requests, filtered by status, skill, age
    GET  /desk/requests/{n}         one request's history; assign, withdraw, close, resend
    POST /desk/requests/{n}/{action}
    GET  /desk/mentors              load, standing, term; pause, resume, approve
    POST /desk/mentors/{action}
    GET  /desk/sessions, /desk/office-hours, /desk/feedback, /desk/chart
    GET  /desk/announce             an announcement's form  POST: preview, send (desk_announce)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import desk_auth, desk_views
from .desk_announce import announce_routes
from .desk_auth import COOKIE, DeskSession
from .flows.coordinator import CoordinatorDesk, DeskOutcome
from .flows.desks import Desks
from .state.store import Store
from .tokens import (
    FORM_FIELD,
    ExpiredToken,
    ForgedForm,
    TamperedToken,
    TokenError,
    check_form_token,
    form_token,
    sign,
    verify,
)

if TYPE_CHECKING:
    from .web import WebApp

log = logging.getLogger(__name__)

# The sign-in form has no session to bind its token to: a signed, short-lived token.
_SIGN_IN_FORM = "desk-sign-in-form"
_SIGN_IN_FORM_LIFETIME = timedelta(hours=2)

#: What the buttons on a request's page and on the mentors page do.
REQUEST_ACTIONS = frozenset({"assign", "reassign", "withdraw", "close", "resend"})
MENTOR_ACTIONS = frozenset({"approve", "pause", "resume"})

#: The desk's pages in its navigation: (path, label).
NAV = (
    ("/desk", "Needs a person"),
    ("/desk/requests", "Requests"),
    ("/desk/mentors", "Mentors"),
    ("/desk/sessions", "Sessions"),
    ("/desk/office-hours", "Office hours"),
    ("/desk/feedback", "Feedback"),
    ("/desk/chart", "Chart"),
    ("/desk/announce", "Announce"),
)


class DeskWeb:
    """The desk's routes on the web endpoint (``WebApp``), with its pages' helpers."""

    def __init__(self, app: WebApp, desks: Callable[[], Desks]) -> None:
        self.app = app
        self.config = app.config
        self.desks = desks

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/desk", self.attention),
            web.get("/desk/sign-in", self.sign_in_page),
            web.post("/desk/sign-in", self.sign_in),
            web.get("/desk/sign-in/{token}", self.link_page),
            web.post("/desk/sign-in/{token}", self.follow_link),
            web.get("/desk/sign-out", self.back_to_desk),
            web.post("/desk/sign-out", self.sign_out),
            web.get("/desk/requests", self.requests),
            web.get(r"/desk/requests/{number:\d{1,9}}", self.request_page),
            web.get(r"/desk/requests/{number:\d{1,9}}/{action}", self.back_to_request),
            web.post(r"/desk/requests/{number:\d{1,9}}/{action}", self.act_on_request),
            web.get("/desk/mentors", self.mentors),
            web.get("/desk/mentors/{action}", self.back_to_mentors),
            web.post("/desk/mentors/{action}", self.act_on_mentor),
            web.get("/desk/sessions", self.sessions),
            web.get("/desk/office-hours", self.office_hours),
            web.get("/desk/feedback", self.feedback),
            web.get("/desk/chart", self.chart),
            *announce_routes(self),
        ]

    # Signing in and out --------------------------------------------------------------------

    async def sign_in_page(self, request: web.Request) -> web.Response:
        return self._sign_in_form(ended="ended" in request.query)

    async def sign_in(self, request: web.Request) -> web.Response:
        form = await request.post()
        now = self.app.clock()
        try:
            verify(self.config.secret, _text(form, FORM_FIELD), purpose=_SIGN_IN_FORM, now=now)
        except TokenError:
            raise ForgedForm(
                "This form only works on our own page. Nothing was sent: please open the "
                "sign-in page again."
            ) from None
        desks = self.desks()
        await self.app.writer.call(
            desk_auth.request_sign_in,
            self.config,
            self._store(),
            desks.postman,
            _text(form, "address"),
            now,
        )
        self.app.changed()
        minutes = max(1, int(self.config.desk.sign_in_lifetime.total_seconds() // 60))
        return self.app.page("desk/sign_in.html", {"asked": True, "minutes": minutes})

    async def link_page(self, request: web.Request) -> web.Response:
        try:
            claims = desk_auth.check_sign_in_link(
                self.config, request.match_info["token"], self.app.clock()
            )
            if await self.app.writer.call(desk_auth.link_spent, self._store(), claims):
                raise TamperedToken("used")
        except TokenError as problem:
            return self._bad_link(problem)
        return self.app.page(
            "desk/sign_in_link.html",
            {
                "person": claims.person,
                "hours": f"{self.config.desk.session_lifetime.total_seconds() / 3600:g}",
                "form_field": FORM_FIELD,
                "form_token": form_token(self.config.secret, claims),
            },
        )

    async def follow_link(self, request: web.Request) -> web.Response:
        unsafe_token = request.match_info["token"]
        now = self.app.clock()
        try:
            claims = desk_auth.check_sign_in_link(self.config, unsafe_token, now)
        except TokenError as problem:
            return self._bad_link(problem)
        form = await request.post()
        check_form_token(self.config.secret, form.get(FORM_FIELD), claims)
        try:
            session_id, session = await self.app.writer.call(
                desk_auth.start_session, self.config, self._store(), unsafe_token, now
            )
        except TokenError as problem:
            return self._bad_link(problem)
        answer = web.HTTPSeeOther("/desk", headers=self._headers())
        answer.set_cookie(
            COOKIE,
            session_id,
            max_age=int((session.expires - now).total_seconds()),
            path="/desk",
            httponly=True,
            secure=self.config.program.base_url.startswith("https://"),
            samesite="Strict",
        )
        log.info("desk: signed in")
        raise answer

    async def sign_out(self, request: web.Request) -> web.Response:
        session = await self._posted(request)
        await self.app.writer.call(desk_auth.end_session, self._store(), session, self.app.clock())
        answer = self.app.page("desk/signed_out.html", {})
        answer.del_cookie(COOKIE, path="/desk")
        return answer

    async def back_to_desk(self, request: web.Request) -> web.Response:
        """A GET of a POST-only desk path (after a refused form): back to a page."""
        raise web.HTTPSeeOther("/desk", headers=self._headers())

    # Pages ---------------------------------------------------------------------------------

    async def attention(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        found = await self._read(desk_views.attention, self._store(), self.config, self._desk())
        return self._page(request, session, "desk/attention.html", {"a": found})

    async def requests(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        wanted = desk_views.RequestFilter.of(request.query)
        rows, total = await self._read(desk_views.request_rows, self._store(), self.config, wanted)
        return self._page(
            request,
            session,
            "desk/requests.html",
            {
                "rows": rows,
                "total": total,
                "wanted": wanted,
                "statuses": desk_views.REQUEST_FILTERS,
            },
        )

    async def request_page(
        self, request: web.Request, outcome: DeskOutcome | None = None
    ) -> web.Response:
        session = await self._session(request)
        number = int(request.match_info["number"])
        summary = await self._read(
            desk_views.request_summary, self._store(), self.config, self._desk(), number
        )
        if summary is None:
            raise web.HTTPNotFound()
        return self._page(
            request,
            session,
            "desk/request.html",
            {"h": summary, "number": number, "outcome": outcome},
            status=_status_of(outcome),
        )

    async def mentors(
        self, request: web.Request, outcome: DeskOutcome | None = None
    ) -> web.Response:
        session = await self._session(request)
        rows = await self._read(desk_views.mentor_rows, self._store(), self.config, self._desk())
        return self._page(
            request,
            session,
            "desk/mentors.html",
            {"rows": rows, "outcome": outcome},
            status=_status_of(outcome),
        )

    async def sessions(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        week = await self._read(
            desk_views.sessions_this_week, self._store(), self.config, self._desk()
        )
        return self._page(request, session, "desk/sessions.html", {"week": week})

    async def office_hours(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        series = await self._read(desk_views.office_hours, self._store(), self.desks().office_hours)
        return self._page(request, session, "desk/office_hours.html", {"series": series})

    async def feedback(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        rounds, after = await self._read(desk_views.feedback, self._store())
        return self._page(
            request,
            session,
            "desk/feedback.html",
            {
                "rounds": rounds,
                "after": after,
                "counts_text": desk_views.counts_text,
                "ratings": desk_views.RATINGS,
            },
        )

    async def chart(self, request: web.Request) -> web.Response:
        session = await self._session(request)
        rows = await self._read(desk_views.chart, self._store(), self.config)
        return self._page(request, session, "desk/chart.html", {"chart": rows})

    # Actions: the coordinator desk's moves, recorded as "desk:<address>" ------------------

    async def act_on_request(self, request: web.Request) -> web.Response:
        session = await self._posted(request)
        number = int(request.match_info["number"])
        action = request.match_info["action"]
        if action not in REQUEST_ACTIONS:
            raise web.HTTPNotFound()
        form = await request.post()
        mentor = _text(form, "mentor").strip().lower()[:254]
        desk, by, now = self._desk(), f"desk:{session.person}", self.app.clock()

        def act() -> DeskOutcome:
            if action == "assign":
                return desk.assign(number, mentor, by=by, now=now)
            if action == "reassign":
                return desk.reassign(number, mentor, by=by, now=now)
            if action == "withdraw":
                return desk.withdraw(number, by=by, now=now)
            if action == "close":
                return desk.close(number, by=by, now=now)
            return desk.resend_invitation(number, by=by, now=now)

        outcome = await self.app.writer.call(act)
        self.app.changed()
        log.info("desk: %s %s: %s", action, number, "done" if outcome.done else "refused")
        return await self.request_page(request, outcome)

    async def act_on_mentor(self, request: web.Request) -> web.Response:
        session = await self._posted(request)
        action = request.match_info["action"]
        if action not in MENTOR_ACTIONS:
            raise web.HTTPNotFound()
        form = await request.post()
        mentor = _text(form, "mentor").strip().lower()[:254]
        desk, by, now = self._desk(), f"desk:{session.person}", self.app.clock()

        def act() -> DeskOutcome:
            if action == "approve":
                return desk.approve(mentor, by=by, now=now)
            if action == "pause":
                return desk.pause(mentor, by=by, now=now)
            return desk.resume(mentor, by=by, now=now)

        outcome = await self.app.writer.call(act)
        self.app.changed()
        log.info("desk: %s a mentor: %s", action, "done" if outcome.done else "refused")
        return await self.mentors(request, outcome)

    async def back_to_request(self, request: web.Request) -> web.Response:
        """A GET of an action's path (the refused-form page links there): the request."""
        raise web.HTTPSeeOther(
            f"/desk/requests/{int(request.match_info['number'])}", headers=self._headers()
        )

    async def back_to_mentors(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/desk/mentors", headers=self._headers())

    # Helpers -------------------------------------------------------------------------------

    def _desk(self) -> CoordinatorDesk:
        return self.desks().coordinator

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args, now)`` on the store's writer thread, as every page reads."""
        return await self.app.writer.call(fn, *args, self.app.clock())

    def _store(self) -> Store:
        store = self.app.writer.store
        if store is None:
            raise RuntimeError("the store is not open")
        return store

    async def _session(self, request: web.Request) -> DeskSession:
        """The desk session of this browser; else off to the sign-in page (303)."""
        unsafe_id = request.cookies.get(COOKIE)
        session = await self.app.writer.call(
            desk_auth.session_of, self.config, self._store(), unsafe_id, self.app.clock()
        )
        if session is None:
            where = "/desk/sign-in?ended" if unsafe_id else "/desk/sign-in"
            raise web.HTTPSeeOther(where, headers=self._headers())
        return session

    async def _posted(self, request: web.Request) -> DeskSession:
        """The session of a desk POST whose form token is its page's (else ForgedForm)."""
        session = await self._session(request)
        form = await request.post()
        desk_auth.check_desk_form(self.config, session, request.path, form.get(FORM_FIELD))
        return session

    def _page(
        self,
        request: web.Request,
        session: DeskSession,
        name: str,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> web.Response:
        def token_for(path: str) -> str:
            return desk_auth.form_token_for(self.config, session, path)

        return self.app.page(
            name,
            {
                "nav": NAV,
                "here": request.path,
                "person": session.person,
                "form_field": FORM_FIELD,
                "token_for": token_for,
                **context,
            },
            status=status,
        )

    def _bad_link(self, problem: TokenError) -> web.Response:
        """A sign-in link that cannot be used: why, and the form to ask for a new one."""
        log.info("desk: refused a sign-in link (%s)", type(problem).__name__)
        expired = isinstance(problem, ExpiredToken)
        return self._sign_in_form(
            bad_link="expired" if expired else "used", status=410 if expired else 403
        )

    def _sign_in_form(
        self, *, ended: bool = False, bad_link: str = "", status: int = 200
    ) -> web.Response:
        token = sign(
            self.config.secret,
            purpose=_SIGN_IN_FORM,
            person="",
            obj="",
            expires=self.app.clock() + _SIGN_IN_FORM_LIFETIME,
        )
        return self.app.page(
            "desk/sign_in.html",
            {
                "asked": False,
                "ended": ended,
                "bad_link": bad_link,
                "form_field": FORM_FIELD,
                "form_token": token,
            },
            status=status,
        )

    @staticmethod
    def _headers() -> dict[str, str]:
        from .web import SECURITY_HEADERS

        return dict(SECURITY_HEADERS)


def _status_of(outcome: DeskOutcome | None) -> int:
    """A page after a move: 200 when done, 404 when it named nothing known, else 409."""
    if outcome is None or outcome.done:
        return 200
    return 404 if outcome.unknown else 409


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
