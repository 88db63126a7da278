"""The pages behind an invitation's other-times links (``flows/session_other_times.py``).

    GET  /session-time/{token}   "Move your session to <time>?" and a button
    POST /session-time/{token}   move it (the page's form token required)

The GET only shows whether the time can still be had; the POST moves the session, or
says kindly why not and changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .flows.session_other_times import TIME_PURPOSE

if TYPE_CHECKING:
    from .web import WebApp

# HTTP status of each outcome: a refused move is a conflict or gone, not an error.
TIME_STATUS = {"free": 200, "moved": 200, "taken": 409, "gone": 410, "not_yours": 403}


async def time_page(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, TIME_PURPOSE)
    view = await app.writer.call(
        app._sessions().time_offer_view, claims.obj, claims.person, app.clock()
    )
    return app.page(
        "session_time.html",
        {"view": view, "posted": False, "outcome": "", **app._form(claims)},
        status=TIME_STATUS.get(view["outcome"], 400),
    )


async def time_move(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, TIME_PURPOSE)
    forged = await app._forged(request, claims)
    if forged is not None:
        raise forged  # the link alone is not enough: the button must be our page's
    desk = app._sessions()
    outcome = await app.writer.call(desk.move_to_offer, claims.obj, claims.person, app.clock())
    app.changed()
    view = await app.writer.call(desk.time_offer_view, claims.obj, claims.person, app.clock())
    if outcome != "moved":
        view = {**view, "outcome": outcome}
    return app.page(
        "session_time.html",
        {"view": view, "posted": True, "outcome": outcome, **app._form(claims)},
        status=TIME_STATUS.get(outcome, 400),
    )
