"""The web endpoint: the pages behind the links in our emails (aiohttp, in the daemon's loop).

Every link carries a signed token (``tokens.py``) naming the person and the object. A
GET only shows a page — mail scanners open links — and only a POST (the button on that
page) changes anything. One middleware turns every error into a page a person can read;
the log gets the details.

A POST is refused (403, a page saying nothing changed) when the browser says it comes
from another site: ``Sec-Fetch-Site`` other than same-origin, or an ``Origin`` (else a
``Referer``) that is not [program] base_url's nor this host's. The claim, release,
assign and pause buttons also send the page's form token (``tokens.form_token``), without
which a POST that would change something is refused: the link alone is not enough.
Clients are held to ``web_guard.WebLimits`` (head and body timeouts, body size,
connection cap).

    GET  /claim/{token}    the request and a "Take it" button      POST: claim it
    GET  /release/{token}  "give it back?" and a button            POST: release it
    GET  /pause/{token}    "pause new requests?" and a button      POST: pause
    GET  /assign/{token}   "give it to mentor X?" (escalations)    POST: claim it for X
    GET  /approve/{token}  "approve mentor X?" (web_approve.py)    POST: approve them
    GET  /rate/{token}     a rating (?score=1-5 pre-chosen), comment  POST: record it
    GET  /attended/{token} did the session take place? (?answer=)   POST: record it
    GET  /followup/{token} "a follow-up with another mentor?"       POST: open it
    GET  /schedule/{token} the mentor picks a session time          POST: book it
    GET  /session-time/{token}  one of an invitation's other times  POST: move there
                           (``web_session_times.py``)
    GET  /pick/{token}     the mentee picks one of the mentor's free times, shown in her
                           zone (?tz= from the browser where we know none)  POST: book it
    GET  /feed/{token}.ics a person's calendar feed (sessions, office hours; text/calendar)
    POST /admin/office-hours  the CLI's office-hours commands (JSON; loopback, signed, once)
    POST /admin/backup     ``mentordesk backup`` (backup.py; loopback, signed, once)
    POST /admin/command       any coordinator command from the CLI (the same checks)
    GET  /pairing/{token}  orientation done, a check-in, a term's choice  POST: record it
    POST /admin/pairings   the CLI's pairing commands (JSON; loopback, signed, once)
                           (both in web_pairings)
    GET  /announcements-off/{token}  stop announcements       POST: stop (web_announce)
    POST /admin/announce   the CLI's announce command (JSON; loopback, signed, once)
    GET  /healthz          liveness for monitoring (health.py)
    GET  /metrics          Prometheus text format (metrics.py)
    GET  /desk…            the coordinator's desk (``desk_web.py``)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from .admin import apply_command, is_loopback
from .backup import BACKUP_PATH, serve_backup
from .config import Config
from .desk_web import DeskWeb
from .errors import CommandError, OfficeHoursError
from .feed import FEED_OBJECT, FEED_PURPOSE
from .flows.claims import ClaimDesk, ClaimResult
from .flows.coordinator import CoordinatorDesk
from .flows.desks import Desks
from .flows.escalation import assign, assign_view, may_assign, parse_assign_obj
from .flows.office_hours import OfficeHoursDesk
from .flows.sessions import SessionDesk
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .state.store import Store, StoreWriter
from .tokens import (
    FORM_FIELD,
    Claims,
    ExpiredToken,
    ForgedForm,
    TokenError,
    check_form_token,
    form_token,
    verify,
)
from .web_admin import admin_route
from .web_announce import announcement_routes
from .web_approve import ApprovalPages
from .web_feedback import feedback_routes
from .web_forms import form_text, zone_param
from .web_guard import WEB_LIMITS, ConnectionGuard, SlowRequestBody, WebLimits
from .web_pairings import pairing_routes
from .web_session_times import time_move, time_page

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Links must not leak through the Referer header or be framed by another site.
# What the CLI is told back (400) when a command cannot be applied as asked.
COMMAND_ERRORS = (OfficeHoursError, CommandError)

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


# A reverse proxy on this machine connects from loopback; these say it forwarded someone.
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")
# Listening on these covers loopback; any other [web] host gets a loopback listener too.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def _from_loopback(request: web.Request) -> bool:
    """The CLI's admin commands: a loopback peer on a loopback address, not a proxy's."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    own = sockname[0] if isinstance(sockname, tuple) and sockname else ""
    return is_loopback(request.remote or "") and is_loopback(str(own))


def _origin(unsafe_url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-case, default port left out; None if none."""
    try:
        parts = urlsplit(unsafe_url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


# What a claim, release or assign POST would change from: only then is the page's form
# token needed (a POST that is refused anyway answers as before, token or not).
WOULD_CHANGE = {
    "claim": frozenset({"open"}),
    "release": frozenset({"yours", "claimed"}),
    "assign": frozenset({"open"}),
}


# HTTP status for what a GET shows: the page is the answer, except where the link
# cannot be used at all.
VIEW_STATUS = {"not_invited": 403, "closed": 410, "unknown": 404}


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
        limits: WebLimits | None = None,
        coordinator: Callable[[], CoordinatorDesk] | None = None,
        desks: Callable[[], Desks] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.desks = desks
        self.limits = limits or WEB_LIMITS
        self.guard = ConnectionGuard(self.limits)
        self.sessions = sessions
        self.office_hours = office_hours
        self.desks = desks  # pairing and announcement pages (web_pairings, web_announce)
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
            # The templates ship with the package: no stat() of three files per page,
            # and, a fixed few, they are kept in a plain dict, not an LRU cache with a
            # lock (a page looks up three: its own, its base and _request.html).
            auto_reload=False,
            cache_size=-1,
        )
        from .mailer.compose import first_name

        self.pages.filters["first_name"] = first_name
        self._runner: web.AppRunner | None = None
        self._listeners: list[asyncio.Server] = []
        self._base_origin = _origin(config.program.base_url)

    def application(self) -> web.Application:
        app = web.Application(
            middlewares=[self.guard.middleware, self._errors_as_pages, self._checked_posts],
            client_max_size=self.limits.max_body_bytes,
        )
        app.add_routes(
            [
                web.get("/", self.home),
                web.get("/healthz", self.healthz),
                web.get("/metrics", self.metrics),
                web.get("/feed/{token}.ics", self.feed),
                admin_route(self, "/admin/office-hours", self._apply_command, COMMAND_ERRORS),
                web.post(BACKUP_PATH, self.admin_backup),
                admin_route(self, "/admin/command", self._apply_command, COMMAND_ERRORS),
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
                web.get("/session-time/{token}", functools.partial(time_page, self)),
                web.post("/session-time/{token}", functools.partial(time_move, self)),
                web.get("/pick/{token}", self.pick_page),
                web.post("/pick/{token}", self.pick),
                *feedback_routes(self),
                *ApprovalPages(self).routes(),
            ]
        )
        if self.desks is not None:
            desks = self.desks
            app.add_routes(pairing_routes(self, lambda: desks().pairings))
            app.add_routes(announcement_routes(self, desks))
            app.add_routes(DeskWeb(self, self.desks).routes())
        return app

    async def start(self) -> None:
        """Listen on [web] host:port (and on 127.0.0.1 for the CLI, see ``admin.py``).

        The listening sockets are the guard's (``web_guard``); aiohttp serves what it
        lets through. aiohttp's own idle timeout is a backstop, after the guard's.
        """
        self._runner = web.AppRunner(
            self.application(),
            access_log=None,
            keepalive_timeout=2 * self.limits.header_timeout_s,
            lingering_time=self.limits.linger_s,
        )
        await self._runner.setup()
        assert self._runner.server is not None
        serve = self.guard.protocol_factory(self._runner.server)
        loop = asyncio.get_running_loop()
        host, port = self.config.web.host, self.config.web.port
        hosts = [host]
        if host not in WILDCARD_HOSTS and not is_loopback(host):
            hosts.append("127.0.0.1")
        try:
            for address in hosts:
                self._listeners.append(await loop.create_server(serve, address or None, port))
        except BaseException:
            await self.stop()
            raise
        log.info("web endpoint on http://%s:%s", host, port)

    async def stop(self) -> None:
        for listener in self._listeners:
            listener.close()  # no new connections; the runner closes the open ones
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for listener in self._listeners:
            await listener.wait_closed()
        self._listeners = []
        self.guard.close()

    # Pages -------------------------------------------------------------------------------

    async def home(self, request: web.Request) -> web.Response:
        return self.page("home.html", {})

    async def healthz(self, request: web.Request) -> web.Response:
        store = self.writer.store
        outbox = None if store is None else await self.writer.call(store.outbox_facts, self.clock())
        return web.json_response(
            **self.writer.health.response(store_open=store is not None, outbox=outbox),
        )

    async def metrics(self, request: web.Request) -> web.Response:
        store = self.writer.store
        if store is None:
            return web.Response(status=503, text="starting\n")
        body = await self.writer.call(self.writer.metrics.scrape, store, self.clock())
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def claim_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "claim")
        result = await self._claim_view(int(claims.obj), claims.person)
        if result.outcome == "unknown":
            return self._gone()
        return self.page(
            "claim.html",
            {"result": result, "posted": False, **self._form(claims)},
            status=VIEW_STATUS.get(result.outcome, 200),
        )

    async def claim(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "claim")
        forged = await self._forged(request, claims)
        number, person = int(claims.obj), claims.person

        def claim_it() -> ClaimResult:
            desk, now = self.claims(), self.clock()
            if forged is not None:
                self._refuse_if_forged(forged, "claim", desk.view(number, person, now))
            return desk.claim(number, person, now, via="web", defer_effects=True)

        result = await self.writer.for_page(claim_it)
        if result.outcome == "claimed":  # the emails and booking after the answer, when
            try:  # no other page waits for the writer (the sweep, should it stop first)
                settling = self.writer.defer(lambda: self.claims().settle(number, self.clock()))
            except RuntimeError:  # the writer is shutting down: the next start's sweep does it
                log.warning("claim of request %s: its emails wait for the next start", number)
            else:
                settling.add_done_callback(self._settled)  # which tells the outbox
        if result.outcome == "unknown":
            return self._gone()
        return self.page(
            "claim.html",
            {"result": result, "posted": True, **self._form(claims)},
            status=OUTCOME_STATUS.get(result.outcome, 400),
        )

    async def _claim_view(self, number: int, person: str) -> ClaimResult:
        """What a claim or release page shows, read from the committed state on this
        thread: a page that only reads does not queue for the writer."""
        committed = self.writer.committed
        if committed is None:  # not started: the writer opens the state first
            return await self.writer.call(self.claims().view, number, person, self.clock())
        return self.claims().committed_view(committed, number, person, self.clock())

    def _settled(self, settling: asyncio.Future[bool]) -> None:
        """A claim's effects are stored (the sender has mail), or failed: the sweep's
        claim-effects step tries again."""
        if not settling.cancelled() and settling.exception() is not None:
            log.error("a claim's emails and booking failed", exc_info=settling.exception())
        self.changed()

    async def release_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "release")
        result = await self._claim_view(int(claims.obj), claims.person)
        if result.outcome == "unknown":
            return self._gone()
        return self.page("release.html", {"result": result, "posted": False, **self._form(claims)})

    async def release(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "release")
        forged = await self._forged(request, claims)
        number, person = int(claims.obj), claims.person

        def release_it() -> ClaimResult:
            desk, now = self.claims(), self.clock()
            self._refuse_if_forged(forged, "release", desk.view(number, person, now))
            return desk.release(number, person, now)

        result = await self.writer.for_page(release_it)
        self.changed()
        if result.outcome == "unknown":
            return self._gone()
        return self.page(
            "release.html",
            {"result": result, "posted": True, **self._form(claims)},
            status=OUTCOME_STATUS.get(result.outcome, 400),
        )

    async def pause_page(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "pause")
        return self.page(
            "pause.html", {"person": claims.person, "posted": False, **self._form(claims)}
        )

    async def pause(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "pause")
        forged = await self._forged(request, claims)
        if forged is not None:
            raise forged
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

    async def pick_page(self, request: web.Request) -> web.Response:
        """The mentee's page: the mentor's free times in her zone. Where we know no zone,
        a script asks the browser for it and reloads with ?tz= (a GET changes nothing)."""
        claims = self._verify(request, "pick")
        zone = zone_param(request.query.get("tz"))
        return await self._pick_view(claims, zone, posted=False, outcome="")

    async def pick(self, request: web.Request) -> web.Response:
        claims = self._verify(request, "pick")
        form = await request.post()
        zone = zone_param(form_text(form, "tz"))
        unsafe_slot = form_text(form, "slot")
        outcome = await self.writer.call(
            self._sessions().mentee_pick,
            int(claims.obj),
            claims.person,
            unsafe_slot,
            self.clock(),
            zone,
        )
        self.changed()
        status = {"booked": 200, "not_yours": 403, "gone": 410, "taken": 409}.get(outcome, 400)
        return await self._pick_view(claims, zone, posted=True, outcome=outcome, status=status)

    async def _pick_view(
        self, claims: Claims, zone: str | None, *, posted: bool, outcome: str, status: int = 200
    ) -> web.Response:
        number = int(claims.obj)
        view = await self.writer.call(self._sessions().pick_view, number, claims.person, zone)
        choices = await self.writer.call(
            self._sessions().mentee_choices, number, self.clock(), view.get("zone")
        )
        if not view:
            status = 403
        nonce = secrets.token_urlsafe(16)
        headers = {
            **SECURITY_HEADERS,
            "Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"]
            + f"; script-src 'nonce-{nonce}'",
        }
        return self.page(
            "pick.html",
            {
                "view": view,
                "choices": choices,
                "posted": posted,
                "outcome": outcome,
                "nonce": nonce,
            },
            status=status,
            headers=headers,
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
        return self.page(
            "assign.html", {"result": result, "posted": False, **self._form(claims)}, status=status
        )

    async def assign(self, request: web.Request) -> web.Response:
        claims, number, mentor = self._verify_assign(request)
        result = ClaimResult("not_allowed")
        if may_assign(self.config, claims.person):
            forged = await self._forged(request, claims)

            def assign_it() -> ClaimResult:
                desk, now = self.claims(), self.clock()
                self._refuse_if_forged(forged, "assign", assign_view(desk, number, mentor, now))
                return assign(desk, number, mentor, claims.person, now)

            result = await self.writer.call(assign_it)
            self.changed()
        return self.page(
            "assign.html",
            {"result": result, "posted": True, **self._form(claims)},
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

    async def admin_backup(self, request: web.Request) -> web.Response:
        """Write a backup of the state for ``mentordesk backup`` (see ``backup.py``)."""
        loopback = _from_loopback(request)
        return await serve_backup(request, self.config, self.writer, loopback=loopback)

    def _apply_command(
        self, store: Store, command: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """An office-hours or coordinator command from the CLI (``admin.py``)."""
        return apply_command(self._office_hours(), self._coordinator(), command, now)

    def _coordinator(self) -> CoordinatorDesk:
        if self.coordinator is None:
            raise RuntimeError("the web endpoint runs without the coordinator's desk")
        return self.coordinator()

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
        if purpose in ("claim", "release", "schedule", "pick") and not claims.obj.isdigit():
            raise web.HTTPNotFound()
        return claims

    def _form(self, claims: Claims) -> dict[str, str]:
        """The hidden field of this link's page (see ``tokens.form_token``)."""
        return {"form_field": FORM_FIELD, "form_token": form_token(self.config.secret, claims)}

    async def _forged(self, request: web.Request, claims: Claims) -> ForgedForm | None:
        """Why the POSTed form is not from this link's page (None: it is)."""
        form = await request.post()
        try:
            check_form_token(self.config.secret, form.get(FORM_FIELD), claims)
        except ForgedForm as refused:
            return refused
        return None

    @staticmethod
    def _refuse_if_forged(forged: ForgedForm | None, action: str, view: ClaimResult) -> None:
        """Raise ``forged`` if the POST would change something (``WOULD_CHANGE``).

        Runs on the writer with the change itself, so nothing happens in between.
        """
        if forged is not None and view.outcome in WOULD_CHANGE[action]:
            raise forged

    def _gone(self) -> web.Response:
        """A genuine link whose request or person is no longer in the state."""
        return self.page("error.html", {"problem": "gone"}, status=410)

    def _cross_site(self, request: web.Request) -> bool:
        """True when the browser says this request was sent by a page of another site."""
        unsafe_site = request.headers.get("Sec-Fetch-Site")
        if unsafe_site is not None:
            return unsafe_site.strip().lower() not in ("same-origin", "none")
        own = {self._base_origin, _origin(f"{request.scheme}://{request.host}")}
        unsafe_origin = request.headers.get("Origin")
        # "null": a page with no-referrer (ours too, in older browsers): the form token decides.
        if unsafe_origin is not None and unsafe_origin.strip() != "null":
            return _origin(unsafe_origin) not in own
        unsafe_referer = request.headers.get("Referer")
        if unsafe_referer:
            return _origin(unsafe_referer) not in own
        return False  # not a browser's cross-site request (curl, the CLI): tokens decide

    def page(
        self,
        name: str,
        context: dict[str, Any],
        status: int = 200,
        headers: Mapping[str, str] = SECURITY_HEADERS,
    ) -> web.Response:
        html = self.pages.get_template(name).render({"program": self.config.program, **context})
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers=headers,
        )

    @web.middleware
    async def _errors_as_pages(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """One place that turns every failure into a page a person can read."""
        try:
            return await handler(request)
        except ForgedForm:
            log.info("refused a %s button without its page's form token", _first_part(request))
            return self.page("error.html", {"problem": "forged", "retry": request.path}, status=403)
        except ExpiredToken:
            return self.page("error.html", {"problem": "expired"}, status=410)
        except TokenError:
            log.info("refused a bad link for %s", request.path.split("/")[1])
            return self.page("error.html", {"problem": "invalid"}, status=403)
        except web.HTTPMethodNotAllowed:
            return self.page("error.html", {"problem": "method"}, status=405)
        except web.HTTPNotFound:
            return self.page("error.html", {"problem": "not_found"}, status=404)
        except web.HTTPRequestEntityTooLarge:
            page = self.page("error.html", {"problem": "too_big"}, status=413)
            page.force_close()  # the rest of the body is not read
            return page
        except SlowRequestBody:
            page = self.page("error.html", {"problem": "slow"}, status=408)
            page.force_close()
            return page
        except web.HTTPException:
            raise
        except Exception:
            log.exception("error serving %s %s", request.method, _first_part(request))
            return self.page("error.html", {"problem": "server"}, status=500)

    @web.middleware
    async def _checked_posts(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every POST: refused from another site, else its body read within the limits."""
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if self._cross_site(request):
                log.info("refused a cross-site %s %s", request.method, _first_part(request))
                return self.page("error.html", {"problem": "cross_site"}, status=403)
            await self.guard.read_body(request)
        return await handler(request)


def _first_part(request: web.Request) -> str:
    """The route's first path segment, for the log: never a token."""
    return request.path.split("/")[1][:40]
