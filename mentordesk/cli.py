"""The ``mentordesk`` command: run, check-config, status, office-hours, report, export, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import Config, load_config
from .errors import MentordeskError

DEFAULT_CONFIG = "config.toml"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mentordesk",
        description="Runs a volunteer mentoring program over email and calendars.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon until interrupted")
    check = commands.add_parser("check-config", help="check the configuration and exit")
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
    from .admin import add_office_hours_commands

    add_office_hours_commands(commands)
    from .desk_cli import add_desk_commands

    add_desk_commands(commands)

    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    if args.command == "demo" and not args.verbose:
        level = logging.WARNING  # the demo prints its own story; the log would interleave
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "check-config":
            return check_config(load_config(args.config))
        if args.command == "status":
            from .status import print_status

            return print_status(load_config(args.config))
        if args.command == "run":
            return run_daemon(load_config(args.config))
        if args.command == "report":
            from .reports import print_report

            return print_report(load_config(args.config), args.topic)
        if args.command == "export":
            from .reports import run_export

            return run_export(load_config(args.config), Path(args.csv))
        if args.command == "office-hours":
            from .admin import run_office_hours

            return run_office_hours(load_config(args.config), args)
        if args.command in ("request", "mentor", "digest", "feedback-round"):
            from .desk_cli import run_desk_command

            return run_desk_command(load_config(args.config), args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(Path(args.keep) if args.keep else None)
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


def run_daemon(config: Config) -> int:
    from .daemon import Daemon

    async def serve() -> None:
        daemon = Daemon(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, daemon.stop)
        logging.getLogger("mentordesk").info(
            "mentordesk running for %s <%s>", config.program.name, config.program.address
        )
        await daemon.run()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
