"""Closed history, on disk: what no event reads any more, but people and reports still do.

The working set (mentors, requests not finished or finished within ``[state]
archive_after``, their sessions, the outbox's pending emails, and the last month of
mail) lives in memory, in the journaled TinyDB (``db.py``). A finished request older
than that moves here with its sessions; emails sent, their thread links, inbound
messages and audit events move after a month (``flows/archiving.py`` says when, and
what waits longer because it still needs a person). Memory, opening and compaction
then grow with the working set, not with the program's years.

The archive is a SQLite database (the standard library's ``sqlite3``) beside the state,
``<state>.archive``: one row per document, keyed by its table and id, with the few
fields history is looked up by indexed beside it. Moving is crash-safe without a shared
transaction: the documents are written here and committed first, then removed from the
working set in one journal record. A crash in between leaves a document in both, and
readers take the working set's copy (``Store`` reads the working set first); the next
move writes the same rows again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..errors import StoreError

__all__ = ["ARCHIVED_TABLES", "SHORTEST_ARCHIVE_AFTER", "Archive", "ArchivedDoc", "archive_path"]

Doc = dict[str, Any]
_log = logging.getLogger(__name__)

#: The tables whose documents move to the archive (the rest stay in the working set).
ARCHIVED_TABLES = ("requests", "sessions", "outbox", "threads", "messages", "audit")

#: The least ``[state] archive_after``: the working set must hold every window its
#: readers scan — a year of sessions for the desk's feedback results, the past year's
#: mentees for announcements, 90 days of claims for matching — plus a few days of slack.
SHORTEST_ARCHIVE_AFTER = timedelta(days=370)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    tbl TEXT NOT NULL,
    id INTEGER NOT NULL,
    key TEXT,
    request INTEGER,
    at TEXT,
    mentor TEXT,
    mentee TEXT,
    doc TEXT NOT NULL,
    PRIMARY KEY (tbl, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS docs_key ON docs (tbl, key);
CREATE INDEX IF NOT EXISTS docs_request ON docs (tbl, request);
CREATE INDEX IF NOT EXISTS docs_at ON docs (tbl, at);
CREATE INDEX IF NOT EXISTS docs_mentor ON docs (tbl, mentor);
CREATE INDEX IF NOT EXISTS docs_mentee ON docs (tbl, mentee);
"""


def archive_path(state_path: Path) -> Path:
    """Where the archive of the state at ``state_path`` lives."""
    return state_path.with_name(state_path.name + ".archive")


@dataclass(frozen=True)
class ArchivedDoc:
    """One document on its way to the archive, and the fields it is looked up by."""

    table: str
    doc_id: int
    doc: Mapping[str, Any]

    def row(self) -> tuple[Any, ...]:
        key, request, at, mentor, mentee = _lookup_fields(self.table, self.doc)
        text = json.dumps(self.doc, ensure_ascii=False, separators=(",", ":"))
        return (self.table, self.doc_id, key, request, at, mentor, mentee, text)


def _lookup_fields(
    table: str, doc: Mapping[str, Any]
) -> tuple[str | None, int | None, str | None, str | None, str | None]:
    """(key, request, at, mentor, mentee) of a document: what history is found by."""
    request = doc.get("request")
    number = int(request) if isinstance(request, int | str) and str(request).isdigit() else None

    def text(value: Any) -> str | None:
        return str(value).lower() if value else None

    if table == "requests":
        number = int(doc["number"])
        return (
            str(number),
            number,
            doc.get("created"),
            text(doc.get("claimed_by")),
            text(doc.get("mentee")),
        )
    if table == "sessions":
        return (
            str(doc.get("uid")),
            number,
            doc.get("start"),
            text(doc.get("mentor")),
            text(doc.get("mentee")),
        )
    if table == "outbox":
        return doc.get("message_id"), number, doc.get("created"), None, None
    if table == "threads":
        return doc.get("message_id"), None, None, None, None
    if table == "messages":
        return doc.get("message_id"), number, doc.get("at"), None, None
    if table == "audit":
        return doc.get("event"), number, doc.get("at"), text(doc.get("mentor")), None
    raise ValueError(f"the table {table!r} is not archived")


class Archive:
    """The archive of one state. One writer (the store's); readers may open it too."""

    def __init__(self, path: Path, *, fsync: bool = True, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        try:
            if read_only:
                # A state with no archive yet reads as one with an empty archive.
                uri = f"file:{path}?mode=ro" if path.exists() else "file::memory:"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
                if not path.exists():
                    self._db.executescript(_SCHEMA)
            else:
                # Made private first: SQLite gives its log files the file's mode.
                path.touch(mode=0o600, exist_ok=True)
                path.chmod(0o600)
                self._db = sqlite3.connect(path, check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
                # Checkpoints (the log copied into the file, and synced) take a while:
                # a thread of the archive's own does them, never the store's writer.
                self._db.execute("PRAGMA wal_autocheckpoint=0")
                self._db.execute(f"PRAGMA journal_size_limit={_Checkpoints.LONGEST_LOG_BYTES}")
                self._db.executescript(_SCHEMA)
        except sqlite3.Error as err:
            raise StoreError(
                f"cannot open the archive {path}: {err}; restore it from a backup "
                "(mentordesk restore) or move it away to start a new one"
            ) from err
        self._checkpoints = None if read_only else _Checkpoints(path, fsync=fsync)

    def close(self) -> None:
        if self._checkpoints is not None:
            self._checkpoints.stop()
            self._checkpoints = None
            with contextlib.suppress(sqlite3.Error):  # the log folded in: one file at rest
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()

    # --- writing -----------------------------------------------------------------------

    def put(self, docs: Iterable[ArchivedDoc]) -> int:
        """Write ``docs`` (replacing rows of the same table and id) in one transaction,
        durable on return; how many were written."""
        rows = [d.row() for d in docs]
        if not rows:
            return 0
        try:
            with self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
        except sqlite3.Error as err:
            raise StoreError(f"could not write to the archive {self.path}: {err}") from err
        if self._checkpoints is not None:
            self._checkpoints.wrote(len(rows))
        return len(rows)

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the archive at ``path`` (SQLite's online backup)."""
        target = sqlite3.connect(path)
        try:
            self._db.backup(target)
            # One self-contained file (no write-ahead log beside it), readable anywhere.
            target.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as err:
            raise StoreError(f"could not copy the archive to {path}: {err}") from err
        finally:
            target.close()
        path.chmod(0o600)

    # --- reading -----------------------------------------------------------------------

    def max_ids(self) -> dict[str, int]:
        """Table → the highest id archived: ids are never given out again."""
        found = self._db.execute("SELECT tbl, MAX(id) FROM docs GROUP BY tbl")
        return {tbl: int(top) for tbl, top in found}

    def count(self, table: str) -> int:
        (found,) = self._db.execute("SELECT COUNT(*) FROM docs WHERE tbl = ?", (table,)).fetchone()
        return int(found)

    def by_key(self, table: str, key: str) -> list[tuple[int, Doc]]:
        """The documents of ``table`` with this key (Message-ID, UID, request number)."""
        return self._rows("WHERE tbl = ? AND key = ? ORDER BY id", (table, key))

    def of_request(self, table: str, number: int) -> list[tuple[int, Doc]]:
        return self._rows("WHERE tbl = ? AND request = ? ORDER BY id", (table, number))

    def of_people(
        self,
        table: str,
        people: Iterable[str],
        *,
        columns: tuple[str, ...] = ("mentor", "mentee"),
    ) -> list[tuple[int, Doc]]:
        """The documents of ``table`` whose mentor or mentee (``columns``) is one of
        ``people``."""
        wanted = sorted({p.lower() for p in people if p})
        if not wanted or not set(columns) <= {"mentor", "mentee"}:
            return []
        marks = ",".join("?" * len(wanted))
        where = " OR ".join(f"{column} IN ({marks})" for column in columns)
        args = [table, *(wanted * len(columns))]
        return self._rows(f"WHERE tbl = ? AND ({where}) ORDER BY id", tuple(args))

    def since(self, table: str, at: str) -> list[tuple[int, Doc]]:
        """The documents of ``table`` whose time (``at``, ISO UTC) is at or after ``at``."""
        return self._rows("WHERE tbl = ? AND at >= ? ORDER BY id", (table, at))

    def all(self, table: str) -> Iterator[tuple[int, Doc]]:
        """Every archived document of ``table``, by id (read as it goes)."""
        found = self._db.execute("SELECT id, doc FROM docs WHERE tbl = ? ORDER BY id", (table,))
        for doc_id, text in found:
            yield int(doc_id), json.loads(text)

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[tuple[int, Doc]]:
        found = self._db.execute(f"SELECT id, doc FROM docs {where}", args)
        return [(int(doc_id), json.loads(text)) for doc_id, text in found]


class _Checkpoints:
    """A thread that folds the archive's write-ahead log into its file once enough was
    written (SQLite's PASSIVE checkpoint, on a connection of its own: writers go on)."""

    #: Rows, or commits, written between checkpoints. Commits too: a sweep's batch of a
    #: few rows still rewrites its index pages, some 80 pages of log (320 KB) a commit,
    #: so 4,000 rows in small batches made a log of 70 MB, and a long checkpoint.
    EVERY_ROWS = 4000
    EVERY_COMMITS = 32
    #: A log this long was never folded in whole (writes kept coming while a checkpoint
    #: ran): the next checkpoint makes the writer wait until it is, once.
    LONGEST_LOG_BYTES = 64 * 1024 * 1024

    def __init__(self, path: Path, *, fsync: bool) -> None:
        self._path = path
        self._fsync = fsync
        self._rows = self._commits = 0
        self.done = 0  # checkpoints made
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="archive-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self, rows: int) -> None:
        """One commit of ``rows`` rows was written."""
        self._rows += rows
        self._commits += 1
        if self._rows >= self.EVERY_ROWS or self._commits >= self.EVERY_COMMITS:
            self._rows = self._commits = 0
            self._due.set()

    def stop(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self._path, timeout=60)
        long = False
        try:
            db.execute(f"PRAGMA synchronous={'FULL' if self._fsync else 'OFF'}")
            while True:
                self._due.wait()
                self._due.clear()
                if self._stopping:
                    return
                log_file = self._path.with_name(self._path.name + "-wal")
                with contextlib.suppress(OSError):
                    long = log_file.stat().st_size > self.LONGEST_LOG_BYTES
                mode = "RESTART" if long else "PASSIVE"
                try:
                    db.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
                    self.done += 1
                except sqlite3.Error as err:  # the next one tries again; close() does too
                    _log.warning("checkpoint of the archive %s failed: %s", self._path, err)
        finally:
            db.close()
