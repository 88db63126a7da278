"""Shared fixtures.

The mail servers are real (see tests/servers.py and CONTRIBUTING.md). A machine without
Dovecot fails the tests that need it, loudly, with the command that installs it: a
skipped test is a test nobody notices is not running.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mentordesk import event_loop
from mentordesk.mailer.drafts import context_of
from mentordesk.mailer.outbox import Postman
from mentordesk.state.store import Store
from tests.desk import Desk
from tests.servers import (
    INSTALL_HINT,
    OTHER_PASSWORD,
    OTHER_USER,
    PROGRAM_PASSWORD,
    PROGRAM_USER,
    Dovecot,
    SmtpSink,
    dovecot_installed,
)
from tests.servers import free_port as _free_port


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Every async test runs on the event loop the daemon runs on (event_loop.py)."""
    return {event_loop.loop_name(): event_loop.loop_factory()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every test that uses Dovecot, so `-m "not dovecot"` can deselect them on
    # purpose (pytest then reports them as deselected, never as passed).
    for item in items:
        if "dovecot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dovecot)


# --- emails stored as drafts (mailer/drafts.py) --------------------------------------------

# How many emails of each template have been checked, over the whole run.
_DRAFTS_CHECKED: Counter[str] = Counter()
DRAFT_CHECKS_PER_TEMPLATE = 3


@pytest.fixture(autouse=True)
def drafts_read_as_rendered_at_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every email a flow stores as a draft (the first few of each template in a run)
    must render from its stored context exactly as from the flow's own: what JSON gave
    back (lists for tuples, dicts for records) changes nothing a person reads."""
    real = Postman.send
    differing: list[str] = []

    def send(self: Postman, template: str, *, context: Any, **kwargs: Any) -> str | None:
        message_id = real(self, template, context=context, **kwargs)
        if message_id is None or _DRAFTS_CHECKED[template] >= DRAFT_CHECKS_PER_TEMPLATE:
            return message_id
        doc = self.store.outbox_by_message_id(message_id)
        if doc is not None and "draft" in doc:
            _DRAFTS_CHECKED[template] += 1
            program = {"program": self.program}
            at_once = self.renderer.render(template, {**program, **context})
            later = self.renderer.render(template, {**program, **context_of(doc["draft"])})
            if at_once != later:
                differing.append(template)
        return message_id

    monkeypatch.setattr(Postman, "send", send)
    yield
    assert not differing, f"drafts that render otherwise than at once: {differing}"


# --- mail servers (tests/servers.py) ------------------------------------------------------


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A fresh private Dovecot for this test (starts in ~40 ms).

    Users: ``servers.PROGRAM_USER``/``PROGRAM_PASSWORD`` (the program mailbox) and
    ``servers.OTHER_USER``/``OTHER_PASSWORD``.
    """
    if not dovecot_installed():
        pytest.fail(INSTALL_HINT, pytrace=False)
    server = Dovecot()
    try:
        server.add_user(PROGRAM_USER, PROGRAM_PASSWORD)
        server.add_user(OTHER_USER, OTHER_PASSWORD)
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on a free loopback port that records what it accepts."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that nothing listened on a moment ago."""
    return _free_port()


# --- more fixtures (added by the lead) ------------------------------------------------------


@pytest.fixture
async def desk(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    """A mentordesk daemon wired to the real Dovecot and SMTP sink (started by the test)."""
    desk = Desk(tmp_path, dovecot, smtp_sink)
    yield desk
    await desk.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client, for the links in the emails."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where a test's state lives (the folder does not exist yet)."""
    return tmp_path / "state" / "mentordesk.json"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    """A store of its own at ``path``, fsync off, closed after the test."""
    opened = Store(path, fsync=False)
    yield opened
    opened.close()
