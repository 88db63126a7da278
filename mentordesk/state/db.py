"""TinyDB held in memory and made durable by an append-only journal.

``Database(path)`` keeps TinyDB's API (tables, ``insert``, ``update``, ``upsert``,
``remove``, ``search``, ``get``, ``Query``), but a write appends one short line to a
journal instead of rewriting the whole file, so its cost does not grow with the data.
Its TinyDB tables, and the copies of documents they hand out, are in ``query_layer.py``.

Files, for ``path = state/mentordesk.json``::

    mentordesk.json          snapshot: a plain TinyDB file {table: {doc_id: doc}}, one
                             document per line; TinyDB itself can open it. Its last table,
                             ``_checksum``, holds the CRC-32 of every byte before it and
                             the snapshot's random id
    mentordesk.json.journal  one line per committed transaction since the snapshot:
                             {"crc":"<8 hex digits>","ops":[[table, doc_id, doc], ...]}
    mentordesk.json.marks    how far the journal's committed records reach (for that
                             snapshot id) and the high-water marks (``raise_high_water``),
                             such as the highest request number ever given out
    mentordesk.json.bak      a backup: the whole state as a snapshot of its own, written
                             at each start and after each compaction
    mentordesk.json.tmp      the next snapshot (or .bak.tmp, backup), while being written

An op gives a document's new content; a ``null`` doc deletes it, ``[table, null, null]``
drops the table and ``[table, null, {}]`` creates it empty. ``crc`` is the CRC-32 of the
``ops`` array's bytes exactly as written. Every op states a final value, so replaying a
record that the snapshot already contains changes nothing: that makes compaction
crash-safe without sequence numbers.

Recovery loads the snapshot and replays the journal. The newline ends a record and is
its commit mark: a last line without one is a write cut short by a crash; it is dropped
and cut off the file. Anything else is damage, and opening fails with a StoreError that
names the file, says what is wrong and which backup to restore: a line whose checksum
fails (even the last, once its newline is there: a crash cannot write a newline after
bytes it lost), a snapshot whose checksum fails, and a journal shorter than the marks
say it was. The marks trail one record behind (they record where the last committed
record starts), so losing just the last record still reads as a torn write; losing more
does not. After a compaction the marks belong to the new snapshot's id; a restored
backup has another id, so its journal starts afresh and it opens.

Compaction policy: after a commit, once the journal is larger than
max(snapshot size, ``compact_min_bytes`` = 4 MiB), the whole state is written to a new
snapshot (tmp file, fsync, rename, fsync the folder) and the journal is emptied. A
compaction costs O(state) and happens at most once per state-size of journal bytes, so
its amortised cost per write is proportional to the write's own size, not to the
data; recovery replays at most about as much as it loads; the files take about three
times the state (with the backup) plus 4 MiB at most.

Off the writer's path: a compaction after a commit (of a state over
``background_compaction_bytes``) is written by a thread from a frozen view of the
tables (``snapshot.BackgroundSnapshot``; stored documents are copied on write, never
changed in place), and a later commit swaps it in: the records written meanwhile go to
``.journal.tmp`` (locked), the snapshot is renamed into place, then that journal. A
crash between the renames leaves the new snapshot with the whole old journal, which
replays to the same state. ``compact()`` itself still compacts on the spot.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tinydb import TinyDB
from tinydb.table import Table

from ..errors import StoreError
from .journal import (
    _MARKS_BYTES,
    _doc_key,
    _Files,
    _load_snapshot,
    _Marks,
    _op,
    _owned,
    _read_marks,
    _record,
    _restore_hint,
)

# Re-exported: tests replace it to interleave a compaction with a reader.
from .journal import _replay_journal as _replay_journal
from .query_layer import Doc, JournalStorage, JournalTable, JournalTinyDB, Undo
from .snapshot import BackgroundSnapshot, write_snapshot
from .snapshot import encode as _encode

__all__ = ["Database"]

_log = logging.getLogger(__name__)


_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class Database:
    """TinyDB over an append-only journal with periodic compaction.

    One writer (not thread-safe by itself; the caller serialises). Writes outside a
    transaction are journalled one record each; ``transaction()`` groups several into one
    record. With ``fsync=True`` a write has reached the disk when it returns; with
    ``fsync=False`` it survives the process being killed but not a power cut.
    Opening takes an exclusive lock on the journal, so a second process opening the same
    state gets a StoreError instead of interleaving records.
    """

    #: Journal size below which no compaction happens, whatever the snapshot size.
    compact_min_bytes: int = 4 * 1024 * 1024
    #: Size of snapshot and journal together from which compaction after a commit runs in
    #: the background (``snapshot.BackgroundSnapshot``) instead of on the writer's path
    #: (below it, a compaction takes about a commit's fsync). The journal reaches
    #: ``compact_min_bytes`` first, so with the defaults every compaction after a
    #: commit is in the background.
    background_compaction_bytes: int = 1024 * 1024

    tinydb: TinyDB
    files: _Files

    def __init__(
        self, path: str | os.PathLike[str], *, fsync: bool = True, read_only: bool = False
    ) -> None:
        """Open (or create) the state at ``path``; recover it from snapshot and journal.

        Creates missing parent folders. A torn last journal record is dropped and cut
        off; any other damage raises StoreError naming the file, what is wrong and the
        backup to restore. Once open, it writes the backup (``files.backup``).
        ``read_only=True`` (for tools looking at a running daemon's state) creates, locks
        and changes nothing: it ignores a torn tail and its writes raise StoreError.
        """
        self.path = Path(path)
        self.files = _Files.of(self.path)
        self.journal_path = self.files.journal
        self._tmp_path = self.files.tmp
        self._fsync = fsync
        self._marks = _Marks()
        self._marks_fd = -1
        self._marks_unsynced = False  # high-water marks written, to sync before a record
        self._snapshot_id: str | None = None
        self._data: dict[str, dict[str, Doc]] = {}
        self._snapshot_bytes = self._journal_bytes = 0
        self._depth = 0  # how many transaction() blocks are open
        self._tx_ops: list[str] = []
        self._tx_undo: list[Undo] = []
        self._broken: str | None = None  # why writes are refused
        self._retry_compaction_at = 0
        self._compaction: BackgroundSnapshot | None = None  # running, not yet swapped in
        self._last_compaction: BackgroundSnapshot | None = None  # may be writing the backup
        # Open TinyDB tables by name, whose query caches a write to that table empties.
        self._open_tables: dict[str, weakref.WeakSet[JournalTable]] = {}
        self._fd = -1
        # Group commit (``hold_syncs``): records written but not yet fdatasync'd, as
        # the documents they changed and where the last one starts (for the marks).
        self._holding = False
        self._unsynced: list[tuple[str, str | None]] = []
        self._unsynced_start: tuple[str | None, int] | None = None
        try:
            if read_only:
                self._broken = f"the state {self.path} was opened read-only"
                self._load_unlocked()
            else:
                self._open_for_writing()
        except OSError as err:
            self.close()
            raise StoreError(
                f"cannot use the state in {self.path.parent}: {err}; check that the folder "
                "and its files are readable and writable by the user running mentordesk"
            ) from err
        except BaseException:
            self.close()
            raise
        self.tinydb = JournalTinyDB(self, storage=JournalStorage)
        # An empty journal means the last compaction wrote the backup of this very state.
        if not read_only and (self._journal_bytes or not self.files.backup.exists()):
            if self._snapshot_bytes < self.background_compaction_bytes:
                self._write_backup()
            else:  # a large state: opening does not wait for it
                self._last_compaction = BackgroundSnapshot(
                    {name: dict(docs) for name, docs in self._data.items()},
                    self._journal_bytes,
                    tmp=None,
                    backup=self.files.backup,
                    backup_tmp=self.files.backup_tmp,
                    fsync=self._fsync,
                )

    # --- public API -----------------------------------------------------------------

    def table(self, name: str) -> Table:
        """TinyDB table ``name`` (it exists once written to); its writes go to the journal."""
        return self.tinydb.table(name)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the writes inside one journal record: all survive a crash or none do.

        The record is appended (and fsync'd with ``fsync=True``) when the outermost block
        exits. Nested blocks join the outer one. An exception leaving any block undoes
        that block's writes, in memory and in the pending record alike, then propagates.
        Reads inside see the block's own writes.
        """
        self._check_writable()
        ops_mark, undo_mark = len(self._tx_ops), len(self._tx_undo)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self._rollback(self._tx_undo[undo_mark:])
            del self._tx_ops[ops_mark:], self._tx_undo[undo_mark:]
            raise
        self._depth -= 1
        if self._depth == 0:
            ops, undo = self._tx_ops, self._tx_undo
            self._tx_ops, self._tx_undo = [], []
            if ops:
                self._append(ops, undo)

    def stored_all(self, name: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
        """(doc id, the document itself behind a read-only view) for every document of
        table ``name``: a scan that copies nothing (indexes are built from it)."""
        for key, doc in list(self._data.get(name, {}).items()):
            yield int(key), MappingProxyType(doc)

    def stored_oldest(self, name: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
        """Like ``stored_all``, in the order the documents were stored (oldest first,
        as ids grow), read as it goes: the caller stops early and writes nothing
        meanwhile."""
        for key, doc in self._data.get(name, {}).items():
            yield int(key), MappingProxyType(doc)

    def stored(self, name: str, doc_id: int) -> Mapping[str, Any] | None:
        """The document itself, uncopied, behind a read-only view (None if there is none):
        for scans by index that copy only what they keep. Valid until the next write."""
        doc = self._data.get(name, {}).get(str(doc_id))
        return None if doc is None else MappingProxyType(doc)

    def keep_ids_above(self, name: str, top: int) -> None:
        """New documents of table ``name`` get ids above ``top`` (ids used elsewhere,
        such as in the archive, are not given out again)."""
        table = self.table(name)
        live_top = max((int(key) for key in self._data.get(name, {})), default=0)
        if top > live_top:
            # TinyDB's own counter (it reads the live documents' highest id otherwise).
            next_id: int | None = getattr(table, "_next_id", None)
            table._next_id = max(top + 1, next_id or 0)  # type: ignore[assignment]

    def high_water(self, name: str) -> int:
        """The highest value ever given to ``raise_high_water(name, …)`` (0 if none)."""
        return self._marks.floors.get(name, 0)

    def raise_high_water(self, name: str, value: int) -> None:
        """Remember that ``value`` was used for ``name``; the mark never goes back.

        Kept in the marks file, outside the snapshot and journal, so that it survives
        their loss and a restore from a backup: numbers that people have seen (request
        numbers) are not given out again. Durable with ``fsync=True``: on return, or
        inside a transaction once its record is (synced just before it, once for all the
        marks the transaction raised: nothing can show the number before that).
        """
        self._check_writable()
        if value <= self.high_water(name):
            return
        before = dict(self._marks.floors)
        self._marks.floors[name] = value
        try:
            self._write_marks(sync=self._fsync and not self._depth)
            self._marks_unsynced |= self._fsync and bool(self._depth)
        except (OSError, ValueError) as err:
            self._marks.floors = before
            raise StoreError(
                f"could not write {self.files.marks} ({err}); the change was not made. "
                "Free disk space or fix the file's permissions, then try again"
            ) from err

    def compact(self) -> None:
        """Write the whole state as a new snapshot, atomically, then empty the journal.

        A crash at any point leaves either the old snapshot with the full journal or the
        new one with a journal it already contains; both recover to the same state.
        Not allowed inside a transaction (the snapshot would hold uncommitted writes).
        """
        self._check_writable()
        if self._depth:
            raise RuntimeError("compact() cannot run inside a transaction")
        self._drop_background_compaction()
        snapshot_bytes, self._snapshot_id = self._write_snapshot(self.path, self._tmp_path)
        # The marks follow the new snapshot before the journal is emptied: marks for the
        # old one never judge the new one (another id), so a crash in between is harmless.
        self._marks.snapshot = self._snapshot_id
        self._marks.journal = 0
        try:
            self._write_marks(sync=self._fsync)
        except (OSError, ValueError) as err:
            _log.warning("%s not updated after a compaction: %s", self.files.marks, err)
        try:
            os.ftruncate(self._fd, 0)
            if self._fsync:
                _fdatasync(self._fd)
        except OSError as err:
            self._broken = (
                f"emptying the journal {self.journal_path} after a compaction failed "
                f"({err.strerror}); restart mentordesk, which recovers from the files"
            )
            raise StoreError(self._broken) from err
        self._snapshot_bytes = snapshot_bytes
        self._journal_bytes = 0
        self._retry_compaction_at = 0
        self._write_backup()

    def hold_syncs(self) -> None:
        """Group commit: from now on a commit writes its record but leaves the fdatasync
        to ``sync()``, so that the records of several commits reach the disk with one.

        For the one writer (``writer.py``), which calls ``sync()`` before it tells anyone
        that those commits happened: until then they are in memory and in the page cache
        (they survive the process being killed, not a power cut).
        """
        self._holding = True

    def sync(self) -> list[tuple[str, str | None]]:
        """Make every record written since the last ``sync()`` durable (one fdatasync
        with ``fsync=True``); returns (table, document key) of each document they changed
        (key None: the whole table). Raises StoreError if the disk refused: the state
        then refuses every write until a restart recovers it from the files, since what
        the failed records hold cannot be known to be on disk or not."""
        touched, self._unsynced = self._unsynced, []
        last_start, self._unsynced_start = self._unsynced_start, None
        if last_start is None or self._fd < 0:
            return touched
        try:
            if self._fsync:
                _fdatasync(self._fd)
        except OSError as err:
            self._broken = (
                f"could not make the state journal {self.journal_path} durable "
                f"({err.strerror}); restart mentordesk, which recovers from the files"
            )
            raise StoreError(self._broken) from err
        # Now the marks may name the last record (they trail by one: module docstring);
        # not across a compaction, which started the marks afresh for a new snapshot.
        snapshot_id, start = last_start
        if snapshot_id == self._snapshot_id and start > self._marks.journal:
            self._marks.journal = start
            try:
                self._write_marks(sync=False)
            except (OSError, ValueError) as err:
                _log.warning("%s not updated: %s", self.files.marks, err)
        return touched

    def high_waters(self) -> dict[str, int]:
        """Every high-water mark by name (see ``raise_high_water``)."""
        return dict(self._marks.floors)

    def copy_to(self, path: Path) -> dict[str, Any]:
        """Write the whole state as a new state at ``path``: a snapshot and its marks (the
        high-water marks included), no journal. Consistent when called between
        transactions, as the one writer does; works on a read-only state too. Returns
        where this state stood: its snapshot's id and its journal's committed length."""
        if self._depth:
            raise RuntimeError("copy_to() cannot run inside a transaction")
        files = _Files.of(path)
        _, snapshot_id = self._write_snapshot(path, files.tmp)
        block = _Marks(snapshot_id, 0, dict(self._marks.floors)).encode()
        try:
            fd = os.open(files.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as out:
                out.write(block)
                out.flush()
                os.fsync(out.fileno())
            os.replace(files.tmp, files.marks)
            _sync_dir(path.parent)
        except OSError as err:
            files.tmp.unlink(missing_ok=True)
            raise StoreError(f"could not write {files.marks}: {err.strerror or err}") from err
        return {"snapshot": self._snapshot_id, "journal_bytes": self._journal_bytes}

    def close(self) -> None:
        """Release the files and the lock; later writes raise StoreError. Idempotent."""
        self._drop_background_compaction()
        if self._unsynced_start is not None:
            try:
                self.sync()
            except StoreError as err:
                _log.error("closing the state: %s", err)
        if self._marks_fd >= 0:
            os.close(self._marks_fd)
            self._marks_fd = -1
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- opening ----------------------------------------------------------------------

    def _lock(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"{self.journal_path} is in use by another process; stop the other "
                f"mentordesk using {self.path} before starting this one"
            ) from None

    def _open_for_writing(self) -> None:
        files = self.files
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.journal_path.exists() and files.marks.exists()
        self._fd = os.open(
            self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self._lock()
        self._marks_fd = os.open(files.marks, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if self._fsync and not existed:
            _sync_dir(self.path.parent)  # the new files' names must survive a power cut
        self._tmp_path.unlink(missing_ok=True)  # left by a compaction cut short
        files.journal_tmp.unlink(missing_ok=True)
        files.backup_tmp.unlink(missing_ok=True)
        marks = _read_marks(files, os.pread(self._marks_fd, _MARKS_BYTES + 1, 0))
        snapshot = _load_snapshot(files, marks)
        self._data, self._snapshot_bytes, self._snapshot_id = snapshot
        self._journal_bytes, size, last_start = _replay_journal(files, self._data)
        if marks is not None and marks.snapshot == self._snapshot_id:
            if self._journal_bytes < marks.journal:
                raise StoreError(
                    f"{self.journal_path} is shorter than it was: its complete records "
                    f"end at byte {self._journal_bytes} of {size}, but records up to byte "
                    f"{marks.journal} at least had been committed (as {files.marks} "
                    "recorded). It was cut short or replaced by an older copy, so changes "
                    f"are missing. {_restore_hint(files)}"
                )
            last_start = max(last_start, marks.journal)
        self._marks = _Marks(self._snapshot_id, last_start, dict(marks.floors) if marks else {})
        self._write_marks(sync=self._fsync)
        if self._journal_bytes < size:
            _log.warning(
                "%s: dropped the incomplete last record (%d bytes at offset %d): a write "
                "cut short by a crash, never committed",
                self.journal_path,
                size - self._journal_bytes,
                self._journal_bytes,
            )
            os.ftruncate(self._fd, self._journal_bytes)
            if self._fsync:
                _fdatasync(self._fd)

    def _load_unlocked(self) -> None:
        # The daemon may compact while we read (new snapshot, then emptied journal): the
        # two only fit together if the snapshot is the same file after reading both.
        try:
            # Only for high_water(); a block caught mid-rewrite reads as no marks.
            marks = _read_marks(self.files, self.files.marks.read_bytes())
        except (FileNotFoundError, StoreError):
            marks = None
        for _ in range(10):
            seen = _identity(self.path)
            data, self._snapshot_bytes, self._snapshot_id = _load_snapshot(self.files, None)
            self._journal_bytes, _, _ = _replay_journal(self.files, data)
            if _identity(self.path) == seen:
                self._data = data
                self._marks = marks or _Marks()
                return
        raise StoreError(f"{self.path} kept changing while being read; try again")

    # --- writing ----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._broken is not None:
            raise StoreError(self._broken)
        if self._fd < 0:
            raise StoreError(f"the state {self.path} is closed; open it again to write")

    def _commit(self, ops: list[str], undo: list[Undo]) -> None:
        """Journal changes already made in memory: now, or with the open transaction."""
        if self._depth:
            self._tx_ops.extend(ops)
            self._tx_undo.extend(undo)
        else:
            self._append(ops, undo)

    def _append(self, ops: list[str], undo: list[Undo]) -> None:
        """Append one record; if that fails, undo its changes in memory and raise."""
        try:
            self._check_writable()  # closed or broken while a transaction was open
        except StoreError:
            self._rollback(undo)
            raise
        record = _record(ops)
        try:
            if self._marks_unsynced:
                os.fsync(self._marks_fd)
                self._marks_unsynced = False
            _write_all(self._fd, record)
            if self._fsync and not self._holding:
                _fdatasync(self._fd)
        except OSError as err:
            self._rollback(undo)
            self._cut_journal_back()
            raise StoreError(
                f"could not write to the state journal {self.journal_path} "
                f"({err.strerror}); the change was not made. Free disk space or fix the "
                "file's permissions, then try again"
            ) from err
        # Committed. The marks trail by one record (see the module docstring); records
        # before this one are on disk already, so the marks never claim more than it.
        # Held for a group commit, they move at its sync(), when that is so.
        if self._holding:
            self._unsynced.extend((name, key) for name, key, _ in undo)
            self._unsynced_start = (self._snapshot_id, self._journal_bytes)
            self._journal_bytes += len(record)
        else:
            self._marks.journal = self._journal_bytes
            self._journal_bytes += len(record)
            try:
                self._write_marks(sync=False)
            except (OSError, ValueError) as err:
                _log.warning("%s not updated: %s", self.files.marks, err)
        if self._compaction is not None:
            if self._compaction.done():
                self._finish_compaction()
        elif self._journal_bytes > max(
            self._snapshot_bytes, self.compact_min_bytes, self._retry_compaction_at
        ):
            if self._snapshot_bytes + self._journal_bytes < self.background_compaction_bytes:
                self._compact_after_commit()
            elif self._last_compaction is None or self._last_compaction.done_all():
                self._start_compaction()

    def _cut_journal_back(self) -> None:
        """Remove what a failed append may have left, or refuse further writes."""
        try:
            os.ftruncate(self._fd, self._journal_bytes)
            if self._fsync:
                _fdatasync(self._fd)
        except OSError as err:
            self._broken = (
                f"the state journal {self.journal_path} is in an unknown state after a "
                f"failed write ({err.strerror}); restart mentordesk, which recovers from "
                "the files"
            )

    def _compact_after_commit(self) -> None:
        # The commit is already durable: a failed compaction must not look like a failed
        # write. It is logged, and retried once the journal has grown by another threshold.
        try:
            self.compact()
        except StoreError as err:
            self._retry_compaction_at = self._journal_bytes + max(
                self._snapshot_bytes, self.compact_min_bytes
            )
            _log.warning("compaction postponed: %s", err)

    # --- compaction off the writer's path (see snapshot.py) ------------------------------

    def _start_compaction(self) -> None:
        """Freeze a view of the state (its tables' dicts, not the documents, which are
        never changed in place) and have a thread write it as the next snapshot."""
        frozen = {name: dict(docs) for name, docs in self._data.items()}
        self._compaction = BackgroundSnapshot(
            frozen,
            self._journal_bytes,
            tmp=self._tmp_path,
            backup=self.files.backup,
            backup_tmp=self.files.backup_tmp,
            fsync=self._fsync,
        )

    def _finish_compaction(self) -> None:
        """Swap in the snapshot the thread wrote, with a journal of the records since.

        Order: the new journal (the records after the frozen view) is written to
        ``.journal.tmp`` and locked; the snapshot is renamed into place; then the journal.
        A crash between the two leaves the new snapshot with the whole old journal, which
        replays to the same state (every op states a final value, module docstring).
        """
        compaction, self._compaction = self._compaction, None
        assert compaction is not None
        self._last_compaction = compaction
        files = self.files
        new_fd = -1
        swapped = False
        # Held open so that its blocks are freed where it is closed: off the writer's
        # path (``close_later``). Freeing a 20 MB file costs ext4 about 10 ms.
        old_snapshot = _open_to_free(self.path)
        try:
            size, snapshot_id = compaction.result()
            tail = _read_range(self._fd, compaction.journal_at, self._journal_bytes)
            new_fd = os.open(
                files.journal_tmp,
                os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC,
                0o600,
            )
            fcntl.flock(new_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(new_fd, tail)
            if self._fsync:
                _fdatasync(new_fd)
            assert compaction.tmp is not None
            os.replace(compaction.tmp, self.path)
            swapped = True
            if self._fsync:
                _sync_dir(self.path.parent)  # the snapshot's name first: then the journal's
            os.replace(files.journal_tmp, self.journal_path)
            if self._fsync:
                _sync_dir(self.path.parent)
        except (OSError, StoreError) as err:
            if new_fd >= 0:
                os.close(new_fd)
            files.journal_tmp.unlink(missing_ok=True)
            if compaction.tmp is not None:
                compaction.tmp.unlink(missing_ok=True)
            if swapped:  # the new snapshot with the whole journal: consistent
                self._snapshot_bytes, self._snapshot_id = size, snapshot_id
            self._retry_compaction_at = self._journal_bytes + max(
                self._snapshot_bytes, self.compact_min_bytes
            )
            _log.warning("compaction postponed: %s", err)
            compaction.close_later(old_snapshot)
            return
        # The old journal, now unlinked (the new one holds the lock), and the old snapshot.
        compaction.close_later(self._fd, old_snapshot)
        self._fd = new_fd
        self._snapshot_bytes, self._snapshot_id = size, snapshot_id
        self._journal_bytes = len(tail)
        self._retry_compaction_at = 0
        self._marks.snapshot, self._marks.journal = snapshot_id, 0
        try:
            self._write_marks(sync=self._fsync)
        except (OSError, ValueError) as err:
            _log.warning("%s not updated after a compaction: %s", files.marks, err)

    def _drop_background_compaction(self) -> None:
        """Wait for a compaction thread and throw away what it wrote (not swapped in)."""
        for compaction in (self._compaction, self._last_compaction):
            if compaction is not None:
                compaction.wait()
        if self._compaction is not None and self._compaction.tmp is not None:
            self._compaction.tmp.unlink(missing_ok=True)
        self._compaction = self._last_compaction = None

    def _rollback(self, undo: list[Undo]) -> None:
        for name, key, before in reversed(undo):
            if key is None:
                if before is None:
                    self._data.pop(name, None)
                else:
                    self._data[name] = before
            elif before is None:
                self._data[name].pop(key, None)
            else:
                self._data[name][key] = before
        # Searches made since may have cached what was just undone.
        for tables in self._open_tables.values():
            for table in tables:
                table.clear_cache()

    def _invalidate(self, name: str) -> None:
        """Empty the query cache of every open instance of table ``name``."""
        for table in self._open_tables.get(name, ()):
            table.clear_cache()

    def _write_snapshot(self, target: Path, tmp: Path) -> tuple[int, str]:
        """Write the state to ``target`` atomically (through ``tmp``), with its checksum
        and a new random id; returns (its size in bytes, the id)."""
        try:
            written = write_snapshot(self._data, tmp, fsync=self._fsync)
            os.replace(tmp, target)
            if self._fsync:
                _sync_dir(target.parent)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"could not write the state snapshot {target} ({err.strerror}); nothing "
                "is lost, the journal still holds every change. Free disk space or fix the "
                "folder's permissions"
            ) from err
        return written.size, written.snapshot_id

    def _write_backup(self) -> None:
        """Write the whole state to ``files.backup``, the copy a damage message names.

        A failure is logged, not raised: the state itself is fine.
        """
        try:
            self._write_snapshot(self.files.backup, self.files.backup_tmp)
        except StoreError as err:
            _log.warning("no new backup: %s", err)

    def _write_marks(self, *, sync: bool) -> None:
        if self._marks_fd < 0:
            raise ValueError("the marks file is not open")
        block = self._marks.encode()
        if os.pwrite(self._marks_fd, block, 0) != len(block):
            raise OSError("short write")
        if sync:
            os.fsync(self._marks_fd)

    def _replace_tables(self, data: Mapping[str, Mapping[Any, Any]]) -> None:
        """Make the state equal ``data``: how TinyDB's drop_table and drop_tables write.

        Tables handed back unchanged are the very dicts held here; any other table is
        new content, converted (and so checked) before anything changes.
        """
        self._check_writable()
        incoming: dict[str, dict[str, str]] = {}
        for name, docs in data.items():
            if docs is not self._data.get(name):
                incoming[name] = {
                    _doc_key(doc_id): _encode(dict(doc)) for doc_id, doc in docs.items()
                }
        ops: list[str] = []
        undo: list[Undo] = []
        for name in [name for name in self._data if name not in data]:
            ops.append(_op(name, None, "null"))
            undo.append((name, None, self._data.pop(name)))
        for name, texts in incoming.items():
            if name in self._data:
                ops.append(_op(name, None, "null"))
            ops.append(_op(name, None, "{}"))
            ops.extend(_op(name, key, text) for key, text in texts.items())
            undo.append((name, None, self._data.get(name)))
            self._data[name] = {key: _owned(json.loads(text)) for key, text in texts.items()}
        if ops:
            for name, _, _ in undo:
                self._invalidate(name)
            self._commit(ops, undo)


# --- helpers ----------------------------------------------------------------------------


def _open_to_free(path: Path) -> int:
    """An fd of ``path`` to close once it is replaced (-1 if it cannot be opened)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return -1


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _read_range(fd: int, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` of the file open as ``fd``; OSError if it is shorter."""
    chunks = []
    while start < end:
        chunk = os.pread(fd, end - start, start)
        if not chunk:
            raise OSError(f"the file ended at byte {start}, before {end}")
        chunks.append(chunk)
        start += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_dir(folder: Path) -> None:
    """Make renames and new names in ``folder`` durable (POSIX needs the folder fsync'd)."""
    fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
