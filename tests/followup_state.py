"""A coordinator over a real store, without servers: for the follow-through tests that
drive time by hand (after-session questions, the feedback round, the digest).

Outgoing mail stays in the store's outbox; ``sent`` reads it back as parsed messages,
exactly the bytes the SMTP sender would hand to the server.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mentordesk.config import Config, load_config
from mentordesk.core import Coordinator
from mentordesk.mailer.compose import Renderer
from mentordesk.mailer.drafts import stored_email
from mentordesk.state.store import Store, iso

from .desk import toml_text

SECRET = "test-secret-0123456789abcdef"
PROGRAM = "mentors@program.test"
COORDINATOR = "coord@program.test"
BASE_URL = "http://127.0.0.1:9"


def write_config(root: Path, **tables: Mapping[str, Any]) -> Config:
    """The embedded default (Maildir in and out), with ``tables`` merged in."""
    base: dict[str, dict[str, Any]] = {
        "program": {
            "name": "Test Mentors",
            "address": PROGRAM,
            "coordinator": COORDINATOR,
            "escalation": ["boss@program.test"],
            "timezone": "America/New_York",
            "base_url": BASE_URL,
            "secret_env": "MD_TEST_SECRET",
        },
        "state": {"path": str(root / "state" / "md.db"), "fsync": False},
    }
    for table, values in tables.items():
        base.setdefault(table, {}).update(values)
    path = root / "config.toml"
    path.write_text(toml_text(base), "utf-8")
    return load_config(path, environ={"MD_TEST_SECRET": SECRET})


@dataclass
class State:
    """A coordinator, its store and what it has sent so far."""

    config: Config
    store: Store
    coordinator: Coordinator

    def sent(self, since: int = 0) -> list[EmailMessage]:
        """Every stored outgoing email (from the ``since``-th on), parsed."""
        program = self.config.program
        return [_parse(stored_email(item, program)) for item in self.store.outbox()[since:]]

    def sent_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sent() if address in str(m["To"])]


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def open_state(root: Path, **tables: Mapping[str, Any]) -> Iterator[State]:
    config = write_config(root, **tables)
    store = Store(config.state.path, fsync=False)
    try:
        yield State(config, store, Coordinator(config, store, Renderer()))
    finally:
        store.close()


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def flat(text: str) -> str:
    """``text`` with every run of whitespace as one space: prose, wherever it wrapped."""
    return " ".join(text.split())


# --- documents --------------------------------------------------------------------------


def mentor(email: str, name: str, skills: list[str], now: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "name": name,
        "skills": skills,
        "timezone": "Europe/Berlin",
        "timezone_text": "Berlin",
        "availability": [[day, 8 * 60, 20 * 60] for day in range(7)],
        "capacity": 2,
        "about": f"{name} has mentored for years.",
        "status": "active",
        "term_end": iso(now + timedelta(days=365)),
        "enrolled": iso(now - timedelta(days=400)),
        "updated": iso(now),
        **extra,
    }


def request(number: int, mentee: str, name: str, created: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "number": number,
        "mentee": mentee,
        "name": name,
        "skills": ["python"],
        "details": "I am learning Python and would love a review of my first project.",
        "timezone": "America/New_York",
        "timezone_text": "New York",
        "availability": [[day, 8 * 60, 20 * 60] for day in range(7)],
        "status": "open",
        "created": iso(created),
        "opened": iso(created),
        "updated": iso(created),
        "subject": "Mentor request",
        "source": f"<req-{number}@client.test>",
        "invited": [],
        **extra,
    }


def session(
    uid: str, number: int, mentor_email: str, mentee: str, start: datetime, **extra: Any
) -> dict[str, Any]:
    return {
        "uid": uid,
        "request": number,
        "mentor": mentor_email,
        "mentee": mentee,
        "start": iso(start),
        "end": iso(start + timedelta(minutes=30)),
        "sequence": 0,
        "status": "held",
        "answers": {mentor_email: "ACCEPTED", mentee: "ACCEPTED"},
        "created": iso(start - timedelta(days=3)),
        "updated": iso(start),
        **extra,
    }
