"""The desk's Announce page: the coordinator's ``mentordesk announce`` from the browser.

    GET  /desk/announce     the form: audience, subject, text
    POST /desk/announce     "Send me a preview" or "Send to N people"

Both buttons call ``flows.announcements.announce``, the same function the CLI's command
reaches, so who gets it, opt-outs, the once-only rule and the pacing are the flow's. The
preview goes to the signed-in coordinator alone; the audit records ``desk:<address>``.
The form's text is capped here, before any work, at sizes a form needs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .errors import AnnouncementError
from .flows.announcements import AUDIENCES, MAX_SUBJECT_CHARS, announce
from .flows.coordinator import DeskOutcome

if TYPE_CHECKING:
    from .desk_web import DeskWeb

__all__ = ["MAX_FORM_BODY_CHARS", "PATH", "announce_routes"]

log = logging.getLogger(__name__)

PATH = "/desk/announce"
#: The longest text the form takes (the CLI's file may be longer: the flow's own cap).
MAX_FORM_BODY_CHARS = 20_000


def announce_routes(desk: DeskWeb) -> list[web.RouteDef]:
    """The Announce page's routes, served with ``desk``'s sessions and pages."""

    async def page(request: web.Request) -> web.Response:
        session = await desk._session(request)
        return _render(desk, request, session, {"audience": "mentors", "subject": "", "body": ""})

    async def act(request: web.Request) -> web.Response:
        session = await desk._posted(request)
        form = await request.post()
        fields = {
            "audience": _text(form, "audience"),
            "subject": _text(form, "subject"),
            "body": _text(form, "body"),
        }
        send = _text(form, "do") == "send"
        problem = _too_long(fields)
        if problem:
            return _render(desk, request, session, fields, DeskOutcome(False, problem), 400)
        config, now = desk.config, desk.app.clock()
        try:
            answer = await desk.app.writer.call(
                announce,
                config,
                desk._store(),
                desk.desks().postman,
                {**fields, "send": send},
                now,
                by=f"desk:{session.person}",
                preview_to=session.person,
            )
        except AnnouncementError as refused:
            log.info("desk: an announcement refused")
            status = 409 if send else 400
            said = str(refused)
            message = f"{said[:1].upper()}{said[1:]}. Nothing was sent."
            return _render(desk, request, session, fields, DeskOutcome(False, message), status)
        desk.app.changed()
        count = int(answer["count"])
        log.info("desk: announcement %s (%d people)", "sent" if send else "previewed", count)
        if send:
            message = (
                f"Queued for {_people(count)}. The outbox sends them paced, "
                f"{config.announcements.per_minute} a minute."
            )
            return _render(desk, request, session, fields, DeskOutcome(True, message))
        message = (
            f"A preview is on its way to {session.person}. "
            f"Sent now, this announcement would reach {_people(count)}."
        )
        return _render(desk, request, session, fields, DeskOutcome(True, message), count=count)

    return [web.get(PATH, page), web.post(PATH, act)]


def _render(
    desk: DeskWeb,
    request: web.Request,
    session: Any,
    fields: Mapping[str, str],
    outcome: DeskOutcome | None = None,
    status: int = 200,
    *,
    count: int | None = None,
) -> web.Response:
    return desk._page(
        request,
        session,
        "desk/announce.html",
        {
            "fields": fields,
            "audiences": AUDIENCES,
            "count": count,
            "outcome": outcome,
            "max_subject": MAX_SUBJECT_CHARS,
            "max_body": f"{MAX_FORM_BODY_CHARS:,}",
            "per_minute": desk.config.announcements.per_minute,
        },
        status=status,
    )


def _too_long(fields: Mapping[str, str]) -> str:
    if len(fields["subject"]) > MAX_SUBJECT_CHARS:
        return (
            f"The subject is {len(fields['subject']):,} characters long; it may have at most "
            f"{MAX_SUBJECT_CHARS}. Nothing was sent: please shorten it."
        )
    if len(fields["body"]) > MAX_FORM_BODY_CHARS:
        return (
            f"The text is {len(fields['body']):,} characters long; it may have at most "
            f"{MAX_FORM_BODY_CHARS:,}. Nothing was sent: please shorten it."
        )
    return ""


def _people(count: int) -> str:
    return "1 person" if count == 1 else f"{count} people"


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""
