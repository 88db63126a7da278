"""The stdlib ``email`` policies mentordesk uses, with a header factory that is cheaper.

``email.headerregistry.HeaderRegistry`` builds a brand-new class (``type(...)``) every
time a header is set or read — a good part of the cost of building or parsing a message,
and garbage for the cycle collector. The classes it builds hold no state of their own,
so ``HeaderClasses`` makes each one once and reuses it; what the headers parse, fold and
say is exactly what the stdlib registry's would.

``PerMessageHeaders`` also remembers the header objects it made, by (name, value): the
parser reads the same Content-Type or From several times while walking one message. Its
cache is meant to live as long as one message (a fresh policy per parse), so it never
grows with the traffic.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from typing import Any

__all__ = ["DEFAULT", "WIRE", "HeaderClasses", "PerMessageHeaders", "per_message_policy"]

# (registered class, base class) → the header class HeaderRegistry makes of them.
_MADE: dict[tuple[type[Any], type[BaseHeader]], type[BaseHeader]] = {}


class HeaderClasses(HeaderRegistry):
    """``HeaderRegistry`` that builds each header class once (see the module docstring)."""

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = (self.registry.get(name.lower(), self.default_class), self.base_class)
        made = _MADE.get(key)
        if made is None:
            made = _MADE[key] = super().__getitem__(name)
        return made


class PerMessageHeaders(HeaderClasses):
    """``HeaderClasses`` that also reuses the header objects it made, for one message."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if not isinstance(value, str):
            return super().__call__(name, value)
        key = (name, value)
        header = self._made.get(key)
        if header is None:
            header = self._made[key] = super().__call__(name, value)
        return header


# The stdlib's own policies but for the header factory: ``DEFAULT`` is
# email.policy.default, ``WIRE`` is email.policy.SMTP (CRLF) that writes headers stored
# with ``set_raw`` as they are (see compose.py).
DEFAULT = email.policy.default.clone(header_factory=HeaderClasses())
WIRE = email.policy.SMTP.clone(refold_source="none", header_factory=HeaderClasses())


def per_message_policy() -> email.policy.EmailPolicy[EmailMessage]:
    """email.policy.default with a ``PerMessageHeaders`` factory: use it for one message."""
    return email.policy.default.clone(header_factory=PerMessageHeaders())
