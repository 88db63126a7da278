"""In-memory indexes the store keeps beside its documents, so that a question asked on
every event costs what its answer costs, not what the program's history holds.

Each index is rebuilt from the documents when the state opens (and after a rolled-back
transaction) and kept up to date by the store's writes; none is stored. They are plain
data structures: the store decides what goes in.

- ``SkillIndex``: skill → mentors who have it (matching copies only those, and ranks
  the stored documents without copying them);
- ``ClaimIndex``: the claims that count against capacity, ordered by when they were
  made, so "claims since the first of the month" reads only this month's;
- ``KeysByValue``: key → one value (a status), and value → keys, so a sweep looks only
  at open requests, or at held sessions not yet asked about, however many closed ones
  the state holds;
- ``PeopleIndex``: person → the live sessions they are in (busy times when booking);
- ``MomentOrder``: requests ordered by when something is next due for them (the
  ladder's next rung, expiry), so a sweep reads the due ones, not every open request;
- ``GroupedOrder``: mentors in groups of those alike for ranking (same skills, zone and
  hours), each group kept in its own order, so ranking weighs each group once and reads
  only the first few of the best groups, however many mentors there are.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "ClaimIndex",
    "GroupedOrder",
    "KeysByValue",
    "MomentOrder",
    "PeopleIndex",
    "Placement",
    "SkillIndex",
]

K = TypeVar("K", bound=Hashable)


class SkillIndex:
    """Mentor email → skills, and skill → the emails of the mentors who have it."""

    def __init__(self) -> None:
        self._skills_of: dict[str, frozenset[str]] = {}
        self._by_skill: dict[str, set[str]] = {}
        self._all: frozenset[str] | None = None

    def put(self, email: str, skills: Iterable[str]) -> None:
        new = frozenset(skills)
        old = self._skills_of.get(email, frozenset())
        if new == old and email in self._skills_of:
            return
        for skill in old - new:
            holders = self._by_skill.get(skill)
            if holders is not None:
                holders.discard(email)
                if not holders:
                    del self._by_skill[skill]
        for skill in new - old:
            self._by_skill.setdefault(skill, set()).add(email)
        self._skills_of[email] = new
        self._all = None

    def having_any(self, wanted: Iterable[str]) -> set[str]:
        """The emails of the mentors who have at least one of ``wanted``."""
        found: set[str] = set()
        for skill in wanted:
            found |= self._by_skill.get(skill, set())
        return found

    def all_skills(self) -> frozenset[str]:
        """Every skill at least one mentor has."""
        if self._all is None:
            self._all = frozenset(skill for skill, holders in self._by_skill.items() if holders)
        return self._all


class ClaimIndex:
    """Request number → (mentor, claimed_at) for the claims that count against capacity,
    also kept sorted by claimed_at (ISO strings in UTC, which sort as times do)."""

    def __init__(self) -> None:
        self._claims: dict[int, tuple[str, str]] = {}
        self._by_time: list[tuple[str, int]] = []
        # The last counts asked for, by cutoff: every request asks for this month's and
        # the last 90 days', while claims change only when someone claims.
        self._counted: dict[str, dict[str, int]] = {}

    def put(self, number: int, mentor: str, claimed_at: str) -> None:
        if self._claims.get(number) == (mentor, claimed_at):
            return
        self.drop(number)
        self._counted.clear()
        self._claims[number] = (mentor, claimed_at)
        insort(self._by_time, (claimed_at, number))

    def drop(self, number: int) -> None:
        held = self._claims.pop(number, None)
        if held is None:
            return
        self._counted.clear()
        _remove_sorted(self._by_time, (held[1], number))

    def counts_since(self, cutoff: str) -> dict[str, int]:
        """Mentor → claims made at or after ``cutoff`` (an ISO time in UTC)."""
        counts = self._counted.get(cutoff)
        if counts is None:
            counts = {}
            claims = self._claims
            for _, number in self._by_time[bisect_left(self._by_time, (cutoff,)) :]:
                mentor = claims[number][0]
                counts[mentor] = counts.get(mentor, 0) + 1
            if len(self._counted) >= 4:  # the cutoffs of the moment only
                self._counted.clear()
            self._counted[cutoff] = counts
        return dict(counts)


class KeysByValue(Generic[K]):
    """Key → one value (a status word, or None for "not indexed"), and value → keys."""

    def __init__(self) -> None:
        self._value_of: dict[K, str] = {}
        self._keys: dict[str, set[K]] = {}

    def put(self, key: K, value: str | None) -> None:
        old = self._value_of.get(key)
        if old == value:
            return
        if old is not None:
            keys = self._keys[old]
            keys.discard(key)
            if not keys:
                del self._keys[old]
            del self._value_of[key]
        if value is not None:
            self._value_of[key] = value
            self._keys.setdefault(value, set()).add(key)

    def value_of(self, key: K) -> str | None:
        return self._value_of.get(key)

    def keys(self, values: Iterable[str]) -> set[K]:
        """Every key whose value is one of ``values``."""
        found: set[K] = set()
        for value in values:
            found |= self._keys.get(value, set())
        return found


class PeopleIndex:
    """Person (lower-case email) → keys of what they are in (live session UIDs)."""

    def __init__(self) -> None:
        self._of: dict[str, set[str]] = {}
        self._people: dict[str, tuple[str, ...]] = {}

    def put(self, key: str, people: Iterable[str]) -> None:
        """Index ``key`` under ``people`` (none: take it out)."""
        new = tuple(sorted({p.lower() for p in people if p}))
        old = self._people.get(key, ())
        if new == old:
            return
        for person in old:
            keys = self._of.get(person)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._of[person]
        for person in new:
            self._of.setdefault(person, set()).add(key)
        if new:
            self._people[key] = new
        else:
            self._people.pop(key, None)

    def of(self, *people: str) -> set[str]:
        """The keys indexed under any of ``people``."""
        found: set[str] = set()
        for person in people:
            if person:
                found |= self._of.get(person.lower(), set())
        return found


class MomentOrder:
    """Keys ordered by a moment each one's document gives (``moment(doc)``: an ISO time in
    UTC, or None for "never"), so "whose moment has come by now?" reads only those.

    ``version`` names the function: one made from other settings (another ladder) has
    another version, and the store rebuilds the order for it.
    """

    def __init__(
        self, moment: Callable[[Mapping[str, Any]], str | None], version: Hashable
    ) -> None:
        self.moment = moment
        self.version = version
        self._of: dict[int, str] = {}
        self._sorted: list[tuple[str, int]] = []

    def put(self, key: int, doc: Mapping[str, Any]) -> None:
        new = self.moment(doc)
        old = self._of.get(key)
        if new == old:
            return
        self.drop(key)
        if new is not None:
            self._of[key] = new
            insort(self._sorted, (new, key))

    def drop(self, key: int) -> None:
        """Take ``key`` out of the order (its document is gone)."""
        old = self._of.pop(key, None)
        if old is not None:
            _remove_sorted(self._sorted, (old, key))

    def upto(self, cutoff: str) -> list[int]:
        """The keys whose moment is at or before ``cutoff``."""
        return [key for _, key in self._sorted[: bisect_right(self._sorted, (cutoff, _LAST))]]


_LAST = float("inf")  # sorts after every int key


def _remove_sorted(items: list[Any], item: Any) -> None:
    """Take ``item`` out of the sorted list ``items``, if it is there (by bisection)."""
    at = bisect_left(items, item)
    if at < len(items) and items[at] == item:
        del items[at]


@dataclass(frozen=True)
class Placement:
    """Where a document goes in a ``GroupedOrder``."""

    group: Hashable  # documents in one group are alike to whoever reads the groups
    order: tuple[Any, ...]  # their order within the group (then the key)
    tags: frozenset[str]  # what the group is found by (``GroupedOrder.groups_tagged``)


class GroupedOrder:
    """Keys in groups, each group sorted by ``(order, key)``, found by tag.

    ``place(doc)`` says where a key's document goes (None: nowhere); it must be a pure
    function of the document, and documents in one group must share their tags.
    ``version`` names the function, as for ``MomentOrder``.
    """

    def __init__(
        self, place: Callable[[Mapping[str, Any]], Placement | None], version: Hashable
    ) -> None:
        self.place = place
        self.version = version
        self._of: dict[str, Placement] = {}
        self._members: dict[Hashable, list[tuple[tuple[Any, ...], str]]] = {}
        self._tagged: dict[str, set[Hashable]] = {}

    def put(self, key: str, doc: Mapping[str, Any] | None) -> None:
        """File ``key`` under its document's placement (``doc`` None: take it out)."""
        new = None if doc is None else self.place(doc)
        old = self._of.get(key)
        if new == old:
            return
        if old is not None:
            members = self._members[old.group]
            _remove_sorted(members, (old.order, key))
            if not members:
                del self._members[old.group]
                for tag in old.tags:
                    groups = self._tagged[tag]
                    groups.discard(old.group)
                    if not groups:
                        del self._tagged[tag]
            del self._of[key]
        if new is not None:
            self._of[key] = new
            members = self._members.setdefault(new.group, [])
            insort(members, (new.order, key))
            for tag in new.tags:
                self._tagged.setdefault(tag, set()).add(new.group)

    def placement(self, key: str) -> Placement | None:
        """Where ``key`` is filed (None: nowhere)."""
        return self._of.get(key)

    def groups_tagged(
        self, tags: Iterable[str]
    ) -> list[tuple[Hashable, Sequence[tuple[tuple[Any, ...], str]]]]:
        """Every group with at least one of ``tags``, with its members in order as
        ``(order, key)``: the index's own lists, to read before the next ``put``."""
        found: set[Hashable] = set()
        for tag in tags:
            found |= self._tagged.get(tag, set())
        return [(group, self._members[group]) for group in found]
