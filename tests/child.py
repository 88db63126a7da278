"""``mentordesk run`` as a child process, for tests that starve it, kill it or weigh it.

The child runs the code under test (whatever this process imports ``mentordesk`` from),
with the config ``Desk`` wrote, its log appended to ``child.log`` across restarts.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mentordesk

from .desk import ENVIRON, Desk

CODE = Path(mentordesk.__file__).resolve().parent.parent


class Child:
    """``mentordesk run`` in a child process, its log in a file."""

    def __init__(self, desk: Desk | Path) -> None:
        """Run the config of ``desk`` (or the ``config.toml`` in a folder)."""
        root = desk if isinstance(desk, Path) else desk.root
        self.log_path = root / "child.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mentordesk.cli",
                "run",
                "--config",
                str(root / "config.toml"),
            ],
            cwd=root,
            # The child runs the code under test, wherever it is imported from here.
            env={**os.environ, **ENVIRON, "PYTHONPATH": str(CODE)},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")

    def set_fd_limit(self, soft: int) -> None:
        _, hard = resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))

    def fd_limit(self) -> int:
        return resource.prlimit(self.proc.pid, resource.RLIMIT_NOFILE)[0]

    def peak_rss_bytes(self) -> int:
        """The most resident memory the child has had so far (its VmHWM)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text("ascii")
        [line] = [line for line in status.splitlines() if line.startswith("VmHWM:")]
        return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def child_daemon(desk: Desk) -> Iterator[Child]:
    child = Child(desk)
    try:
        yield child
    finally:
        child.stop()
