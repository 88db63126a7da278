"""Writing the state as a snapshot file, and doing it off the writer's path.

The file format is ``db.py``'s (a TinyDB file whose last table, ``_checksum``, holds the
CRC-32 of every byte before it and the snapshot's random id). ``write_snapshot`` writes
one from any ``{table: {key: doc}}`` mapping to a temporary file; the caller renames it.

``BackgroundSnapshot`` runs that in a thread of its own over a *frozen view* of the
state: the tables' dicts copied (not the documents: the database never changes a stored
document in place, it replaces it, so the view stays what it was while the writer goes
on). The writer then only swaps files (``Database._finish_compaction``), which costs what
the journal's newest records cost, not what the state holds. The backup that follows is
the new snapshot's bytes copied by the kernel under an id of its own (``copy_snapshot``):
encoding the state twice cost the interpreter, which the writer and the pages share, as
much again.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .. import foreground
from ..errors import StoreError

__all__ = [
    "CHECKSUM_TABLE",
    "BackgroundSnapshot",
    "Written",
    "copy_snapshot",
    "encode",
    "write_snapshot",
]

_log = logging.getLogger(__name__)

# ASCII keeps every record on one line (newlines in strings are escaped) and lets any
# string through, lone surrogates included; NaN is not JSON, so it is refused.
encode = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode

# The snapshot's last table; the rest of the file is what its checksum covers.
CHECKSUM_TABLE = "_checksum"

Tables = Mapping[str, Mapping[str, Mapping[str, Any]]]

#: Bytes a snapshot or its copy writes between two fdatasyncs (with ``fsync``). On ext4
#: (ordered data) every other fsync on the disk waits for the data written since the last
#: one: synced as it goes, a 20 MB snapshot never holds the writer's commits for long.
SYNC_EVERY = 1024 * 1024

_fdatasync = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True)
class Written:
    """A snapshot file just written: what a copy of it needs to get an id of its own."""

    size: int
    snapshot_id: str
    crc: int
    body: int  # bytes before the checksum table, the ones ``crc`` covers
    empty: bool


def write_snapshot(data: Tables, tmp: Path, *, fsync: bool) -> Written:
    """Write ``data`` to ``tmp`` with its checksum and a new random id (fsync'd when
    ``fsync``). Raises OSError; removes ``tmp`` then."""
    snapshot_id = os.urandom(8).hex()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as out:
            crc = _write_tables(data, out, sync_every=SYNC_EVERY if fsync else 0)
            body = out.tell()
            out.write(_trailer(crc, snapshot_id, empty=not data))
            out.flush()
            if fsync:
                os.fsync(out.fileno())
            size = os.fstat(out.fileno()).st_size
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return Written(size, snapshot_id, crc, body, not data)


def _trailer(crc: int, snapshot_id: str, *, empty: bool) -> bytes:
    """The checksum table and the closing brace: the bytes after what ``crc`` covers."""
    table_sep = b"\n" if empty else b",\n"
    return b'%s"%s":{"1":{"crc32":"%08x","id":"%s"}}\n}\n' % (
        table_sep,
        CHECKSUM_TABLE.encode(),
        crc,
        snapshot_id.encode(),
    )


def copy_snapshot(source: int, written: Written, tmp: Path, *, fsync: bool) -> str:
    """Copy the snapshot open at ``source`` to ``tmp`` under a new random id; returns it.

    The tables' bytes are copied by the kernel, not encoded again: a backup costs the
    interpreter (which the writer and the pages share) nothing but the new checksum
    table. Raises OSError; removes ``tmp`` then."""
    snapshot_id = os.urandom(8).hex()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as out:
            offset = 0
            while offset < written.body:
                chunk = min(written.body - offset, SYNC_EVERY)
                copied = os.copy_file_range(source, fd, chunk, offset, offset)
                if copied == 0:
                    raise OSError(errno.EIO, "the snapshot being copied ended early")
                offset += copied
                if fsync:
                    _fdatasync(fd)
            out.seek(offset)
            out.write(_trailer(written.crc, snapshot_id, empty=written.empty))
            out.flush()
            if fsync:
                os.fsync(out.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return snapshot_id


def _write_tables(data: Tables, out: IO[bytes], *, sync_every: int) -> int:
    """Write ``{`` and every table (no closing brace); returns their bytes' CRC-32.
    With ``sync_every``, the file is fdatasync'd each time that many more bytes were
    written."""
    crc = 0
    unsynced = 0

    def put(text: str) -> None:
        nonlocal crc, unsynced
        chunk = text.encode("ascii")
        crc = zlib.crc32(chunk, crc)
        out.write(chunk)
        unsynced += len(chunk)
        if sync_every and unsynced >= sync_every:
            out.flush()
            _fdatasync(out.fileno())
            unsynced = 0

    # One document at a time: the state is never held twice as one string.
    put("{")
    table_sep = "\n"
    for name, docs in data.items():
        put(f"{table_sep}{encode(name)}:{{")
        doc_sep = "\n"
        for key, doc in docs.items():
            put(f'{doc_sep}"{key}":{encode(doc)}')
            doc_sep = ",\n"
        put("}")
        table_sep = ",\n"
    return crc


class BackgroundSnapshot:
    """A snapshot (and then the backup) of a frozen view, written by a thread of its own.

    ``journal_at``: the journal's length when the view was frozen; the view holds every
    record before it. ``result()`` gives (size, id) of the snapshot written to ``tmp``
    (not yet renamed) once ``done()``; it raises StoreError if writing failed. With
    ``tmp=None`` only the backup is written (at open).
    The backup is written to ``backup`` (through ``backup_tmp``) after the snapshot, with
    an id of its own; failing to write it is logged, as a failed backup always is.
    """

    def __init__(
        self,
        data: Tables,
        journal_at: int,
        *,
        tmp: Path | None,
        backup: Path,
        backup_tmp: Path,
        fsync: bool,
    ) -> None:
        self.journal_at = journal_at
        self.tmp = tmp
        self._data = data
        self._backup, self._backup_tmp = backup, backup_tmp
        self._fsync = fsync
        self._result: Written | None = None
        self._error: OSError | None = None
        self._snapshot_done = threading.Event()
        self._closing: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._run, name="state-compaction", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # While this thread encodes, the writer waits for the interpreter after each of
        # its system calls: short turns keep each wait short (a commit makes a few such
        # calls), not one long turn.
        with foreground.short_turns():
            self._write()

    def _write(self) -> None:
        # The snapshot stays open for reading while the writer renames it into place:
        # the backup is a copy of its bytes (``copy_snapshot``), not a second encoding.
        source = -1
        try:
            if self.tmp is not None:
                written = write_snapshot(self._data, self.tmp, fsync=self._fsync)
                source = os.open(self.tmp, os.O_RDONLY | os.O_CLOEXEC)
                self._result = written
        except OSError as err:
            self._error = err
        finally:
            self._snapshot_done.set()
        if self._error is None:
            try:
                if source >= 0:
                    copy_snapshot(source, written, self._backup_tmp, fsync=self._fsync)
                else:  # a backup only (at open): no snapshot written to copy
                    write_snapshot(self._data, self._backup_tmp, fsync=self._fsync)
                os.replace(self._backup_tmp, self._backup)
            except OSError as err:
                self._backup_tmp.unlink(missing_ok=True)
                _log.warning("no new backup: could not write %s: %s", self._backup, err)
            finally:
                if source >= 0:
                    os.close(source)
        self._data = {}  # let the frozen view go

    def close_later(self, *fds: int) -> None:
        """Close ``fds`` (-1: none) on a thread of their own, which ``wait`` waits for:
        the last close of a replaced file frees its blocks, which takes a while."""
        held = [fd for fd in fds if fd >= 0]
        closing = threading.Thread(
            target=_close_all, args=(held,), name="state-files-freed", daemon=True
        )
        self._closing.append(closing)
        closing.start()

    def done(self) -> bool:
        """Is the snapshot written (or failed)? The backup may still be on its way."""
        return self._snapshot_done.is_set()

    def done_all(self) -> bool:
        """Has the thread finished, backup included, and closed the files it was given?"""
        threads = [self._thread, *self._closing]
        return not any(thread.is_alive() for thread in threads)

    def wait(self) -> None:
        """Wait for the thread to finish, backup included, and for the files it was
        given to close."""
        self._thread.join()
        for closing in self._closing:
            closing.join()

    def result(self) -> tuple[int, str]:
        self._snapshot_done.wait()
        if self._error is not None:
            raise StoreError(
                f"could not write the state snapshot {self.tmp} ({self._error.strerror}); "
                "nothing is lost, the journal still holds every change. Free disk space "
                "or fix the folder's permissions"
            ) from self._error
        assert self._result is not None, "a backup-only run has no snapshot"
        return self._result.size, self._result.snapshot_id


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
