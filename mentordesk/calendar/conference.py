"""Video-call links for sessions: the per-session room template, a mentor's own link, and
how an invitation carries it (RFC 7986 CONFERENCE, RFC 5545 URL and LOCATION).

``[sessions] call_link`` is a template such as ``https://meet.jit.si/{program}-{random}``;
``fill_call_link`` makes one session's room from it. A mentor may give their own link in
the enrollment form (``Call link:``); ``https_url_problem`` is the one check both pass.
Pure functions; the random part comes from ``secrets``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from icalendar import Event, vUri

__all__ = [
    "CALL_LABEL",
    "CALL_PLACEHOLDERS",
    "MAX_CALL_LINK_CHARS",
    "add_call",
    "call_template_problem",
    "call_url_of",
    "fill_call_link",
    "https_url_problem",
    "random_room",
]

MAX_CALL_LINK_CHARS = 300
CALL_LABEL = "Video call"
# What a template may say, and what each becomes (see fill_call_link).
CALL_PLACEHOLDERS = ("program", "request", "random")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f<>\"'\\^`{|}]")


def https_url_problem(unsafe_url: str) -> str | None:
    """Why ``unsafe_url`` cannot be a call link (None: it can): a full https:// address
    with a host, at most ``MAX_CALL_LINK_CHARS`` long, with nothing that would break a
    calendar line or an HTML attribute."""
    if len(unsafe_url) > MAX_CALL_LINK_CHARS:
        return f"it is longer than {MAX_CALL_LINK_CHARS} characters"
    if not unsafe_url.lower().startswith("https://"):
        return "it does not start with https://"
    if _UNSAFE.search(unsafe_url):
        return "it has spaces or characters a link cannot have"
    try:
        parts = urlsplit(unsafe_url)
        port = parts.port  # raises ValueError for a bad port
    except ValueError:
        return "it is not a web address"
    del port
    if not parts.hostname or "." not in parts.hostname:
        return "it names no web server"
    return None


def _slug(text: str) -> str:
    """'Code Mentors!' → 'code-mentors': safe in any room name."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "session"


def random_room() -> str:
    """An unguessable room part: 16 lower-case letters and digits (about 82 bits)."""
    alphabet = "abcdefghijkmnopqrstuvwxyz23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def fill_call_link(template: str, *, program: str, request: int, random: str) -> str:
    """The room for one session: ``{program}`` is the program's name as a slug,
    ``{request}`` the request's tag (``md-0042``), ``{random}`` ``random``."""
    values = {"program": _slug(program), "request": f"md-{request:04d}", "random": random}
    return _PLACEHOLDER.sub(lambda found: values[found.group(1)], template)


def call_template_problem(template: str) -> str | None:
    """Why ``template`` cannot make call links (None: it can)."""
    unknown = [p for p in _PLACEHOLDER.findall(template) if p not in CALL_PLACEHOLDERS]
    if unknown:
        known = ", ".join("{" + name + "}" for name in CALL_PLACEHOLDERS)
        return f"unknown placeholder {{{unknown[0]}}} (known: {known})"
    sample = fill_call_link(template, program="Program", request=1, random=random_room())
    problem = https_url_problem(sample)
    return f"the links it makes are not usable: {problem}" if problem else None


def call_url_of(session: Mapping[str, Any], mentor: Mapping[str, Any]) -> str:
    """Where the two meet: the mentor's own link wins over the session's room (each
    checked again: a link that is not a usable https address is left out)."""
    for unsafe_url in (mentor.get("call_link"), session.get("room")):
        if isinstance(unsafe_url, str) and unsafe_url and https_url_problem(unsafe_url) is None:
            return unsafe_url
    return ""


def add_call(event: Event, url: str, label: str = CALL_LABEL) -> None:
    """Put ``url`` where calendar apps look for a meeting link: URL (RFC 5545 §3.8.4.6)
    and CONFERENCE (RFC 7986 §5.11), which Thunderbird, Apple Calendar and others show
    as a join button. LOCATION is set by the caller. ``url`` must pass
    ``https_url_problem``."""
    problem = https_url_problem(url)
    if problem:
        raise ValueError(f"bad call link {url!r}: {problem}")
    event.add("url", vUri(url))
    # LABEL is a parameter value: no control characters, no DQUOTE (RFC 5545 §3.1).
    safe_label = re.sub(r'[\x00-\x1f\x7f";:,]', " ", label).strip() or CALL_LABEL
    event.add(
        "conference",
        vUri(url),
        parameters={"VALUE": "URI", "FEATURE": "VIDEO", "LABEL": safe_label},
    )
