"""The announcement pages (``flows/announcements``): registered by ``web.WebApp``.

    GET  /announcements-off/{token}   "stop announcements?" and a button   POST: stop
    POST /admin/announce              the CLI's announce command (JSON; loopback, signed,
                                      once — as ``/admin/office-hours``, see ``admin.py``)

The opt-out POST acts with the page's form token, or without it when the body is exactly
``List-Unsubscribe=One-Click``: that is a mail provider's one-click unsubscribe
(RFC 8058 §3.2), sent to the URL of the List-Unsubscribe field, whose signed token names
the person. A GET never changes anything.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .admin import AdminTicket, check_admin_token, spend_admin_nonce
from .errors import AnnouncementError
from .flows.announcements import OPT_OUT_OBJECT, OPT_OUT_PURPOSE, announce, opt_out, opted_out
from .tokens import FORM_FIELD, TamperedToken, TokenError, check_form_token

if TYPE_CHECKING:
    from .flows.desks import Desks
    from .state.store import Store
    from .web import WebApp

__all__ = ["admin_route", "announcement_routes"]

log = logging.getLogger(__name__)

ONE_CLICK = "One-Click"  # RFC 8058: the body is "List-Unsubscribe=One-Click"


def announcement_routes(app: WebApp, desks: Callable[[], Desks]) -> list[web.RouteDef]:
    """The routes of the opt-out link and the CLI's announce command, served by ``app``."""

    def claims_of(request: web.Request) -> Any:
        claims = app._verify(request, OPT_OUT_PURPOSE)
        if claims.obj != OPT_OUT_OBJECT:
            raise TamperedToken("This link was made for something else.")
        return claims

    async def page(request: web.Request) -> web.Response:
        claims = claims_of(request)
        store = app.writer.store
        already = await app.writer.call(opted_out, store, claims.person) if store else False
        return app.page(
            "announcements_off.html",
            {"posted": False, "already": already, "email": claims.person, **app._form(claims)},
        )

    async def stop(request: web.Request) -> web.Response:
        claims = claims_of(request)
        form = await request.post()
        if form.get("List-Unsubscribe") != ONE_CLICK:
            check_form_token(app.config.secret, form.get(FORM_FIELD), claims)

        def record() -> bool:
            store = app.writer.store
            if store is None:
                raise RuntimeError("the store is not open")
            with store.transaction():
                return opt_out(store, claims.person, app.clock())

        changed = await app.writer.call(record)
        return app.page(
            "announcements_off.html",
            {
                "posted": changed,
                "already": not changed,
                "email": claims.person,
                **app._form(claims),
            },
        )

    return [
        web.get(f"/{OPT_OUT_PURPOSE}/{{token}}", page),
        web.post(f"/{OPT_OUT_PURPOSE}/{{token}}", stop),
        admin_route(
            app,
            "/admin/announce",
            lambda store, command, now: announce(app.config, store, desks().postman, command, now),
            AnnouncementError,
        ),
    ]


Apply = Callable[["Store", dict[str, Any], datetime], dict[str, Any]]


def admin_route(app: WebApp, path: str, apply: Apply, refused: type[Exception]) -> web.RouteDef:
    """``POST path``: a CLI command from this machine, signed, applied once (``admin.py``).

    ``apply`` runs on the store's writer after the command's nonce is spent; ``refused``
    is its error for a command that cannot be applied (400, its message to the CLI).
    """

    async def command(request: web.Request) -> web.Response:
        from .web import _from_loopback

        if not _from_loopback(request):
            return web.json_response(
                {"error": "only this machine's loopback may do this, not through a proxy"},
                status=403,
            )
        body = await request.read()
        unsafe_token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        try:
            ticket = check_admin_token(app.config.secret, unsafe_token, body, app.clock())
            parsed = json.loads(body)
        except TokenError as exc:
            log.info("refused a command on %s: %s", path, type(exc).__name__)
            return web.json_response({"error": str(exc)}, status=403)
        except ValueError:
            return web.json_response({"error": "the command is not JSON"}, status=400)
        if not isinstance(parsed, dict):
            return web.json_response({"error": "the command is not a JSON object"}, status=400)

        def once(ticket: AdminTicket, parsed: dict[str, Any]) -> dict[str, Any]:
            store = app.writer.store
            if store is None:
                raise RuntimeError("the store is not open")
            now = app.clock()
            spend_admin_nonce(store, ticket, now)
            return apply(store, parsed, now)

        try:
            answer = await app.writer.call(once, ticket, parsed)
        except TokenError as exc:
            return web.json_response({"error": str(exc)}, status=403)
        except refused as exc:
            return web.json_response({"error": str(exc)}, status=400)
        app.changed()
        return web.json_response(answer)

    return web.post(path, command)
