"""The stdlib ``email`` policies mentordesk uses, with a header factory that is cheaper.

``email.headerregistry.HeaderRegistry`` builds a brand-new class (``type(...)``) every
time a header is set or read — a good part of the cost of building or parsing a message,
and garbage for the cycle collector. The classes it builds hold no state of their own,
so ``HeaderClasses`` makes each one once and reuses it; what the headers parse, fold and
say is exactly what the stdlib registry's would.

``READ``, the policy for reading mail, also reuses the header objects it made, by (name,
value): the parser reads the same Content-Type or From several times while walking one
message, and most messages share their To, Content-Type and MIME-Version with the ones
before them. Reading never changes a header object, so one serves every reader.
"""

from __future__ import annotations

import email.policy
import functools
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from typing import Any

__all__ = ["DEFAULT", "READ", "WIRE", "HeaderClasses", "SharedHeaders"]

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


class SharedHeaders(HeaderClasses):
    """``HeaderClasses`` that reuses the last ``size`` header objects it made from strings.

    For reading only: a header object handed out here may be handed out again.
    """

    def __init__(self, size: int = 1024) -> None:
        super().__init__()
        self._made = functools.lru_cache(maxsize=size)(super().__call__)

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if isinstance(value, str):
            return self._made(name, value)
        return super().__call__(name, value)


# The stdlib's own policies but for the header factory: ``DEFAULT`` is
# email.policy.default, ``WIRE`` is email.policy.SMTP (CRLF) that writes headers stored
# with ``set_raw`` as they are (see compose.py), ``READ`` is email.policy.default for
# parsing received mail.
DEFAULT = email.policy.default.clone(header_factory=HeaderClasses())
WIRE = email.policy.SMTP.clone(refold_source="none", header_factory=HeaderClasses())
READ: email.policy.EmailPolicy[EmailMessage] = email.policy.default.clone(
    header_factory=SharedHeaders()
)
