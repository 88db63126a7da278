"""Where incoming mail comes from: the MailSource interface and its factory.

A mail source hands out the messages waiting in the program's mailbox and, once the
daemon has dealt with one, moves it out of the way (to the processed folder, or to the
quarantine folder when it cannot be handled). Nothing is ever deleted, and nothing is
moved before the daemon says so: a crash between ``fetch`` and ``mark_done`` means the
message is fetched again, and the daemon recognises it by its Message-ID.

Sources are synchronous and used from one worker thread; only ``stop()`` may be called
from another thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..config import InboxConfig


@dataclass(frozen=True)
class RawMessage:
    """One message as it sits in the mailbox.

    ``key`` is stable while the message stays in this mailbox:
    ``"imap:<uidvalidity>:<uid>"`` or ``"maildir:<file key>"``.
    """

    key: str
    data: bytes = field(repr=False)
    uid: int | None = None
    uidvalidity: int | None = None


@runtime_checkable
class MailSource(Protocol):
    """The daemon's view of a mailbox. Every failure to reach or use it raises
    ``MailSourceError``; the daemon then calls ``close()`` and, after a pause, ``connect()``.
    """

    def connect(self) -> None:
        """Open the mailbox. The error message names the server, never the password."""
        ...

    def fetch(self, limit: int) -> list[RawMessage]:
        """Up to ``limit`` waiting messages, oldest first, without marking them read.

        Each message is read no further than ``[inbox] max_message_bytes`` (the rest of
        a bigger one is left out: it is still handled), and a batch holds no more than
        ``batch_bytes(config)`` (at least one message); ``wait`` then returns at once.
        """
        ...

    def mark_done(self, messages: Sequence[RawMessage]) -> None:
        """Move ``messages`` to the processed folder, creating it if needed."""
        ...

    def quarantine(self, messages: Sequence[RawMessage]) -> None:
        """Move ``messages`` to the quarantine folder, creating it if needed."""
        ...

    def wait(self, timeout_s: float) -> None:
        """Block until new mail may have arrived, ``timeout_s`` passed or ``stop()``.

        Returns at once if mail that ``fetch`` has not yet returned is already waiting.
        """
        ...

    def stop(self) -> None:
        """Make a blocked (and every later) ``wait()`` return promptly; thread-safe."""
        ...

    def close(self) -> None:
        """Let go of the mailbox; never raises. ``connect()`` may be called again."""
        ...

    @property
    def uidvalidity(self) -> int | None:
        """The IMAP folder's UIDVALIDITY after ``connect()``; None for a Maildir."""
        ...


# A fetch() batch holds at most this many biggest messages' worth of bytes, and no more
# than _BATCH_BYTES beyond its first: big mail is read a few at a time, small mail by
# the hundred. A batch of hostile mail (8-bit, odd MIME) costs several times its size
# while it is read and handled: 40 MB of it took the daemon to 390-490 MB at peak.
_BATCH_OF_BIGGEST = 4
_BATCH_BYTES = 12_000_000


def batch_bytes(config: InboxConfig) -> int:
    """How many bytes of mail one fetch() may return (beyond its first message)."""
    return min(_BATCH_OF_BIGGEST * config.max_message_bytes, _BATCH_BYTES)


def open_source(config: InboxConfig) -> MailSource:
    """The MailSource for ``config.kind`` ("imap" or "maildir"), not yet connected."""
    if config.kind == "imap":
        from .imap import ImapSource

        return ImapSource(config)
    if config.kind == "maildir":
        from .maildir import MaildirSource

        return MaildirSource(config)
    raise ValueError(f"unknown inbox kind {config.kind!r}; expected 'imap' or 'maildir'")
