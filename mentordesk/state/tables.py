"""Small helpers over the store's TinyDB tables and its stored times, shared by the
store's parts (``store.py``, ``outbox_records.py``, ``history.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tinydb.table import Table

__all__ = ["Doc", "Uncached", "copy_of", "from_iso", "iso", "plain"]

Doc = dict[str, Any]


def iso(moment: datetime) -> str:
    """Aware datetime → ISO string in UTC (the only form stored)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware UTC datetime")
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class Uncached:
    """A search condition TinyDB must not cache: a scan's result is used once."""

    def __init__(self, test: Callable[[Mapping[str, Any]], object]) -> None:
        self.test = test

    def __call__(self, value: Mapping[Any, Any]) -> bool:
        return bool(self.test(value))

    def is_cacheable(self) -> bool:
        return False


def copy_of(table: Table, doc_id: int) -> Doc:
    """The document with ``doc_id`` as a plain dict ({} when it is gone)."""
    found = table.get(doc_id=doc_id)
    return {} if found is None or isinstance(found, list) else dict(found)


def plain(doc: Mapping[str, Any] | None) -> Doc:
    """A plain dict. The database hands out deep copies already, so callers may change
    it without touching the stored document."""
    return {} if doc is None else dict(doc)
