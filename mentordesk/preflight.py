"""``mentordesk check-config --connect``: try what the daemon will do, one line per check.

Each check returns a ``Check``: ✓ with what was found, or ✗ with what went wrong and
the fix (the config key to look at). The mail checks go through the daemon's own code —
``ImapSource``'s connect steps and ``SmtpTransport``'s session and login — so a check
that passes means the daemon gets as far; another way to log in plugs in there, not here.
The web port and state folder checks also guard ``mentordesk run`` itself
(``startup_problem``), so a busy port or an unusable folder is one clear line rather
than a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib

from .admin import is_loopback
from .config import Config, InboxConfig, SmtpConfig
from .errors import MailSourceError
from .inbox.imap import ImapSource, failure_reason
from .mailer.transport import SmtpTransport
from .web import WILDCARD_HOSTS

__all__ = ["Check", "connect_checks", "startup_problem", "state_folder_check", "web_port_check"]


@dataclass(frozen=True)
class Check:
    """One check's result: ``what`` was found or went wrong; ``fix`` when it failed."""

    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"✓ {self.what}" if self.ok else f"✗ {self.what} — {self.fix}"


def connect_checks(config: Config) -> list[Check]:
    """Every check, in the order a deployer fixes things: state, web, mailbox, mail out."""
    checks = [state_folder_check(config), web_port_check(config)]
    if config.inbox.kind == "imap":
        checks += imap_checks(config.inbox)
    else:
        checks.append(_folder_check(config.inbox.path, "maildir inbox", "[inbox] path"))
    if config.smtp.kind == "smtp":
        checks += asyncio.run(smtp_checks(config.smtp))
    else:
        checks.append(_folder_check(config.smtp.path, "maildir for sent mail", "[smtp] path"))
    return checks


def startup_problem(config: Config) -> str:
    """Why ``mentordesk run`` cannot start with ``config`` (a busy port, an unusable
    state folder), or "" when nothing is known to stop it."""
    for check in (state_folder_check(config), web_port_check(config)):
        if not check.ok:
            return f"{check.what} — {check.fix}"
    return ""


# --- the machine -------------------------------------------------------------------------


def web_port_check(config: Config) -> Check:
    """Can the daemon listen on [web] host:port (and on 127.0.0.1 for the CLI)?"""
    host, port = config.web.host, config.web.port
    hosts = [host]
    if host not in WILDCARD_HOSTS and not is_loopback(host):  # as WebApp.start listens
        hosts.append("127.0.0.1")
    for address in hosts:
        problem = _bind_problem(address, port)
        if problem == "in use":
            return Check(
                False,
                f"web port {address}:{port} is in use",
                "stop the other program or set [web] port",
            )
        if problem:
            return Check(
                False,
                f"web address {address}:{port} cannot be used: {problem}",
                "set [web] host to an address of this machine (or 127.0.0.1)",
            )
    return Check(True, f"web port {host}:{port} is free")


def _bind_problem(host: str, port: int) -> str:
    """ "" when a listening socket could bind ``host:port`` now; "in use" or the error."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return str(exc)
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            # As asyncio's create_server does: a port left in TIME_WAIT is not "in use".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "in use"
                return exc.strerror or str(exc)
    return ""


def state_folder_check(config: Config) -> Check:
    """Is the folder of [state] path there (or can it be made) and writable?"""
    folder = config.state.path.parent
    if not folder.exists():
        if folder.parent.is_dir() and os.access(folder.parent, os.W_OK):
            return Check(True, f"state folder {folder} will be created at the first start")
        return Check(
            False,
            f"state folder {folder} does not exist",
            f"create it (mkdir -p {folder}) or set [state] path",
        )
    return _writable(folder, f"state folder {folder}", "[state] path")


def _folder_check(folder: Path, what: str, key: str) -> Check:
    if not folder.exists():
        return Check(True, f"{what} {folder} will be created at the first start")
    return _writable(folder, f"{what} {folder}", key)


def _writable(folder: Path, what: str, key: str) -> Check:
    if not folder.is_dir():
        return Check(False, f"{what} is not a folder", f"set {key} to a path in a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return Check(
            False,
            f"{what} is not writable: {exc.strerror or exc}",
            f"let the user running mentordesk write there, or set {key}",
        )
    return Check(True, f"{what} is writable")


# --- the mailbox -------------------------------------------------------------------------


def imap_checks(config: InboxConfig) -> list[Check]:
    """Connect, log in, open the folder, find (or create) the two folders mail goes to."""
    source = ImapSource(config)
    where = source.address
    checks: list[Check] = []
    try:
        try:
            source.open_connection()
        except MailSourceError as exc:
            return [
                Check(
                    False,
                    f"IMAP server {where} cannot be reached: {_clean(exc, config.password)}",
                    "check [inbox] host, port and tls",
                )
            ]
        checks.append(Check(True, f"IMAP server {where} reached (tls = {config.tls})"))
        try:
            source.log_in()
        except MailSourceError as exc:
            checks.append(
                Check(
                    False,
                    f"IMAP login as {config.username} at {where} refused: "
                    f"{_clean(exc, config.password)}",
                    f"check [inbox] username and the password in {config.password_env or '?'}",
                )
            )
            return checks
        checks.append(Check(True, f"IMAP login as {config.username} at {where}"))
        try:
            source.select_folder()
        except MailSourceError as exc:
            checks.append(
                Check(
                    False,
                    f"IMAP folder {config.folder!r} at {where} cannot be opened: "
                    f"{_clean(exc, config.password)}",
                    "check [inbox] folder",
                )
            )
            return checks
        checks.append(Check(True, f"IMAP folder {config.folder!r} opened"))
        for folder, key in (
            (config.processed_folder, "processed_folder"),
            (config.quarantine_folder, "quarantine_folder"),
        ):
            checks.append(_mail_folder_check(source, config, folder, key))
        return checks
    finally:
        source.close()


def _mail_folder_check(source: ImapSource, config: InboxConfig, folder: str, key: str) -> Check:
    try:
        if source.has_folder(folder):
            return Check(True, f"IMAP folder {folder!r} exists")
        if not config.create_folders:
            return Check(
                False,
                f"IMAP folder {folder!r} does not exist",
                f"create it, set [inbox] {key} to a folder that exists, "
                "or set [inbox] create_folders = true",
            )
        source.ensure_folder(folder)
    except MailSourceError as exc:
        return Check(
            False,
            f"IMAP folder {folder!r} cannot be created: {_clean(exc, config.password)}",
            f"create it by hand or set [inbox] {key}",
        )
    return Check(True, f"IMAP folder {folder!r} created")


def _clean(exc: MailSourceError, password: str) -> str:
    reason = failure_reason(exc)
    return reason.replace(password, "***") if password else reason


# --- mail out ----------------------------------------------------------------------------


async def smtp_checks(config: SmtpConfig) -> list[Check]:
    """Connect (with TLS as configured) and log in, as the outbox's transport does."""
    transport = SmtpTransport(config)
    where = f"{config.host}:{config.port}"
    try:
        smtp = await transport.open_session()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return [
            Check(
                False,
                f"SMTP server {where} cannot be reached: {_smtp_reason(exc, config.password)}",
                "check [smtp] host, port and tls",
            )
        ]
    checks = [Check(True, f"SMTP server {where} reached (tls = {config.tls})")]
    try:
        await transport.log_in(smtp)
    except (aiosmtplib.SMTPException, OSError) as exc:
        checks.append(
            Check(
                False,
                f"SMTP login as {config.username} at {where} refused: "
                f"{_smtp_reason(exc, config.password)}",
                f"check [smtp] username and the password in {config.password_env or '?'}",
            )
        )
    else:
        if config.username:
            checks.append(Check(True, f"SMTP login as {config.username} at {where}"))
        else:
            checks.append(Check(True, f"SMTP at {where}: no login ([smtp] username is empty)"))
    finally:
        try:
            if smtp.is_connected:
                await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass  # the check is over either way
        smtp.close()
    return checks


def _smtp_reason(exc: BaseException, password: str) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reason = f"{exc.code} {exc.message}"
    else:
        reason = str(exc) or type(exc).__name__
    return reason.replace(password, "***") if password else reason
