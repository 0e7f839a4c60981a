"""A knowledge base is a folder: FAISS index + SQLite metadata + JSON manifest, committed atomically.

Layout::

    NAME/
      manifest.json         schema version, encoder spec + fingerprint, dim, metric, factory, counts,
                            checksums, and which generation is current
      gen-000007/index.faiss   the committed FAISS index (IndexIDMap2; ids = metadata row ids)
      gen-000007/meta.sqlite   one row per item: id, modality, text, source_uri, content_hash,
                            created_at, extra (JSON); ingestion progress for --resume
      writer.lock           held (flock) by the one writer; its pid is written inside

Writes go to a private staging folder and become visible only at :meth:`Writer.commit`: the staging
folder is renamed to a new generation, then ``manifest.json`` is replaced atomically (write + fsync +
rename). A killed writer leaves the last committed generation intact; the next writer deletes its
stale staging folder. Readers never lock: they open the generation the manifest names, whose files
never change. No pickle anywhere: FAISS's own format, SQLite and JSON.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import time
import uuid
from urllib.parse import quote
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import torch

from ragsc.errors import ConfigError, InputError, KBError
from ragsc.kb import index as ix

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LOCK = "writer.lock"
Scope = Literal["local", "global"]

_SCHEMA = """
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
        if self.content_hash:
            return self.content_hash
        by_text_alone = self.modality == "text" and bool(self.text)
        return content_hash(self.modality, (self.text or "").encode(), "" if by_text_alone else self.source_uri or "")


class Hit:
    """A search result: id, inner-product score, which KB it came from, and the item's metadata.

    ``item`` is read from SQLite on first access, for all hits of the same search at once: a search
    costs what FAISS costs until metadata is actually needed.
    """

    __slots__ = ("id", "score", "provenance", "kb_score", "_items")

    def __init__(self, id: int, score: float, items: _LazyItems | dict, provenance: str,
                 kb_score: float | None = None) -> None:
        self.id, self.score, self.provenance, self.kb_score = id, score, provenance, kb_score
        self._items = items  # shared by the hits of one search

    @property
    def item(self) -> Item:
        return self._items[self.id]

    def rescored(self, score: float, provenance: str) -> Hit:
        """A copy with a fused score (the KB's own score kept in ``kb_score``)."""
        return Hit(self.id, score, self._items, provenance, self.score if self.kb_score is None else self.kb_score)

    def __repr__(self) -> str:
        return f"Hit(id={self.id}, score={self.score:.4f}, provenance={self.provenance!r})"


class _LazyItems:
    """Metadata of a set of ids, fetched in one query on first use from the generation that was
    searched (so hits stay valid after the KB commits a newer one)."""

    def __init__(self, db: sqlite3.Connection, ids: list[int]) -> None:
        self.db, self.ids, self._rows = db, ids, None

    def __getitem__(self, id_: int) -> Item:
        if self._rows is None:
            self._rows = {it.id: it for it in _fetch_items(self.db, self.ids)}
        return self._rows[id_]


def content_hash(modality: str, data: bytes, salt: str = "") -> str:
    """sha256 of what an item *is* (image bytes or text), used to refuse duplicates; ``salt`` (e.g. a
    source URI) is mixed in when given, for items whose data alone does not identify them."""
    h = hashlib.sha256(modality.encode() + b"\0" + data)
    if salt:
        h.update(b"\0" + salt.encode())
    return h.hexdigest()


def check_path(path: str | os.PathLike) -> Path:
    """Refuse KB paths with ``..`` components (a name must not escape its parent folder)."""
    p = Path(path)
    if ".." in p.parts:
        raise InputError(f"knowledge-base path must not contain '..': {path}")
    return p


def resolve_path(name: str | os.PathLike) -> Path:
    """A bare NAME lives in ``RAGSC_HOME/kb/NAME``; anything with a '/' (or starting with '.') is a path."""
    from ragsc._assets import home_dir

    name = str(name)
    check_path(name)
    return Path(name) if ("/" in name or name.startswith(".")) else home_dir() / "kb" / name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _as_matrix(embeddings: Any, dim: int) -> np.ndarray:
    if type(embeddings) is np.ndarray and embeddings.dtype == np.float32 and embeddings.ndim == 2 \
            and embeddings.shape[1] == dim and embeddings.flags.c_contiguous:  # the hot path: no copies
        if not np.isfinite(embeddings).all():
            raise InputError("embeddings must be finite floating-point values")
        return embeddings
    x = embeddings.embeddings if hasattr(embeddings, "embeddings") else embeddings
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise InputError("embeddings must be real-valued, got a complex tensor")
        x = x.detach().to("cpu").float().numpy()
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise InputError(f"embeddings must have shape [N, {dim}], got {tuple(x.shape)}")
    if not np.issubdtype(x.dtype, np.floating) or not np.isfinite(x).all():
        raise InputError("embeddings must be finite floating-point values")
    return np.ascontiguousarray(x, dtype=np.float32)


class KnowledgeBase:
    """A persistent FAISS + SQLite knowledge base (see the module docstring for the folder layout).

    Use :meth:`create` / :meth:`open`; read with :meth:`search`, :meth:`get`, ``len(kb)``; write
    with :meth:`add` / :meth:`delete` (one commit each) or a :meth:`writer` (batched, one commit).
    """

    def __init__(self, path: Path, manifest: dict) -> None:
        self.path = path
        self.manifest = manifest
        gen = self.path / manifest["generation"]
        try:
            self.index = faiss.read_index(str(gen / "index.faiss"))
            # immutable: committed generations never change, so readers need no locks
            self._db = sqlite3.connect(f"file:{quote(str(gen / 'meta.sqlite'))}?mode=ro&immutable=1", uri=True,
                                       check_same_thread=False)
            n_meta = self._db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        except (RuntimeError, sqlite3.Error) as exc:
            raise KBError(f"knowledge base {path} is damaged (generation {manifest['generation']}): {exc}") from None
        if not (self.index.ntotal == n_meta == manifest["counts"]["items"]):
            raise KBError(f"knowledge base {path} is inconsistent: index has {self.index.ntotal} vectors, "
                          f"metadata {n_meta} rows, manifest {manifest['counts']['items']}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike, encoder, scope: Scope = "local", index: str | None = None,
               exist_ok: bool = False) -> KnowledgeBase:
        """Create an empty KB at ``path`` for ``encoder`` (a MultimodalEncoder, or a dict with ``spec``,
        ``fingerprint`` and ``dim``). ``index``: a FAISS factory string, or ``None`` to choose by size."""
        path = check_path(path)
        if scope not in ("local", "global"):
            raise ConfigError(f"scope must be 'local' or 'global', got {scope!r}")
        if (path / MANIFEST).exists():
            if exist_ok:
                return cls.open(path, encoder=None if isinstance(encoder, dict) else encoder)
            raise KBError(f"a knowledge base already exists at {path}")
        if path.exists() and any(path.iterdir()):
            raise KBError(f"{path} exists and is not an empty folder; refusing to create a knowledge base there")
        enc = encoder if isinstance(encoder, dict) else {"spec": encoder.spec, "fingerprint": encoder.fingerprint,
                                                         "dim": encoder.dim}
        dim = int(enc["dim"])
        ix.new_index(index or "Flat", dim)  # validate the factory string before touching the disk
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "schema_version": SCHEMA_VERSION, "scope": scope, "dim": dim, "metric": "inner_product",
            "encoder": {"spec": enc["spec"], "fingerprint": enc["fingerprint"]},
            "factory": index or "Flat", "factory_auto": index is None, "generation": None,
            "counts": {"items": 0}, "checksums": {}, "created_at": time.time(),
        }
        with Writer(path, manifest, fresh=True) as w:
            w.commit(keep_writing=False)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike, encoder=None) -> KnowledgeBase:
        """Open the last committed generation. With ``encoder``, refuse a KB built by a different one."""
        path = check_path(path)
        manifest = read_manifest(path)
        if not (path / manifest["generation"]).is_dir():  # two quick commits retired it: read again
            manifest = read_manifest(path)
        if encoder is not None:
            fp = manifest["encoder"]["fingerprint"]
            if encoder.fingerprint != fp:
                raise KBError(f"knowledge base {path} was built by encoder {manifest['encoder']['spec']!r} "
                              f"(fingerprint {fp}); the encoder given is {encoder.spec!r} (fingerprint "
                              f"{encoder.fingerprint}). Rebuild the KB or use the same encoder.")
        return cls(path, manifest)

    def reload(self) -> KnowledgeBase:
        """A fresh view of the latest committed generation."""
        return KnowledgeBase.open(self.path)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def scope(self) -> str:
        return self.manifest["scope"]

    def search(self, embeddings, k: int = 10, *, nprobe: int | None = None, ef_search: int | None = None,
               k_factor: int | None = None, modality: str | None = None) -> list[list[Hit]]:
        """Nearest items by inner product for each query row; ``modality`` filters hits."""
        q = _as_matrix(embeddings, self.dim)
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        n_total = self.index.ntotal
        if n_total == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        if nprobe is not None or ef_search is not None or k_factor is not None:
            # per-query knobs: set for this search only, the index's saved defaults come back after
            saved = ix.get_search_params(self.index)
            ix.set_search_params(self.index, nprobe, ef_search, k_factor)
            try:
                return self.search(q, k, modality=modality)
            finally:
                ix.set_search_params(self.index, **saved)
        if modality is None:
            return self._search(q, min(n_total, k), k, None)
        # filtering happens after FAISS: widen the candidate list until every row has k hits of
        # that modality, or there are no more of them
        available = self._db.execute("SELECT COUNT(*) FROM items WHERE modality = ?", (modality,)).fetchone()[0]
        fetch = min(n_total, max(4 * k, k + 32))
        while True:
            out = self._search(q, fetch, k, modality)
            if fetch >= n_total or all(len(hits) >= min(k, available) for hits in out):
                return out
            fetch = min(n_total, 4 * fetch)

    def _search(self, q: np.ndarray, fetch: int, k: int, modality: str | None) -> list[list[Hit]]:
        scores, ids = self.index.search(q, fetch)
        rows = [[(i, s) for i, s in zip(row_i, row_s) if i >= 0] for row_s, row_i in zip(scores.tolist(), ids.tolist())]
        if modality is not None:  # one read of the modality column for the whole batch
            found = dict.fromkeys(i for row in rows for i, _ in row)
            match = {i for i, m in _select_in(self._db, "id, modality", list(found)) if m == modality}
            rows = [[(i, s) for i, s in row if i in match] for row in rows]
        rows = [row[:k] for row in rows]
        items = _LazyItems(self._db, list(dict.fromkeys(i for row in rows for i, _ in row)))  # shared by the batch
        return [[Hit(i, s, items, self.scope) for i, s in row] for row in rows]

    def get(self, ids: Sequence[int]) -> list[Item]:
        """Metadata rows for ``ids`` (missing ids are skipped)."""
        return _fetch_items(self._db, ids)

    def items(self) -> Iterator[Item]:
        """Every item, by id."""
        for r in self._db.execute(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY id"):
            yield _row_to_item(r)

    def progress(self, source: str) -> int:
        """How many records of ``source`` a committed ingestion has consumed (for ``--resume``)."""
        row = self._db.execute("SELECT done FROM progress WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, Any]:
        gen = self.path / self.manifest["generation"]
        size = sum(f.stat().st_size for f in gen.iterdir())
        by_modality = dict(self._db.execute("SELECT modality, COUNT(*) FROM items GROUP BY modality").fetchall())
        return {"path": str(self.path), "scope": self.scope, "items": len(self), "by_modality": by_modality,
                "dim": self.dim, "factory": self.manifest["factory"], "encoder": self.manifest["encoder"],
                "generation": self.manifest["generation"], "bytes": size,
                "bytes_per_item": size / len(self) if len(self) else None}

    def export(self, out: str | os.PathLike) -> int:
        """Write metadata as JSONL to ``out`` (and exact vectors to ``out`` + ``.npy`` when the index has them)."""
        out = Path(out)
        ids = []
        with open(out, "w") as f:
            for it in self.items():
                f.write(json.dumps({"id": it.id, "modality": it.modality, "text": it.text, "source_uri": it.source_uri,
                                    "content_hash": it.content_hash, "created_at": it.created_at, "extra": it.extra}) + "\n")
                ids.append(it.id)
        if ids and ix.can_reconstruct(self.index):
            np.save(out.with_suffix(out.suffix + ".npy"), np.stack([self.index.reconstruct(i) for i in ids]),
                    allow_pickle=False)
        return len(ids)

    def verify(self) -> None:
        """Check the committed files against the manifest's checksums."""
        gen = self.path / self.manifest["generation"]
        for name, digest in self.manifest["checksums"].items():
            if not (gen / name).is_file():
                raise KBError(f"knowledge base {self.path}: {name} is missing from {gen.name}")
            if _sha256(gen / name) != digest:
                raise KBError(f"knowledge base {self.path}: {name} does not match its checksum")

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writer(self, checkpoint_every: int | None = None, wait_s: float = 0.0) -> Iterator[Writer]:
        """Exclusive, batched writes; committed when the block exits normally, discarded on error.
        ``wait_s``: how long to wait for another process's writer to finish (default: fail at once)."""
        w = Writer(self.path, read_manifest(self.path), checkpoint_every=checkpoint_every, wait_s=wait_s)
        with w:
            yield w
            w.commit(keep_writing=False)
        self.__init__(self.path, read_manifest(self.path))  # this handle now sees the new generation

    def add(self, embeddings, items: Sequence[NewItem]) -> list[int | None]:
        """Add and commit; returns each item's id (``None`` for duplicates of stored content)."""
        with self.writer() as w:
            return w.add(embeddings, items)

    def update(self, ids: Sequence[int], embeddings, items: Sequence[NewItem]) -> None:
        """Replace items in place (same ids) and commit."""
        with self.writer() as w:
            w.update(ids, embeddings, items)

    def delete(self, ids: Sequence[int]) -> int:
        """Delete and commit; returns how many existed."""
        with self.writer() as w:
            return w.delete(ids)

    def close(self) -> None:
        self._db.close()


_ITEM_COLUMNS = "id, modality, text, source_uri, content_hash, created_at, extra"


def _row_to_item(r: tuple) -> Item:
    return Item(r[0], r[1], r[2], r[3], r[4], r[5], {} if r[6] == "{}" else json.loads(r[6]))


def _select_in(db: sqlite3.Connection, columns: str, ids: Sequence[int]) -> list[tuple]:
    """``SELECT columns FROM items WHERE id IN ids``, in chunks under SQLite's bound-parameter limit."""
    ids = [int(i) for i in ids]
    rows: list[tuple] = []
    for start in range(0, len(ids), 900):
        chunk = ids[start : start + 900]
        rows += db.execute(f"SELECT {columns} FROM items WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return rows


def _fetch_items(db: sqlite3.Connection, ids: Sequence[int]) -> list[Item]:
    return [_row_to_item(r) for r in _select_in(db, _ITEM_COLUMNS, ids)]


def read_manifest(path: Path) -> dict:
    f = path / MANIFEST
    if not f.is_file():
        raise KBError(f"no knowledge base at {path} (no {MANIFEST}); create it with `ragsc kb create`")
    try:
        manifest = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise KBError(f"{f} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise KBError(f"{f}: not a ragsc manifest of schema version {SCHEMA_VERSION}")
    missing = [k for k in ("generation", "counts", "dim", "encoder", "factory", "scope", "checksums") if not manifest.get(k)
               and k != "checksums"]
    if missing or "items" not in manifest["counts"]:
        raise KBError(f"{f}: incomplete manifest (missing {', '.join(missing) or 'counts.items'})")
    return manifest


class Writer:
    """The one writer of a KB: holds ``writer.lock``, stages changes, commits generations."""

    def __init__(self, path: Path, manifest: dict, fresh: bool = False, checkpoint_every: int | None = None,
                 wait_s: float = 0.0) -> None:
        self.path, self.manifest, self.fresh = path, dict(manifest), fresh
        self.checkpoint_every, self.wait_s = checkpoint_every, wait_s
        self._since_commit = 0
        self._lock_file = None

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> Writer:
        self._lock_file = open(self.path / LOCK, "a+")
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "unknown"
            self._lock_file.close()
            raise KBError(f"knowledge base {self.path} is being written by another process ({holder}); "
                          "only one writer at a time — wait for it to finish") from None
        try:
            self._lock_file.seek(0)
            self._lock_file.truncate()
            self._lock_file.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
            self._lock_file.flush()
            if self.fresh and (self.path / MANIFEST).exists():  # created by someone else meanwhile
                raise KBError(f"a knowledge base already exists at {self.path}")
            for stale in self.path.glob(".staging-*"):  # left by a killed writer; we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
            if not self.fresh:  # another writer may have committed while we waited for the lock
                self.manifest = read_manifest(self.path)
            current = self.manifest.get("generation")
            for orphan in self.path.glob("gen-*"):  # renamed by a writer killed before its manifest landed
                if current is None or orphan.name > current:
                    shutil.rmtree(orphan, ignore_errors=True)
            self._stage()
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)  # release the lock and the staging folder
            if isinstance(exc, (RuntimeError, sqlite3.Error, OSError)) and not isinstance(exc, KBError):
                raise KBError(f"cannot start writing to {self.path}: {exc}") from exc
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._lock_file is None or self._lock_file.closed:
            return
        try:
            if getattr(self, "db", None) is not None:
                self.db.close()
            if getattr(self, "staging", None) is not None and self.staging.exists():
                shutil.rmtree(self.staging, ignore_errors=True)  # uncommitted changes are discarded
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def _stage(self) -> None:
        self.staging = self.path / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        self.db = sqlite3.connect(self.staging / "meta.sqlite")
        if self.fresh:
            self.db.executescript(_SCHEMA)
            self.index = ix.new_index(self.manifest["factory"], self.manifest["dim"])
        else:
            gen = self.path / self.manifest["generation"]
            src = sqlite3.connect(f"file:{quote(str(gen / 'meta.sqlite'))}?mode=ro", uri=True)
            src.backup(self.db)
            src.close()
            self.index = faiss.read_index(str(gen / "index.faiss"))
        self._pending_vectors: list[np.ndarray] = []  # held back until an untrained index can be trained
        self._pending_ids: list[np.ndarray] = []
        self._rebuild_without: set[int] = set()

    # -------------------------------------------------------------- changes
    def add(self, embeddings, items: Sequence[NewItem]) -> list[int | None]:
        """Stage items; returns ids (``None`` for content already stored or repeated in this batch)."""
        x = _as_matrix(embeddings, self.manifest["dim"])
        if len(items) != len(x):
            raise InputError(f"{len(x)} embeddings but {len(items)} items")
        ids: list[int | None] = []
        new_rows = []
        now = time.time()
        for vec_i, it in enumerate(items):
            try:
                cur = self.db.execute(
                    "INSERT INTO items(modality, text, source_uri, content_hash, created_at, extra) VALUES (?,?,?,?,?,?)",
                    (it.modality, it.text, it.source_uri, it.hash(), it.created_at or now, json.dumps(it.extra)))
                ids.append(cur.lastrowid)
                new_rows.append(vec_i)
            except sqlite3.IntegrityError as exc:
                if "content_hash" not in str(exc):
                    raise InputError(f"item {vec_i} cannot be stored: {exc}") from None
                ids.append(None)  # UNIQUE(content_hash): a duplicate
        if new_rows:
            vecs = x[new_rows]
            new_ids = np.array([i for i in ids if i is not None], dtype=np.int64)
            if ix.needs_training(self.index):
                self._pending_vectors.append(vecs)
                self._pending_ids.append(new_ids)
            else:
                self.index.add_with_ids(vecs, new_ids)
        self._since_commit += len(new_rows)
        return ids

    def delete(self, ids: Sequence[int]) -> int:
        existing = [r[0] for r in _select_in(self.db, "id", ids)]
        if not existing:
            return 0
        self.db.executemany("DELETE FROM items WHERE id = ?", [(i,) for i in existing])
        gone = np.array(existing, dtype=np.int64)
        keep = [~np.isin(p, gone) for p in self._pending_ids]  # staged but not yet in the index
        self._pending_vectors = [v[k] for v, k in zip(self._pending_vectors, keep)]
        self._pending_ids = [p[k] for p, k in zip(self._pending_ids, keep)]
        if ix.can_remove(self.index):
            self.index.remove_ids(gone)
        else:
            self._rebuild_without.update(existing)  # HNSW: rebuilt without them at commit
        return len(existing)

    def update(self, ids: Sequence[int], embeddings, items: Sequence[NewItem]) -> None:
        """Replace stored items in place: same ids, new vectors and metadata."""
        x = _as_matrix(embeddings, self.manifest["dim"])
        ids = [int(i) for i in ids]
        if not (len(ids) == len(x) == len(items)):
            raise InputError(f"update needs as many ids, embeddings and items: {len(ids)}, {len(x)}, {len(items)}")
        missing = set(ids) - {r[0] for r in _select_in(self.db, "id", ids)}
        if missing:
            raise InputError(f"cannot update ids that are not stored: {sorted(missing)}")
        try:
            self.db.executemany(
                "UPDATE items SET modality = ?, text = ?, source_uri = ?, content_hash = ?, extra = ? WHERE id = ?",
                [(it.modality, it.text, it.source_uri, it.hash(), json.dumps(it.extra), i) for i, it in zip(ids, items)])
        except sqlite3.IntegrityError:
            raise InputError("an updated item's content is already stored under another id") from None
        id_array = np.array(ids, dtype=np.int64)
        if ix.can_remove(self.index) and not ix.needs_training(self.index):
            self.index.remove_ids(id_array)
            self.index.add_with_ids(x, id_array)
        else:  # HNSW (or not yet trained): rebuilt at commit with the new vectors under the same ids
            self._rebuild_without.update(ids)
            keep = [~np.isin(p, id_array) for p in self._pending_ids]  # drop older staged versions
            self._pending_vectors = [v[k] for v, k in zip(self._pending_vectors, keep)] + [x]
            self._pending_ids = [p[k] for p, k in zip(self._pending_ids, keep)] + [id_array]

    def set_progress(self, source: str, done: int) -> None:
        self.db.execute("INSERT INTO progress(source, done) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET done = ?",
                        (source, done, done))

    def maybe_checkpoint(self) -> bool:
        """Commit if ``checkpoint_every`` items were added since the last commit (long ingestions)."""
        if self.checkpoint_every and self._since_commit >= self.checkpoint_every:
            self.commit()
            return True
        return False

    def has(self, content_hash_: str) -> bool:
        return self.db.execute("SELECT 1 FROM items WHERE content_hash = ?", (content_hash_,)).fetchone() is not None

    # -------------------------------------------------------------- commit
    def _finish_index(self) -> None:
        n_rows = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        target = ix.choose_factory(n_rows, self.manifest["dim"]) if self.manifest.get("factory_auto") else None
        if self._rebuild_without or (target and target != self.manifest["factory"] and ix.can_reconstruct(self.index)):
            self._rebuild(target or self.manifest["factory"])
        if self._pending_vectors:
            vecs, ids = np.concatenate(self._pending_vectors), np.concatenate(self._pending_ids)
            ix.train(self.index, vecs)
            self.index.add_with_ids(vecs, ids)
            self._pending_vectors, self._pending_ids = [], []

    def _rebuild(self, factory: str) -> None:
        """Re-create the index (a type change by size, or HNSW deletions) from its exact vectors."""
        keep = np.array([i for i in faiss.vector_to_array(self.index.id_map) if int(i) not in self._rebuild_without],
                        dtype=np.int64)
        vecs = np.stack([self.index.reconstruct(int(i)) for i in keep]) if len(keep) else np.zeros((0, self.manifest["dim"]), np.float32)
        self.index = ix.new_index(factory, self.manifest["dim"])
        self.manifest["factory"] = factory
        self._rebuild_without = set()
        if len(keep):
            self._pending_vectors.insert(0, vecs)
            self._pending_ids.insert(0, keep)

    def commit(self, keep_writing: bool = True) -> None:
        """Make every staged change visible at once (new generation + atomic manifest replace).

        ``keep_writing=False`` ends the writer's staging (the last commit of a ``with`` block)."""
        self._finish_index()
        n_rows = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        if self.index.ntotal != n_rows:
            raise KBError(f"refusing to commit: index has {self.index.ntotal} vectors but metadata {n_rows} rows")
        self.db.commit()
        self.db.close()
        faiss.write_index(self.index, str(self.staging / "index.faiss"))
        for f in self.staging.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        prev = self.manifest.get("generation")
        number = int(prev.split("-")[1]) + 1 if prev else 1
        gen = f"gen-{number:06d}"
        checksums = {f.name: _sha256(f) for f in self.staging.iterdir()}
        os.rename(self.staging, self.path / gen)
        _fsync_dir(self.path)
        self.manifest.update(generation=gen, counts={"items": int(n_rows)}, checksums=checksums,
                             committed_at=time.time())
        _write_json_atomic(self.path / MANIFEST, self.manifest)  # the moment the commit becomes visible
        for old in self.path.glob("gen-*"):  # keep the previous generation for readers that still use it
            if old.name not in (gen, prev):
                shutil.rmtree(old, ignore_errors=True)
        self.fresh = False
        self._since_commit = 0
        self.db = self.staging = None
        if keep_writing:
            self._stage()  # keep writing on top of the new generation
