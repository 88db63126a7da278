"""``mentordesk backup`` and ``restore``, and the kept copy when an old state is upgraded.

The backup is taken while the daemon takes in 500 messages from the real Dovecot. The
state "at that point" is rebuilt independently from the daemon's own files afterwards:
its snapshot plus the journal cut at the length the backup reports (compaction is held
off for the test, so that snapshot is still the one). ``status`` and ``export`` then
read the restored state and that one identically.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from mentordesk.admin import admin_token
from mentordesk.cli import main
from mentordesk.config import Config
from mentordesk.reports import export_csv
from mentordesk.state.db import Database
from mentordesk.state.store import SCHEMA_VERSION, Store
from mentordesk.status import render_status
from tests.desk import ENVIRON, Desk, mail
from tests.servers import PROGRAM_USER
from tests.test_claims import REQUEST

INTAKE = 500
NOW = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the test config names, for the CLI run in this process."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def read_back(path: Path, folder: Path) -> tuple[str, dict[str, str]]:
    """What ``status`` shows and what ``export`` writes for the state at ``path``."""
    store = Store(path, fsync=False, read_only=True)
    try:
        status = render_status(store, NOW)
        export_csv(store, folder)
    finally:
        store.close()
    return status, {f.name: f.read_text("utf-8") for f in sorted(folder.iterdir())}


def state_at(source: Path, journal_bytes: int, snapshot_id: str | None, target: Path) -> Path:
    """The state ``source`` was when its journal was ``journal_bytes`` long."""
    target.mkdir()
    copy = target / source.name
    if snapshot_id is None:  # a new state: everything is in its journal
        assert not source.exists(), "a snapshot was written since"
    else:
        snapshot = source.read_bytes()
        assert f'"id":"{snapshot_id}"'.encode() in snapshot[-200:], "the snapshot changed"
        copy.write_bytes(snapshot)
    journal = source.with_name(source.name + ".journal").read_bytes()
    copy.with_name(copy.name + ".journal").write_bytes(journal[:journal_bytes])
    return copy


@pytest.mark.timeout(600)  # 500 messages and their 1000 replies on a shared machine
async def test_backup_during_an_intake_restores_that_moment(
    desk: Desk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Database, "compact_min_bytes", 1 << 40)
    config = desk.configure(inbox={"batch_size": 20})
    with desk.dovecot.client(PROGRAM_USER) as client:
        for n in range(INTAKE):
            sender = f"Mentee {n} <mentee{n}@example.net>"
            client.append("INBOX", mail(sender, f"Mentor request {n}", REQUEST))
    await desk.start()
    await desk.until(lambda store: len(store.messages("done")) >= 20, timeout_s=120)
    dest = tmp_path / "backup"
    code, out, err = await asyncio.to_thread(
        cli, "backup", "--config", str(config.source), str(dest)
    )
    assert code == 0, err
    assert f"written to {dest} by the running daemon" in out
    # The daemon wrote it beside the state; nothing is left there once it is moved.
    assert not list(config.state.path.parent.glob(".*backup*"))
    await desk.processed(INTAKE, timeout_s=300)
    await desk.stop()

    manifest = json.loads((dest / "mentordesk-backup.json").read_text())
    assert manifest["written_by"] == "daemon" and manifest["schema"] == SCHEMA_VERSION
    at = state_at(
        config.state.path,
        manifest["source"]["journal_bytes"],
        manifest["source"]["snapshot"],
        tmp_path / "at-backup",
    )
    expected = read_back(at, tmp_path / "csv-expected")
    handled = len(Store(at, fsync=False, read_only=True).messages("done"))
    assert 20 <= handled < INTAKE, "the backup was not taken during the intake"
    assert f"Open requests ({handled})" in expected[0]

    before = Database(config.state.path, fsync=False, read_only=True)
    floors = before.high_waters()
    before.close()
    assert floors["request"] == INTAKE
    code, out, err = cli("restore", "--config", str(config.source), str(dest))
    assert code == 0, err
    kept = Path(re.search(r"The state it replaced is kept in (\S+)\.", out).group(1))  # type: ignore[union-attr]
    assert kept.is_dir() and (kept / f"{config.state.path.name}.journal").exists()
    assert read_back(config.state.path, tmp_path / "csv-restored") == expected
    # The backup folder is a state of its own, too.
    assert read_back(dest / config.state.path.name, tmp_path / "csv-backup") == expected
    # Request numbers people saw after the backup are never given out again.
    after = Database(config.state.path, fsync=False, read_only=True)
    assert after.high_waters()["request"] == INTAKE
    after.close()
    # And the state it replaced is still whole where the restore said.
    replaced = read_back(kept / config.state.path.name, tmp_path / "csv-kept")
    assert f"Open requests ({INTAKE})" in replaced[0]


async def test_restore_refuses_while_the_daemon_runs(desk: Desk, tmp_path: Path) -> None:
    await desk.start()
    desk.send(mail("Mentee <mentee@example.net>", "Mentor request", REQUEST))
    await desk.processed(1)
    dest = tmp_path / "backup"
    code, _, err = await asyncio.to_thread(
        cli, "backup", "--config", str(desk.config.source), str(dest)
    )
    assert code == 0, err
    code, _, err = await asyncio.to_thread(
        cli, "restore", "--config", str(desk.config.source), str(dest)
    )
    assert code == 2
    assert f"a mentordesk daemon is using {desk.config.state.path}; cannot restore now" in err
    # A second backup into the same folder is refused rather than mixed.
    code, _, err = await asyncio.to_thread(
        cli, "backup", "--config", str(desk.config.source), str(dest)
    )
    assert code == 2 and "is not an empty folder" in err


def test_backup_without_a_daemon_and_a_bad_source(tmp_path: Path, desk: Desk) -> None:
    config: Config = desk.config
    store = Store(config.state.path, fsync=False)
    store.set_meta("marker", "kept")
    store.close()
    code, out, err = cli("backup", "--config", str(config.source), str(tmp_path / "b"))
    assert code == 0, err
    assert "(no daemon ran)" in out
    copy = Store(tmp_path / "b" / config.state.path.name, fsync=False, read_only=True)
    assert copy.meta("marker") == "kept"
    copy.close()
    (tmp_path / "junk").mkdir()
    code, _, err = cli("restore", "--config", str(config.source), str(tmp_path / "junk"))
    assert code == 2
    assert "is not a mentordesk backup" in err
    # A damaged backup is refused before anything is touched.
    broken = tmp_path / "b" / config.state.path.name
    broken.write_bytes(broken.read_bytes().replace(b'"marker"', b'"markex"'))
    code, _, err = cli("restore", "--config", str(config.source), str(tmp_path / "b"))
    assert code == 2 and "cannot be used" in err
    state = Store(config.state.path, fsync=False, read_only=True)
    assert state.meta("marker") == "kept"
    state.close()


def test_an_old_state_is_upgraded_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "mentordesk.db"
    old = Store(path, fsync=False)
    with old.db.transaction():
        old.db.table("requests").insert(
            {"number": 1, "status": "done", "mentee": "m@example.net", "created": "2025-01-01"}
        )
        old.db.table("meta").remove(lambda d: d["key"] == "schema")
    old.close()
    before = read_back(path, tmp_path / "csv-before")

    Store(path, fsync=False).close()  # what the daemon does at its start

    kept = path.with_name("mentordesk.db.v1.bak")
    assert kept.exists()
    assert read_back(kept, tmp_path / "csv-kept") == before
    upgraded = Store(path, fsync=False, read_only=True)
    assert upgraded.meta("schema") == SCHEMA_VERSION
    assert upgraded.request(1)["status"] == "met"  # type: ignore[index]
    upgraded.close()
    # Opening again upgrades nothing and keeps the copy as it was.
    stamp = kept.stat().st_mtime_ns
    Store(path, fsync=False).close()
    assert kept.stat().st_mtime_ns == stamp
    shutil.rmtree(tmp_path / "state")


async def test_the_backup_route_wants_a_fresh_signed_request(
    desk: Desk, http: aiohttp.ClientSession
) -> None:
    await desk.start()
    url = f"http://127.0.0.1:{desk.web_port}/admin/backup"
    body = json.dumps({"action": "backup", "dest": "/tmp/x"}, sort_keys=True).encode()
    async with http.post(url, data=body, headers={"Authorization": "Bearer forged"}) as answer:
        assert answer.status == 403
    token = admin_token(desk.config.secret, body, datetime.now(UTC))
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(url, data=body, headers=headers) as answer:
        assert answer.status == 200
        staged = Path((await answer.json())["staged"])
    assert (staged / "mentordesk-backup.json").exists()
    async with http.post(url, data=body, headers=headers) as answer:  # the same, again
        assert answer.status == 403
        assert "received already" in (await answer.json())["error"]
    async with http.post(
        url, data=body, headers={**headers, "X-Forwarded-For": "192.0.2.1"}
    ) as answer:
        assert answer.status == 403  # through a proxy: not this machine's loopback
    shutil.rmtree(staged)


def test_backup_and_restore_carry_the_archive(tmp_path: Path, desk: Desk) -> None:
    from tests.test_archive import BEFORE, T0, life

    config: Config = desk.config
    store = Store(config.state.path, fsync=False)
    life(store, 1, T0)
    assert store.archive_history(before=BEFORE) > 0
    store.close()
    code, _, err = cli("backup", "--config", str(config.source), str(tmp_path / "b"))
    assert code == 0, err
    store = Store(config.state.path, fsync=False)
    life(store, 2, T0)  # archived after the backup was taken
    assert store.archive_history(before=BEFORE) > 0
    store.close()

    code, _, err = cli("restore", "--config", str(config.source), str(tmp_path / "b"))
    assert code == 0, err

    restored = Store(config.state.path, fsync=False, read_only=True)
    try:
        assert [r["number"] for r in restored.requests()] == [1]
        assert [e["event"] for e in restored.audit_log(1)] == ["request received", "claimed"]
        assert restored.thread(["<ack-1@program.test>"]) is not None
    finally:
        restored.close()
    [kept] = config.state.path.parent.glob("*.before-restore-*")
    replaced = Store(kept / config.state.path.name, fsync=False, read_only=True)
    try:  # the state it replaced, archive and all, is kept beside it
        assert [r["number"] for r in replaced.requests()] == [1, 2]
    finally:
        replaced.close()
