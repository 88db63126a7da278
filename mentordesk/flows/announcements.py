"""Announcements: one email from the coordinator to every mentor, mentee or pair.

``announce`` (the coordinator's ``mentordesk announce``) works in two steps:

- **preview** (the default): one email to the coordinator, exactly as the people will
  get it, and the number who would; nothing else is sent.
- **send**: one email per person, all stored in the outbox in ONE transaction, so a crash
  leaves either every email or none (the outbox then delivers each once, with its own
  Message-ID; see ``mailer.sender`` for the few in flight at a kill). They are paced:
  person n's is due n / ``[announcements] per_minute`` minutes later. The same
  announcement (audience, subject and text) is sent once: a second ``--send`` is refused.

Who gets it (``recipients``), each address once, in this order of kinds:

    mentors    active mentors whose term has not ended (not paused, pending or gone)
    mentees    everyone who sent a request in the last ``MENTEE_WINDOW`` (365 days)
    pairings   both people of every live pairing
    all        all of the above

minus whoever opted out. Each email carries a one-click opt-out link (signed, for
``OPT_OUT_LIFETIME``) and the List-Unsubscribe / List-Unsubscribe-Post fields (RFC 8058);
an opt-out holds for every later announcement. A reply to an announcement is mail like
any other: it reaches the router and, as no flow owns it, the coordinator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..config import Config
from ..errors import AnnouncementError
from ..mailer.outbox import Postman
from ..state.pairings import live_pairings
from ..state.records import MentorStatus, mentor_status, parse_time, term_over
from ..state.store import Store, iso
from ..tokens import sign

__all__ = [
    "AUDIENCES",
    "MAX_BODY_CHARS",
    "OPT_OUT_PURPOSE",
    "announce",
    "opt_out",
    "opt_out_url",
    "opted_out",
    "recipients",
]

AUDIENCES = ("mentors", "mentees", "pairings", "all")
OPT_OUT_PURPOSE = "announcements-off"
OPT_OUT_OBJECT = "announcements"
# An opt-out link must work long after the email came (RFC 8058 asks for no expiry soon).
OPT_OUT_LIFETIME = timedelta(days=2 * 365)
MENTEE_WINDOW = timedelta(days=365)
MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 50_000
THREAD = "announcement"


def _off_key(email: str) -> str:
    return f"announcements-off:{email.strip().lower()}"


def opted_out(store: Store, email: str) -> bool:
    return bool(store.meta(_off_key(email)))


def opt_out(store: Store, email: str, now: datetime) -> bool:
    """Record that ``email`` wants no more announcements; False if they had said so."""
    if opted_out(store, email):
        return False
    store.set_meta(_off_key(email), iso(now))
    store.audit("announcements off", now=now, email=email.strip().lower())
    return True


def opt_out_url(config: Config, email: str, now: datetime) -> str:
    token = sign(
        config.secret,
        purpose=OPT_OUT_PURPOSE,
        person=email.strip().lower(),
        obj=OPT_OUT_OBJECT,
        expires=now + OPT_OUT_LIFETIME,
    )
    return f"{config.program.base_url.rstrip('/')}/{OPT_OUT_PURPOSE}/{token}"


def recipients(store: Store, audience: str, now: datetime) -> list[tuple[str, str]]:
    """(address, name) of everyone ``audience`` reaches, each once, minus opt-outs."""
    if audience not in AUDIENCES:
        raise AnnouncementError(f"no audience {audience!r}: choose one of {', '.join(AUDIENCES)}")
    found: dict[str, str] = {}

    def add(email: str, name: str) -> None:
        key = email.strip().lower()
        if key and key not in found:
            found[key] = name

    if audience in ("mentors", "all"):
        for mentor in store.mentors_where(
            lambda d: mentor_status(d) is MentorStatus.ACTIVE and not term_over(d, now)
        ):
            add(mentor["email"], mentor.get("name") or "")
    if audience in ("mentees", "all"):
        since = now - MENTEE_WINDOW
        for request in sorted(store.requests_where(_created_since(since)), key=_number):
            add(request["mentee"], request.get("name") or "")
    if audience in ("pairings", "all"):
        for pairing in live_pairings(store):
            mentor = store.mentor(pairing["mentor"]) or {}
            request = store.request(int(pairing["request"])) or {}
            add(pairing["mentor"], mentor.get("name") or "")
            add(pairing["mentee"], request.get("name") or "")
    return [(email, name) for email, name in found.items() if not opted_out(store, email)]


def _created_since(since: datetime) -> Any:
    def test(doc: Mapping[str, Any]) -> bool:
        created = parse_time(doc.get("created"))
        return created is not None and created >= since

    return test


def _number(doc: Mapping[str, Any]) -> int:
    return int(doc["number"])


def announce(
    config: Config,
    store: Store,
    postman: Postman,
    command: Mapping[str, Any],
    now: datetime,
    *,
    by: str = "",
    preview_to: str = "",
) -> dict[str, Any]:
    """Preview or send one announcement; the answer says to how many it goes.

    ``command``: audience, subject, body (text), send (bool). Runs on the store's writer;
    raises AnnouncementError, changing nothing, for a command that cannot be sent.
    ``by`` (e.g. "desk:<address>") goes into the audit; ``preview_to`` receives the
    preview instead of ``[program] coordinator`` (the desk's signed-in coordinator).
    """
    who = {"by": by} if by else {}
    previewer = preview_to or config.program.coordinator
    audience, subject, body, send = _checked(command)
    # An address that bounced gets nothing (the mail gate's rule): not counted either.
    people = [
        (email, name) for email, name in recipients(store, audience, now) if postman.may_mail(email)
    ]
    key = hashlib.sha256(f"{audience}\0{subject}\0{body}".encode()).hexdigest()
    paragraphs = [p.strip("\n") for p in body.replace("\r\n", "\n").split("\n\n") if p.strip()]
    context = {"subject": subject, "paragraphs": paragraphs, "audience": audience}
    with store.transaction():
        if not send:
            postman.send(
                "announcement",
                to=previewer,
                now=now,
                context={
                    **context,
                    "preview": True,
                    "count": len(people),
                    "person": {"name": "", "email": previewer},
                    "opt_out_url": opt_out_url(config, previewer, now),
                },
            )
            store.audit(
                "announcement previewed", now=now, audience=audience, count=len(people), **who
            )
            return {"sent": False, "count": len(people), "audience": audience}
        earlier = store.meta(f"announced:{key}")
        if earlier:
            raise AnnouncementError(
                f"this announcement went to {earlier['count']} people on {earlier['at']} "
                "already; change its subject or text to send another"
            )
        number = int(store.meta("next_announcement", 1))
        store.set_meta("next_announcement", number + 1)
        store.set_meta(f"announced:{key}", {"id": number, "at": iso(now), "count": len(people)})
        # Paced: person n's email is due n / per_minute minutes from now.
        gap = timedelta(minutes=1) / config.announcements.per_minute
        for n, (email, name) in enumerate(people):
            url = opt_out_url(config, email, now)
            postman.send(
                "announcement",
                to=email,
                to_name=name,
                now=now,
                context={
                    **context,
                    "preview": False,
                    "person": {"name": name, "email": email},
                    "opt_out_url": url,
                },
                thread=(THREAD, number),
                list_unsubscribe=url,
                not_before=now + n * gap,
            )
        store.audit(
            "announcement sent", now=now, id=number, audience=audience, count=len(people), **who
        )
    return {"sent": True, "count": len(people), "audience": audience, "id": number}


def _checked(command: Mapping[str, Any]) -> tuple[str, str, str, bool]:
    audience = command.get("audience")
    subject = command.get("subject")
    body = command.get("body")
    send = command.get("send", False)
    if not isinstance(audience, str) or audience not in AUDIENCES:
        raise AnnouncementError(f"choose who gets it: one of {', '.join(AUDIENCES)}")
    if not isinstance(subject, str) or not subject.strip():
        raise AnnouncementError("the subject is empty: say in a few words what it is about")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise AnnouncementError(f"the subject is longer than {MAX_SUBJECT_CHARS} characters")
    if not isinstance(body, str) or not body.strip():
        raise AnnouncementError("the text is empty: write what you want to say")
    if len(body) > MAX_BODY_CHARS:
        raise AnnouncementError(f"the text is longer than {MAX_BODY_CHARS} characters")
    if not isinstance(send, bool):
        raise AnnouncementError("send must be true or false")
    return audience, subject.strip(), body.strip(), send
