"""The pages behind the feedback links of an after-session email (``flows/feedback.py``).

    GET  /rate/{token}?score=N     the rating form, the score clicked in the email chosen
    POST /rate/{token}             the rating and an optional comment
    GET  /attended/{token}         "Did your session take place?", the answer pre-chosen
    POST /attended/{token}         the answer
    GET  /followup/{token}         "Would you like another session?"
    POST /followup/{token}         ask for one (a new request), with a comment

Each GET shows what was already answered and changes nothing; each POST records the
answer, or says kindly why it cannot, and changes nothing else.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from aiohttp import web

from .flows.feedback import ATTENDANCE, FeedbackDesk, FeedbackPage, clean_comment, parse_score
from .flows.feedback_results import RATINGS
from .tokens import Claims
from .web_forms import form_text

if TYPE_CHECKING:
    from .web import WebApp

__all__ = ["FEEDBACK_STATUS", "feedback_routes"]

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


def feedback_routes(app: WebApp) -> list[web.RouteDef]:
    return [
        web.get("/rate/{token}", functools.partial(rate_page, app)),
        web.post("/rate/{token}", functools.partial(rate, app)),
        web.get("/attended/{token}", functools.partial(attended_page, app)),
        web.post("/attended/{token}", functools.partial(attended, app)),
        web.get("/followup/{token}", functools.partial(followup_page, app)),
        web.post("/followup/{token}", functools.partial(followup, app)),
    ]


async def rate_page(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, "rate")
    score = parse_score(request.query.get("score"))
    page = await app.writer.call(
        _desk(app).rating_page, claims.obj, claims.person, app.clock(), score
    )
    return _page(app, "rate.html", page)


async def rate(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, "rate")
    form = await request.post()
    page = await app.writer.call(
        _desk(app).rate,
        claims.obj,
        claims.person,
        parse_score(form_text(form, "score")),
        clean_comment(form_text(form, "comment")),
        app.clock(),
    )
    return _page(app, "rate.html", page)


async def attended_page(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, "attended")
    page = await app.writer.call(
        _desk(app).attendance_page,
        _session_uid(claims),
        claims.person,
        request.query.get("answer", ""),
    )
    return _page(app, "attended.html", page)


async def attended(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, "attended")
    form = await request.post()
    page = await app.writer.call(
        _desk(app).record_attendance,
        _session_uid(claims),
        claims.person,
        form_text(form, "answer"),
        app.clock(),
    )
    return _page(app, "attended.html", page)


async def followup_page(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, "followup")
    page = await app.writer.call(_desk(app).followup_page, _session_uid(claims), claims.person)
    return _page(app, "followup.html", page)


async def followup(app: WebApp, request: web.Request) -> web.Response:
    claims = app._verify(request, "followup")
    form = await request.post()
    page = await app.writer.call(
        _desk(app).request_followup,
        _session_uid(claims),
        claims.person,
        clean_comment(form_text(form, "comment")),
        app.clock(),
    )
    app.changed()
    return _page(app, "followup.html", page)


def _desk(app: WebApp) -> FeedbackDesk:
    return FeedbackDesk(app.claims())


def _page(app: WebApp, name: str, page: FeedbackPage) -> web.Response:
    return app.page(
        name,
        {
            "page": page,
            "ratings": RATINGS,
            "labels": dict(RATINGS),
            "choices": list(ATTENDANCE.items()),
        },
        status=FEEDBACK_STATUS.get(page.outcome, 400),
    )


def _session_uid(claims: Claims) -> str:
    """The session a feedback link is about; other objects have no page here."""
    kind, _, uid = claims.obj.partition(":")
    if kind != "session" or not uid:
        raise web.HTTPNotFound()
    return uid
