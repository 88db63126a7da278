"""The coordinator's office-hours commands: through the running daemon, or to the store.

The store has one writer: while the daemon runs it holds the state file's lock, and a
second writer gets a StoreError. So the CLI first sends its command to the daemon's
local admin route, ``POST /admin/office-hours`` on [web] host:port, as JSON signed with
the program's secret (the CLI reads the same config, so it has the secret too). When
nothing listens there (connection refused), no daemon is running: the CLI applies the
command to the store itself, and the emails it causes wait in the outbox until the
daemon next starts.

The admin token is ``tokens.sign`` with purpose ``admin``, person ``cli`` and obj
``office-hours:<SHA-256 of the request body>``, for ``ADMIN_LIFETIME``: it is good for
that one body, briefly. The route also refuses connections from other machines, but
the token is the real lock: a reverse proxy on the same machine connects from loopback,
so do not forward /admin/ from the outside.

    MentordeskError
    └── AdminError          the daemon could not be asked, or refused the command
"""

from __future__ import annotations

import argparse
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Config
from .errors import AdminError, OfficeHoursError
from .flows.desks import build_desks
from .mailer.compose import Renderer
from .state.store import Store
from .tokens import TamperedToken, sign, verify

__all__ = [
    "ADMIN_PATH",
    "AdminError",
    "add_office_hours_commands",
    "admin_token",
    "apply_locally",
    "check_admin_token",
    "office_hours_command",
    "run_office_hours",
]

ADMIN_PATH = "/admin/office-hours"
ADMIN_PURPOSE = "admin"
ADMIN_LIFETIME = timedelta(minutes=2)
TIMEOUT_S = 30.0


def _obj(body: bytes) -> str:
    return f"office-hours:{hashlib.sha256(body).hexdigest()}"


def admin_token(secret: bytes, body: bytes, now: datetime) -> str:
    """The token that lets ``body`` through the admin route until ``now + ADMIN_LIFETIME``."""
    return sign(
        secret, purpose=ADMIN_PURPOSE, person="cli", obj=_obj(body), expires=now + ADMIN_LIFETIME
    )


def check_admin_token(secret: bytes, unsafe_token: str, body: bytes, now: datetime) -> None:
    """Raise a TokenError unless ``unsafe_token`` was made for exactly ``body`` and is fresh."""
    claims = verify(secret, unsafe_token, purpose=ADMIN_PURPOSE, now=now)
    if claims.obj != _obj(body):
        raise TamperedToken("This admin token was made for another command.")


# --- the client side (the CLI) ------------------------------------------------------------


def office_hours_command(
    config: Config, command: Mapping[str, Any], now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    """Apply ``command`` through the running daemon, or to the store when none runs.

    Returns (the answer, True when the daemon applied it). Raises OfficeHoursError for a
    command that cannot be applied and AdminError when the daemon cannot be asked.
    """
    now = now or datetime.now(UTC)
    body = json.dumps(command, sort_keys=True).encode("utf-8")
    answer = _ask_daemon(config, body, now)
    if answer is not None:
        return answer, True
    return apply_locally(config, command, now), False


def _ask_daemon(config: Config, body: bytes, now: datetime) -> dict[str, Any] | None:
    """The daemon's answer, or None when nothing listens on [web] host:port."""
    host = config.web.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{config.web.port}{ADMIN_PATH}"
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {admin_token(config.secret, body, now)}",
        },
    )
    # The daemon is on this machine: never go through an HTTP proxy from the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            problem = str(json.loads(exc.read()).get("error") or exc.reason)
        except (ValueError, AttributeError):
            problem = str(exc.reason)
        if exc.code == 400:
            raise OfficeHoursError(problem) from None
        raise AdminError(
            f"the daemon at {url} refused the command ({exc.code}): {problem}"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise AdminError(
            f"cannot reach the daemon at {url}: {exc.reason}. Is [web] host/port right?"
        ) from None


def apply_locally(config: Config, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Apply ``command`` to the store directly (no daemon runs), in one transaction."""
    store = Store(config.state.path, fsync=config.state.fsync)
    try:
        desk = build_desks(config, store, Renderer()).office_hours
        return desk.admin(command, now)
    finally:
        store.close()


# --- the command line --------------------------------------------------------------------------


def add_office_hours_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``office-hours add|list|cancel|move`` to the CLI's subcommands."""
    office = commands.add_parser("office-hours", help="create and change drop-in office hours")
    actions = office.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a weekly series and invite its mentors")
    add.add_argument("--weekday", required=True, help="mon, tue, wed, thu, fri, sat or sun")
    add.add_argument("--time", required=True, help="local start time, e.g. 18:00")
    add.add_argument("--zone", default="", help="IANA timezone (default: [program] timezone)")
    add.add_argument("--length", default="60m", help="how long each one lasts (default 60m)")
    add.add_argument(
        "--mentor", action="append", required=True, help="a staffing mentor's email (repeat)"
    )
    add.add_argument("--until", default="", help="last possible date, e.g. 2027-06-30")
    add.add_argument("--title", default="", help='what calendars show (default "Office hours")')
    add.add_argument("--location", default="", help="where: a video link or a room")
    listing = actions.add_parser("list", help="show the series and their next dates")
    cancel = actions.add_parser("cancel", help="cancel one occurrence for everyone")
    cancel.add_argument("id", type=int, help="the series number (see list)")
    cancel.add_argument("date", help="the occurrence's date, e.g. 2026-04-02")
    move = actions.add_parser("move", help="move one occurrence for everyone")
    move.add_argument("id", type=int, help="the series number (see list)")
    move.add_argument("date", help="the occurrence's original date, e.g. 2026-04-02")
    move.add_argument("new_time", help='new local time, "19:00" or "2026-04-03 19:00"')
    for sub in (add, listing, cancel, move):
        sub.add_argument("--config", default="config.toml", help="path to config.toml")
    return office


def run_office_hours(config: Config, args: argparse.Namespace) -> int:
    """Run one ``office-hours`` command and print what happened."""
    command: dict[str, Any] = {"action": args.action}
    if args.action == "add":
        command.update(
            weekday=args.weekday,
            time=args.time,
            zone=args.zone,
            length=args.length,
            mentors=list(args.mentor),
            until=args.until or None,
            title=args.title,
            location=args.location,
        )
    elif args.action in ("cancel", "move"):
        command.update(id=args.id, date=args.date)
        if args.action == "move":
            command["to"] = args.new_time
    answer, through_daemon = office_hours_command(config, command)
    for warning in answer.get("warnings", []):
        print(f"note: {warning}")
    if args.action == "list":
        series = answer.get("series", [])
        print("\n\n".join(_describe(s) for s in series) if series else "No office hours yet.")
        return 0
    print(_describe(answer["series"]))
    done = {"add": "Created", "cancel": "Cancelled one occurrence of", "move": "Moved one of"}
    how = (
        "the running daemon sends the emails now"
        if through_daemon
        else ("the daemon is not running: the emails wait in the outbox until it starts")
    )
    print(f"{done[args.action]} office hours {answer['series']['id']}; {how}.")
    return 0


def _describe(series: Mapping[str, Any]) -> str:
    lines = [
        f"{series['id']}  {series['title']}: {series['when']}",
        f"   mentors: {', '.join(series['mentors'])}; joined: {series['joined']}",
        f"   from {series['first']}" + (f" until {series['until']}" if series["until"] else ""),
    ]
    if series["location"]:
        lines.append(f"   where: {series['location']}")
    if series["next"]:
        lines.append(f"   next: {'; '.join(series['next'])}")
    if series["cancelled"]:
        lines.append(f"   cancelled: {', '.join(series['cancelled'])}")
    for original, new in series["moved"].items():
        lines.append(f"   moved: {original} → {new}")
    return "\n".join(lines)
