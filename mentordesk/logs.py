"""How mentordesk logs: plain text or JSON lines, quiet libraries, no secrets.

``setup_logging`` is called once by the command line. Every handler's formatter is
wrapped in ``_Redacting``, which cuts the secrets it was told about (``hide_secrets``:
the passwords and the signing secret from the config) out of each formatted line, the
traceback included, before the line is written anywhere. APScheduler's INFO lines (one
per job run, several a minute) are held back: its warnings and errors still show.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

__all__ = ["FORMATS", "hide_secrets", "log_handler", "setup_logging"]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The libraries that would otherwise log a line per routine step at INFO.
_QUIET_LIBRARIES = ("apscheduler", "aiohttp.access", "imapclient")
_HIDDEN = "***"
# Secrets shorter than this are not looked for: cutting every "a" out of the log would
# hide more than it protects (the config refuses short signing secrets anyway).
_MIN_SECRET_CHARS = 4


class _Redacting(logging.Formatter):
    """Formats with ``inner``, then replaces every known secret by ``***``."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner
        self.secrets: list[str] = []

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, _HIDDEN)
        return line


def setup_logging(level: int, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Log to ``stream`` (stderr) at ``level``, as text lines or JSON objects."""
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old.formatter, _Redacting):
            root.removeHandler(old)
    # Like logging.basicConfig: a host that set up logging already (a test runner, an
    # embedding program) keeps its handlers and its level.
    if not root.handlers:
        root.addHandler(log_handler(log_format, stream or sys.stderr))
        root.setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def log_handler(log_format: str, stream: TextIO) -> logging.Handler:
    """A handler writing ``log_format`` lines to ``stream``, secrets cut out."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    inner: logging.Formatter
    if log_format == "json":
        inner = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        inner = logging.Formatter(TEXT_FORMAT)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Redacting(inner))
    return handler


def hide_secrets(secrets: Iterable[str], handlers: Iterable[logging.Handler] | None = None) -> None:
    """Cut these values (and their JSON-escaped forms) out of every line the handlers
    (the root logger's) write from now."""
    wanted = set()
    for secret in secrets:
        if len(secret) >= _MIN_SECRET_CHARS:
            wanted.add(secret)
            wanted.add(json.dumps(secret)[1:-1])  # as it appears inside a JSON string
    for handler in logging.getLogger().handlers if handlers is None else handlers:
        formatter = handler.formatter
        if isinstance(formatter, _Redacting):
            # Longest first, so a secret containing another is cut whole.
            formatter.secrets = sorted(set(formatter.secrets) | wanted, key=len, reverse=True)
