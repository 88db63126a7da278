"""``mentordesk backup DEST`` and ``mentordesk restore SRC``: the state, whole and consistent.

Copying the state's files by hand can catch a compaction halfway (a new snapshot with the
old journal). A backup is instead written by the state's one writer, between two
transactions: while the daemon runs, the CLI asks it through the admin route
(``POST /admin/backup``, signed and loopback-only like the office-hours commands, see
``admin.py``) and the daemon's writer thread writes it beside the state (the one place
a hardened service may write), whence the CLI moves it to DEST; when no daemon runs,
the CLI takes the state's lock itself and writes it.

A backup is a folder holding a state of its own — ``<name>`` (a snapshot),
``<name>.marks`` (its high-water marks) and ``<name>.archive`` (the history on disk,
copied after the snapshot, so whatever left the snapshot's working set meanwhile is in
it), no journal — and ``mentordesk-backup.json`` saying what it is. Any mentordesk can
open it read-only, so ``status`` works on it.

``restore`` refuses while a daemon holds the state. It moves the current state's files
into ``<name>.before-restore-<time>/`` beside it, puts the backup in their place, and
keeps the high-water marks of the state it replaced, so request numbers already given
out are never given out again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from . import __version__
from .admin import ask_daemon, check_admin_token, spend_admin_nonce
from .config import Config
from .errors import AdminError, MentordeskError, StoreError, TokenError
from .state.archive import Archive, archive_path
from .state.db import Database
from .state.store import SCHEMA_VERSION, StoreWriter, iso

__all__ = [
    "BACKUP_PATH",
    "MANIFEST",
    "StateMissing",
    "require_state",
    "restore",
    "serve_backup",
    "take_backup",
]

log = logging.getLogger(__name__)

BACKUP_PATH = "/admin/backup"
MANIFEST = "mentordesk-backup.json"
TIMEOUT_S = 600.0  # a large state takes a while to write
# The files of a state at ``path``, by suffix (``db.py`` names them).
_STATE_SUFFIXES = ("", ".journal", ".marks", ".bak", ".archive", ".archive-wal", ".archive-shm")


class StateMissing(MentordeskError):
    """There is no state at the configured path (mistyped [state] path?)."""


def require_state(config: Config) -> None:
    """Raise StateMissing unless a state exists at [state] path."""
    path = config.state.path
    if not (path.exists() or path.with_name(path.name + ".journal").exists()):
        raise StateMissing(
            f"no state at {path} — check [state] path in {config.source} "
            "(the daemon creates the state when it first starts)"
        )


# --- backup ----------------------------------------------------------------------------------


def take_backup(config: Config, dest: Path) -> dict[str, Any]:
    """Write a backup of the state into the new folder ``dest``; its manifest."""
    require_state(config)
    dest = dest.resolve()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MentordeskError(f"{dest} exists and is not an empty folder; choose a new one")
    answer = _ask_daemon(config, {"action": "backup", "dest": str(dest)})
    if answer is not None:
        staged = Path(str(answer["staged"]))
        try:
            shutil.move(staged, dest)
        except OSError as exc:
            raise MentordeskError(
                f"the daemon wrote the backup to {staged}, but it cannot be moved to {dest}: "
                f"{exc.strerror or exc}. Run the command as root or as the service's user"
            ) from None
    else:
        with _state_lock(config.state.path, doing="back up"):
            db = Database(config.state.path, fsync=True, read_only=True)
            archive = Archive(archive_path(config.state.path), read_only=True)
            try:
                answer = write_backup(db, archive, dest, config.state.path.name, through="cli")
            finally:
                db.close()
                archive.close()
    return answer


def write_backup(
    db: Database, archive: Archive, dest: Path, name: str, *, through: str
) -> dict[str, Any]:
    """Write ``db`` and its ``archive`` into ``dest`` (created) as a state called
    ``name``, with its manifest."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MentordeskError(f"cannot create {dest}: {exc.strerror or exc}") from None
    where = db.copy_to(dest / name)
    archive.copy_to(archive_path(dest / name))
    manifest = {
        "mentordesk": __version__,
        "schema": SCHEMA_VERSION,
        "state": name,
        "created": iso(datetime.now(UTC)),
        "written_by": through,
        "source": {"path": str(db.path), **where},
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


async def serve_backup(
    request: web.Request, config: Config, writer: StoreWriter, *, loopback: bool
) -> web.Response:
    """The daemon's side: check the CLI's signed request, then write the backup on the
    writer thread, where no transaction is half done."""
    if not loopback:
        return web.json_response({"error": "only this machine's loopback may do this"}, status=403)
    body = await request.read()
    unsafe_token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    now = datetime.now(UTC)
    try:
        ticket = check_admin_token(config.secret, unsafe_token, body, now)
        command = json.loads(body)
        if command.get("action") != "backup":
            raise ValueError("not a backup")
    except TokenError as exc:
        return web.json_response({"error": str(exc)}, status=403)
    except (ValueError, AttributeError):
        return web.json_response({"error": "the request is not a backup command"}, status=400)
    # Written beside the state, the one place the daemon may write (under systemd's
    # ProtectSystem=strict); the CLI moves it to where its user asked.
    staged = config.state.path.with_name(f".{config.state.path.name}.backup-{ticket.nonce}")

    def backup_once() -> dict[str, Any]:
        store = writer.store
        if store is None:
            raise StoreError("the state is not open")
        spend_admin_nonce(store, ticket, now)
        manifest = write_backup(
            store.db, store.archive, staged, store.db.path.name, through="daemon"
        )
        return {**manifest, "staged": str(staged)}

    try:
        manifest = await writer.call(backup_once)
    except TokenError as exc:
        return web.json_response({"error": str(exc)}, status=403)
    except MentordeskError as exc:
        return web.json_response({"error": str(exc)}, status=500)
    log.info("backup written to %s for the CLI", staged)
    return web.json_response(manifest)


def _ask_daemon(config: Config, command: dict[str, Any]) -> dict[str, Any] | None:
    """The running daemon's answer, or None when nothing listens on [web] host:port.
    Raises AdminError when it cannot be asked or does not write the backup."""
    body = json.dumps(command, sort_keys=True).encode("utf-8")
    return ask_daemon(config, BACKUP_PATH, body, datetime.now(UTC), AdminError, timeout_s=TIMEOUT_S)


@contextlib.contextmanager
def _state_lock(path: Path, *, doing: str) -> Iterator[None]:
    """Hold the lock the daemon holds on the state (its journal) while it runs."""
    journal = path.with_name(path.name + ".journal")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(journal, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MentordeskError(
                f"a mentordesk daemon is using {path}; cannot {doing} now. Stop it first "
                "(systemctl stop mentordesk), or let it answer on its [web] port"
            ) from None
        yield
    finally:
        os.close(fd)


# --- restore ---------------------------------------------------------------------------------


def restore(config: Config, src: Path) -> Path | None:
    """Put the backup in ``src`` in place of the state; the folder the replaced state was
    moved to (None when there was none)."""
    src = src.resolve()
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
        name = str(manifest["state"])
    except (OSError, ValueError, KeyError, TypeError):
        raise MentordeskError(
            f"{src} is not a mentordesk backup (no readable {MANIFEST}); "
            "make one with `mentordesk backup DEST`"
        ) from None
    backup_path = src / name
    try:
        Database(backup_path, fsync=False, read_only=True).close()  # checks its checksum
    except StoreError as exc:
        raise MentordeskError(f"the backup in {src} cannot be used: {exc}") from None
    path = config.state.path
    kept: Path | None = None
    with _state_lock(path, doing="restore"):
        floors: dict[str, int] = {}
        present = [path.with_name(path.name + s) for s in _STATE_SUFFIXES]
        present = [p for p in present if p.exists() and p.stat().st_size]
        if present:
            current = Database(path, fsync=False, read_only=True)
            floors = current.high_waters()
            current.close()
        if present:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            kept = path.with_name(f"{path.name}.before-restore-{stamp}")
            kept.mkdir()
            for file in [path.with_name(path.name + s) for s in _STATE_SUFFIXES]:
                if file.exists():
                    shutil.copy2(file, kept / file.name)
        # The replaced archive's write-ahead log is not the restored archive's.
        for suffix in (".archive-wal", ".archive-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        for suffix in ("", ".marks", ".archive"):
            target = path.with_name(path.name + suffix)
            if suffix == ".archive" and not (src / (name + suffix)).exists():
                target.unlink(missing_ok=True)  # a backup from before the archive
                continue
            staging = path.with_name(path.name + suffix + ".restoring")
            shutil.copyfile(src / (name + suffix), staging)
            os.replace(staging, target)
        # The journal belongs to the replaced snapshot: emptied, under the lock we hold.
        os.truncate(path.with_name(path.name + ".journal"), 0)
        path.with_name(path.name + ".bak").unlink(missing_ok=True)
    # Opened for writing once: it writes its backup copy, and keeps the replaced state's
    # high-water marks (request numbers people have seen are not given out again).
    db = Database(path, fsync=True)
    try:
        for mark, value in floors.items():
            db.raise_high_water(mark, value)
    finally:
        db.close()
    _owned_like_the_folder(path)
    return kept


def _owned_like_the_folder(path: Path) -> None:
    """Run as root for a service's state (systemd's DynamicUser): hand the restored files
    to the folder's owner, or the service could not open them."""
    if os.geteuid() != 0:
        return
    owner = path.parent.stat()
    for suffix in _STATE_SUFFIXES:
        file = path.with_name(path.name + suffix)
        if file.exists():
            os.chown(file, owner.st_uid, owner.st_gid)
