"""A state written before the lifecycle (schema 1) opens in the lifecycle's words."""

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
