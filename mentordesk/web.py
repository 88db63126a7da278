"""The web endpoint: the pages behind the links in our emails (aiohttp, in the daemon's loop).

Every link carries a signed token (``tokens.py``) naming the person and the object. A
GET only shows a page — mail scanners open links — and only a POST (the button on that
page) changes anything. One middleware turns every error into a page a person can read;
the log gets the details.

    GET  /claim/{token}    the request and a "Take it" button      POST: claim it
    GET  /release/{token}  "give it back?" and a button            POST: release it
    GET  /pause/{token}    "pause new requests?" and a button      POST: pause
    GET  /healthz          liveness for monitoring
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import jinja2
from aiohttp import web

from .claims import ClaimDesk, ClaimResult
from .config import Config
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
    "unknown": 404,
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
    ) -> None:
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
                web.get("/claim/{token}", self.claim_page),
                web.post("/claim/{token}", self.claim),
                web.get("/release/{token}", self.release_page),
                web.post("/release/{token}", self.release),
                web.get("/pause/{token}", self.pause_page),
                web.post("/pause/{token}", self.pause),
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

    # Helpers -----------------------------------------------------------------------------

    def _verify(self, request: web.Request, purpose: str) -> Claims:
        unsafe_token = request.match_info["token"]
        claims = verify(self.config.secret, unsafe_token, purpose=purpose, now=self.clock())
        if purpose in ("claim", "release") and not claims.obj.isdigit():
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
