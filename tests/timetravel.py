"""Time travel for the timer tests: a fake clock and a desk without servers.

``Harness`` is the daemon minus its mailbox and SMTP: the real store on its writer
thread, the real coordinator, the real ``timers.Scheduler`` (its APScheduler is not
started: tests call ``sweep()`` after moving the clock). Mail comes in through
``Coordinator.handle`` exactly as the daemon hands it over; what goes out stays in the
store's outbox, readable as the parsed messages the SMTP sender would send.
``restart()`` closes everything and opens it again from the files on disk.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mentordesk.config import Config, load_config
from mentordesk.core import Coordinator, Outcome
from mentordesk.inbox.source import RawMessage
from mentordesk.mailer.compose import Renderer
from mentordesk.mailer.drafts import stored_email
from mentordesk.state.store import Store, StoreWriter, iso
from mentordesk.timers import Registry, Scheduler

from .desk import toml_text

SECRET = "test-secret-0123456789abcdef"
PROGRAM = "mentors@program.test"
COORDINATOR = "coord@program.test"
BOSS = "boss@program.test"
BASE_URL = "http://127.0.0.1:9"
# A Monday morning in New York, well away from any DST change.
T0 = datetime(2025, 3, 17, 14, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def write_config(root: Path, **tables: Mapping[str, Any]) -> Config:
    """The embedded default (no servers) with ``tables`` merged in."""
    base: dict[str, dict[str, Any]] = {
        "program": {
            "name": "Test Mentors",
            "address": PROGRAM,
            "coordinator": COORDINATOR,
            "escalation": [BOSS],
            "timezone": "America/New_York",
            "base_url": BASE_URL,
            "secret_env": "MD_TEST_SECRET",
        },
        "state": {"path": str(root / "state" / "md.db"), "fsync": False},
        "matching": {"invite_count": 2, "widen_count": 2},
    }
    for table, values in tables.items():
        base.setdefault(table, {}).update(values)
    path = root / "config.toml"
    path.write_text(toml_text(base), "utf-8")
    return load_config(path, environ={"MD_TEST_SECRET": SECRET})


def mentor_doc(email: str, name: str, skills: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "name": name,
        "skills": skills,
        "timezone": "Europe/Berlin",
        "timezone_text": "Berlin",
        "availability": [[day, 8 * 60, 22 * 60] for day in range(7)],
        "capacity": 4,
        "about": f"{name} has mentored for years.",
        "status": "active",
        "term_end": iso(T0 + timedelta(days=365)),
        "enrolled": iso(T0 - timedelta(days=30)),
        "updated": iso(T0 - timedelta(days=30)),
        **extra,
    }


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())


class Harness:
    """Store, coordinator and scheduler over the files under ``root``."""

    def __init__(self, root: Path, registry: Registry, **tables: Mapping[str, Any]) -> None:
        self.root = root
        self.registry = registry
        self.config = write_config(root, **tables)
        self.clock = FakeClock()
        self.writer: StoreWriter | None = None
        self._coordinator: Coordinator | None = None
        self._scheduler: Scheduler | None = None
        self._uids = 0

    async def open(self) -> Harness:
        config = self.config
        self.writer = StoreWriter(lambda: Store(config.state.path, fsync=False))
        await self.writer.start()
        assert self.writer.store is not None
        self._coordinator = Coordinator(config, self.writer.store, Renderer())
        self._scheduler = Scheduler(
            config, self.writer, self._coordinator, self.clock, registry=self.registry
        )
        return self

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
            self.writer = None

    async def restart(self) -> None:
        """Everything in memory is dropped; the state is read back from disk."""
        await self.close()
        await self.open()

    @property
    def store(self) -> Store:
        assert self.writer is not None and self.writer.store is not None
        return self.writer.store

    @property
    def coordinator(self) -> Coordinator:
        assert self._coordinator is not None
        return self._coordinator

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None
        return self._scheduler

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the store's writer thread, as the daemon would."""
        assert self.writer is not None
        return await self.writer.call(fn, *args, **kwargs)

    async def seed(self, *mentors: dict[str, Any]) -> None:
        def save() -> None:
            with self.store.transaction():
                for doc in mentors:
                    self.store.save_mentor(doc)

        await self.call(save)

    async def receive(self, raw: bytes) -> Outcome:
        self._uids += 1
        message = RawMessage(key=f"test:{self._uids}", data=raw)
        outcome: Outcome = await self.call(self.coordinator.handle, message, self.clock())
        assert outcome.status == "done", outcome
        return outcome

    async def sweep(self, **advance: float) -> dict[str, int]:
        if advance:
            self.clock.advance(**advance)
        return await self.scheduler.sweep()

    async def request(self, number: int) -> dict[str, Any]:
        doc = await self.call(self.store.request, number)
        assert doc is not None
        return dict(doc)

    async def sent(self, kind: str | None = None, to: str | None = None) -> list[EmailMessage]:
        """Stored outgoing emails, oldest first, of template ``kind`` and/or to ``to``."""
        items = await self.call(self.store.outbox)
        return [
            parse(stored_email(item, self.config.program))
            for item in items
            if kind in (None, item["kind"]) and to in (None, *item["recipients"])
        ]

    async def kinds(self) -> list[tuple[str, str]]:
        """(template, recipient) of every stored outgoing email, oldest first."""
        items = await self.call(self.store.outbox)
        return [(item["kind"], item["recipients"][0]) for item in items]
