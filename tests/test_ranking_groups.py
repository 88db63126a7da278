"""Ranking by the store's groups of mentors alike (``rank_grouped``) gives exactly what
ranking every mentor one by one (``rank_mentors``) gives, after any writes, and reads
only the mentors it needs."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mentordesk.flows.ranking import (
    GROUPS,
    GROUPS_VERSION,
    MatchInput,
    mentor_placement,
    rank_grouped,
    rank_mentors,
)
from mentordesk.state.indexes import GroupedOrder
from mentordesk.state.store import Store

NOW = datetime(2026, 3, 6, 9, 30, tzinfo=UTC)  # two days before the US clocks change
SKILLS = ("python", "sql", "go", "design", "career advice")
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", None, "Not/A_Zone")
HOURS: tuple[list[list[int]], ...] = (
    [],
    [[1, 18 * 60, 20 * 60]],
    [[0, 9 * 60, 17 * 60], [1, 9 * 60, 17 * 60], [2, 9 * 60, 17 * 60]],
    [[5, 10 * 60, 12 * 60], [1, 17 * 60, 19 * 60]],
    [[6, 0, 1440]],
    [[9, 0, 60]],  # malformed: ignored by ranking
)
TERMS = (None, "2028-01-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00", "soon")


def groups_of(store: Store) -> GroupedOrder:
    return store.mentor_groups(GROUPS, mentor_placement, version=GROUPS_VERSION)


def both_rankings(
    store: Store,
    request: Mapping[str, Any],
    data: MatchInput,
    bounced: frozenset[str],
    limit: int | None,
) -> tuple[list[Any], list[Any]]:
    """(by groups, one by one) over the same stored mentors."""
    grouped = rank_grouped(
        request,
        groups_of(store),
        store.stored_mentor,
        NOW,
        data,
        limit,
        mailable=lambda email: email not in bounced,
    )
    everyone = MatchInput(
        sessions_this_month=data.sessions_this_month,
        recent_sessions=data.recent_sessions,
        excluded=data.excluded | bounced,
    )
    return grouped, rank_mentors(request, store.mentors(), NOW, everyone, limit)


# --- any mentors, any counts, any writes: the same ranking ------------------------------

mentors_st = st.lists(
    st.fixed_dictionaries(
        {
            "skills": st.lists(st.sampled_from(SKILLS), max_size=3, unique=True),
            "timezone": st.sampled_from(ZONES),
            "availability": st.sampled_from(HOURS),
            "capacity": st.integers(min_value=0, max_value=4),
            "status": st.sampled_from(("active", "active", "active", "paused", "term-ended")),
            "term_end": st.sampled_from(TERMS),
        }
    ),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mentors=mentors_st,
    changes=st.lists(
        st.tuples(st.integers(0, 39), st.sampled_from(("skills", "status", "capacity", "hours")))
    ),
    rollback=st.booleans(),
    request_skills=st.lists(st.sampled_from(SKILLS), min_size=1, max_size=3, unique=True),
    request_zone=st.sampled_from(ZONES),
    request_hours=st.sampled_from(HOURS),
    seed=st.integers(0, 2**16),
    limit=st.sampled_from((None, 0, 1, 3, 10)),
)
def test_ranking_by_groups_equals_ranking_one_by_one(
    mentors: list[dict[str, Any]],
    changes: list[tuple[int, str]],
    rollback: bool,
    request_skills: list[str],
    request_zone: str | None,
    request_hours: list[list[int]],
    seed: int,
    limit: int | None,
) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "state.json", fsync=False)
        try:
            for n, fields in enumerate(mentors):
                store.save_mentor({"email": f"m{n:02d}@example.org", "name": f"M{n}", **fields})
            groups_of(store)  # built now: the writes below must keep it up to date
            for n, what in changes:
                if n < len(mentors):
                    change_mentor(store, f"m{n:02d}@example.org", what, rng)
            if rollback and mentors:
                with pytest.raises(RuntimeError), store.transaction():
                    change_mentor(store, "m00@example.org", "skills", rng)
                    raise RuntimeError("undone")
            emails = [f"m{n:02d}@example.org" for n in range(len(mentors))]
            data = MatchInput(
                sessions_this_month={e: rng.randint(0, 3) for e in emails if rng.random() < 0.3},
                recent_sessions={e: rng.randint(0, 5) for e in emails if rng.random() < 0.3},
                excluded=frozenset(e for e in emails if rng.random() < 0.1) | {"x@example.net"},
            )
            bounced = frozenset(e for e in emails if rng.random() < 0.1)
            request = {
                "number": 1,
                "mentee": "x@example.net",
                "skills": request_skills,
                "timezone": request_zone,
                "availability": request_hours,
            }
            grouped, one_by_one = both_rankings(store, request, data, bounced, limit)
            assert grouped == one_by_one
        finally:
            store.close()


def change_mentor(store: Store, email: str, what: str, rng: random.Random) -> None:
    doc = store.mentor(email)
    assert doc is not None
    if what == "skills":
        doc["skills"] = rng.sample(SKILLS, rng.randint(0, 3))
    elif what == "status":
        doc["status"] = rng.choice(("active", "paused", "resigned"))
    elif what == "capacity":
        doc["capacity"] = rng.randint(0, 5)
    else:
        doc["availability"] = rng.choice(HOURS)
        doc["timezone"] = rng.choice(ZONES)
    store.save_mentor(doc)


# --- a program's size: 10,000 mentors -------------------------------------------------


def enroll_many(store: Store, count: int, rng: random.Random) -> list[str]:
    emails = []
    with store.transaction():
        for n in range(count):
            email = f"mentor{n:05d}@example.org"
            emails.append(email)
            store.save_mentor(
                {
                    "email": email,
                    "name": f"Mentor {n}",
                    "skills": rng.sample(SKILLS, rng.randint(1, 3)),
                    "timezone": rng.choice(ZONES[:4]),
                    "availability": rng.choice(HOURS[:5]),
                    "capacity": rng.randint(1, 5),
                    "status": "active" if rng.random() < 0.9 else "paused",
                    "term_end": rng.choice(TERMS[:3]),
                }
            )
    return emails


def test_top_three_of_ten_thousand_mentors_is_the_head_of_the_whole_ranking(
    store: Store,
) -> None:
    rng = random.Random(11)
    emails = enroll_many(store, 10_000, rng)
    data = MatchInput(
        sessions_this_month={e: rng.randint(0, 4) for e in rng.sample(emails, 300)},
        recent_sessions={e: rng.randint(1, 6) for e in rng.sample(emails, 600)},
        excluded=frozenset(rng.sample(emails, 50)),
    )
    bounced = frozenset(rng.sample(emails, 20))
    for skills in (["python"], ["python", "career advice"], ["design", "go", "sql"]):
        for zone, hours in ((None, []), ("Europe/Berlin", HOURS[1]), ("Asia/Kolkata", HOURS[3])):
            request = {
                "number": 7,
                "mentee": "mentee@example.net",
                "skills": skills,
                "timezone": zone,
                "availability": hours,
            }
            grouped, one_by_one = both_rankings(store, request, data, bounced, 3)
            assert len(grouped) == 3
            assert grouped == one_by_one


def test_the_first_few_read_only_a_few_mentors(store: Store) -> None:
    """Ranking the top three among 10,000 mentors reads the mentors with sessions counted
    and the first few of the best groups, not every mentor who shares a skill."""
    rng = random.Random(5)
    emails = enroll_many(store, 10_000, rng)
    counted = rng.sample(emails, 40)
    data = MatchInput(
        sessions_this_month={e: 1 for e in counted[:20]},
        recent_sessions={e: 2 for e in counted},
    )
    read: list[str] = []

    def mentor_of(email: str) -> Mapping[str, Any] | None:
        read.append(email)
        return store.stored_mentor(email)

    request = {"number": 1, "mentee": "x@example.net", "skills": ["python"], "timezone": None}
    ranked = rank_grouped(request, groups_of(store), mentor_of, NOW, data, 3)
    assert len(ranked) == 3
    sharing = sum(1 for e in emails if "python" in (store.stored_mentor(e) or {})["skills"])
    assert sharing > 3000
    # The counted ones, and the next three in order skipping those whose term is over.
    assert len(read) < len(counted) + 3 * 5


def test_a_mentor_leaves_their_group_when_they_change_and_when_they_go(store: Store) -> None:
    store.save_mentor(
        {"email": "ann@example.org", "skills": ["python"], "capacity": 2, "status": "active"}
    )
    groups = groups_of(store)
    placed = groups.placement("ann@example.org")
    assert placed is not None and placed.order == (-2,)
    store.save_mentor(
        {"email": "ann@example.org", "skills": ["go"], "capacity": 3, "status": "active"}
    )
    assert [key for _, members in groups.groups_tagged(["python"]) for _, key in members] == []
    assert [key for _, members in groups.groups_tagged(["go"]) for _, key in members] == [
        "ann@example.org"
    ]
    store.save_mentor(
        {"email": "ann@example.org", "skills": ["go"], "capacity": 3, "status": "paused"}
    )
    assert groups.placement("ann@example.org") is None
    assert groups.groups_tagged(["go"]) == []


def test_groups_are_rebuilt_when_the_state_opens_again(path: Path) -> None:
    first = Store(path, fsync=False)
    for n in range(5):
        first.save_mentor(
            {
                "email": f"m{n}@example.org",
                "skills": ["python"],
                "capacity": n + 1,
                "status": "active",
                "timezone": "UTC",
                "availability": HOURS[1],
            }
        )
    first.close()
    again = Store(path, fsync=False)
    try:
        request = {"number": 1, "mentee": "x@example.net", "skills": ["python"]}
        ranked = rank_grouped(
            request, groups_of(again), again.stored_mentor, NOW, MatchInput({}, {}), 2
        )
        assert [c.email for c in ranked] == ["m4@example.org", "m3@example.org"]
    finally:
        again.close()


def test_a_term_that_ended_since_filing_is_seen_at_ranking(store: Store) -> None:
    store.save_mentor(
        {
            "email": "ends@example.org",
            "skills": ["python"],
            "capacity": 5,
            "status": "active",
            "term_end": (NOW - timedelta(days=1)).isoformat(),
        }
    )
    store.save_mentor(
        {"email": "stays@example.org", "skills": ["python"], "capacity": 1, "status": "active"}
    )
    request = {"number": 1, "mentee": "x@example.net", "skills": ["python"]}
    ranked = rank_grouped(
        request, groups_of(store), store.stored_mentor, NOW, MatchInput({}, {}), 3
    )
    assert [c.email for c in ranked] == ["stays@example.org"]


@pytest.mark.parametrize("limit", [1, 3, None])
@pytest.mark.parametrize("how_many", [12, 28])  # fewer or more than a profile holds
def test_many_mentors_of_one_profile_with_sessions_counted_rank_as_one_by_one(
    store: Store, limit: int | None, how_many: int
) -> None:
    """A program that has run a while: most mentors alike have sessions counted, with
    different counts; each of them is weighed, in the tier ranking reaches (found from
    the counted mentors or from the profile's members, whichever is fewer)."""
    rng = random.Random(7)
    for n in range(30):
        store.save_mentor(
            {
                "email": f"m{n:02d}@example.org",
                "name": f"M{n}",
                "skills": ["python", "sql"] if n % 5 else ["go"],
                "timezone": "Europe/Berlin",
                "availability": HOURS[2],
                "capacity": 2 + n % 3,
                "status": "active",
            }
        )
    counted = [f"m{n:02d}@example.org" for n in rng.sample(range(30), how_many)]
    data = MatchInput(
        sessions_this_month={email: rng.randint(0, 2) for email in counted[:8]},
        recent_sessions={email: rng.randint(1, 6) for email in counted},
    )
    request = {"skills": ["python"], "timezone": "Europe/Berlin", "availability": HOURS[2]}
    grouped, one_by_one = both_rankings(store, request, data, frozenset(), limit)
    assert grouped == one_by_one
    if limit is None:
        assert sum(1 for c in grouped if c.recent_sessions) >= how_many // 2


def test_counted_mentors_are_read_until_none_after_could_take_a_place(store: Store) -> None:
    """Read most capacity first, a counted mentor ranks at best as (-capacity, 1): one
    with less capacity who ties the last place taken can still win it by email, and one
    who could not is not read at all."""
    base = {"skills": ["python"], "timezone": "Europe/Berlin", "availability": HOURS[2]}
    mentors = {"x@example.org": 4, "a@example.org": 3, "b@example.org": 2}
    for email, capacity in mentors.items():
        store.save_mentor(
            {**base, "email": email, "name": email, "capacity": capacity, "status": "active"}
        )
    data = MatchInput(
        sessions_this_month={"x@example.org": 1},  # spare 3, as a@'s
        recent_sessions={email: 1 for email in mentors},
    )
    read: list[str] = []

    def mentor_of(email: str) -> Any:
        read.append(email)
        return store.stored_mentor(email)

    request = {**base, "skills": ["python"]}
    [best] = rank_grouped(request, groups_of(store), mentor_of, NOW, data, 1)
    assert best.email == "a@example.org"  # (-3, 1, "a@") before (-3, 1, "x@")
    assert read == ["x@example.org", "a@example.org"]  # b@ at best (-2, 1): not read
    assert [best] == both_rankings(store, request, data, frozenset(), 1)[1]
