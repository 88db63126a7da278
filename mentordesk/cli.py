"""The ``mentordesk`` command: run, check-config, status, office-hours, report, export, demo,
init, backup, restore (the last three in ``deploy_cli.py``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import Config, load_config
from .errors import MentordeskError
from .logs import FORMATS, setup_logging

DEFAULT_CONFIG = "config.toml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mentordesk",
        description="Runs a volunteer mentoring program over email and calendars.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"mentordesk {__version__}")
    parser.add_argument(
        "--log-format", choices=FORMATS, default="text", help="log lines as text or JSON"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon until interrupted")
    check = commands.add_parser("check-config", help="check the configuration and exit")
    check.add_argument(
        "--connect", action="store_true", help="also log in to the servers and check the machine"
    )
    status = commands.add_parser(
        "status", help="show mentors, open requests (whom each waits on) and sessions"
    )
    for sub in (run, check, status):
        sub.add_argument("--config", default=DEFAULT_CONFIG, help="path to config.toml")
    demo = commands.add_parser(
        "demo", help="run the whole flow once on sample emails, in a temporary folder"
    )
    demo.add_argument("--keep", metavar="DIR", help="use DIR instead of a temporary folder")
    from .reports import topics_help

    report = commands.add_parser(
        "report",
        help="requests per month, time to claim, claims per mentor, repeat requesters",
        epilog=topics_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("topic", nargs="?", help="which report (see topics below)")
    export = commands.add_parser("export", help="write every table of the state as CSV files")
    export.add_argument("--csv", metavar="DIR", required=True, help="folder for the CSV files")
    for sub in (report, export):
        sub.add_argument("--config", default=DEFAULT_CONFIG, help="path to config.toml")
    oauth = commands.add_parser("oauth", help="log in to the mail provider with OAuth2")
    oauth_commands = oauth.add_subparsers(dest="oauth_command", required=True, metavar="STEP")
    login_step = oauth_commands.add_parser(
        "login", help="get a refresh token (device code, browser, or --paste)"
    )
    login_step.add_argument("--config", default=DEFAULT_CONFIG, help="path to config.toml")
    login_step.add_argument(
        "--paste", action="store_true", help="paste a refresh token obtained elsewhere"
    )
    from .admin import add_office_hours_commands
    from .deploy_cli import add_deploy_commands

    add_office_hours_commands(commands)
    add_deploy_commands(commands, DEFAULT_CONFIG)
    from .desk_cli import add_desk_commands

    add_desk_commands(commands)
    from .announce import add_announce_command

    add_announce_command(commands)
    from .pairings_cli import add_pairings_commands

    add_pairings_commands(commands)

    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    if args.command == "demo" and not args.verbose:
        level = logging.WARNING  # the demo prints its own story; the log would interleave
    setup_logging(level, args.log_format)
    try:
        if args.command == "check-config":
            config = load_config(args.config)
            code = check_config(config)
            if args.connect:
                from .deploy_cli import run_connect_checks

                code = run_connect_checks(config)
            return code
        if args.command in ("status", "report", "export"):
            from .backup import require_state

            config = load_config(args.config)
            require_state(config)  # a mistyped path must not read as an empty program
        if args.command == "status":
            from .status import print_status

            return print_status(config)
        if args.command == "run":
            return run_daemon(load_config(args.config))
        if args.command == "report":
            from .reports import print_report

            return print_report(config, args.topic)
        if args.command == "export":
            from .reports import run_export

            return run_export(config, Path(args.csv))
        if args.command == "office-hours":
            from .admin import run_office_hours

            return run_office_hours(load_config(args.config), args)
        if args.command in ("request", "mentor", "digest", "feedback-round"):
            from .desk_cli import run_desk_command

            return run_desk_command(load_config(args.config), args)
        if args.command == "oauth":
            return oauth_login(load_config(args.config), paste=args.paste)
        if args.command == "pairings":
            from .pairings_cli import run_pairings

            return run_pairings(load_config(args.config), args)
        if args.command == "announce":
            from .announce import run_announce

            return run_announce(load_config(args.config), args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(Path(args.keep) if args.keep else None)
        if args.command in ("init", "backup", "restore"):
            from . import deploy_cli

            if args.command == "init":
                return deploy_cli.run_init(Path(args.dir))
            if args.command == "backup":
                return deploy_cli.run_backup(load_config(args.config), Path(args.dest))
            return deploy_cli.run_restore(load_config(args.config), Path(args.src))
    except MentordeskError as exc:
        print(f"mentordesk: {exc}", file=sys.stderr)
        return 2
    return 0


def check_config(config: Config) -> int:
    print(f"{config.source}: OK")
    print(f"  program   {config.program.name} <{config.program.address}>")
    inbox, smtp = config.inbox, config.smtp
    print(f"  inbox     {_describe_endpoint(inbox.kind, inbox.host, inbox.port, inbox.path)}")
    print(f"  mail out  {_describe_endpoint(smtp.kind, smtp.host, smtp.port, smtp.path)}")
    print(f"  state     {config.state.path}")
    return 0


def _describe_endpoint(kind: str, host: str, port: int, path: Path) -> str:
    return f"maildir {path}" if kind == "maildir" else f"{kind} {host}:{port}"


def oauth_login(config: Config, *, paste: bool) -> int:
    from .oauth_login import login

    if config.oauth is None:
        print(
            f'mentordesk: {config.source}: neither [inbox] nor [smtp] has auth = "oauth2"; '
            "nothing to log in to",
            file=sys.stderr,
        )
        return 2
    pasted = None
    if paste:
        pasted = sys.stdin.readline() if not sys.stdin.isatty() else input("Refresh token: ")
    login(config.oauth, paste=pasted)
    return 0


def run_daemon(config: Config) -> int:
    from .service import run_service

    return run_service(config)


if __name__ == "__main__":
    raise SystemExit(main())
