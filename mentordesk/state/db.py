"""TinyDB held in memory and made durable by an append-only journal.

``Database(path)`` keeps TinyDB's API (tables, ``insert``, ``update``, ``upsert``,
``remove``, ``search``, ``get``, ``Query``), but a write appends one short line to a
journal instead of rewriting the whole file, so its cost does not grow with the data.

Files, for ``path = state/mentordesk.json``::

    mentordesk.json          snapshot: a plain TinyDB file {table: {doc_id: doc}}, one
                             document per line; TinyDB itself can open it
    mentordesk.json.journal  one line per committed transaction since the snapshot:
                             {"crc":"<8 hex digits>","ops":[[table, doc_id, doc], ...]}
    mentordesk.json.tmp      the next snapshot, while compact() writes it

An op gives a document's new content; a ``null`` doc deletes it, ``[table, null, null]``
drops the table and ``[table, null, {}]`` creates it empty. ``crc`` is the CRC-32 of the
``ops`` array's bytes exactly as written. Every op states a final value, so replaying a
record that the snapshot already contains changes nothing: that makes compaction
crash-safe without sequence numbers.

Recovery loads the snapshot and replays the journal. The newline ends a record and is
its commit mark: a last line without one, or whose checksum does not match, is a write
cut short by a crash; it is dropped and cut off the file. A damaged line with more data
after it cannot come from a crash, so opening fails with a StoreError saying where.

Compaction policy: after a commit, once the journal is larger than
max(snapshot size, ``compact_min_bytes`` = 4 MiB), the whole state is written to a new
snapshot (tmp file, fsync, rename, fsync the folder) and the journal is emptied. A
compaction costs O(state) and happens at most once per state-size of journal bytes, so
its amortised cost per write is proportional to the write's own size, not to the
data; recovery replays at most about as much as it loads; the files take about twice
the state plus 4 MiB at most.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.storages import Storage
from tinydb.table import Document, Table

from ..errors import StoreError

__all__ = ["Database"]

_log = logging.getLogger(__name__)

Doc = dict[str, Any]
# How to undo one change: (table, document key or None for the whole table, the value
# before the change, None when there was none).
_Undo = tuple[str, str | None, Any]

# ASCII keeps every record on one line (newlines in strings are escaped) and lets any
# string through, lone surrogates included; NaN is not JSON, so it is refused.
_encode = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode

_HEAD = b'{"crc":"'
_MID = b'","ops":'
_OPS_AT = len(_HEAD) + 8 + len(_MID)  # where a record's ops array starts
_TAIL = b"}\n"

_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)

# Strings up to this long are interned in the state (see _owned).
_INTERNED_MAX = 64
# Values JSON writes and reads back as the same type and value.
_JSON_SCALARS = frozenset({int, float, bool, type(None)})


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

    tinydb: TinyDB

    def __init__(
        self, path: str | os.PathLike[str], *, fsync: bool = True, read_only: bool = False
    ) -> None:
        """Open (or create) the state at ``path``; recover it from snapshot and journal.

        Creates missing parent folders. A torn last journal record is dropped and cut
        off; any other damage raises StoreError naming the file, where and what to do.
        ``read_only=True`` (for tools looking at a running daemon's state) creates, locks
        and changes nothing: it ignores a torn tail and its writes raise StoreError.
        """
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self._tmp_path = self.path.with_name(self.path.name + ".tmp")
        self._fsync = fsync
        self._data: dict[str, dict[str, Doc]] = {}
        self._snapshot_bytes = self._journal_bytes = 0
        self._depth = 0  # how many transaction() blocks are open
        self._tx_ops: list[str] = []
        self._tx_undo: list[_Undo] = []
        self._broken: str | None = None  # why writes are refused
        self._retry_compaction_at = 0
        self._open_tables: weakref.WeakSet[_JournalTable] = weakref.WeakSet()
        self._fd = -1
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
        self.tinydb = _JournalTinyDB(self, storage=_JournalStorage)

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

    def compact(self) -> None:
        """Write the whole state as a new snapshot, atomically, then empty the journal.

        A crash at any point leaves either the old snapshot with the full journal or the
        new one with a journal it already contains; both recover to the same state.
        Not allowed inside a transaction (the snapshot would hold uncommitted writes).
        """
        self._check_writable()
        if self._depth:
            raise RuntimeError("compact() cannot run inside a transaction")
        snapshot_bytes = self._write_snapshot()
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

    def close(self) -> None:
        """Release the files and the lock; later writes raise StoreError. Idempotent."""
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.journal_path.exists()
        self._fd = os.open(
            self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
        )
        self._lock()
        if self._fsync and not existed:
            _sync_dir(self.path.parent)  # the new journal's name must survive a power cut
        self._tmp_path.unlink(missing_ok=True)  # left by a compaction cut short
        self._data, self._snapshot_bytes = _load_snapshot(self.path, self.journal_path)
        self._journal_bytes, size = _replay_journal(self.journal_path, self._data)
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
        for _ in range(10):
            seen = _identity(self.path)
            data, self._snapshot_bytes = _load_snapshot(self.path, self.journal_path)
            self._journal_bytes, _ = _replay_journal(self.journal_path, data)
            if _identity(self.path) == seen:
                self._data = data
                return
        raise StoreError(f"{self.path} kept changing while being read; try again")

    # --- writing ----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._broken is not None:
            raise StoreError(self._broken)
        if self._fd < 0:
            raise StoreError(f"the state {self.path} is closed; open it again to write")

    def _commit(self, ops: list[str], undo: list[_Undo]) -> None:
        """Journal changes already made in memory: now, or with the open transaction."""
        if self._depth:
            self._tx_ops.extend(ops)
            self._tx_undo.extend(undo)
        else:
            self._append(ops, undo)

    def _append(self, ops: list[str], undo: list[_Undo]) -> None:
        """Append one record; if that fails, undo its changes in memory and raise."""
        try:
            self._check_writable()  # closed or broken while a transaction was open
        except StoreError:
            self._rollback(undo)
            raise
        record = _record(ops)
        try:
            _write_all(self._fd, record)
            if self._fsync:
                _fdatasync(self._fd)
        except OSError as err:
            self._rollback(undo)
            self._cut_journal_back()
            raise StoreError(
                f"could not write to the state journal {self.journal_path} "
                f"({err.strerror}); the change was not made. Free disk space or fix the "
                "file's permissions, then try again"
            ) from err
        self._journal_bytes += len(record)
        if self._journal_bytes > max(
            self._snapshot_bytes, self.compact_min_bytes, self._retry_compaction_at
        ):
            self._compact_after_commit()

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

    def _rollback(self, undo: list[_Undo]) -> None:
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
        for table in self._open_tables:
            table.clear_cache()

    def _invalidate(self, name: str) -> None:
        """Empty the query cache of every open instance of table ``name``."""
        for table in self._open_tables:
            if table.name == name:
                table.clear_cache()

    def _write_snapshot(self) -> int:
        """Write the state to the snapshot file atomically; returns its size in bytes."""
        try:
            fd = os.open(
                self._tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600
            )
            with open(fd, "w", encoding="ascii", newline="\n") as out:
                # One document at a time: the state is never held twice as one string.
                out.write("{")
                table_sep = "\n"
                for name, docs in self._data.items():
                    out.write(f"{table_sep}{_encode(name)}:{{")
                    doc_sep = "\n"
                    for key, doc in docs.items():
                        out.write(f'{doc_sep}"{key}":{_encode(doc)}')
                        doc_sep = ",\n"
                    out.write("}")
                    table_sep = ",\n"
                out.write("\n}\n")
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
                size = os.fstat(out.fileno()).st_size
            os.replace(self._tmp_path, self.path)
            if self._fsync:
                _sync_dir(self.path.parent)
        except OSError as err:
            self._tmp_path.unlink(missing_ok=True)
            raise StoreError(
                f"could not write the state snapshot {self.path} ({err.strerror}); nothing "
                "is lost, the journal still holds every change. Free disk space or fix the "
                "folder's permissions"
            ) from err
        return size

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
        undo: list[_Undo] = []
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


class _JournalTable(Table):
    """A TinyDB table whose documents live in the Database's memory, changed in place.

    Each write reports exactly the documents it changed, which become one journal record
    (or part of the open transaction's). Documents handed to callers are copies: changing
    one, even a nested list, never changes the state behind the journal's back.
    """

    def __init__(
        self,
        storage: Storage,
        name: str,
        cache_size: int = Table.default_query_cache_capacity,
        persist_empty: bool = False,
    ) -> None:
        if not isinstance(storage, _JournalStorage):
            raise TypeError(f"{type(self).__name__} needs the journal storage")
        self._db = storage.db
        self._db._open_tables.add(self)
        super().__init__(storage, name, cache_size, persist_empty)

    def _read_table(self) -> dict[str, Mapping[str, Any]]:
        return cast(dict[str, Mapping[str, Any]], self._db._data.get(self.name, {}))

    def _update_table(self, updater: Callable[[dict[int, Mapping[str, Any]]], None]) -> None:
        db = self._db
        db._check_writable()
        docs = db._data.get(self.name)
        created = docs is None
        if docs is None:
            # TinyDB creates the table on any write, even one that changes nothing.
            docs = db._data[self.name] = {}
        view = _TrackedDocs(docs)
        try:
            # TinyDB's updaters only use the mapping protocol, which the view implements.
            updater(cast(dict[int, Mapping[str, Any]], view))
            changes = view.changes()
        except BaseException:
            view.restore()
            if created:
                del db._data[self.name]
            # Cached results share nested lists with the documents the updater may have
            # changed in place before failing.
            db._invalidate(self.name)
            raise
        ops: list[str] = []
        undo: list[_Undo] = []
        if created:
            ops.append(_op(self.name, None, "{}"))
            undo.append((self.name, None, None))
        for key, text, before in changes:
            if text is None:
                ops.append(_op(self.name, key, "null"))
            else:
                # Keep exactly what a reload would give, sharing nothing with the caller.
                docs[key] = _reloaded(docs[key], text)
                ops.append(_op(self.name, key, text))
            undo.append((self.name, key, before))
        if ops:
            db._invalidate(self.name)
            db._commit(ops, undo)

    # TinyDB's own cond-based update and remove read every document through the updater,
    # which would make each one a copy-on-write candidate; picking the ids first with a
    # read-only scan keeps the write proportional to the documents it changes.

    def update(
        self,
        fields: Mapping[str, Any] | Callable[[MutableMapping[str, Any]], None],
        cond: QueryLike | None = None,
        doc_ids: Iterable[int] | None = None,
    ) -> list[int]:
        if doc_ids is None and cond is not None:
            doc_ids = self._matching_ids(cond)
        return super().update(fields, cond, doc_ids)

    def remove(
        self, cond: QueryLike | None = None, doc_ids: Iterable[int] | None = None
    ) -> list[int]:
        if doc_ids is None and cond is not None:
            doc_ids = self._matching_ids(cond)
        return super().remove(cond, doc_ids)

    def _matching_ids(self, cond: QueryLike) -> list[int]:
        return [int(key) for key, doc in self._read_table().items() if cond(doc)]

    # Reads: hand out copies that share nothing with the state or the query cache.

    def search(self, cond: QueryLike) -> list[Document]:
        return [self.document_class(_detached(doc), doc.doc_id) for doc in super().search(cond)]

    def get(
        self,
        cond: QueryLike | None = None,
        doc_id: int | None = None,
        doc_ids: list[Any] | None = None,
    ) -> Any:
        found = cast(Any, super()).get(cond, doc_id, doc_ids)
        if isinstance(found, list):
            return [self.document_class(_detached(doc), doc.doc_id) for doc in found]
        if found is None:
            return None
        return self.document_class(_detached(found), found.doc_id)

    def count(self, cond: QueryLike) -> int:
        return len(super().search(cond))

    def __iter__(self) -> Iterator[Document]:
        # Iterate over a list of the items, so that writing while iterating works, as it
        # does with TinyDB's file storage.
        for key, doc in list(self._read_table().items()):
            yield self.document_class(_detached(doc), int(key))


class _TrackedDocs(MutableMapping[int, Any]):
    """One table's documents keyed by int id, as TinyDB's updaters expect them.

    Remembers each touched document's content before the update, to find what changed
    and to undo it. A document handed out may be changed in place, so a deep copy is kept;
    one replaced or deleted without being handed out is kept as it is.
    """

    def __init__(self, docs: dict[str, Doc]) -> None:
        self._docs = docs
        self._before: dict[str, Doc | None] = {}

    def __getitem__(self, doc_id: int) -> Doc:
        key = str(doc_id)
        doc = self._docs[key]
        if key not in self._before:
            self._before[key] = _detached(doc)
        return doc

    def __setitem__(self, doc_id: int, doc: Doc) -> None:
        key = str(doc_id)
        if key not in self._before:
            self._before[key] = self._docs.get(key)
        self._docs[key] = doc

    def __delitem__(self, doc_id: int) -> None:
        key = str(doc_id)
        doc = self._docs.pop(key)
        self._before.setdefault(key, doc)

    def __contains__(self, doc_id: object) -> bool:
        return str(doc_id) in self._docs

    def __iter__(self) -> Iterator[int]:
        return (int(key) for key in self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    def clear(self) -> None:
        for key, doc in self._docs.items():
            self._before.setdefault(key, doc)
        self._docs.clear()

    def changes(self) -> list[tuple[str, str | None, Doc | None]]:
        """(key, new JSON text or None if deleted, content before) of each changed document.

        Raises TypeError or ValueError if a document is not JSON; the caller restores.
        """
        changed: list[tuple[str, str | None, Doc | None]] = []
        for key, before in self._before.items():
            doc = self._docs.get(key)
            if doc is None:
                if before is not None:
                    changed.append((key, None, before))
                continue
            text = _encode(doc)
            # == alone would call 1, 1.0 and True the same; the JSON text tells them apart.
            if before is not None and doc == before and text == _encode(before):
                self._docs[key] = before  # same content, and the copy shares nothing
                continue
            changed.append((key, text, before))
        return changed

    def restore(self) -> None:
        """Put every touched document back as it was before the update."""
        for key, before in self._before.items():
            if before is None:
                self._docs.pop(key, None)
            else:
                self._docs[key] = before


class _JournalStorage(Storage):
    """TinyDB's storage seam: reads see the Database's memory; whole-state writes (only
    drop_table and drop_tables make them) become journalled changes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> dict[str, dict[str, Any]]:
        # A copy of the outer dict: drop_table deletes from what it reads before writing.
        return dict(self.db._data)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.db._replace_tables(data)

    def close(self) -> None:
        self.db.close()


class _JournalTinyDB(TinyDB):
    table_class = _JournalTable


# --- the file format --------------------------------------------------------------------


class _Damaged(ValueError):
    """A journal line that is not a complete, intact record; the message says why."""


def _op(table: str, key: str | None, doc_text: str) -> str:
    return f"[{_encode(table)},{key if key is not None else 'null'},{doc_text}]"


def _record(ops: list[str]) -> bytes:
    body = ("[" + ",".join(ops) + "]").encode("ascii")
    return b"%s%08x%s%s%s" % (_HEAD, zlib.crc32(body), _MID, body, _TAIL)


def _parse_record(line: bytes) -> list[list[Any]]:
    """The ops of one journal line, checked; raises _Damaged."""
    if not line.endswith(b"\n"):
        raise _Damaged("it does not end with a newline")
    if not (
        line.startswith(_HEAD)
        and line[_OPS_AT - len(_MID) : _OPS_AT] == _MID
        and line.endswith(_TAIL)
    ):
        raise _Damaged("it is not laid out as a journal record")
    body = line[_OPS_AT : -len(_TAIL)]
    if line[len(_HEAD) : _OPS_AT - len(_MID)] != b"%08x" % zlib.crc32(body):
        raise _Damaged("checksum mismatch")
    try:
        ops = json.loads(body)
    except ValueError:
        raise _Damaged("its ops are not JSON") from None
    if not isinstance(ops, list) or not all(_is_op(op) for op in ops):
        raise _Damaged("its ops are malformed")
    return ops


def _is_op(op: object) -> bool:
    if not (isinstance(op, list) and len(op) == 3 and isinstance(op[0], str)):
        return False
    _, doc_id, doc = op
    if doc_id is None:
        return doc is None or doc == {}
    return type(doc_id) is int and (doc is None or isinstance(doc, dict))


def _replay_op(data: dict[str, dict[str, Doc]], op: list[Any]) -> None:
    name, doc_id, doc = op
    if doc_id is None:
        if doc is None:
            data.pop(name, None)
        else:
            data.setdefault(name, {})
        return
    docs = data.setdefault(name, {})
    if doc is None:
        docs.pop(str(doc_id), None)
    else:
        docs[str(doc_id)] = _owned(doc)


def _replay_journal(journal_path: Path, data: dict[str, dict[str, Doc]]) -> tuple[int, int]:
    """Apply the journal's committed records to ``data``: (bytes applied, file size).

    Stops before a damaged last line (a torn write); raises StoreError for a damaged line
    with more after it, which no crash produces.
    """
    end = size = 0
    try:
        with open(journal_path, "rb") as journal:
            size = os.fstat(journal.fileno()).st_size
            for number, line in enumerate(journal, start=1):
                try:
                    ops = _parse_record(line)
                except _Damaged as damage:
                    if end + len(line) >= size:
                        break
                    raise StoreError(
                        f"{journal_path}: the record on line {number} (byte offset {end}) "
                        f"is damaged ({damage}) and {size - end - len(line)} bytes follow "
                        "it, so it is not a write cut short by a crash. Restore the file "
                        f"from a backup, or keep the records before it with `truncate -s "
                        f"{end} {journal_path}` (the changes from that record on are lost)"
                    ) from None
                for op in ops:
                    _replay_op(data, op)
                end += len(line)
    except FileNotFoundError:
        pass  # no journal yet
    return end, size


def _load_snapshot(path: Path, journal_path: Path) -> tuple[dict[str, dict[str, Doc]], int]:
    """The tables in the snapshot file (none if it is missing or empty) and its size."""
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        return {}, 0
    size = len(raw_bytes)
    fix = (
        f"restore {path} from a backup; {journal_path} only holds the changes made since "
        "the snapshot was written"
    )
    try:
        # Decode first and let go of the bytes: json.loads(bytes) would hold both copies
        # of the file while it builds the documents, the peak of a daemon's memory.
        text = raw_bytes.decode("utf-8")
        del raw_bytes
        if not text.strip():
            return {}, size
        raw = json.loads(text)
        del text
    except ValueError as err:
        where = (
            f" (line {err.lineno}, column {err.colno}: {err.msg})"
            if isinstance(err, json.JSONDecodeError)
            else ""
        )
        raise StoreError(f"the state snapshot {path} is not valid JSON{where}; {fix}") from None
    if not isinstance(raw, dict) or not all(isinstance(docs, dict) for docs in raw.values()):
        raise StoreError(f"the state snapshot {path} is not a TinyDB file of tables; {fix}")
    for name, docs in raw.items():
        for key, doc in docs.items():
            try:
                _doc_key(key)
            except ValueError as err:
                raise StoreError(f"{path}, table {name!r}: {err}; {fix}") from None
            if not isinstance(doc, dict):
                raise StoreError(
                    f"{path}, table {name!r}: document {key} is not a JSON object; {fix}"
                )
            docs[key] = _owned(doc)
    return raw, size


# --- helpers ----------------------------------------------------------------------------


def _doc_key(doc_id: object) -> str:
    """``doc_id`` as the string key TinyDB files use; ValueError unless a whole number."""
    key = str(doc_id)
    try:
        whole = not isinstance(doc_id, bool) and str(int(key)) == key
    except ValueError:
        whole = False
    if not whole:
        raise ValueError(f"document id {doc_id!r} is not a whole number")
    return key


def _owned(doc: Doc) -> Doc:
    """``doc`` as the state keeps it: with its field names and short strings interned, so
    that 50,000 documents share one copy of a name, a status, an address or a timestamp,
    not 50,000 (the state lives in memory)."""
    return {sys.intern(key): _shared(value) for key, value in doc.items()}


def _shared(value: Any) -> Any:
    if type(value) is str:
        return sys.intern(value) if len(value) <= _INTERNED_MAX else value
    if isinstance(value, dict):
        return {sys.intern(k) if type(k) is str else k: _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(item) for item in value]
    return value


class _NotPlain(Exception):
    """A document holds something JSON would turn into something else."""


def _reloaded(doc: Doc, text: str) -> Doc:
    """What reloading ``doc`` from its JSON ``text`` gives (as ``_owned`` keeps it),
    sharing nothing with ``doc``.

    A document of JSON's own types only — the usual case — is copied directly, which
    is several times faster than parsing ``text``; one holding anything JSON changes
    (a tuple, a subclass of str or int, a key that is not a string) is read back from
    ``text``.
    """
    try:
        return {sys.intern(key): _plain_copy(value) for key, value in doc.items()}
    except _NotPlain:
        return _owned(json.loads(text))


def _plain_copy(value: Any) -> Any:
    """``_shared(json.loads(json.dumps(value)))``, or _NotPlain when that would differ."""
    kind = type(value)
    if kind is str:
        return sys.intern(value) if len(value) <= _INTERNED_MAX else value
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[sys.intern(key)] = _plain_copy(item)
        return copied
    if kind is list:
        return [_plain_copy(item) for item in value]
    if kind in _JSON_SCALARS:
        return value  # floats too: JSON writes repr(), which reads back the same float
    raise _NotPlain


def _clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists and immutable scalars)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def _detached(doc: Mapping[str, Any]) -> Doc:
    """A deep copy of a document; cheap when its values are scalars, as most are."""
    return {key: _clone(v) if isinstance(v, dict | list) else v for key, v in doc.items()}


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


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
