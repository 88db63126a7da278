"""The coordinator's commands (office hours, and every move of ``flows/coordinator.py``):
through the running daemon, or to the store.

The store has one writer: while the daemon runs it holds the state file's lock, and a
second writer gets a StoreError. So the CLI first sends its command to the daemon's
local admin route, ``POST /admin/command`` (``/admin/office-hours`` for the office-hours
commands, as before) on [web] host:port, as JSON signed with
the program's secret (the CLI reads the same config, so it has the secret too). When
nothing listens there (connection refused), no daemon is running: the CLI applies the
command to the store itself, and the emails it causes wait in the outbox until the
daemon next starts.

The admin token is ``tokens.sign`` with purpose ``admin``, person ``cli`` and obj
``office-hours:<SHA-256 of the request body>:<nonce>``, for ``ADMIN_LIFETIME``: it is
good for that one body, once, briefly. The daemon records each nonce it accepts in the
store until the token expires (``spend_admin_nonce``), so the same request sent again
(a replay by whoever saw it) is refused instead of creating a second series.

The route is on the public listener, so it also checks where a command comes from: only
a loopback peer, connected to a loopback address, with no proxy's forwarding headers
(``Forwarded``, ``X-Forwarded-For``, ``X-Real-IP``). When [web] host is a specific
non-loopback address the daemon also listens on 127.0.0.1 at the same port for the CLI
(``admin_host``). The token is still the real lock: do not forward /admin/ from outside.

    MentordeskError
    └── AdminError          the daemon could not be asked, or refused the command
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .config import Config
from .errors import AdminError, CommandError, MentordeskError, OfficeHoursError
from .flows.coordinator import CoordinatorDesk
from .flows.coordinator_commands import DESK, run_command
from .flows.desks import build_desks
from .flows.office_hours import OfficeHoursDesk
from .mailer.compose import Renderer
from .state.store import Store, from_iso, iso
from .tokens import TamperedToken, sign, verify

__all__ = [
    "ADMIN_PATH",
    "COMMAND_PATH",
    "AdminError",
    "AdminTicket",
    "add_office_hours_commands",
    "admin_host",
    "admin_token",
    "apply_command",
    "apply_locally",
    "check_admin_token",
    "desk_command",
    "is_loopback",
    "office_hours_command",
    "run_office_hours",
    "spend_admin_nonce",
]

ADMIN_PATH = "/admin/office-hours"
COMMAND_PATH = "/admin/command"  # any command; the office-hours path stays for old CLIs
ADMIN_PURPOSE = "admin"
ADMIN_LIFETIME = timedelta(minutes=2)
TIMEOUT_S = 30.0
# Where the accepted nonces wait out their tokens' lifetime (store meta).
NONCES_META = "admin_nonces"
_NONCE = re.compile(r"[0-9a-f]{32}")


def _obj(body: bytes, nonce: str) -> str:
    return f"office-hours:{hashlib.sha256(body).hexdigest()}:{nonce}"


def admin_token(secret: bytes, body: bytes, now: datetime) -> str:
    """A token that lets ``body`` through the admin route once, until ``now + ADMIN_LIFETIME``.

    Each call makes a new nonce, so two commands with the same body are two tokens.
    """
    return sign(
        secret,
        purpose=ADMIN_PURPOSE,
        person="cli",
        obj=_obj(body, secrets.token_hex(16)),
        expires=now + ADMIN_LIFETIME,
    )


@dataclass(frozen=True)
class AdminTicket:
    """A checked admin token: its nonce, to spend once, and when the token expires."""

    nonce: str
    expires: datetime


def check_admin_token(secret: bytes, unsafe_token: str, body: bytes, now: datetime) -> AdminTicket:
    """The ticket of ``unsafe_token`` if it was made for exactly ``body`` and is fresh.

    Raises a TokenError otherwise. Whether its nonce was used before is the store's to
    say (``spend_admin_nonce``).
    """
    claims = verify(secret, unsafe_token, purpose=ADMIN_PURPOSE, now=now)
    prefix = _obj(body, "")
    nonce = claims.obj.removeprefix(prefix)
    if not claims.obj.startswith(prefix) or not _NONCE.fullmatch(nonce):
        raise TamperedToken("This admin token was made for another command.")
    return AdminTicket(nonce, claims.expires)


def spend_admin_nonce(store: Store, ticket: AdminTicket, now: datetime) -> None:
    """Record the ticket's nonce as used; TamperedToken if it was used before.

    Nonces are kept until their token expires (after that the token itself is refused),
    so the record holds at most the commands of the last ``ADMIN_LIFETIME``.
    """
    raw = store.meta(NONCES_META) or {}
    live = {
        nonce: until
        for nonce, until in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(until, str) and from_iso(until) > now
    }
    if ticket.nonce in live:
        raise TamperedToken(
            "This admin command was received already: each command is applied once. "
            "Run the mentordesk command again to send it anew."
        )
    live[ticket.nonce] = iso(ticket.expires)
    store.set_meta(NONCES_META, live)


def is_loopback(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, IPv4-mapped) or ``localhost``."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def admin_host(web_host: str) -> str:
    """The loopback address the CLI reaches the daemon's admin route on.

    The daemon listens on loopback for every [web] host: a wildcard or loopback host
    includes it, and for any other host it opens 127.0.0.1 as well (``web.WebApp``).
    """
    if web_host == "::" or (is_loopback(web_host) and ":" in web_host):
        return "::1"
    return "127.0.0.1"


# --- the client side (the CLI) ------------------------------------------------------------


def office_hours_command(
    config: Config, command: Mapping[str, Any], now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    """Apply ``command`` through the running daemon, or to the store when none runs.

    Returns (the answer, True when the daemon applied it). Raises OfficeHoursError for a
    command that cannot be applied and AdminError when the daemon cannot be asked.
    """
    return _command(config, command, now, ADMIN_PATH, OfficeHoursError)


def desk_command(
    config: Config, command: Mapping[str, Any], now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    """Apply a coordinator's command (``flows/coordinator_commands.py``) through the
    running daemon, or to the store when none runs: (the answer, through the daemon).
    Raises CommandError for a malformed command, AdminError when the daemon cannot be
    asked."""
    return _command(config, {**command, "desk": DESK}, now, COMMAND_PATH, CommandError)


def _command(
    config: Config,
    command: Mapping[str, Any],
    now: datetime | None,
    path: str,
    bad: type[MentordeskError],
) -> tuple[dict[str, Any], bool]:
    now = now or datetime.now(UTC)
    body = json.dumps(command, sort_keys=True).encode("utf-8")
    answer = ask_daemon(config, path, body, now, bad)
    if answer is not None:
        return answer, True
    return apply_locally(config, command, now), False


def ask_daemon(
    config: Config,
    path: str,
    body: bytes,
    now: datetime,
    bad: type[MentordeskError],
    *,
    timeout_s: float = TIMEOUT_S,
) -> dict[str, Any] | None:
    """The running daemon's answer to ``body`` POSTed to its admin ``path`` (signed for
    it), or None when nothing listens on [web] host:port. A command the daemon cannot
    apply (400) raises ``bad`` with its reason; anything else AdminError."""
    host = admin_host(config.web.host)
    if ":" in host:
        host = f"[{host}]"
    url = f"http://{host}:{config.web.port}{path}"
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
        with opener.open(request, timeout=timeout_s) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            problem = str(json.loads(exc.read()).get("error") or exc.reason)
        except (ValueError, AttributeError):
            problem = str(exc.reason)
        if exc.code == 400:
            raise bad(problem) from None
        raise AdminError(
            f"the daemon at {url} refused the command ({exc.code}): {problem}"
        ) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise AdminError(
            f"cannot reach the daemon at {url}: {exc.reason}. Is [web] host/port right?"
        ) from None


def apply_command(
    office_hours: OfficeHoursDesk,
    coordinator: CoordinatorDesk,
    command: Mapping[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """Apply one admin command on the writer: a coordinator's (``"desk": "coordinator"``)
    or an office-hours one. Raises CommandError or OfficeHoursError for a bad command."""
    if command.get("desk") == DESK:
        return run_command(coordinator, command, now)
    return office_hours.admin(command, now)


def apply_locally(config: Config, command: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Apply ``command`` to the store directly (no daemon runs), in one transaction."""
    store = Store(config.state.path, fsync=config.state.fsync)
    try:
        desks = build_desks(config, store, Renderer())
        with store.transaction():
            return apply_command(desks.office_hours, desks.coordinator, command, now)
    finally:
        store.close()


# --- the command line --------------------------------------------------------------------------


def add_office_hours_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add ``office-hours add|list|cancel|move|end|edit`` to the CLI's subcommands."""
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
    end = actions.add_parser("end", help="end a whole series for everyone on it")
    end.add_argument("id", type=int, help="the series number (see list)")
    edit = actions.add_parser(
        "edit", help="change a series' day, time, length or mentors for everyone"
    )
    edit.add_argument("id", type=int, help="the series number (see list)")
    edit.add_argument("--weekday", default="", help="new day: mon, tue, ... sun")
    edit.add_argument("--time", default="", help="new local start time, e.g. 19:00")
    edit.add_argument("--length", default="", help="new length, e.g. 90m")
    edit.add_argument(
        "--mentor", action="append", help="the staffing mentors from now on (repeat; all of them)"
    )
    for sub in (add, listing, cancel, move, end, edit):
        sub.add_argument("--config", default="config.toml", help="path to config.toml")
        sub.add_argument("--by", default="", help="who acts, for the audit (default cli:$USER)")
    return office


def run_office_hours(config: Config, args: argparse.Namespace) -> int:
    """Run one ``office-hours`` command and print what happened."""
    from .desk_cli import default_by

    command: dict[str, Any] = {"action": args.action, "by": args.by or default_by()}
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
    elif args.action == "end":
        command["id"] = args.id
    elif args.action == "edit":
        command.update(id=args.id, weekday=args.weekday, time=args.time, length=args.length)
        if args.mentor is not None:
            command["mentors"] = list(args.mentor)
    answer, through_daemon = office_hours_command(config, command)
    for warning in answer.get("warnings", []):
        print(f"note: {warning}")
    if args.action == "list":
        series = answer.get("series", [])
        print("\n\n".join(_describe(s) for s in series) if series else "No office hours yet.")
        return 0
    print(_describe(answer["series"]))
    for change in answer.get("changes", []):
        print(f"   changed: {change}")
    done = {
        "add": "Created",
        "cancel": "Cancelled one occurrence of",
        "move": "Moved one of",
        "end": "Ended",
        "edit": "Changed",
    }
    how = (
        "the running daemon sends the emails now"
        if through_daemon
        else ("the daemon is not running: the emails wait in the outbox until it starts")
    )
    print(f"{done[args.action]} office hours {answer['series']['id']}; {how}.")
    return 0


def _describe(series: Mapping[str, Any]) -> str:
    if series.get("ended"):
        return (
            f"{series['id']}  {series['title']}: {series['when']}\n   ended: {series['ended'][:10]}"
        )
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
