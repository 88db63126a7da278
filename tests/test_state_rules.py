"""Rules over stored state: an older state upgraded on open; nobody booked twice at once."""

from __future__ import annotations

from pathlib import Path

from mentordesk.state.store import SCHEMA_VERSION, Store


def test_old_status_words_are_rewritten_once_on_open(tmp_path: Path) -> None:
    path = tmp_path / "state" / "mentordesk.json"
    old = Store(path, fsync=False)
    with old.db.transaction():
        # As 0.1 wrote them: a claimed request with a confirmed session, a claimed one
        # without, one "done" whose session was asked about, one "done" not yet asked.
        base = {
            "mentee": "m@example.net",
            "created": "2025-01-01T00:00:00+00:00",
            "claimed_by": "a@x.org",
            "claimed_at": "2025-01-02T00:00:00+00:00",
        }
        old.db.table("requests").insert({**base, "number": 1, "status": "claimed"})
        old.db.table("requests").insert({**base, "number": 2, "status": "claimed"})
        old.db.table("requests").insert({**base, "number": 3, "status": "done"})
        old.db.table("requests").insert({**base, "number": 4, "status": "done"})
        sessions = old.db.table("sessions")
        sessions.insert({"uid": "s1", "request": 1, "status": "confirmed", "mentor": "a@x.org"})
        sessions.insert({"uid": "s3", "request": 3, "status": "done", "followup_asked": "x"})
        sessions.insert({"uid": "s4", "request": 4, "status": "done"})
        old.db.table("meta").remove(lambda d: d["key"] == "schema")
    old.close()

    store = Store(path, fsync=False)
    try:
        assert store.meta("schema") == SCHEMA_VERSION
        assert [store.request(n)["status"] for n in (1, 2, 3, 4)] == [  # type: ignore[index]
            "booked",
            "claimed",
            "closed",
            "met",
        ]
        assert [store.session(u)["status"] for u in ("s1", "s3", "s4")] == [  # type: ignore[index]
            "accepted",
            "held",
            "held",
        ]
        assert store.live_session_of(1) is not None
    finally:
        store.close()


def test_a_mentee_with_two_mentors_is_not_booked_twice_at_once(tmp_path: Path) -> None:
    # Found by the lifecycle machine: Jordan got two sessions at Tue 16:00 UTC, one with
    # each mentor, because only the mentor's own week counted as busy.
    from datetime import UTC, datetime

    from mentordesk.config import load_config
    from mentordesk.flows.router import Coordinator
    from mentordesk.mailer.compose import Renderer

    from .test_claims import mentor

    config_path = tmp_path / "config.toml"
    config_path.write_text(
        '[program]\nname = "P"\naddress = "mentors@program.test"\n'
        'coordinator = "c@program.test"\nsecret_env = "S"\n'
        '[inbox]\nkind = "maildir"\npath = "in"\n[smtp]\nkind = "maildir"\npath = "out"\n'
        '[state]\npath = "state/s.json"\nfsync = false\n',
        encoding="utf-8",
    )
    config = load_config(config_path, environ={"S": "s" * 32})
    store = Store(config.state.path, fsync=False)
    now = datetime(2025, 6, 2, 12, tzinfo=UTC)  # a Monday
    try:
        coordinator = Coordinator(config, store, Renderer())
        for email, name in (("ben@example.com", "Ben"), ("dev@example.com", "Dev")):
            store.save_mentor(mentor(email, name, ["python"]))
        starts = []
        for number, holder in ((1, "ben@example.com"), (2, "dev@example.com")):
            store.save_request(
                {
                    "number": number,
                    "mentee": "jordan@example.net",
                    "name": "Jordan",
                    "skills": ["python"],
                    "details": "Help with my first Python project, please.",
                    "timezone": "Europe/Berlin",
                    "availability": [[1, 18 * 60, 20 * 60]],
                    "status": "claimed",
                    "claimed_by": holder,
                    "claimed_at": "2025-06-02T12:00:00+00:00",
                    "created": "2025-06-01T12:00:00+00:00",
                }
            )
            with store.transaction():
                session = coordinator.sessions.book(number, now)
            assert session is not None
            starts.append((session["start"], session["end"]))
        (first_start, first_end), (second_start, second_end) = starts
        assert second_start >= first_end or second_end <= first_start, starts
    finally:
        store.close()
