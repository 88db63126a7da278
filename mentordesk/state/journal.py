"""The state's files, read and checked: journal records, the snapshot, the marks.

What ``db.py``'s docstring describes as the file format, as functions: building and
parsing a journal record, replaying the journal, loading and checking a snapshot,
reading the marks, and the message that tells the operator which backup to restore.
Recovery needs nothing else; ``db.Database`` writes the files.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import StoreError
from .snapshot import CHECKSUM_TABLE as _CHECKSUM_TABLE
from .snapshot import encode as _encode

Doc = dict[str, Any]

_HEAD = b'{"crc":"'
_MID = b'","ops":'
_OPS_AT = len(_HEAD) + 8 + len(_MID)  # where a record's ops array starts
_TAIL = b"}\n"

_CHECKSUM_AT = b'"' + _CHECKSUM_TABLE.encode() + b'":'
_CHECKSUM_TRAILER = re.compile(
    rb'"_checksum":\{"1":\{"crc32":"([0-9a-f]{8})","id":"([0-9a-f]{16})"\}\}\n\}\n\Z'
)
# The marks file is one block rewritten in place: a write this small and aligned is not
# torn by a crash (one page, one sector), and a fixed size leaves no stale tail.
_MARKS_BYTES = 512

# Strings up to this long are interned in the state (see _owned).
_INTERNED_MAX = 64


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


def _replay_journal(files: _Files, data: dict[str, dict[str, Doc]]) -> tuple[int, int, int]:
    """Apply the journal's committed records to ``data``.

    Returns (bytes applied, file size, where the last applied record starts). Stops
    before a last line without its newline (a torn write); raises StoreError for any
    other damaged line, the last one included.
    """
    journal_path = files.journal
    end = size = last_start = 0
    try:
        with open(journal_path, "rb") as journal:
            size = os.fstat(journal.fileno()).st_size
            for number, line in enumerate(journal, start=1):
                try:
                    ops = _parse_record(line)
                except _Damaged as damage:
                    if not line.endswith(b"\n"):
                        break  # only the last line can lack one: a write cut short
                    after = size - end - len(line)
                    why = f"{after} bytes follow it" if after else "it is complete, newline and all"
                    raise StoreError(
                        f"{journal_path}: the record on line {number} (byte offset {end}) "
                        f"is damaged ({damage}) and {why}, so it is not a write cut short "
                        f"by a crash. {_restore_hint(files)} Or keep the records before it "
                        f"with `truncate -s {end} {journal_path}` (the changes from that "
                        "record on are lost)"
                    ) from None
                for op in ops:
                    _replay_op(data, op)
                last_start = end
                end += len(line)
    except FileNotFoundError:
        pass  # no journal yet
    return end, size, last_start


def _load_snapshot(
    files: _Files, marks: _Marks | None
) -> tuple[dict[str, dict[str, Doc]], int, str | None]:
    """The tables in the snapshot file (none if it is missing or empty), its size and id.

    Checks the checksum; a snapshot without one (written before checksums) is read as it
    is, unless ``marks`` show that this state's snapshots carry one.
    """
    path = files.path
    fix = _restore_hint(files)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        if marks is not None and marks.snapshot is not None:
            raise StoreError(
                f"the state snapshot {path} is missing, though {files.marks} records one "
                f"(id {marks.snapshot}); {files.journal} only holds the changes made since "
                f"it was written. {fix}"
            ) from None
        return {}, 0, None
    size = len(raw_bytes)
    snapshot_id = _check_snapshot(files, raw_bytes, marks)
    try:
        # Decode first and let go of the bytes: json.loads(bytes) would hold both copies
        # of the file while it builds the documents, the peak of a daemon's memory.
        text = raw_bytes.decode("utf-8")
        del raw_bytes
        if not text.strip():
            return {}, size, None
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
    if snapshot_id is not None:
        raw.pop(_CHECKSUM_TABLE, None)
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
    return raw, size, snapshot_id


def _check_snapshot(files: _Files, raw_bytes: bytes, marks: _Marks | None) -> str | None:
    """The snapshot's id once its checksum holds; None for one written before checksums.

    Runs before the JSON is parsed, but a file that is not JSON at all is left for the
    parser to describe (line and column).
    """
    at = raw_bytes.rfind(_CHECKSUM_AT)
    trailer = _CHECKSUM_TRAILER.match(raw_bytes, at) if at >= 0 else None
    if trailer is None:
        if at < 0 and (marks is None or marks.snapshot is None):
            return None  # from before checksums
        if not raw_bytes.rstrip().endswith(b"}"):
            return None  # cut short: the JSON parser says where
        raise StoreError(
            f"the state snapshot {files.path} is damaged: its checksum (the "
            f"{_CHECKSUM_TABLE!r} table at its end) is missing or unreadable. "
            f"{_restore_hint(files)}"
        )
    body_end = at - (2 if raw_bytes[at - 2 : at] == b",\n" else 1)
    if b"%08x" % zlib.crc32(memoryview(raw_bytes)[:body_end]) != trailer.group(1):
        raise StoreError(
            f"the state snapshot {files.path} is damaged: its checksum does not match its "
            f"contents. {_restore_hint(files)}"
        )
    return trailer.group(2).decode("ascii")


@dataclass(frozen=True)
class _Files:
    """The files of one state (see the module docstring)."""

    path: Path
    journal: Path
    marks: Path
    backup: Path
    tmp: Path
    backup_tmp: Path
    journal_tmp: Path

    @classmethod
    def of(cls, path: Path) -> _Files:
        def sibling(suffix: str) -> Path:
            return path.with_name(path.name + suffix)

        return cls(
            path=path,
            journal=sibling(".journal"),
            marks=sibling(".marks"),
            backup=sibling(".bak"),
            tmp=sibling(".tmp"),
            backup_tmp=sibling(".bak.tmp"),
            journal_tmp=sibling(".journal.tmp"),
        )


@dataclass
class _Marks:
    """What must not be lost with the snapshot or journal (``<path>.marks``).

    ``snapshot``: the id of the snapshot the journal belongs to (None: no snapshot yet);
    ``journal``: where the journal's last committed record starts, at least;
    ``floors``: high-water marks by name (``Database.raise_high_water``).
    """

    snapshot: str | None = None
    journal: int = 0
    floors: dict[str, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        text = json.dumps(
            {"marks": 1, "snapshot": self.snapshot, "journal": self.journal, "floors": self.floors},
            sort_keys=True,
            separators=(",", ":"),
        ).encode("ascii")
        if len(text) >= _MARKS_BYTES:
            raise ValueError(f"the marks take {len(text)} bytes, more than {_MARKS_BYTES - 1}")
        return text.ljust(_MARKS_BYTES - 1) + b"\n"


def _read_marks(files: _Files, block: bytes) -> _Marks | None:
    """The marks in ``block`` (the file's bytes); None for a new, empty file."""
    if not block:
        return None
    try:
        raw = json.loads(block)
        snapshot, journal, floors = raw["snapshot"], raw["journal"], raw["floors"]
        if not (
            len(block) == _MARKS_BYTES
            and raw["marks"] == 1
            and (snapshot is None or isinstance(snapshot, str))
            and type(journal) is int
            and journal >= 0
            and isinstance(floors, dict)
            and all(type(v) is int for v in floors.values())
        ):
            raise ValueError("unexpected contents")
    except (ValueError, KeyError, TypeError) as err:
        raise StoreError(
            f"{files.marks} is damaged ({err}). It records how far {files.journal} reached "
            "and the highest request number given out, to detect lost changes and never "
            "give a number twice. If you know the state is intact, move it aside "
            f"(`mv {files.marks} {files.marks}.damaged`) and start again"
        ) from None
    return _Marks(snapshot, journal, dict(floors))


def _restore_hint(files: _Files) -> str:
    """What to do about damage: the backup to restore, or the operator's own."""
    aside = f"mv {files.journal} {files.journal}.damaged" + (
        f" && mv {files.path} {files.path}.damaged" if files.path.exists() else ""
    )
    try:
        backup = files.backup.read_bytes()
        at = backup.rfind(_CHECKSUM_AT)
        trailer = _CHECKSUM_TRAILER.match(backup, at) if at >= 0 else None
        body_end = at - (2 if backup[at - 2 : at] == b",\n" else 1)
        intact = trailer is not None and (
            b"%08x" % zlib.crc32(memoryview(backup)[:body_end]) == trailer.group(1)
        )
        written = datetime.fromtimestamp(files.backup.stat().st_mtime, UTC)
    except OSError:
        intact = False
    if not intact:
        return (
            f"There is no intact backup at {files.backup}: restore {files.path} and "
            f"{files.journal} from your own backups, and keep {files.marks} (it makes sure "
            "request numbers are never given out twice)."
        )
    return (
        f"Restore the backup {files.backup}, the whole state as of "
        f"{written:%Y-%m-%d %H:%M} UTC (later changes are lost), with "
        f"`{aside} && cp {files.backup} {files.path}`, then start again; keep "
        f"{files.marks} (it makes sure request numbers are never given out twice)."
    )


# --- documents as the state keeps them ---------------------------------------------------


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
