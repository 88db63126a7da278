"""Who is at the coordinator's desk: one-time sign-in links and desk sessions.

Nothing to remember: a coordinator (``[desk] coordinators``, by default ``[program]
coordinator``) types their address and gets a signed link by email (through the one
mail gate). Anyone else gets the same words on the page and no email, so the page says
nothing about who is a coordinator. The link works once (its nonce is spent in the
store) and for ``[desk] sign_in_lifetime``; following it shows a button, and only the
button's POST signs in (mail scanners open links).

A desk session is a random id in an HttpOnly, SameSite=Strict cookie; the store keeps
only its SHA-256, who it is and when it ends (``[desk] session_lifetime``), so a copy
of the state file signs nobody in and signing out ends it for good. Every form on the
desk carries a token bound to the session and to the form's own path
(``form_token_for``): a page elsewhere cannot press a desk button.

Every function here runs on the store's writer thread (``StoreWriter.call``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from .config import Config
from .errors import TamperedToken
from .mailer.outbox import Postman
from .state.store import Store, from_iso, iso
from .tokens import Claims, check_form_token, form_token, sign, verify

__all__ = [
    "COOKIE",
    "SIGN_IN_PURPOSE",
    "DeskSession",
    "check_desk_form",
    "coordinators",
    "end_session",
    "form_token_for",
    "request_sign_in",
    "session_of",
    "sign_in_link",
    "start_session",
]

#: The token purpose of an emailed sign-in link.
SIGN_IN_PURPOSE = "desk-sign-in"
#: The session cookie's name.
COOKIE = "md_desk"
# Store meta: spent sign-in nonces (until their link expires), live sessions, and when
# sign-in links went to each address (the last hour's, for the hourly limit).
_SPENT_META = "desk:spent-links"
_SESSIONS_META = "desk:sessions"
_SENT_META = "desk:links-sent"
#: Sign-in links mailed to one address per hour at most: a stranger pressing the form
#: again and again must not fill the coordinator's inbox.
LINKS_PER_HOUR = 5
_MAX_ADDRESS_CHARS = 254
_FORM_PURPOSE = "desk-form"


@dataclass(frozen=True)
class DeskSession:
    """A signed-in coordinator: ``key`` is the SHA-256 of the cookie's id."""

    key: str
    person: str
    expires: datetime


def coordinators(config: Config) -> tuple[str, ...]:
    """Who may sign in to the desk."""
    return config.desk.coordinators or (config.program.coordinator,)


def clean_address(unsafe_address: str) -> str:
    """A plain address from the sign-in form, lower-case ("" when it is not one)."""
    if len(unsafe_address) > _MAX_ADDRESS_CHARS:
        return ""
    _, address = parseaddr(unsafe_address.strip())
    if "@" not in address or any(c.isspace() for c in address):
        return ""
    return address.lower()


def sign_in_link(config: Config, person: str, now: datetime) -> str:
    """A one-time link to the desk for ``person``, good for ``[desk] sign_in_lifetime``."""
    token = sign(
        config.secret,
        purpose=SIGN_IN_PURPOSE,
        person=person,
        obj=secrets.token_urlsafe(12),
        expires=now + config.desk.sign_in_lifetime,
    )
    return f"{config.program.base_url.rstrip('/')}/desk/sign-in/{token}"


def request_sign_in(
    config: Config, store: Store, postman: Postman, unsafe_address: str, now: datetime
) -> bool:
    """Mail a sign-in link if the address is a coordinator's; True when one was stored.

    The page that called this says the same either way.
    """
    address = clean_address(unsafe_address)
    if address not in coordinators(config):
        store.audit("desk sign-in refused: not a coordinator", now=now)
        return False
    sent = _recent(store.meta(_SENT_META), now - timedelta(hours=1))
    mine = sent.get(address, [])
    if len(mine) >= LINKS_PER_HOUR:
        store.audit("desk sign-in not sent: hourly limit", now=now, to=address)
        return False
    with store.transaction():
        message_id = postman.send(
            "desk_sign_in",
            to=address,
            now=now,
            context={
                "link": sign_in_link(config, address, now),
                "minutes": max(1, int(config.desk.sign_in_lifetime.total_seconds() // 60)),
            },
        )
        sent[address] = [*mine, iso(now)]
        store.set_meta(_SENT_META, sent)
        store.audit("desk sign-in link sent", now=now, to=address, sent=message_id is not None)
    return message_id is not None


def check_sign_in_link(config: Config, unsafe_token: str, now: datetime) -> Claims:
    """The claims of a genuine, unexpired sign-in link for a coordinator (else TokenError)."""
    claims = verify(config.secret, unsafe_token, purpose=SIGN_IN_PURPOSE, now=now)
    if claims.person not in coordinators(config):
        raise TamperedToken(
            "This sign-in link is for an address that no longer signs in to the desk."
        )
    return claims


def link_spent(store: Store, claims: Claims) -> bool:
    """Was this sign-in link used already?"""
    return claims.obj in _as_dict(store.meta(_SPENT_META))


def start_session(
    config: Config, store: Store, unsafe_token: str, now: datetime
) -> tuple[str, DeskSession]:
    """Spend a sign-in link and open a session: (cookie id, session).

    Raises TokenError for a bad, expired or already used link; nothing is stored then.
    """
    claims = check_sign_in_link(config, unsafe_token, now)
    spent = {
        nonce: until
        for nonce, until in _as_dict(store.meta(_SPENT_META)).items()
        if isinstance(until, str) and from_iso(until) > now
    }
    if claims.obj in spent:
        raise TamperedToken(
            "This sign-in link was used already: each one works once. "
            "Ask for a new one on the sign-in page."
        )
    spent[claims.obj] = iso(claims.expires)
    session_id = secrets.token_urlsafe(32)
    session = DeskSession(
        key=_key(session_id),
        person=claims.person,
        expires=now + config.desk.session_lifetime,
    )
    sessions = _live_sessions(store, now)
    sessions[session.key] = {"person": session.person, "expires": iso(session.expires)}
    with store.transaction():
        store.set_meta(_SPENT_META, spent)
        store.set_meta(_SESSIONS_META, sessions)
        store.audit("desk signed in", now=now, by=claims.person)
    return session_id, session


def session_of(
    config: Config, store: Store, unsafe_id: str | None, now: datetime
) -> DeskSession | None:
    """The live session of a cookie's id, for a person who is still a coordinator."""
    if not unsafe_id or len(unsafe_id) > 128:
        return None
    found = _live_sessions(store, now).get(_key(unsafe_id))
    if found is None or found.get("person") not in coordinators(config):
        return None
    return DeskSession(_key(unsafe_id), str(found["person"]), from_iso(str(found["expires"])))


def end_session(store: Store, session: DeskSession, now: datetime) -> None:
    """Sign out: the session's id is good for nothing from now on."""
    sessions = _live_sessions(store, now)
    sessions.pop(session.key, None)
    with store.transaction():
        store.set_meta(_SESSIONS_META, sessions)
        store.audit("desk signed out", now=now, by=session.person)


def form_token_for(config: Config, session: DeskSession, path: str) -> str:
    """The hidden field of a desk form that posts to ``path``."""
    return form_token(config.secret, _form_claims(session, path))


def check_desk_form(config: Config, session: DeskSession, path: str, unsafe_token: object) -> None:
    """Raise ForgedForm unless the token is the one our page put in this form."""
    check_form_token(config.secret, unsafe_token, _form_claims(session, path))


def _form_claims(session: DeskSession, path: str) -> Claims:
    return Claims(_FORM_PURPOSE, session.person, f"{session.key}:{path}", session.expires)


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


def _live_sessions(store: Store, now: datetime) -> dict[str, dict[str, Any]]:
    """The stored sessions that have not ended (the ended ones are dropped on the next write)."""
    return {
        key: value
        for key, value in _as_dict(store.meta(_SESSIONS_META)).items()
        if isinstance(value, dict)
        and isinstance(value.get("expires"), str)
        and from_iso(value["expires"]) > now
    }


def _recent(raw: Any, since: datetime) -> dict[str, list[str]]:
    recent: dict[str, list[str]] = {}
    for address, times in _as_dict(raw).items():
        kept = [t for t in times if isinstance(t, str) and from_iso(t) > since]
        if kept:
            recent[address] = kept
    return recent


def _as_dict(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else {}
