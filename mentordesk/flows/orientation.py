"""Orientation: the program's own welcome email to each new mentor and each new mentee.

The texts are the program's Markdown files (``[orientation]``, read at start by
``config.py``; rendered by ``mailer/welcome.py``). Each person gets one once, ever:
the store keeps a mark per address, written in the same transaction as the email, so a
restart, a crash and replay of the message, or a re-enrollment never sends it twice.

A mentor is welcomed when active: at enrollment, or — where mentors wait for approval
(status ``pending``) — by the approval step, which calls ``welcome_mentor`` too.
A mentee is welcomed with their first request from that address.
"""

from __future__ import annotations

import logging
from datetime import datetime

from markupsafe import Markup

from ..config import Config
from ..mailer.compose import first_name
from ..mailer.outbox import Postman
from ..mailer.welcome import render_welcome
from ..state.records import MentorStatus, mentor_status
from ..state.store import Store, iso

log = logging.getLogger(__name__)

MENTOR, MENTEE = "mentor", "mentee"


def welcomed_key(role: str, email: str) -> str:
    """The store's mark that ``email`` has had the ``role`` welcome."""
    return f"welcomed:{role}:{email.strip().lower()}"


class Orientation:
    """Sends the welcome emails, each once per person."""

    def __init__(self, config: Config, store: Store, postman: Postman) -> None:
        self.config = config
        self.store = store
        self.postman = postman

    def welcome_mentor(self, email: str, now: datetime) -> bool:
        """Welcome the mentor ``email`` if they are active and have not had it yet (the
        enrollment and approval steps both call this). True when it was sent."""
        markdown = self.config.orientation.mentor_welcome
        mentor = self.store.mentor(email)
        if not markdown or mentor is None or mentor_status(mentor) is not MentorStatus.ACTIVE:
            return False
        return self._welcome(MENTOR, markdown, email, mentor.get("name") or "", now, None)

    def welcome_mentee(self, email: str, name: str, number: int, now: datetime) -> bool:
        """Welcome a mentee with their first request (``number``): not one who wrote to us
        before. True when it was sent."""
        markdown = self.config.orientation.mentee_welcome
        if not markdown:
            return False
        if any(n != number for n in self.store.request_numbers_of(email)):
            return False
        return self._welcome(MENTEE, markdown, email, name, now, number)

    def _welcome(
        self, role: str, markdown: str, email: str, name: str, now: datetime, number: int | None
    ) -> bool:
        key = welcomed_key(role, email)
        if self.store.meta(key):
            return False
        program = self.config.program
        welcome = render_welcome(
            markdown,
            {
                "name": name or "there",
                "first_name": first_name(name) or "there",
                "program": program.name,
                "address": program.address,
            },
            default_subject=f"Welcome to {program.name}",
        )
        # One transaction (joining the caller's, if any): the mark and the email together.
        with self.store.transaction():
            self.store.set_meta(key, iso(now))
            self.postman.send(
                "orientation_welcome",
                to=email,
                to_name=name,
                now=now,
                context={
                    "subject": welcome.subject,
                    "body_text": welcome.text,
                    "body_html": Markup(welcome.html),  # rendered with raw HTML off
                },
                thread=("mentor", email) if role == MENTOR else ("request", number),
                request=number,
            )
            self.store.audit("welcomed", now=now, role=role, to=email, request=number)
        return True
