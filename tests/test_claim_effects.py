"""A claim answered first, its emails and booking after (``defer_effects``): the same
mail as a claim that does everything at once, exactly once, even when the process is
killed between the two; and none when the request moved on meanwhile."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mentordesk.config import Config, load_config
from mentordesk.flows.claim_effects import claim_effects_step
from mentordesk.flows.router import Coordinator
from mentordesk.mailer.compose import Renderer
from mentordesk.state.committed import CommittedView
from mentordesk.state.store import Store

from .test_claims import mentor

NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)  # a Monday
INVITED = ["ada@example.com", "ben@example.com", "dev@example.com"]


def config_in(folder: Path) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(
        '[program]\nname = "P"\naddress = "mentors@program.test"\n'
        'coordinator = "c@program.test"\nsecret_env = "S"\n'
        f'[inbox]\nkind = "maildir"\npath = "{folder / "in"}"\n'
        f'[smtp]\nkind = "maildir"\npath = "{folder / "out"}"\n'
        f'[state]\npath = "{folder / "state" / "s.json"}"\nfsync = true\n',
        encoding="utf-8",
    )
    return load_config(path, environ={"S": "s" * 32})


def seeded(folder: Path) -> Config:
    """Three mentors invited to request 1 (times in common with the mentee's)."""
    config = config_in(folder)
    store = Store(config.state.path)
    try:
        for email in INVITED:
            store.save_mentor(mentor(email, email.split("@")[0].title(), ["python"]))
        store.save_request(
            {
                "number": 1,
                "mentee": "jordan@example.net",
                "name": "Jordan",
                "skills": ["python"],
                "details": "Help with my first Python project, please.",
                "timezone": "Europe/Berlin",
                "availability": [[1, 18 * 60, 20 * 60]],
                "status": "open",
                "created": "2025-06-01T12:00:00+00:00",
                "opened": "2025-06-01T12:00:00+00:00",
                "invited": [{"email": e, "at": "2025-06-01T12:00:00+00:00"} for e in INVITED],
            }
        )
    finally:
        store.close()
    return config


def mail_kinds(store: Store) -> Counter[tuple[str, str]]:
    return Counter((o["kind"], o["recipients"][0]) for o in store.outbox())


def opened(config: Config) -> tuple[Store, Coordinator]:
    store = Store(config.state.path)
    return store, Coordinator(config, store, Renderer())


def test_deferred_effects_are_the_same_mail_as_a_claim_done_at_once(tmp_path: Path) -> None:
    at_once, deferred = seeded(tmp_path / "a"), seeded(tmp_path / "b")
    store, coordinator = opened(at_once)
    try:
        assert coordinator.claims.claim(1, INVITED[0], NOW, via="web").outcome == "claimed"
        expected = mail_kinds(store)
        expected_request = store.request(1) or {}
    finally:
        store.close()
    assert expected[("intro_mentee", "jordan@example.net")] == 1
    assert sum(1 for kind, _ in expected if kind == "claim_taken") == 2

    store, coordinator = opened(deferred)
    try:
        result = coordinator.claims.claim(1, INVITED[0], NOW, via="web", defer_effects=True)
        assert result.outcome == "claimed" and not result.pick_url
        assert mail_kinds(store) == Counter()  # the answer comes first
        assert (store.request(1) or {})["effects_due"]
        assert coordinator.claims.settle(1, NOW) is True
        assert mail_kinds(store) == expected
        assert coordinator.claims.settle(1, NOW) is False  # once
        assert claim_effects_step(coordinator, NOW + timedelta(minutes=1)) == 0
        assert mail_kinds(store) == expected
        request = store.request(1) or {}
        assert request["status"] == expected_request["status"] == "booked"
        assert request["effects_due"] is None
    finally:
        store.close()


KILLED_AFTER_THE_CLAIM = """
import os, sys
from datetime import datetime
from mentordesk.config import load_config
from mentordesk.flows.router import Coordinator
from mentordesk.mailer.compose import Renderer
from mentordesk.state.committed import CommittedView
from mentordesk.state.store import Store

config = load_config(sys.argv[1], environ={"S": "s" * 32})
store = Store(config.state.path)
coordinator = Coordinator(config, store, Renderer())
result = coordinator.claims.claim(
    1, "ada@example.com", datetime.fromisoformat(sys.argv[2]), via="web", defer_effects=True
)
assert result.outcome == "claimed", result
os.kill(os.getpid(), 9)  # between the answer and the effects
"""


def test_a_kill_between_claim_and_effects_loses_and_repeats_nothing(tmp_path: Path) -> None:
    config = seeded(tmp_path)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_AFTER_THE_CLAIM,
            str(tmp_path / "config.toml"),
            NOW.isoformat(),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert killed.returncode == -9, killed.stderr
    store, coordinator = opened(config)
    try:
        request = store.request(1) or {}
        assert request["claimed_by"] == INVITED[0] and request["effects_due"]
        assert mail_kinds(store) == Counter()
        assert claim_effects_step(coordinator, NOW + timedelta(minutes=2)) == 1
        settled = mail_kinds(store)
        assert settled[("intro_mentor", INVITED[0])] == 1
        assert settled[("intro_mentee", "jordan@example.net")] == 1
        assert {r for kind, r in settled if kind == "claim_taken"} == set(INVITED[1:])
        assert (store.request(1) or {})["status"] == "booked"
    finally:
        store.close()
    store, coordinator = opened(config)  # and after another restart: nothing again
    try:
        assert claim_effects_step(coordinator, NOW + timedelta(minutes=3)) == 0
        assert mail_kinds(store) == settled
    finally:
        store.close()


def test_no_claim_effects_once_the_request_moved_on(tmp_path: Path) -> None:
    config = seeded(tmp_path)
    store, coordinator = opened(config)
    try:
        coordinator.claims.claim(1, INVITED[0], NOW, via="web", defer_effects=True)
        # The mentor gave it back before the effects ran (a crash, then a release).
        assert coordinator.claims.release(1, INVITED[0], NOW).outcome == "released"
        before = mail_kinds(store)
        assert claim_effects_step(coordinator, NOW + timedelta(minutes=1)) == 0
        after = mail_kinds(store)
        assert after == before
        assert not any(kind.startswith("intro") for kind, _ in after)
        assert any(a["event"] == "claim effects dropped" for a in store.audit_log(1))
    finally:
        store.close()


def test_the_claim_page_shows_each_committed_version_of_a_request(tmp_path: Path) -> None:
    # committed_view makes a request's view once per committed document (flows/claims.py):
    # a new version, published, is what the next page shows.
    store, coordinator = opened(seeded(tmp_path))
    try:
        committed = CommittedView(store.db)
        desk = coordinator.claims
        first = desk.committed_view(committed, 1, INVITED[0], NOW)
        again = desk.committed_view(committed, 1, INVITED[1], NOW)
        assert again.request is first.request  # the same version: the same view
        assert first.request == desk.view(1, INVITED[0], NOW).request
        doc = dict(store.request(1) or {})
        store.save_request({**doc, "details": "Now about Rust, please.", "name": "Jo"})
        committed.publish([("requests", None)])
        changed = desk.committed_view(committed, 1, INVITED[0], NOW)
        assert changed.request["details"] == "Now about Rust, please."
        assert changed.request["name"] == "Jo"
        assert changed.request == desk.view(1, INVITED[0], NOW).request
    finally:
        store.close()
