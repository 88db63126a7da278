"""The web endpoint: the pages behind the links in our emails (aiohttp, in the daemon's loop).

Every link carries a signed token (``tokens.py``) naming the person and the object. A
GET only shows a page — mail scanners open links — and only a POST (the button on that
page) changes anything. One middleware turns every error into a page a person can read;
the log gets the details.

    GET  /claim/{token}    the request and a "Take it" button      POST: claim it
    GET  /release/{token}  "give it back?" and a button            POST: release it
    GET  /pause/{token}    "pause new requests?" and a button      POST: pause
    GET  /assign/{token}   "give it to mentor X?" (escalations)    POST: claim it for X
    GET  /rate/{token}     a rating (?score=1-5 pre-chosen), comment  POST: record it
    GET  /attended/{token} did the session take place? (?answer=)   POST: record it
    GET  /followup/{token} "a follow-up with another mentor?"       POST: open it
    GET  /feed/{token}.ics a person's calendar feed (sessions, office hours; text/calendar)
    POST /admin/office-hours  the CLI's office-hours commands (JSON; local, signed)
    GET  /healthz          liveness for monitoring
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import jinja2
from aiohttp import web

from .admin import check_admin_token
from .config import Config
from .errors import OfficeHoursError
from .feed import FEED_OBJECT, FEED_PURPOSE
from .flows.claims import ClaimDesk, ClaimResult
from .flows.escalation import assign, assign_view, may_assign, parse_assign_obj
from .flows.feedback import (
    ATTENDANCE,
    FeedbackDesk,
    FeedbackPage,
    clean_comment,
    parse_score,
)
from .flows.feedback_results import RATINGS
from .flows.office_hours import OfficeHoursDesk
from .flows.sessions import SessionDesk
from .state.store import StoreWriter
from .tokens import Claims, ExpiredToken, TokenError, verify

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Links must not leak through the Referer header or be framed by another site.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}

# HTTP status for each outcome of a POST: the first clicker gets 200, later ones 409.
OUTCOME_STATUS = {
    "claimed": 200,
    "yours": 200,
    "released": 200,
    "paused": 200,
    "open": 200,
    "taken": 409,
    "full": 409,
    "withdrawn": 410,
    "closed": 410,
    "not_yours": 403,
    "not_invited": 403,
    "not_allowed": 403,
    "unknown": 404,
}


# Where the CLI's admin commands may come from: this machine only.
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


def _from_this_machine(request: web.Request) -> bool:
    """Loopback, or the very address the endpoint listens on ([web] host may be one)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    own = sockname[0] if isinstance(sockname, tuple) and sockname else None
    return request.remote in LOCAL_ADDRESSES or (own is not None and request.remote == own)


# HTTP status for what a GET shows: the page is the answer, except where the link
# cannot be used at all.
VIEW_STATUS = {"not_invited": 403, "closed": 410, "unknown": 404}

# HTTP status for each outcome of a feedback page (GET or POST).
FEEDBACK_STATUS = {
    "ask": 200,
    "recorded": 200,
    "updated": 200,
    "created": 200,
    "already": 200,
    "missing_score": 400,
    "not_yours": 403,
    "unknown": 404,
}


class WebApp:
    """Builds the aiohttp application and runs it on [web] host:port."""

    def __init__(
        self,
        config: Config,
        writer: StoreWriter,
        claims: Callable[[], ClaimDesk],
        clock: Callable[[], datetime],
        changed: Callable[[], None] = lambda: None,
        sessions: Callable[[], SessionDesk] | None = None,
        office_hours: Callable[[], OfficeHoursDesk] | None = None,
    ) -> None:
        self.sessions = sessions
        self.office_hours = office_hours
        self.config = config
        self.changed = changed  # called after every POST: new mail may be waiting
        self.writer = writer
        self.claims = claims
        self.clock = clock
        self.pages = jinja2.Environment(
            loader=jinja2.PackageLoader("mentordesk", "templates/web"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        from .mailer.compose import first_name

        self.pages.filters["first_name"] = first_name
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors_as_pages])
        app.add_routes(
            [
                web.get("/", self.home),
                web.get("/healthz", self.healthz),
                web.get("/feed/{token}.ics", self.feed),
                web.post("/admin/office-hours", self.admin_office_hours),
                web.get("/claim/{token}", self.claim_page),
                web.post("/claim/{token}", self.claim),
                web.get("/release/{token}", self.release_page),
                web.post("/release/{token}", self.release),
                web.get("/pause/{token}", self.pause_page),
                web.post("/pause/{token}", self.pause),
                web.get("/assign/{token}", self.assign_page),
                web.post("/assign/{token}", self.assign),
                web.get("/session-cancel/{token}", self.session_page),
                web.post("/session-cancel/{token}", self.session_change),
                web.get("/session-move/{token}", self.session_page),
                web.post("/session-move/{token}", self.session_change),
                web.get("/schedule/{token}", self.schedule_page),
                web.post("/schedule/{token}", self.schedule),
                web.get("/rate/{token}", self.rate_page),
                web.post("/rate/{token}", self.rate),
                web.get("/attended/{token}", self.attended_page),
                web.post("/attended/{token}", self.attended),
                web.get("/followup/{token}", self.followup_page),
                web.post("/followup/{token}", self.followup),
            ]
        )
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.web.host, self.config.web.port)
        await site.start()
        log.info("web endpoint on http://%s:%s", self.config.web.host, self.config.web.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # Pages -------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        return self.page("home.html", {})

    async def healthz(self, request: web.Request) -> web.Response:
        healthy = self.writer.store is not None
        return web.json_response(
            {"status": "ok" if healthy else "starting"}, status=200 if healthy else 503
        )

    async def claim_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "claim")
        result = await self.writer.call(
            self.claims().view, int(claims.obj), claims.person, self.clock()
        )
        return self.page(
            "claim.html",
            {"result": result, "posted": False},
            status=VIEW_STATUS.get(result.outcome, 200),
        )

    async def claim(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "claim")
        result: ClaimResult = await self.writer.call(
            self.claims().claim, int(claims.obj), claims.person, self.clock(), via="web"
        )
        self.changed()
        return self.page(
            "claim.html",
            {"result": result, "posted": True},
            status=OUTCOME_STATUS.get(result.outcome, 400),
        )

    async def release_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "release")
        result = await self.writer.call(
            self.claims().view, int(claims.obj), claims.person, self.clock()
        )
        return self.page("release.html", {"result": result, "posted": False})

    async def release(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "release")
        result = await self.writer.call(
            self.claims().release, int(claims.obj), claims.person, self.clock()
        )
        self.changed()
        return self.page(
            "release.html",
            {"result": result, "posted": True},
            status=OUTCOME_STATUS.get(result.outcome, 400),
        )

    async def pause_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "pause")
        return self.page("pause.html", {"person": claims.person, "posted": False})

    async def pause(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "pause")
        result = await self.writer.call(self.claims().pause, claims.person, self.clock())
        return self.page(
            "pause.html",
            {"person": claims.person, "posted": True, "result": result},
            status=OUTCOME_STATUS.get(result.outcome, 400),
        )

    # Sessions: cancel, move, pick a time ---------------------------------------------------

    async def session_page(self, request: web.Request) -> web.Response:
        purpose = request.path.split("/")[1]
        claims = self._verify(request, purpose)
        view = await self.writer.call(self._sessions().describe, claims.obj, claims.person)
        return self.page(
            "session.html",
            {"action": purpose, "view": view, "posted": False, "outcome": ""},
            status=200 if view else 404,
        )

    async def session_change(self, request: web.Request) -> web.Response:
        purpose = request.path.split("/")[1]
        claims = self._verify(request, purpose)
        desk = self._sessions()
        change = desk.cancel if purpose == "session-cancel" else desk.move
        outcome = await self.writer.call(change, claims.obj, claims.person, self.clock())
        self.changed()
        view = await self.writer.call(desk.describe, claims.obj, claims.person)
        status = {"gone": 410, "not_yours": 403}.get(outcome, 200)
        return self.page(
            "session.html",
            {"action": purpose, "view": view, "posted": True, "outcome": outcome},
            status=status,
        )

    async def schedule_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "schedule")
        number = int(claims.obj)
        result = await self.writer.call(self.claims().view, number, claims.person, self.clock())
        choices = await self.writer.call(self._sessions().pick_choices, number, self.clock())
        return self.page(
            "schedule.html",
            {"result": result, "choices": choices, "posted": False, "outcome": ""},
            status=200 if result.outcome == "yours" else 403,
        )

    async def schedule(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "schedule")
        number = int(claims.obj)
        form = await request.post()
        desk = self._sessions()
        # A time typed in wins over the pre-selected suggestion.
        unsafe_choice = str(form.get("custom") or form.get("slot") or "")
        start = await self.writer.call(desk.custom_start, number, unsafe_choice)
        outcome = "unreadable"
        if start is not None:
            outcome = await self.writer.call(desk.pick, number, claims.person, start, self.clock())
            self.changed()
        result = await self.writer.call(self.claims().view, number, claims.person, self.clock())
        choices = await self.writer.call(desk.pick_choices, number, self.clock())
        status = {"booked": 200, "not_yours": 403, "gone": 410}.get(outcome, 400)
        return self.page(
            "schedule.html",
            {"result": result, "choices": choices, "posted": True, "outcome": outcome},
            status=status,
        )

    # Feedback: ratings, did it take place, a follow-up (flows/feedback.py) ---------------

    async def rate_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "rate")
        score = parse_score(request.query.get("score"))
        page = await self.writer.call(
            self._feedback().rating_page, claims.obj, claims.person, self.clock(), score
        )
        return self._feedback_page("rate.html", page)

    async def rate(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "rate")
        form = await request.post()
        page = await self.writer.call(
            self._feedback().rate,
            claims.obj,
            claims.person,
            parse_score(_form_text(form, "score")),
            clean_comment(_form_text(form, "comment")),
            self.clock(),
        )
        return self._feedback_page("rate.html", page)

    async def attended_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "attended")
        page = await self.writer.call(
            self._feedback().attendance_page,
            _session_uid(claims),
            claims.person,
            request.query.get("answer", ""),
        )
        return self._feedback_page("attended.html", page)

    async def attended(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "attended")
        form = await request.post()
        page = await self.writer.call(
            self._feedback().record_attendance,
            _session_uid(claims),
            claims.person,
            _form_text(form, "answer"),
            self.clock(),
        )
        return self._feedback_page("attended.html", page)

    async def followup_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "followup")
        page = await self.writer.call(
            self._feedback().followup_page, _session_uid(claims), claims.person
        )
        return self._feedback_page("followup.html", page)

    async def followup(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "followup")
        form = await request.post()
        page = await self.writer.call(
            self._feedback().request_followup,
            _session_uid(claims),
            claims.person,
            clean_comment(_form_text(form, "comment")),
            self.clock(),
        )
        self.changed()
        return self._feedback_page("followup.html", page)

    def _feedback(self) -> FeedbackDesk:
        return FeedbackDesk(self.claims())

    def _feedback_page(self, name: str, page: FeedbackPage) -> web.Response:
        return self.page(
            name,
            {
                "page": page,
                "ratings": RATINGS,
                "labels": dict(RATINGS),
                "choices": list(ATTENDANCE.items()),
            },
            status=FEEDBACK_STATUS.get(page.outcome, 400),
        )

    # Escalations: assign a request to a mentor -------------------------------------------

    async def assign_page(self, request: web.Request) -> web.Response:
        claims, number, mentor = self._verify_assign(request)
        result = ClaimResult("not_allowed")
        if may_assign(self.config, claims.person):
            result = await self.writer.call(
                assign_view, self.claims(), number, mentor, self.clock()
            )
        status = 403 if result.outcome == "not_allowed" else VIEW_STATUS.get(result.outcome, 200)
        return self.page("assign.html", {"result": result, "posted": False}, status=status)

    async def assign(self, request: web.Request) -> web.Response:
        claims, number, mentor = self._verify_assign(request)
        result = ClaimResult("not_allowed")
        if may_assign(self.config, claims.person):
            result = await self.writer.call(
                assign, self.claims(), number, mentor, claims.person, self.clock()
            )
            self.changed()
        return self.page(
            "assign.html",
            {"result": result, "posted": True},
            status=OUTCOME_STATUS.get(result.outcome, 400),
        )

    def _verify_assign(self, request: web.Request) -> tuple[Claims, int, str]:
        claims = self._verify(request, "assign")
        target = parse_assign_obj(claims.obj)
        if target is None:
            raise web.HTTPNotFound()
        return claims, target[0], target[1]

    # Calendar feed and the CLI's office-hours commands ----------------------------------

    async def feed(self, request: web.Request) -> web.Response:
        """The person's calendar feed; calendar apps fetch it again now and then."""
        claims = self._verify(request, FEED_PURPOSE)
        if claims.obj != FEED_OBJECT:
            raise web.HTTPNotFound()
        ics = await self.writer.call(self._office_hours().feed, claims.person, self.clock())
        return web.Response(
            body=ics,
            content_type="text/calendar",
            charset="utf-8",
            headers={**SECURITY_HEADERS, "Content-Disposition": 'inline; filename="calendar.ics"'},
        )

    async def admin_office_hours(self, request: web.Request) -> web.Response:
        """Apply one office-hours command from the CLI on this machine (see ``admin.py``)."""
        if not _from_this_machine(request):
            return web.json_response({"error": "only the local machine may do this"}, status=403)
        body = await request.read()
        unsafe_token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        try:
            check_admin_token(self.config.secret, unsafe_token, body, self.clock())
        except TokenError as exc:
            log.info("refused an office-hours command: %s", type(exc).__name__)
            return web.json_response({"error": str(exc)}, status=403)
        try:
            command = json.loads(body)
        except ValueError:
            return web.json_response({"error": "the command is not JSON"}, status=400)
        if not isinstance(command, dict):
            return web.json_response({"error": "the command is not a JSON object"}, status=400)
        try:
            answer = await self.writer.call(self._office_hours().admin, command, self.clock())
        except OfficeHoursError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.changed()
        return web.json_response(answer, headers=SECURITY_HEADERS)

    def _office_hours(self) -> OfficeHoursDesk:
        if self.office_hours is None:
            raise RuntimeError("the web endpoint runs without office hours")
        return self.office_hours()

    # Helpers -----------------------------------------------------------------------------

    def _sessions(self) -> SessionDesk:
        if self.sessions is None:
            raise web.HTTPNotFound()
        return self.sessions()

    def _verify(self, request: web.Request, purpose: str) -> Claims:
        unsafe_token = request.match_info["token"]
        claims = verify(self.config.secret, unsafe_token, purpose=purpose, now=self.clock())
        if purpose in ("claim", "release", "schedule") and not claims.obj.isdigit():
            raise web.HTTPNotFound()
        return claims

    def page(self, name: str, context: dict[str, Any], status: int = 200) -> web.Response:
        html = self.pages.get_template(name).render({"program": self.config.program, **context})
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    @web.middleware
    async def _errors_as_pages(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """One place that turns every failure into a page a person can read."""
        try:
            return await handler(request)
        except ExpiredToken:
            return self.page("error.html", {"problem": "expired"}, status=410)
        except TokenError:
            log.info("refused a bad link for %s", request.path.split("/")[1])
            return self.page("error.html", {"problem": "invalid"}, status=403)
        except web.HTTPMethodNotAllowed:
            return self.page("error.html", {"problem": "method"}, status=405)
        except web.HTTPNotFound:
            return self.page("error.html", {"problem": "not_found"}, status=404)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("error serving %s %s", request.method, request.path.split("/")[1])
            return self.page("error.html", {"problem": "server"}, status=500)


def _form_text(form: Mapping[str, Any], name: str) -> str:
    """A text field of a posted form ("" when missing or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _session_uid(claims: Claims) -> str:
    """The session a feedback link is about; other objects have no page here."""
    kind, _, uid = claims.obj.partition(":")
    if kind != "session" or not uid:
        raise web.HTTPNotFound()
    return uid
