"""Stored documents as emails and pages show them (plain functions, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .inbox.fields import Window, format_windows


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
    """A request for emails and pages. Never contains the mentee's address."""
    return {
        "tag": tag(int(doc["number"])),
        "number": doc["number"],
        "name": doc.get("name") or "",
        "skills": ", ".join(doc.get("skills") or []),
        "details": unwrap(doc.get("details") or ""),
        "timezone": doc.get("timezone") or "",
        "availability": format_windows(windows_from_doc(doc.get("availability") or [])),
        "status": doc.get("status", ""),
        "created": (doc.get("created") or "")[:10],
    }


def mentor_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A mentor as the mentee is introduced to them."""
    return {
        "name": doc.get("name") or "",
        "email": doc.get("email") or "",
        "about": doc.get("about") or "",
        "skills": ", ".join(doc.get("skills") or []),
        "timezone": doc.get("timezone") or "",
    }
