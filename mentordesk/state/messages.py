"""Recognising an inbound message again (SPEC §5): its content's fingerprint, and
whether a processed-message record is about the same message."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["content_fingerprint", "same_message"]

# Header fields the author's mail client writes. Servers add trace fields on the way
# (Received, Delivered-To, Return-Path, Authentication-Results, ...), which differ between
# two deliveries of one message; they are left out of its fingerprint.
_AUTHOR_FIELDS = frozenset(
    {
        b"from",
        b"sender",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)


def content_fingerprint(data: bytes) -> str:
    """A digest of what the author wrote: their header fields and the body.

    Two copies of one message — delivered twice, or read again — have the same one;
    another message that reuses the Message-ID has another.
    """
    text = data.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    digest = hashlib.sha256()
    for field in re.split(rb"\n(?![ \t])", head):
        name, colon, value = field.partition(b":")
        if colon and name.strip().lower() in _AUTHOR_FIELDS:
            digest.update(name.strip().lower() + b":" + b" ".join(value.split()) + b"\n")
    digest.update(b"\n" + body)
    return digest.hexdigest()


def same_message(record: Mapping[str, Any], *, key: str, fingerprint: str) -> bool:
    """Is the processed-message ``record`` about the message at mailbox ``key`` with
    content ``fingerprint``? (Its Message-ID is the same already.)

    Yes when it sits at the same place in the mailbox, or has the same content. A record
    kept before fingerprints were (none stored), or a question without one, is taken to be
    about the one message that Message-ID stood for.
    """
    if key and record.get("key") == key:
        return True
    stored = str(record.get("fingerprint") or "")
    return not stored or not fingerprint or stored == fingerprint
