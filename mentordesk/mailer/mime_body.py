"""The MIME structure of our emails below their header fields, written directly.

``compose.message_bytes`` writes an email's head itself; this writes what follows it —
the multipart/alternative of the text and HTML bodies (quoted-printable UTF-8, as
``set_content`` encodes them), the calendar parts, and the multipart/mixed around the
attachments — byte for byte as the email package's generator would, but for the random
boundaries (tests/test_compose.py compares the two). Parts of another shape than the
program makes are left to the email package (``parts_bytes`` says None).
"""

from __future__ import annotations

import functools
import random
import re
import sys
from collections.abc import Sequence
from email import quoprimime
from email.message import MIMEPart

from ..mime import DEFAULT, WIRE

__all__ = ["LINE_LENGTH", "mime_tree", "parts_bytes"]

# The longest line set_content lets a quoted-printable body have (the default policy's).
_QP_LINE = DEFAULT.max_line_length or 78
#: The longest header line the wire policy leaves unfolded.
LINE_LENGTH = WIRE.max_line_length or 78
# Digits in a MIME boundary, as the email package's generator makes them.
_BOUNDARY_DIGITS = len(repr(sys.maxsize - 1))


def parts_bytes(parts: Sequence[MIMEPart]) -> list[bytes] | None:
    """Each part as ``message_bytes`` writes it, or None when one is not of the shape
    it writes directly (``_leaf_part``)."""
    written = [_leaf_part(part) for part in parts]
    return None if None in written else list(filter(None, written))


def mime_tree(
    text: str, html: str, alternatives: Sequence[bytes], attachments: Sequence[bytes]
) -> bytes:
    """build_message's tree, what follows the head: multipart/alternative (text, HTML,
    then ``alternatives``), inside a multipart/mixed with the attachments if any."""
    texts = [_text_part("plain", text), _text_part("html", html)]
    entity = _multipart("alternative", [*texts, *alternatives])
    if attachments:
        entity = _multipart("mixed", [entity, *attachments])
    return entity


def _text_part(subtype: str, content: str) -> bytes:
    """A text/``subtype`` part in UTF-8, quoted-printable, as ``set_content`` makes it."""
    lines = content.encode("utf-8").splitlines()
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii")
    return head + (b"".join(map(_qp_line, lines)) if lines else b"\r\n")


# quoprimime.body_encode encodes each line on its own, and most lines of our emails are
# the templates' own, the same in every email: each is encoded once.
@functools.lru_cache(maxsize=8192)
def _qp_line(line: bytes) -> bytes:
    """One body line (no line end) quoted-printable, with its CRLF."""
    encoded = quoprimime.body_encode(line.decode("latin-1"), _QP_LINE, "\r\n")
    return encoded.encode("ascii") + b"\r\n"


def _multipart(subtype: str, parts: Sequence[bytes]) -> bytes:
    """A multipart/``subtype`` entity (its Content-Type field, then its body) of
    ``parts`` (each one an entity too), as the generator writes it."""
    boundary = _boundary(parts)
    field = b'Content-Type: multipart/%s; boundary="%s"' % (subtype.encode("ascii"), boundary)
    if len(field) > LINE_LENGTH:  # folded before the parameter, as the policy folds it
        field = field.replace(b"; ", b";\r\n ", 1)
    body = b"".join(b"\r\n--%s\r\n%s" % (boundary, part) for part in parts)
    return b"%s\r\n%s\r\n--%s--\r\n" % (field, body, boundary)


# The fields a part made by set_content carries (calendar_mime_parts, the coordinator's
# original.eml).
_PART_FIELDS = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})
# Payload line ends, as the generator finds them (email.generator.NLCRE).
_LINE_END = re.compile(r"\r\n|\r|\n")


def _leaf_part(part: MIMEPart) -> bytes | None:
    """``part`` (its fields, then its body) as the generator writes it, or None when it is
    not of the shape written here: a single part with an ASCII payload (set_content's
    base64 or 7bit) and only Content-* fields that are short lines of printable ASCII.
    Of such a field the header class writes the value as it is; anything else (folding,
    encoded words, parts inside parts, the generator's special cases for message/* and
    multipart/*) is left to the email package, in ``message_bytes``' long way."""
    payload = part.get_payload()
    if (
        not isinstance(payload, str)
        or not payload.isascii()
        or part.get_content_maintype() in ("multipart", "message")
    ):
        return None
    fields = []
    for name, value in part.raw_items():
        field = f"{name}: {value}"
        if (
            name.lower() not in _PART_FIELDS
            or not str(value)
            or len(field) > LINE_LENGTH
            or not (field.isascii() and field.isprintable())
        ):
            return None
        fields.append(field)
    fields.append("")
    return ("\r\n".join(fields) + "\r\n" + _LINE_END.sub("\r\n", payload)).encode("ascii")


def _boundary(parts: Sequence[bytes]) -> bytes:
    """A boundary like the email package's, found in none of ``parts``. (Quoted-printable
    writes "=" as "=3D", so a run of "=" cannot occur in a body; the check is a belt.)"""
    while True:
        digits = b"%0*d" % (_BOUNDARY_DIGITS, random.randrange(sys.maxsize))
        boundary = b"=" * 15 + digits + b"=="
        if not any(b"--" + boundary in part for part in parts):
            return boundary
