"""``mentordesk run`` as a service: start and stop lines, signals, systemd's notify protocol.

Under systemd (``Type=notify``, see ``contrib/mentordesk.service``) the daemon says
``READY=1`` once it serves, ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while its event
loop runs, and ``STOPPING=1`` when asked to stop: datagrams to the ``NOTIFY_SOCKET``
unix socket (sd_notify(3); a name starting with "@" is in the abstract namespace).
Without systemd nothing is sent.

Before anything opens, ``preflight.startup_problem`` looks at the web port and the state
folder, so a busy port or an unusable folder is one line and exit 2, not a traceback.
A mail server that cannot be reached does not stop the start: the daemon logs it once
clearly, keeps retrying, and ``/healthz`` answers 503 meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
from collections.abc import Mapping

from . import __version__, event_loop
from .config import Config
from .errors import MentordeskError
from .logs import hide_secrets
from .preflight import startup_problem

__all__ = ["Notifier", "run_service"]

log = logging.getLogger("mentordesk")


class Notifier:
    """Sends sd_notify(3) state lines to systemd, when it asked for them."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        self.watchdog_s = 0.0
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        watchdog_pid = env.get("WATCHDOG_PID", "")
        if watchdog_usec.isdigit() and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            self.watchdog_s = int(watchdog_usec) / 1_000_000

    def send(self, state: str) -> None:
        """Send ``state`` (e.g. "READY=1"); a failure is logged, never raised."""
        if not self.address:
            return
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block the event loop: should systemd not read, the line is lost.
                sock.setblocking(False)
                sock.sendto(state.encode(), target)
        except OSError as exc:
            log.warning("cannot notify systemd at %s: %s", self.address, exc)

    async def keep_alive(self) -> None:
        """Send WATCHDOG=1 every half watchdog interval, until cancelled."""
        if not self.address or self.watchdog_s <= 0:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)


def run_service(config: Config, notifier: Notifier | None = None) -> int:
    """Run the daemon until SIGINT or SIGTERM; 0 after a clean stop."""
    hide_secrets([config.inbox.password, config.smtp.password, config.secret.decode()])
    problem = startup_problem(config)
    if problem:
        raise MentordeskError(problem)
    return event_loop.run(_serve(config, notifier or Notifier()))


async def _serve(config: Config, notifier: Notifier) -> int:
    from .daemon import Daemon

    log.info("mentordesk %s starting: %s", __version__, _describe(config))
    daemon = Daemon(config)
    loop = asyncio.get_running_loop()
    stopped_by: list[str] = []

    def stop(signum: signal.Signals) -> None:
        if not stopped_by:
            stopped_by.append(signum.name)
            log.info("mentordesk stopping (%s)", signum.name)
            notifier.send("STOPPING=1")
        daemon.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    running = asyncio.create_task(daemon.run(), name="daemon")
    ready = asyncio.create_task(daemon.ready.wait())
    await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
    watchdog: asyncio.Task[None] | None = None
    if ready.done():
        log.info("mentordesk running (pid %d)", os.getpid())
        notifier.send("READY=1")
        watchdog = asyncio.create_task(notifier.keep_alive(), name="watchdog")
    else:
        ready.cancel()
    try:
        await running
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # taken between the check and the start
            raise MentordeskError(
                f"web port {config.web.host}:{config.web.port} is in use — stop the other "
                "program or set [web] port"
            ) from None
        raise
    finally:
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("mentordesk stopped")
    return 0


def _describe(config: Config) -> str:
    inbox, smtp = config.inbox, config.smtp
    mailbox = f"imap {inbox.host}:{inbox.port}" if inbox.kind == "imap" else f"maildir {inbox.path}"
    mail_out = f"smtp {smtp.host}:{smtp.port}" if smtp.kind == "smtp" else f"maildir {smtp.path}"
    return (
        f"{config.program.name} <{config.program.address}>; inbox {mailbox}; "
        f"mail out {mail_out}; web http://{config.web.host}:{config.web.port}; "
        f"state {config.state.path}; event loop {event_loop.loop_name()}"
    )
