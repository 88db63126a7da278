"""What a browser sends in a form or a query, read without trusting it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .inbox.zones import resolve_timezone

__all__ = ["form_text", "zone_param"]


def form_text(form: Mapping[str, Any], name: str) -> str:
    """A text field of a posted form ("" when missing or a file)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def zone_param(unsafe_zone: str | None) -> str | None:
    """An IANA zone name sent by the browser, if it is one we know; else None."""
    if not unsafe_zone or len(unsafe_zone) > 64:
        return None
    zone = resolve_timezone(unsafe_zone)
    return zone if zone == unsafe_zone else None
