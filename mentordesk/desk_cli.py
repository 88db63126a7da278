"""The coordinator's commands on the command line (SPEC §10, "Acting as the coordinator").

    mentordesk request show|assign|reassign|withdraw|close|resend REF [MENTOR]
    mentordesk mentor show|pause|resume|renew|resign|approve EMAIL [--until DATE]
    mentordesk digest --now [--to ADDR]
    mentordesk feedback-round --now

Each goes through the running daemon (``admin.desk_command``: signed, once, loopback),
or straight to the store when no daemon runs, and is recorded in the audit with who did
it (``--by``, default ``cli:$USER``). Exit codes: 0 done, 1 refused (the message says
why), 2 bad usage or a reference that names nothing.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Mapping
from typing import Any

from .admin import desk_command
from .config import Config

__all__ = ["COMMANDS", "add_desk_commands", "run_desk_command"]

REQUEST_ACTIONS = {
    "show": "show a request: its status, candidates and whole history",
    "assign": "give an open request to a mentor (they and the mentee are introduced)",
    "reassign": "give a held request to another mentor (the holder is told)",
    "withdraw": "withdraw a request on the mentee's behalf",
    "close": "close a request whose session was held",
    "resend": "send the session's calendar invitation again to both",
}
MENTOR_ACTIONS = {
    "show": "show a mentor: standing, load, what they hold",
    "pause": "pause a mentor (no new requests)",
    "resume": "resume a paused mentor",
    "renew": "renew a mentor's term",
    "resign": "step a mentor down (what they hold goes back to matching)",
    "approve": "approve a pending enrollment ([program] approve_mentors)",
}
COMMANDS = ("request", "mentor", "digest", "feedback-round")


def default_by() -> str:
    """Who acts, for the audit: ``cli:`` and the login name."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return f"cli:{user}"


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", default="config.toml", help="path to config.toml")
    sub.add_argument("--by", default="", help="who acts, for the audit (default cli:$USER)")


def add_desk_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``request``, ``mentor``, ``digest`` and ``feedback-round`` to the CLI."""
    request = commands.add_parser("request", help="show or act on one request")
    actions = request.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in REQUEST_ACTIONS.items():
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("ref", help="the request, e.g. MD-0042")
        if name in ("assign", "reassign"):
            sub.add_argument("mentor", help="the mentor's email address")
        _common(sub)

    mentor = commands.add_parser("mentor", help="show or change a mentor's standing")
    actions = mentor.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in MENTOR_ACTIONS.items():
        sub = actions.add_parser(name, help=text, description=text)
        sub.add_argument("email", help="the mentor's email address")
        if name == "renew":
            sub.add_argument("--until", default="", help="term end, e.g. 2027-06-30")
        _common(sub)

    digest = commands.add_parser("digest", help="send the coordinator's digest now")
    digest.add_argument("--now", action="store_true", required=True, help="send it now")
    digest.add_argument("--to", default="", help="where to (default: [program] coordinator)")
    _common(digest)

    survey = commands.add_parser("feedback-round", help="start this year's feedback round now")
    survey.add_argument("--now", action="store_true", required=True, help="start it now")
    _common(survey)


def command_of(args: argparse.Namespace) -> dict[str, Any]:
    """The JSON command for ``args`` (see ``flows/coordinator_commands.py``)."""
    command: dict[str, Any] = {"by": args.by or default_by()}
    if args.command == "request":
        command.update(action=f"request.{args.action}", ref=args.ref)
        if args.action in ("assign", "reassign"):
            command["mentor"] = args.mentor
    elif args.command == "mentor":
        command.update(action=f"mentor.{args.action}", email=args.email)
        if args.action == "renew":
            command["until"] = args.until
    elif args.command == "digest":
        command.update(action="digest.now", to=args.to)
    else:
        command["action"] = "feedback-round.now"
    return command


def run_desk_command(config: Config, args: argparse.Namespace) -> int:
    """Run one coordinator command and print what happened; the exit code."""
    answer, through_daemon = desk_command(config, command_of(args))
    return report(answer, through_daemon)


def report(answer: Mapping[str, Any], through_daemon: bool) -> int:
    for line in answer.get("lines") or ():
        print(line)
    message = str(answer.get("message") or "")
    if not answer.get("done"):
        print(f"mentordesk: {message}", file=sys.stderr)
        return 2 if answer.get("unknown") else 1
    if message:
        print(message)
        if not through_daemon and not answer.get("lines"):
            print("The daemon is not running: any emails wait in the outbox until it starts.")
    return 0
