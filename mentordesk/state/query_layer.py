"""TinyDB's face of the Database (``db.py``): its tables, queries and writes, over the
documents the Database holds in memory.

A write through a table reports exactly the documents it changed, which the Database
journals as one record (or as part of the open transaction's). A stored document is
never changed in place (copy on write: a background compaction may be writing it), and
a document handed to a caller is a copy that shares nothing with the state.

This module is a part of the Database split off for length: it reads and writes the
Database's private state (``_data``, ``_commit``, ``_invalidate``), as its methods would.
"""

from __future__ import annotations

import json
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, cast

from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.storages import Storage
from tinydb.table import Document, Table

from .journal import _INTERNED_MAX, _op, _owned
from .snapshot import encode as _encode

if TYPE_CHECKING:
    from .db import Database

__all__ = ["Doc", "JournalStorage", "JournalTable", "JournalTinyDB", "Undo", "detached", "reloaded"]

Doc = dict[str, Any]
# How to undo one change: (table, document key or None for the whole table, the value
# before the change, None when there was none).
Undo = tuple[str, str | None, Any]

# Values JSON writes and reads back as the same type and value.
_JSON_SCALARS = frozenset({int, float, bool, type(None)})


class JournalTable(Table):
    """A TinyDB table whose documents live in the Database's memory, changed in place.

    Each write reports exactly the documents it changed, which become one journal record
    (or part of the open transaction's). Documents handed to callers are copies: changing
    one, even a nested list, never changes the state behind the journal's back.
    """

    def __init__(
        self,
        storage: Storage,
        name: str,
        cache_size: int = Table.default_query_cache_capacity,
        persist_empty: bool = False,
    ) -> None:
        if not isinstance(storage, JournalStorage):
            raise TypeError(f"{type(self).__name__} needs the journal storage")
        self._db = storage.db
        self._db._open_tables.setdefault(name, weakref.WeakSet()).add(self)
        super().__init__(storage, name, cache_size, persist_empty)

    def _read_table(self) -> dict[str, Mapping[str, Any]]:
        return cast(dict[str, Mapping[str, Any]], self._db._data.get(self.name, {}))

    def _update_table(self, updater: Callable[[dict[int, Mapping[str, Any]]], None]) -> None:
        db = self._db
        db._check_writable()
        docs = db._data.get(self.name)
        created = docs is None
        if docs is None:
            # TinyDB creates the table on any write, even one that changes nothing.
            docs = db._data[self.name] = {}
        view = TrackedDocs(docs)
        try:
            # TinyDB's updaters only use the mapping protocol, which the view implements.
            updater(cast(dict[int, Mapping[str, Any]], view))
            changes = view.changes()
        except BaseException:
            view.restore()
            if created:
                del db._data[self.name]
            # Cached results share nested lists with the documents the updater may have
            # changed in place before failing.
            db._invalidate(self.name)
            raise
        ops: list[str] = []
        undo: list[Undo] = []
        if created:
            ops.append(_op(self.name, None, "{}"))
            undo.append((self.name, None, None))
        for key, text, before in changes:
            if text is None:
                ops.append(_op(self.name, key, "null"))
            else:
                # Keep exactly what a reload would give, sharing nothing with the caller.
                docs[key] = reloaded(docs[key], text)
                ops.append(_op(self.name, key, text))
            undo.append((self.name, key, before))
        if ops:
            db._invalidate(self.name)
            db._commit(ops, undo)

    # TinyDB's own cond-based update and remove read every document through the updater,
    # which would make each one a copy-on-write candidate; picking the ids first with a
    # read-only scan keeps the write proportional to the documents it changes.

    def update(
        self,
        fields: Mapping[str, Any] | Callable[[MutableMapping[str, Any]], None],
        cond: QueryLike | None = None,
        doc_ids: Iterable[int] | None = None,
    ) -> list[int]:
        if doc_ids is None and cond is not None:
            doc_ids = self._matching_ids(cond)
        return super().update(fields, cond, doc_ids)

    def remove(
        self, cond: QueryLike | None = None, doc_ids: Iterable[int] | None = None
    ) -> list[int]:
        if doc_ids is None and cond is not None:
            doc_ids = self._matching_ids(cond)
        return super().remove(cond, doc_ids)

    def _matching_ids(self, cond: QueryLike) -> list[int]:
        return [int(key) for key, doc in self._read_table().items() if cond(doc)]

    # Reads: hand out copies that share nothing with the state or the query cache.

    def search(self, cond: QueryLike) -> list[Document]:
        return [self.document_class(detached(doc), doc.doc_id) for doc in super().search(cond)]

    def get(
        self,
        cond: QueryLike | None = None,
        doc_id: int | None = None,
        doc_ids: list[Any] | None = None,
    ) -> Any:
        found = cast(Any, super()).get(cond, doc_id, doc_ids)
        if isinstance(found, list):
            return [self.document_class(detached(doc), doc.doc_id) for doc in found]
        if found is None:
            return None
        return self.document_class(detached(found), found.doc_id)

    def count(self, cond: QueryLike) -> int:
        return len(super().search(cond))

    def __iter__(self) -> Iterator[Document]:
        # Iterate over a list of the items, so that writing while iterating works, as it
        # does with TinyDB's file storage.
        for key, doc in list(self._read_table().items()):
            yield self.document_class(detached(doc), int(key))


class TrackedDocs(MutableMapping[int, Any]):
    """One table's documents keyed by int id, as TinyDB's updaters expect them.

    Remembers each touched document's content before the update, to find what changed
    and to undo it: the stored document itself, for a document handed out gets a deep copy
    in its place (a stored document is never changed in place: a background compaction
    may be writing it).
    """

    def __init__(self, docs: dict[str, Doc]) -> None:
        self._docs = docs
        self._before: dict[str, Doc | None] = {}

    def __getitem__(self, doc_id: int) -> Doc:
        key = str(doc_id)
        if key not in self._before:
            # Copy on write: the stored document itself is never changed, because a
            # background compaction may be writing it (snapshot.py). It is "before".
            stored = self._docs[key]
            self._before[key] = stored
            self._docs[key] = detached(stored)
        return self._docs[key]

    def __setitem__(self, doc_id: int, doc: Doc) -> None:
        key = str(doc_id)
        if key not in self._before:
            self._before[key] = self._docs.get(key)
        self._docs[key] = doc

    def __delitem__(self, doc_id: int) -> None:
        key = str(doc_id)
        doc = self._docs.pop(key)
        self._before.setdefault(key, doc)

    def __contains__(self, doc_id: object) -> bool:
        return str(doc_id) in self._docs

    def __iter__(self) -> Iterator[int]:
        return (int(key) for key in self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    def clear(self) -> None:
        for key, doc in self._docs.items():
            self._before.setdefault(key, doc)
        self._docs.clear()

    def changes(self) -> list[tuple[str, str | None, Doc | None]]:
        """(key, new JSON text or None if deleted, content before) of each changed document.

        Raises TypeError or ValueError if a document is not JSON; the caller restores.
        """
        changed: list[tuple[str, str | None, Doc | None]] = []
        for key, before in self._before.items():
            doc = self._docs.get(key)
            if doc is None:
                if before is not None:
                    changed.append((key, None, before))
                continue
            text = _encode(doc)
            # == alone would call 1, 1.0 and True the same; the JSON text tells them apart.
            if before is not None and doc == before and text == _encode(before):
                self._docs[key] = before  # same content, and the copy shares nothing
                continue
            changed.append((key, text, before))
        return changed

    def restore(self) -> None:
        """Put every touched document back as it was before the update."""
        for key, before in self._before.items():
            if before is None:
                self._docs.pop(key, None)
            else:
                self._docs[key] = before


class JournalStorage(Storage):
    """TinyDB's storage seam: reads see the Database's memory; whole-state writes (only
    drop_table and drop_tables make them) become journalled changes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self) -> dict[str, dict[str, Any]]:
        # A copy of the outer dict: drop_table deletes from what it reads before writing.
        return dict(self.db._data)

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self.db._replace_tables(data)

    def close(self) -> None:
        self.db.close()


class JournalTinyDB(TinyDB):
    table_class = JournalTable


# --- copies of documents --------------------------------------------------------------


class _NotPlain(Exception):
    """A document holds something JSON would turn into something else."""


def reloaded(doc: Doc, text: str) -> Doc:
    """What reloading ``doc`` from its JSON ``text`` gives (as ``_owned`` keeps it),
    sharing nothing with ``doc``.

    A document of JSON's own types only — the usual case — is copied directly, which
    is several times faster than parsing ``text``; one holding anything JSON changes
    (a tuple, a subclass of str or int, a key that is not a string) is read back from
    ``text``.
    """
    try:
        return {sys.intern(key): _plain_copy(value) for key, value in doc.items()}
    except _NotPlain:
        return _owned(json.loads(text))


def _plain_copy(value: Any) -> Any:
    """``_shared(json.loads(json.dumps(value)))``, or _NotPlain when that would differ."""
    kind = type(value)
    if kind is str:
        return sys.intern(value) if len(value) <= _INTERNED_MAX else value
    if kind is dict:
        copied = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copied[sys.intern(key)] = _plain_copy(item)
        return copied
    if kind is list:
        return [_plain_copy(item) for item in value]
    if kind in _JSON_SCALARS:
        return value  # floats too: JSON writes repr(), which reads back the same float
    raise _NotPlain


def _clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists and immutable scalars)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def detached(doc: Mapping[str, Any]) -> Doc:
    """A deep copy of a document; cheap when its values are scalars, as most are."""
    return {key: _clone(v) if isinstance(v, dict | list) else v for key, v in doc.items()}
