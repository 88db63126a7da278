"""``mentordesk pairings list|cancel|move``: the coordinator's hand on the pairings.

    mentordesk pairings list
    mentordesk pairings cancel 1 2026-04-07          # that session only, for both
    mentordesk pairings move 1 2026-04-07 19:00      # or "2026-04-08 19:00" (series' zone)
    mentordesk pairings release 1                    # from a quiet mentor: back to matching

Through the running daemon (``POST /admin/pairings``, signed and applied once, as the
office-hours commands), else applied to the store directly; ``flows.pairing_admin``
does the work.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .admin import ask_daemon
from .config import Config
from .errors import OfficeHoursError
from .flows.desks import build_desks
from .flows.pairing_admin import pairing_admin
from .mailer.compose import Renderer
from .state.store import Store

__all__ = ["PAIRINGS_PATH", "add_pairings_commands", "run_pairings"]

PAIRINGS_PATH = "/admin/pairings"


def add_pairings_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    parser = commands.add_parser("pairings", help="list pairings; cancel or move one session")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every pairing and its next sessions")
    cancel = actions.add_parser("cancel", help="cancel one session, for both")
    cancel.add_argument("id", type=int, help="the pairing number (see list)")
    cancel.add_argument("date", help="the session's original date, e.g. 2026-04-07")
    move = actions.add_parser("move", help="move one session, for both")
    move.add_argument("id", type=int, help="the pairing number (see list)")
    move.add_argument("date", help="the session's original date, e.g. 2026-04-07")
    move.add_argument("new_time", help='new local time, "19:00" or "2026-04-08 19:00"')
    release = actions.add_parser(
        "release", help="take it from its mentor: series cancelled, request back to matching"
    )
    release.add_argument("id", type=int, help="the pairing number (see list)")
    for sub in (listing, cancel, move, release):
        sub.add_argument("--config", default="config.toml", help="path to config.toml")
    return parser


def pairings_command(
    config: Config, command: Mapping[str, Any], now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    now = now or datetime.now(UTC)
    body = json.dumps(command, sort_keys=True).encode("utf-8")
    answer = ask_daemon(config, PAIRINGS_PATH, body, now, OfficeHoursError)
    if answer is not None:
        return answer, True
    store = Store(config.state.path, fsync=config.state.fsync)
    try:
        return pairing_admin(build_desks(config, store, Renderer()).pairings, command, now), False
    finally:
        store.close()


def run_pairings(config: Config, args: argparse.Namespace) -> int:
    command: dict[str, Any] = {"action": args.action}
    if args.action == "release":
        command["id"] = args.id
    if args.action in ("cancel", "move"):
        command.update(id=args.id, date=args.date)
        if args.action == "move":
            command["to"] = args.new_time
    answer, through_daemon = pairings_command(config, command)
    if args.action == "list":
        found = answer.get("pairings", [])
        print("\n\n".join(_describe(p) for p in found) if found else "No pairings yet.")
        return 0
    print(_describe(answer["pairing"]))
    how = (
        "the running daemon sends the updates now"
        if through_daemon
        else ("the daemon is not running: the updates wait in the outbox until it starts")
    )
    if args.action == "release":
        print(f"Released pairing {answer['pairing']['id']}: matching starts again; {how}.")
        return 0
    done = "Cancelled" if args.action == "cancel" else "Moved"
    print(f"{done} one session of pairing {answer['pairing']['id']}; {how}.")
    return 0


def _describe(pairing: Mapping[str, Any]) -> str:
    lines = [
        f"{pairing['id']}  {pairing['request']} {pairing['mentor']} with {pairing['mentee']}"
        f" ({pairing['status']})",
        f"   {pairing['when']}, until {pairing['term_end']}",
    ]
    if pairing["next"]:
        lines.append(f"   next: {'; '.join(pairing['next'])}")
    if pairing["cancelled"]:
        lines.append(f"   cancelled: {', '.join(pairing['cancelled'])}")
    for original, new in pairing["moved"].items():
        lines.append(f"   moved: {original} → {new}")
    return "\n".join(lines)
