"""The program mailbox as local Maildirs: for the demo, for tests, and for sites whose
MTA delivers to disk.

    <path>/inbox/       waiting messages (new/ and cur/)
    <path>/processed/   what the daemon is done with
    <path>/quarantine/  what it could not handle

Moving a message is one ``os.rename`` of its file, so it is atomic: a message is in
exactly one of the three at any moment. A message's key is its Maildir unique name (the
file name up to the ``:2,flags`` suffix), so it survives flag changes.
"""

from __future__ import annotations

import logging
import mailbox
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import InboxConfig
from ..errors import MailSourceError
from .source import RawMessage, batch_bytes

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.2
_SUBDIRS = ("new", "cur")


class MaildirSource:
    """A MailSource reading ``config.path / "inbox"``."""

    def __init__(self, config: InboxConfig) -> None:
        self._config = config
        self.root = Path(config.path)
        self.inbox = self.root / "inbox"
        self.processed = self.root / "processed"
        self.quarantine_dir = self.root / "quarantine"
        self._stop = threading.Event()
        self._connected = False
        self._seen: set[str] = set()  # keys present at the last fetch()
        self._fetched_once = False
        self._more_waiting = False

    @property
    def uidvalidity(self) -> int | None:
        return None

    # -- MailSource -------------------------------------------------------------------

    def connect(self) -> None:
        """Create the three Maildirs if missing; raises MailSourceError if it cannot."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            for path in (self.inbox, self.processed, self.quarantine_dir):
                # mailbox.Maildir(create=True) makes new/, cur/ and tmp/.
                mailbox.Maildir(path, factory=None, create=True)
        except OSError as exc:
            raise MailSourceError(f"Maildir {self.root}: cannot be created: {exc}") from exc
        self._connected = True
        self._fetched_once = False
        self._more_waiting = False

    def fetch(self, limit: int) -> list[RawMessage]:
        """Up to ``limit`` waiting messages, oldest (by mtime, then name) first, each read
        no further than ``[inbox] max_message_bytes``, and no more than ``batch_bytes``
        of them in all (the first always)."""
        entries = self._scan()
        self._seen = {key for key, _, _ in entries}
        self._fetched_once = True
        batch = entries[: max(limit, 0)]
        self._more_waiting = len(entries) > len(batch)
        cap = self._config.max_message_bytes
        budget = batch_bytes(self._config)
        messages: list[RawMessage] = []
        total = 0
        for key, path, _ in batch:
            try:
                with path.open("rb") as file:
                    size = os.fstat(file.fileno()).st_size
                    if messages and total + min(size, cap) > budget:
                        self._more_waiting = True
                        break
                    data = file.read(cap)
            except FileNotFoundError:
                continue  # moved or deleted by someone else since the scan
            except OSError as exc:
                raise MailSourceError(
                    f"Maildir {self.inbox}: cannot read {path.name}: {exc}"
                ) from exc
            if size > cap:
                log.warning(
                    "Maildir %s: %s is %d bytes; only its first %d are read "
                    "([inbox] max_message_bytes)",
                    self.inbox,
                    path.name,
                    size,
                    cap,
                )
            total += len(data)
            messages.append(RawMessage(key=f"maildir:{key}", data=data))
        return messages

    def mark_done(self, messages: Sequence[RawMessage]) -> None:
        """Move ``messages`` to ``processed/``; ones already gone are skipped."""
        self._move(messages, self.processed)

    def quarantine(self, messages: Sequence[RawMessage]) -> None:
        """Move ``messages`` to ``quarantine/``; ones already gone are skipped."""
        self._move(messages, self.quarantine_dir)

    def wait(self, timeout_s: float) -> None:
        """Return when a message fetch() has not seen appears, after ``timeout_s``, or on
        ``stop()``. Looks every 0.2 s.
        """
        self._check_connected()
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while not self._stop.is_set():
            if self._more_waiting or self._arrived():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(POLL_INTERVAL_S, remaining))

    def stop(self) -> None:
        """Make ``wait()`` return promptly, now and from now on. Thread-safe."""
        self._stop.set()

    def close(self) -> None:
        self._connected = False

    # -- internals --------------------------------------------------------------------

    def _check_connected(self) -> None:
        if not self._connected:
            raise MailSourceError(f"Maildir {self.root}: not connected")

    def _scan(self) -> list[tuple[str, Path, tuple[int, str]]]:
        """(key, path, sort key) of every message in the inbox, oldest first."""
        self._check_connected()
        entries = []
        for sub in _SUBDIRS:
            folder = self.inbox / sub
            try:
                with os.scandir(folder) as listing:
                    for entry in listing:
                        if entry.name.startswith("."):
                            continue
                        try:
                            mtime = entry.stat().st_mtime_ns
                        except FileNotFoundError:
                            continue
                        key = entry.name.split(":", 1)[0]
                        entries.append((key, Path(entry.path), (mtime, key)))
            except OSError as exc:
                raise MailSourceError(f"Maildir {self.inbox}: cannot list {sub}/: {exc}") from exc
        entries.sort(key=lambda entry: entry[2])
        return entries

    def _arrived(self) -> bool:
        if not self._fetched_once:
            return bool(self._scan())
        return any(key not in self._seen for key, _, _ in self._scan())

    def _move(self, messages: Sequence[RawMessage], target: Path) -> None:
        if not messages:
            return
        wanted = set()
        for message in messages:
            kind, _, key = message.key.partition(":")
            if kind != "maildir" or not key:
                raise ValueError(f"{message.key} did not come from a Maildir")
            wanted.add(key)
        for key, path, _ in self._scan():
            if key not in wanted:
                continue
            # Same subdirectory and file name (flags included) in the target Maildir.
            destination = target / path.parent.name / path.name
            try:
                os.makedirs(destination.parent, exist_ok=True)
                os.rename(path, destination)
            except FileNotFoundError:
                continue  # someone else moved it first
            except OSError as exc:
                raise MailSourceError(
                    f"Maildir {self.root}: cannot move {path.name} to {target.name}/: {exc}"
                ) from exc
            self._seen.discard(key)
