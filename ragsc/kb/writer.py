"""The one writer of a knowledge base: :class:`Writer` holds the lock, stages changes, commits generations.

Writes go to a private staging folder (a copy of the current generation) and become visible only
at :meth:`Writer.commit`: the staging folder is renamed to a new generation, then ``manifest.json``
is replaced atomically. A commit happens only when something changed (items added, deleted or
updated, or an ingestion's progress moved): a no-op write leaves the KB as it was. A killed writer
leaves the last committed generation intact; the next writer deletes its stale staging folder and
any generation folder renamed after the last manifest landed. The previous generation is kept for
readers that still use it; older ones are removed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np

from ragsc.errors import InputError, KBError
from ragsc.kb import index as ix
from ragsc.kb.generation import GenerationFiles
from ragsc.kb.items import SCHEMA, NewItem, extra_json, select_in
from ragsc.kb.lock import WriterLock
from ragsc.kb.manifest import (
    MANIFEST,
    fsync_dir,
    generation_dir,
    generation_name,
    generation_number,
    is_generation_name,
    read_manifest,
    sha256_file,
    write_json_atomic,
)


class Writer:
    """The one writer of a KB: holds ``writer.lock``, stages changes, commits generations.

    Parameters
    ----------
    path
        The KB folder.
    manifest
        Its manifest (re-read once the lock is held, unless ``fresh``).
    fresh
        Creating the KB: there is no generation yet, and the first commit makes one even if empty.
    checkpoint_every
        :meth:`maybe_checkpoint` commits after this many added items.
    wait_s
        How long to wait for another process's writer lock (default: fail at once).
    on_wait
        Called once with a message (which KB, how long, who holds the lock) when the writer has to
        wait; by default the message is logged.
    """

    def __init__(self, path: Path, manifest: dict, fresh: bool = False, checkpoint_every: int | None = None,
                 wait_s: float = 0.0, on_wait: Callable[[str], None] | None = None) -> None:
        self.path, self.manifest, self.fresh = path, dict(manifest), fresh
        self.checkpoint_every = checkpoint_every
        self._since_commit = 0
        self._changed = fresh  # a new KB commits its empty first generation
        self._lock = WriterLock(path, wait_s, on_wait)

    # -------------------------------------------------------------- lifecycle
    def __enter__(self) -> Writer:
        self._lock.acquire()
        try:
            if self.fresh and (self.path / MANIFEST).exists():  # created by someone else meanwhile
                raise KBError(f"a knowledge base already exists at {self.path}")
            for stale in self.path.glob(".staging-*"):  # left by a killed writer; we hold the lock
                shutil.rmtree(stale, ignore_errors=True)
            if not self.fresh:  # another writer may have committed while we waited for the lock
                self.manifest = read_manifest(self.path)
            current = self.manifest.get("generation")
            for orphan in self.path.glob("gen-*"):  # renamed by a writer killed before its manifest landed
                if is_generation_name(orphan.name) and (
                        current is None or generation_number(orphan.name) > generation_number(current)):
                    shutil.rmtree(orphan, ignore_errors=True)
            self._stage(check=True)
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)  # release the lock and the staging folder
            if isinstance(exc, (RuntimeError, sqlite3.Error, OSError)) and not isinstance(exc, KBError):
                raise KBError(f"cannot start writing to {self.path}: {exc}") from exc
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._lock.held:
            return
        try:
            if getattr(self, "db", None) is not None:
                self.db.close()
            if getattr(self, "staging", None) is not None and self.staging.exists():
                shutil.rmtree(self.staging, ignore_errors=True)  # uncommitted changes are discarded
        finally:
            self._lock.release()

    def _stage(self, check: bool = False) -> None:
        """A private copy of the current generation to write on.

        ``check`` (when a writer starts): refuse a damaged generation first, whose damage would otherwise
        be copied into the next generation under fresh checksums: its files must match the manifest's
        SHA-256 checksums (bytes changed inside a record pass SQLite's page checks), and the metadata
        must pass SQLite's ``quick_check`` (damage committed before checksums were verified). Linked data
        files are refused (:class:`~ragsc.kb.generation.GenerationFiles`).
        """
        self.staging = self.path / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.staging.mkdir()
        if self.fresh:
            self.db = sqlite3.connect(self.staging / "meta.sqlite")
            self.db.executescript(SCHEMA)
            self.index = ix.new_index(self.manifest["factory"], self.manifest["dim"])
        else:
            files = GenerationFiles(generation_dir(self.path, self.manifest["generation"]))
            try:
                if check:
                    files.verify(self.manifest["checksums"], self.path)
                files.copy("meta.sqlite", self.staging / "meta.sqlite")
                self.index = files.read_index()
            finally:
                files.close()
            self.db = sqlite3.connect(self.staging / "meta.sqlite")
            if check and (problem := self.db.execute("PRAGMA quick_check").fetchone()[0]) != "ok":
                raise KBError(f"knowledge base {self.path} is damaged (generation {files.gen.name}): its "
                              f"metadata fails SQLite's integrity check ({problem.splitlines()[-1]}); "
                              "restore it or rebuild it")
        self._pending_vectors: list[np.ndarray] = []  # held back until an untrained index can be trained
        self._pending_ids: list[np.ndarray] = []
        self._rebuild_without: set[int] = set()

    # -------------------------------------------------------------- changes
    def add(self, embeddings, items: Sequence[NewItem]) -> list[int | None]:
        """Stage items; returns ids (``None`` for content already stored or repeated in this batch)."""
        x = ix.as_matrix(embeddings, self.manifest["dim"])
        if len(items) != len(x):
            raise InputError(f"{len(x)} embeddings but {len(items)} items")
        extras = [extra_json(n, it) for n, it in enumerate(items)]  # all checked before any row is written
        ids: list[int | None] = []
        new_rows = []
        now = time.time()
        for vec_i, (it, extra) in enumerate(zip(items, extras)):
            try:
                cur = self.db.execute(
                    "INSERT INTO items(modality, text, source_uri, content_hash, created_at, extra) "
                    "VALUES (?,?,?,?,?,?)",
                    (it.modality, it.text, it.source_uri, it.hash(), it.created_at or now, extra))
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
            self._changed = True
        self._since_commit += len(new_rows)
        return ids

    def delete(self, ids: Sequence[int]) -> int:
        """Stage the deletion of ``ids``; returns how many were stored (missing ids are ignored)."""
        existing = [r[0] for r in select_in(self.db, "id", ids)]
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
        self._changed = True
        return len(existing)

    def update(self, ids: Sequence[int], embeddings, items: Sequence[NewItem]) -> None:
        """Replace stored items in place: same ids, new vectors and metadata. Items whose vector and
        metadata are already stored as given are left alone (an identical update commits nothing)."""
        x = ix.as_matrix(embeddings, self.manifest["dim"])
        if not (len(ids) == len(x) == len(items)):
            raise InputError(f"update needs as many ids, embeddings and items: {len(ids)}, {len(x)}, "
                             f"{len(items)}")
        rows = {r[0]: r[1:] for r in select_in(self.db, "id, modality, text, source_uri, content_hash, extra",
                                               ids)}
        ids = [int(i) for i in ids]  # checked by select_in
        missing = set(ids) - set(rows)
        if missing:
            raise InputError(f"cannot update ids that are not stored: {sorted(missing)}")
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise InputError(f"update got an id more than once: {twice}")
        extras = [extra_json(n, it) for n, it in enumerate(items)]
        changed = [n for n, (i, it, extra) in enumerate(zip(ids, items, extras))
                   if rows[i] != (it.modality, it.text, it.source_uri, it.hash(), extra)
                   or not self._holds(i, x[n])]
        if not changed:
            return
        ids, x = [ids[n] for n in changed], x[changed]
        items, extras = [items[n] for n in changed], [extras[n] for n in changed]
        try:
            self.db.executemany(
                "UPDATE items SET modality = ?, text = ?, source_uri = ?, content_hash = ?, extra = ? "
                "WHERE id = ?",
                [(it.modality, it.text, it.source_uri, it.hash(), extra, i)
                 for i, it, extra in zip(ids, items, extras)])
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
        self._changed = True

    def _holds(self, id_: int, vector: np.ndarray) -> bool:
        """Whether ``vector`` is exactly the one staged for ``id_`` (``False`` when that cannot be told: an
        index that stores vectors inexactly)."""
        for ids, vecs in zip(reversed(self._pending_ids), reversed(self._pending_vectors)):
            hit = np.flatnonzero(ids == id_)
            if len(hit):  # staged, not yet in the index: the latest version
                return bool(np.array_equal(vecs[hit[-1]], vector))
        if id_ in self._rebuild_without or not ix.can_reconstruct(self.index):
            return False
        return bool(np.array_equal(self.index.reconstruct(id_), vector))

    def progress(self, source: str) -> int:
        """Records of ``source`` consumed so far, as staged (what ``--resume`` continues from)."""
        row = self.db.execute("SELECT done FROM progress WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def set_progress(self, source: str, done: int) -> None:
        """Record that ``done`` records of ``source`` are consumed; committed with the items they gave."""
        row = self.db.execute("SELECT done FROM progress WHERE source = ?", (source,)).fetchone()
        if row is not None and row[0] == done:
            return  # unchanged: not a reason to commit
        self.db.execute("INSERT INTO progress(source, done) VALUES (?, ?) "
                        "ON CONFLICT(source) DO UPDATE SET done = ?", (source, done, done))
        self._changed = True

    def maybe_checkpoint(self) -> bool:
        """Commit if ``checkpoint_every`` items were added since the last commit (long ingestions)."""
        if self.checkpoint_every and self._since_commit >= self.checkpoint_every:
            self.commit()
            return True
        return False

    def until_checkpoint(self) -> int | None:
        """Items that may still be added before :meth:`maybe_checkpoint` commits (``None``: no checkpoints).
        An ingestion adds at most this many before it asks, so a checkpoint comes after exactly
        ``checkpoint_every`` new items, whatever its unit of work."""
        if not self.checkpoint_every:
            return None
        return max(1, self.checkpoint_every - self._since_commit)

    def has(self, content_hash_: str) -> bool:
        """Whether content with this hash is stored (or staged)."""
        row = self.db.execute("SELECT 1 FROM items WHERE content_hash = ?", (content_hash_,)).fetchone()
        return row is not None

    # -------------------------------------------------------------- commit
    def _finish_index(self) -> None:
        n_rows = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        auto = self.manifest.get("factory_auto")
        target = ix.choose_factory(n_rows, self.manifest["dim"]) if auto else None
        retype = target and target != self.manifest["factory"] and ix.can_reconstruct(self.index)
        if self._rebuild_without or retype:
            self._rebuild(target or self.manifest["factory"])
        if self._pending_vectors:
            vecs, ids = np.concatenate(self._pending_vectors), np.concatenate(self._pending_ids)
            ix.train(self.index, vecs)
            self.index.add_with_ids(vecs, ids)
            self._pending_vectors, self._pending_ids = [], []

    def _rebuild(self, factory: str) -> None:
        """Re-create the index (a type change by size, or HNSW deletions) from its exact vectors."""
        keep = np.array([i for i in faiss.vector_to_array(self.index.id_map)
                         if int(i) not in self._rebuild_without], dtype=np.int64)
        vecs = (np.stack([self.index.reconstruct(int(i)) for i in keep]) if len(keep)
                else np.zeros((0, self.manifest["dim"]), np.float32))
        self.index = ix.new_index(factory, self.manifest["dim"])
        self.manifest["factory"] = factory
        self._rebuild_without = set()
        if len(keep):
            self._pending_vectors.insert(0, vecs)
            self._pending_ids.insert(0, keep)

    def commit(self, keep_writing: bool = True) -> bool:
        """Make every staged change visible at once (new generation + atomic manifest replace).

        Parameters
        ----------
        keep_writing
            ``False`` ends the writer's staging (the last commit of a ``with`` block).

        Returns
        -------
        bool
            Whether a generation was committed (``False``: nothing had changed, nothing was written).
        """
        if not self._changed:
            if not keep_writing:  # nothing to keep: drop the staged copy
                self.db.close()
                shutil.rmtree(self.staging, ignore_errors=True)
                self.db = self.staging = None
            return False
        self._finish_index()
        n_rows = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        if self.index.ntotal != n_rows:
            raise KBError(f"refusing to commit: index has {self.index.ntotal} vectors but metadata {n_rows} "
                          "rows")
        self.db.commit()
        self.db.close()
        faiss.write_index(self.index, str(self.staging / "index.faiss"))
        for f in self.staging.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        prev = self.manifest.get("generation")
        gen = generation_name(generation_number(prev) + 1 if prev else 1)
        checksums = {f.name: sha256_file(f) for f in self.staging.iterdir()}
        os.rename(self.staging, self.path / gen)
        fsync_dir(self.path)
        self.manifest.update(generation=gen, counts={"items": int(n_rows)}, checksums=checksums,
                             committed_at=time.time())
        write_json_atomic(self.path / MANIFEST, self.manifest)  # the moment the commit becomes visible
        for old in self.path.glob("gen-*"):  # keep the previous generation for readers that still use it
            if old.name not in (gen, prev):
                shutil.rmtree(old, ignore_errors=True)
        self.fresh = False
        self._changed = False
        self._since_commit = 0
        self.db = self.staging = None
        if keep_writing:
            self._stage()  # keep writing on top of the new generation
        return True
