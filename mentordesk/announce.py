"""``mentordesk announce``: the coordinator's announcement, through the running daemon.

    mentordesk announce --to mentors|mentees|pairings|all --subject S --body-file F [--send]

Without ``--send`` a preview goes to the coordinator only, and the CLI says how many
people would get it; with ``--send`` every one of them gets it (``flows.announcements``).
The command travels as the office-hours commands do (``admin.py``): signed JSON to
``POST /admin/announce`` on the daemon's loopback listener, applied once; with no daemon
running it is applied to the store directly and the emails wait in the outbox.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .admin import ask_daemon
from .config import Config
from .errors import AnnouncementError
from .flows.announcements import AUDIENCES, MAX_BODY_CHARS, announce
from .flows.desks import build_desks
from .mailer.compose import Renderer
from .state.store import Store

__all__ = [
    "ANNOUNCE_PATH",
    "add_announce_command",
    "announce_command",
    "run_announce",
]

ANNOUNCE_PATH = "/admin/announce"


def add_announce_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        "announce", help="email every mentor, mentee or pair (a preview first)"
    )
    parser.add_argument("--to", required=True, choices=AUDIENCES, help="who gets it")
    parser.add_argument("--subject", required=True, help="the email's subject")
    parser.add_argument("--body-file", required=True, help="a UTF-8 text file: the message")
    parser.add_argument(
        "--send", action="store_true", help="send it (without: a preview to the coordinator)"
    )
    parser.add_argument("--config", default="config.toml", help="path to config.toml")
    return parser


def run_announce(config: Config, args: argparse.Namespace) -> int:
    path = Path(args.body_file)
    try:
        raw = path.read_bytes()[: MAX_BODY_CHARS * 4 + 1]
        body = raw.decode("utf-8")
    except OSError as exc:
        raise AnnouncementError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise AnnouncementError(f"{path}: is not UTF-8 text") from None
    command = {"audience": args.to, "subject": args.subject, "body": body, "send": args.send}
    answer, through_daemon = announce_command(config, command)
    count = int(answer["count"])
    people = f"{count} {'person' if count == 1 else 'people'}"
    if not answer["sent"]:
        print(
            f"Preview sent to {config.program.coordinator}. "
            f"With --send, {people} ({answer['audience']}) would get it."
        )
        return 0
    how = (
        "the daemon sends them now"
        if through_daemon
        else ("the daemon is not running: they wait in the outbox until it starts")
    )
    print(f"Announcement {answer['id']} to {people} ({answer['audience']}) stored; {how}.")
    return 0


def announce_command(
    config: Config, command: dict[str, Any], now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    """Apply ``command`` through the running daemon, or to the store when none runs."""
    now = now or datetime.now(UTC)
    body = json.dumps(command, sort_keys=True).encode("utf-8")
    answer = ask_daemon(config, ANNOUNCE_PATH, body, now, AnnouncementError)
    if answer is not None:
        return answer, True
    store = Store(config.state.path, fsync=config.state.fsync)
    try:
        postman = build_desks(config, store, Renderer()).postman
        return announce(config, store, postman, command, now), False
    finally:
        store.close()
