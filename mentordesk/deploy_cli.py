"""The deployer's commands: ``init``, ``check-config --connect``, ``backup``, ``restore``.

``cli.py`` parses the common options and hands these over; each returns the exit code.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

from .config import Config
from .errors import MentordeskError

__all__ = [
    "add_deploy_commands",
    "run_backup",
    "run_connect_checks",
    "run_init",
    "run_restore",
]


def add_deploy_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], default_config: str
) -> None:
    """Add ``init``, ``backup`` and ``restore`` to the CLI's subcommands."""
    init = commands.add_parser("init", help="write a commented config.toml into DIR")
    init.add_argument("dir", metavar="DIR", help="folder for config.toml (created if needed)")
    backup = commands.add_parser(
        "backup", help="write a consistent copy of the state into DEST (works while running)"
    )
    backup.add_argument("dest", metavar="DEST", help="a new folder for the backup")
    restore = commands.add_parser(
        "restore", help="replace the state by the backup in SRC (the daemon must be stopped)"
    )
    restore.add_argument("src", metavar="SRC", help="a folder written by `mentordesk backup`")
    for sub in (backup, restore):
        sub.add_argument("--config", default=default_config, help="path to config.toml")


def shipped_config() -> str:
    """The commented config.toml shipped inside the package."""
    return resources.files("mentordesk").joinpath("default_config.toml").read_text("utf-8")


def run_init(folder: Path) -> int:
    target = folder / "config.toml"
    if target.exists():
        raise MentordeskError(f"{target} exists already; nothing was written")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target.write_text(shipped_config(), encoding="utf-8")
    except OSError as exc:
        raise MentordeskError(f"cannot write {target}: {exc.strerror or exc}") from None
    print(f"Wrote {target}. Edit it, set the environment variables it names, then run:")
    print(f"  mentordesk check-config --connect --config {target}")
    return 0


def run_connect_checks(config: Config) -> int:
    """Every check that needs the servers and the machine; 1 when one fails."""
    from .preflight import connect_checks

    checks = connect_checks(config)
    for check in checks:
        print(check.line())
    failed = sum(not check.ok for check in checks)
    if failed:
        print(f"{failed} of {len(checks)} checks failed.")
        return 1
    print(f"All {len(checks)} checks passed.")
    return 0


def run_backup(config: Config, dest: Path) -> int:
    from .backup import take_backup

    manifest = take_backup(config, dest)
    how = "by the running daemon" if manifest["written_by"] == "daemon" else "(no daemon ran)"
    print(f"Backup of {config.state.path} written to {dest.resolve()} {how}.")
    print(f"Restore it with: mentordesk restore {dest.resolve()} --config {config.source}")
    return 0


def run_restore(config: Config, src: Path) -> int:
    from .backup import restore

    kept = restore(config, src)
    print(f"Restored {config.state.path} from {src.resolve()}.")
    if kept is not None:
        print(f"The state it replaced is kept in {kept}.")
    return 0
