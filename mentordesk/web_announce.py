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

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import AnnouncementError
from .flows.announcements import OPT_OUT_OBJECT, OPT_OUT_PURPOSE, announce, opt_out, opted_out
from .tokens import FORM_FIELD, TamperedToken, check_form_token
from .web_admin import admin_route

if TYPE_CHECKING:
    from .flows.desks import Desks
    from .web import WebApp

__all__ = ["announcement_routes"]

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
