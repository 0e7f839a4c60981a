"""What a knowledge base stores per item, and how an item is a row of its SQLite metadata.

* :class:`Item` — a stored item's metadata; :class:`NewItem` — what to store beside a new embedding;
  :class:`Hit` — a search result (its item read lazily, for all hits of one search at once);
* :func:`content_hash` — what an item *is*, used to refuse duplicates;
* the ``items`` / ``progress`` table schema and the row helpers the reader and the writer share, which
  check what a user hands in (ids SQLite can hold, ``extra`` fields JSON can hold).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ragsc.errors import InputError, KBError

SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reuse a deleted item's id
    modality TEXT NOT NULL,
    text TEXT,
    source_uri TEXT,
    content_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS progress(source TEXT PRIMARY KEY, done INTEGER NOT NULL);
"""

ITEM_COLUMNS = "id, modality, text, source_uri, content_hash, created_at, extra"
_ID_MIN, _ID_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER (and FAISS's idx_t)


@dataclass(frozen=True)
class Item:
    """One stored item's metadata."""

    id: int
    modality: str
    text: str | None
    source_uri: str | None
    content_hash: str
    created_at: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewItem:
    """What to store beside an embedding.

    ``content_hash`` (what dedupes) defaults to: a text item's text; any other item's text *and*
    source URI (two images with the same caption are different items). Pass the hash of the image
    bytes to dedupe images by content, as ingestion does.
    """

    modality: str
    text: str | None = None
    source_uri: str | None = None
    content_hash: str | None = None
    created_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def hash(self) -> str:
        """The content hash this item is stored (and deduplicated) under."""
        if self.content_hash:
            return self.content_hash
        by_text_alone = self.modality == "text" and bool(self.text)
        salt = "" if by_text_alone else self.source_uri or ""
        return content_hash(self.modality, (self.text or "").encode(), salt)


def content_hash(modality: str, data: bytes, salt: str = "") -> str:
    """sha256 of what an item *is* (image bytes or text), used to refuse duplicates.

    Parameters
    ----------
    modality
        ``"image"``, ``"text"``, ...: the same bytes in two modalities are two items.
    data
        The item's content (image file bytes, UTF-8 text).
    salt
        Mixed in when given (e.g. a source URI), for items whose data alone does not identify them.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    h = hashlib.sha256(modality.encode() + b"\0" + data)
    if salt:
        h.update(b"\0" + salt.encode())
    return h.hexdigest()


class Hit:
    """A search result: id, inner-product score, which KB it came from, and the item's metadata.

    ``item`` is read from SQLite on first access, for all hits of the same search at once: a search
    costs what FAISS costs until metadata is actually needed.
    """

    __slots__ = ("id", "score", "provenance", "kb_score", "_items")

    def __init__(self, id: int, score: float, items: LazyItems | dict, provenance: str,
                 kb_score: float | None = None) -> None:
        self.id, self.score, self.provenance, self.kb_score = id, score, provenance, kb_score
        self._items = items  # shared by the hits of one search

    @property
    def item(self) -> Item:
        return self._items[self.id]

    def rescored(self, score: float, provenance: str) -> Hit:
        """A copy with a fused score (the KB's own score kept in ``kb_score``)."""
        kb_score = self.score if self.kb_score is None else self.kb_score
        return Hit(self.id, score, self._items, provenance, kb_score)

    def __repr__(self) -> str:
        return f"Hit(id={self.id}, score={self.score:.4f}, provenance={self.provenance!r})"


class LazyItems:
    """Metadata of a set of ids, fetched in one query on first use from the generation that was
    searched (so hits stay valid after the KB commits a newer one). ``where`` names the KB and its
    generation in the error a damaged metadata file gives."""

    def __init__(self, db: sqlite3.Connection, ids: list[int], where: str = "knowledge base") -> None:
        self.db, self.ids, self.where, self._rows = db, ids, where, None

    def __getitem__(self, id_: int) -> Item:
        if self._rows is None:
            try:
                self._rows = {it.id: it for it in fetch_items(self.db, self.ids)}
            except (sqlite3.Error, json.JSONDecodeError) as exc:
                raise KBError(f"{self.where} is damaged: its metadata cannot be read ({exc}); "
                              "restore it or rebuild it") from None
        return self._rows[id_]


def row_to_item(r: tuple) -> Item:
    """An :class:`Item` from a row of ``SELECT ITEM_COLUMNS``."""
    return Item(r[0], r[1], r[2], r[3], r[4], r[5], {} if r[6] == "{}" else json.loads(r[6]))


def check_ids(ids: Sequence[int]) -> list[int]:
    """``ids`` as Python ints, each one SQLite can hold.

    Raises
    ------
    InputError
        An id that is not an integer, or out of the 64-bit range (no stored id can be).
    """
    out = []
    for i in ids:
        try:
            n = int(i)
        except (TypeError, ValueError):
            raise InputError(f"item ids are integers, got {i!r}") from None
        if not _ID_MIN <= n <= _ID_MAX:
            raise InputError(f"id {n} is out of range: item ids are 64-bit integers (stored ones count up "
                             "from 1)")
        out.append(n)
    return out


def extra_json(position: int, item: NewItem) -> str:
    """``item.extra`` as the JSON stored in its row.

    Raises
    ------
    InputError
        ``extra`` is not a dict, or a field holds what JSON cannot (a datetime, bytes, a set): the message
        names the item's position in its batch and the field.
    """
    if not isinstance(item.extra, dict):
        raise InputError(f"item {position}: extra must be a dict of JSON values, got "
                         f"{type(item.extra).__name__}")
    try:
        return json.dumps(item.extra)
    except (TypeError, ValueError) as exc:
        bad = next((k for k, v in item.extra.items() if not _is_json(v)), None)
        raise InputError(f"item {position}: extra field {bad!r} cannot be stored: {exc}; extra fields hold "
                         "JSON (strings, numbers, booleans, None, and lists and dicts of them)") from None


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def select_in(db: sqlite3.Connection, columns: str, ids: Sequence[int]) -> list[tuple]:
    """``SELECT columns FROM items WHERE id IN ids``, in chunks under SQLite's bound-parameter limit.

    Raises
    ------
    InputError
        An id SQLite cannot hold (:func:`check_ids`).
    """
    ids = check_ids(ids)
    rows: list[tuple] = []
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        marks = ",".join("?" * len(chunk))
        rows += db.execute(f"SELECT {columns} FROM items WHERE id IN ({marks})", chunk).fetchall()
    return rows


def fetch_items(db: sqlite3.Connection, ids: Sequence[int]) -> list[Item]:
    """The stored items among ``ids`` (missing ids are skipped)."""
    return [row_to_item(r) for r in select_in(db, ITEM_COLUMNS, ids)]
