"""Stored documents as emails and pages show them (plain functions, no I/O).

What people wrote is echoed back only in part: a request's details or a mentor's
"about" up to ``MAX_ECHO_CHARS`` characters, lists and schedules up to
``MAX_LIST_CHARS``, each marked ``SHORTENED`` where it was cut. One 10 MB request once
became four outgoing emails of 24 MB each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .inbox.fields import Window, format_windows

MAX_ECHO_CHARS = 4_000
MAX_LIST_CHARS = 1_000
SHORTENED = "… [shortened]"


def shortened(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` with at most ``limit`` characters of it kept, cut at a space where one is
    near the end and marked ``SHORTENED``; unchanged when it is short enough."""
    if len(text) <= limit:
        return text
    end = text.rfind(" ", limit * 3 // 4, limit)
    return text[: end if end > 0 else limit].rstrip() + " " + SHORTENED


def tag(number: int) -> str:
    """The reference people see and reply with: MD-0042."""
    return f"MD-{number:04d}"


def windows_to_doc(windows: Iterable[Window]) -> list[list[int]]:
    return [[w.weekday, w.start_minute, w.end_minute] for w in windows]


def windows_from_doc(rows: Iterable[Iterable[int]]) -> tuple[Window, ...]:
    return tuple(Window(*row) for row in rows)


def unwrap(text: str) -> str:
    """Undo the line breaks mail clients put inside paragraphs; keep the paragraphs."""
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip()))
    return "\n\n".join(p for p in paragraphs if p)


def request_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A request for emails and pages. Never contains the mentee's address; what the
    mentee wrote is shortened (``details_shortened`` says whether the details were)."""
    written = _text(doc.get("details"))
    details = unwrap(written[: 2 * MAX_ECHO_CHARS])  # unwrap no more than may be shown
    shown = shortened(details)
    if len(written) > 2 * MAX_ECHO_CHARS and shown == details:
        shown = f"{details} {SHORTENED}"
    return {
        "tag": tag(int(doc["number"])),
        "number": doc["number"],
        "name": shortened(_text(doc.get("name")), MAX_LIST_CHARS),
        "skills": shortened(", ".join(doc.get("skills") or []), MAX_LIST_CHARS),
        "details": shown,
        "details_shortened": shown != details,
        "timezone": shortened(_text(doc.get("timezone")), MAX_LIST_CHARS),
        "availability": shortened(
            format_windows(windows_from_doc(doc.get("availability") or [])), MAX_LIST_CHARS
        ),
        "status": doc.get("status", ""),
        "created": _text(doc.get("created"))[:10],
    }


def mentor_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A mentor as the mentee is introduced to them."""
    return {
        "name": shortened(_text(doc.get("name")), MAX_LIST_CHARS),
        "email": doc.get("email") or "",
        "about": shortened(_text(doc.get("about"))),
        "skills": shortened(", ".join(doc.get("skills") or []), MAX_LIST_CHARS),
        "timezone": shortened(_text(doc.get("timezone")), MAX_LIST_CHARS),
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
