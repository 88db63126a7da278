"""The outbox: every email is stored before it is sent (sender.py sends it).

``Postman`` turns a template and a context into a stored outbox item (inside the
caller's store transaction, so an email exists exactly when the decision that caused it
does): most as drafts, which the sender writes just before sending them (drafts.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import MIMEPart
from typing import Any, NamedTuple, Protocol, cast

from .. import foreground
from ..config import ProgramConfig
from ..inbox.subjects import reply_subject
from ..state.store import Store, iso
from .compose import Email, Renderer, make_message_id, message_bytes, message_head
from .drafts import NotPlain, new_draft, plain
from .mime_body import parts_bytes

log = logging.getLogger(__name__)


class Answered(Protocol):
    """What Postman needs of the message it answers (a ParsedMessage fits)."""

    @property
    def message_id(self) -> str: ...

    @property
    def references(self) -> tuple[str, ...]: ...


class Asking(Answered, Protocol):
    """A person's message we answer or pass on to the coordinator (a ParsedMessage fits)."""

    @property
    def sender(self) -> str: ...

    @property
    def sender_name(self) -> str: ...

    @property
    def subject(self) -> str: ...

    @property
    def new_text(self) -> str: ...

    @property
    def text(self) -> str: ...


class Postman:
    """The one mail gate: every email leaves through ``send`` and its two helpers.

    The rules that decide whether an email may go live here and nowhere else:

    - an address marked undeliverable (a bounce or a 5xx) gets nothing (``send``);
    - a person gets at most ``replies_per_sender_per_hour`` answers (``reply``, SPEC §5);
    - the coordinator hears of one event once (``tell_coordinator`` with ``once``).

    It composes from the templates and stores the email in the outbox inside the
    caller's store transaction, so an email exists exactly when the decision that
    caused it does.
    """

    def __init__(
        self, program: ProgramConfig, store: Store, renderer: Renderer, *, replies_per_hour: int = 0
    ) -> None:
        self.program = program
        self.store = store
        self.renderer = renderer
        self.replies_per_hour = replies_per_hour  # 0: no limit

    def may_mail(self, email: str) -> bool:
        """False for an address marked undeliverable: nothing is sent to it."""
        return not self.store.is_bounced(email)

    def send(
        self,
        template: str,
        *,
        to: str,
        now: datetime,
        context: Mapping[str, Any],
        to_name: str = "",
        answering: Answered | None = None,
        thread: tuple[str, Any] | None = None,
        request: int | None = None,
        alternatives: Sequence[MIMEPart] = (),
        attachments: Sequence[MIMEPart] = (),
        follows: Answered | None = None,
        list_unsubscribe: str | None = None,
        not_before: datetime | None = None,
    ) -> str | None:
        """Store the email ``template`` makes for ``to``: as a draft the sender writes
        (drafts.py) when ``context`` is plain data, else rendered now. Returns its
        Message-ID, or None when ``to`` is undeliverable (nothing is stored but an audit
        line).

        ``answering`` threads the email on a person's message (RFC 5322 §3.6.4) and marks
        it ``auto-replied``; otherwise it is ``auto-generated`` (RFC 3834 §5).
        ``follows`` threads it on an earlier message without answering one (a reminder
        following our own invitation): still ``auto-generated``.
        ``thread`` = (kind, ref) lets replies to this email find their way back.
        ``list_unsubscribe`` (a URL) adds the one-click opt-out fields of RFC 8058.
        ``not_before`` holds the email back until then (announcements are paced).
        """
        foreground.make_way()  # composing is the cost of a claim's emails (foreground.py)
        if not self.may_mail(to):
            self.store.audit(
                "not sent: address bounced", now=now, to=to, kind=template, request=request
            )
            return None
        message_id = make_message_id(self.program.domain)
        references: list[str] = []
        parent = answering or follows
        if parent is not None:
            references = [*parent.references, parent.message_id]
        draftable = _draftable(context, alternatives, attachments)
        rendered_context = {
            "program": self.program,
            **(draftable.context if draftable is not None else context),
        }
        if draftable is not None:  # written at send time (drafts.py)
            subject, text, html = self.renderer.subject(template, rendered_context), "", ""
        else:
            rendered = self.renderer.render(template, rendered_context)
            subject, text, html = rendered.subject, rendered.text, rendered.html
        email = Email(
            from_addr=self.program.address,
            from_name=self.program.name,
            to=to,
            to_name=to_name,
            subject=subject,
            text=text,
            html=html,
            message_id=message_id,
            in_reply_to=parent.message_id if parent else None,
            references=references,
            auto_submitted="auto-replied" if answering else "auto-generated",
            date=now,
            alternatives=alternatives,
            attachments=attachments,
            list_unsubscribe=list_unsubscribe,
        )
        data: bytes | None = None
        draft: dict[str, Any] | None = None
        if draftable is not None:
            # Its header fields are written (and so checked) now: a bad address fails
            # the decision that made the email, not the sending.
            draft = new_draft(
                template,
                draftable.context,
                message_head(email),
                draftable.alternatives,
                draftable.attachments,
            )
        else:
            data = message_bytes(email)
        self.store.enqueue(
            message_id=message_id,
            sender=self.program.address,
            recipients=[to],
            data=data,
            draft=draft,
            kind=template,
            now=now,
            request=request,
            due=not_before,
            subject=subject,
        )
        if thread is not None:
            self.store.link_thread(message_id, kind=thread[0], ref=thread[1])
        return message_id

    def reply(
        self,
        msg: Asking,
        template: str,
        now: datetime,
        *,
        context: Mapping[str, Any],
        number: int | None = None,
        thread: tuple[str, Any] | None = None,
        alternatives: Sequence[MIMEPart] = (),
        attachments: Sequence[MIMEPart] = (),
    ) -> str | None:
        """Answer a person's message, within the per-sender limit (SPEC §5 loop guard).

        The subject is theirs with one ``Re:`` and the request's tag; a reply with a
        request ``number`` is threaded on that request unless ``thread`` says otherwise.
        """
        if not self.may_answer(msg, now):
            return None
        if thread is None and number is not None:
            thread = ("request", number)
        return self.send(
            template,
            to=msg.sender,
            to_name=msg.sender_name,
            now=now,
            context={"subject": reply_subject(msg.subject, number), **context},
            answering=msg,
            thread=thread,
            request=number,
            alternatives=alternatives,
            attachments=attachments,
        )

    def may_answer(self, msg: Asking, now: datetime) -> bool:
        """May we answer ``msg``'s sender now? Takes one of their hourly reply slots.

        An answer of several emails (office hours: one invitation per series) asks once,
        then sends each with ``send(answering=msg)``.
        """
        if not self.may_mail(msg.sender):
            self.store.audit("not answered: address bounced", now=now, to=msg.sender)
            return False
        if self.replies_per_hour and not self.store.take_reply_slot(
            msg.sender, now=now, per_hour=self.replies_per_hour
        ):
            self.store.audit("not answered: reply limit", now=now, to=msg.sender)
            log.warning("reply limit reached for %s; not answering", msg.sender)
            return False
        return True

    def tell_coordinator(
        self,
        reason: str,
        now: datetime,
        *,
        msg: Asking | None = None,
        error: str = "",
        address: str = "",
        attachment: bytes | None = None,
        once: str | None = None,
        request: int | None = None,
        template: str = "coordinator_notice",
        context: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Tell the coordinator about something a person must look at.

        ``once`` names the event (``"bounce:ann@example.org"``): a second notice with the
        same name is not sent. Without it, one notice per call (the caller's message is
        processed once). ``attachment`` goes along as an opaque ``original.eml``: a
        malformed message may not survive re-serialising.
        """
        if once is not None:
            if self.store.meta(f"told:{once}"):
                return None
            self.store.set_meta(f"told:{once}", iso(now))
        parts: list[MIMEPart] = []
        if attachment is not None:
            part = MIMEPart()
            part.set_content(
                attachment,
                maintype="application",
                subtype="octet-stream",
                filename="original.eml",
            )
            parts.append(part)
        self.store.audit(
            "coordinator told",
            now=now,
            reason=reason,
            message_id=msg.message_id if msg else None,
            sender=msg.sender if msg else "",
            sender_name=msg.sender_name if msg else "",
            subject=msg.subject if msg else "",
            request=request,
        )
        notice = {
            "reason": reason,
            "error": error,
            "address": address,
            "sender": msg.sender if msg else "",
            "sender_name": msg.sender_name if msg else "",
            "subject": msg.subject if msg else "",
            "excerpt": (msg.new_text or msg.text)[:2000] if msg else "",
        }
        return self.send(
            template,
            to=self.program.coordinator,
            now=now,
            context={**notice, **(context or {})},
            attachments=parts,
            request=request,
        )


class _Draftable(NamedTuple):
    """What a draft stores besides its header fields."""

    context: dict[str, Any]
    alternatives: list[bytes]
    attachments: list[bytes]


def _draftable(
    context: Mapping[str, Any], alternatives: Sequence[MIMEPart], attachments: Sequence[MIMEPart]
) -> _Draftable | None:
    """An email whose context is plain data is stored as a draft, its calendar parts
    written now (they are bytes already); None when it is rendered at once: its context
    holds anything else, or one of its parts is of a shape the email package writes."""
    plain_context = _plain_or_none(context)
    if plain_context is None:
        return None
    alternatives_bytes, attachments_bytes = parts_bytes(alternatives), parts_bytes(attachments)
    if alternatives_bytes is None or attachments_bytes is None:
        return None
    return _Draftable(plain_context, alternatives_bytes, attachments_bytes)


def _plain_or_none(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """The context as a draft stores it, or None when it must be rendered at once."""
    try:
        return cast(dict[str, Any], plain(context))
    except NotPlain:
        return None
