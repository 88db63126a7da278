"""The pages behind a pairing's links (``flows/pairings``): registered by ``web.WebApp``.

    GET  /pairing/{token}   the question ("orientation done?", "going well?", "another
                            term?") and one button              POST: record it
    POST /admin/pairings    the CLI's pairing commands (JSON; loopback, signed, once)

The token's object is ``<pairing id>:<action>``; the person is the mentor or the mentee.
As every page here: a GET shows, only the button's POST (with the page's form token)
acts, and it acts once (a second press shows what was recorded).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import OfficeHoursError
from .flows.pairing_admin import pairing_admin
from .flows.pairings import ACTIONS, PAIRING_PURPOSE, PairingDesk
from .tokens import Claims
from .web_admin import admin_route

if TYPE_CHECKING:
    from .web import WebApp

__all__ = ["pairing_routes"]

STATUS = {"unknown": 404, "not_yours": 403, "over": 410, "early": 409}


def _parse(claims: Claims) -> tuple[int, str]:
    number, _, action = claims.obj.partition(":")
    if not number.isdigit() or action not in ACTIONS:
        raise web.HTTPNotFound()
    return int(number), action


def pairing_routes(app: WebApp, desk: Callable[[], PairingDesk]) -> list[web.RouteDef]:
    """The GET and POST routes of the pairing links, served by ``app``."""

    def show(view: dict[str, Any], claims: Claims, posted: bool) -> web.Response:
        return app.page(
            "pairing.html",
            {"view": view, "posted": posted, **app._form(claims)},
            status=STATUS.get(view["outcome"], 200),
        )

    async def page(request: web.Request) -> web.Response:
        claims = app._verify(request, PAIRING_PURPOSE)
        pairing_id, action = _parse(claims)
        view = await app.writer.call(desk().view, pairing_id, claims.person, action)
        return show(view, claims, posted=False)

    async def act(request: web.Request) -> web.Response:
        claims = app._verify(request, PAIRING_PURPOSE)
        pairing_id, action = _parse(claims)
        forged = await app._forged(request, claims)

        def press() -> dict[str, Any]:
            pairings, now = desk(), app.clock()
            if (
                forged is not None
                and pairings.view(pairing_id, claims.person, action)["outcome"] == "ask"
            ):
                raise forged
            return pairings.act(pairing_id, claims.person, action, now)

        view = await app.writer.call(press)
        app.changed()
        return show(view, claims, posted=True)

    return [
        web.get("/pairing/{token}", page),
        web.post("/pairing/{token}", act),
        admin_route(
            app,
            "/admin/pairings",
            lambda store, command, now: pairing_admin(desk(), command, now),
            OfficeHoursError,
        ),
    ]
