"""The knowledge base reader: :class:`KnowledgeBase`, a folder of FAISS index, SQLite metadata, JSON manifest.

The folder layout and the manifest are described in :mod:`ragsc.kb.manifest`; writes go through
:class:`~ragsc.kb.writer.Writer`, which commits generations atomically. Readers never lock: a
handle opens the generation the manifest names (:mod:`ragsc.kb.generation`), whose files never change,
and keeps them open, so it goes on serving that generation (search, items, stats, verify) after later
commits retire it; :meth:`KnowledgeBase.reload` moves to the newest one. A damaged file is reported as a
:class:`~ragsc.errors.KBError` on every read path, never as a raw SQLite or FAISS error.

Integrity checks: opening cross-checks the row count of the metadata, the index and the manifest
(cheap); :meth:`KnowledgeBase.check` runs SQLite's ``PRAGMA quick_check``, which reads every page
of the metadata (about 0.3 ms for 3,500 items and 1 MB, 30 ms for 100,000 items and 31 MB; open
itself costs 0.6 ms and 10 ms there), so it runs where the whole table is read anyway: in
:meth:`~KnowledgeBase.stats`, :meth:`~KnowledgeBase.export` and when a writer starts, not on every
open. It checks pages, not the bytes of records: :meth:`~KnowledgeBase.verify` (``stats(verify=True)``)
compares the files with the manifest's SHA-256 checksums, and a writer does so for the generation it
builds on, so it never copies damage into a new generation under fresh checksums (on a busy 2-core VM,
files in the page cache: 0.013 s for 3,500 items, 6 MB; 0.44 s for 100,000 items with HNSW, 207 MB, of
a writer's 1.15 s start; ``benchmarks/bench_kb_verify.py``). Searches do not verify. No pickle anywhere:
FAISS's own format, SQLite and JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ragsc.errors import ConfigError, InputError, KBError, RagscError
from ragsc.kb import index as ix
from ragsc.kb.generation import Generation, GenerationFiles, check_encoder, open_latest
from ragsc.kb.items import (
    ITEM_COLUMNS,
    Hit,
    Item,
    LazyItems,
    NewItem,
    check_ids,
    fetch_items,
    row_to_item,
    select_in,
)
from ragsc.kb.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    Scope,
    check_new_location,
    check_path,
    read_manifest,
)
from ragsc.kb.writer import Writer

__all__ = ["KnowledgeBase", "check_encoder"]  # check_encoder: still importable from here

class KnowledgeBase:
    """A persistent FAISS + SQLite knowledge base (see :mod:`ragsc.kb.manifest` for the folder layout).

    Use :meth:`create` / :meth:`open`; read with :meth:`search`, :meth:`get`, ``len(kb)``; write
    with :meth:`add` / :meth:`delete` (one commit each) or a :meth:`writer` (batched, one commit).
    """

    def __init__(self, path: str | os.PathLike, encoder=None) -> None:
        self.path = check_path(path)
        self._files: GenerationFiles | None = None
        self._serve(open_latest(self.path, encoder))

    def _serve(self, gen: Generation) -> None:
        """Serve ``gen`` from now on (see :mod:`ragsc.kb.generation`), closing the files of the one before."""
        old = self._files
        # the previous connection is not closed: hits of earlier searches still read their items from it
        self.manifest, self.index, self._db, self._files, self._where = (gen.manifest, gen.index, gen.db,
                                                                         gen.files, gen.where)
        if old is not None:
            old.close()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Damaged files surface as a KBError naming the KB, never as a SQLite or FAISS error."""
        try:
            yield
        except RagscError:
            raise
        except (sqlite3.Error, RuntimeError, json.JSONDecodeError, OSError) as exc:
            raise KBError(f"{self._where} is damaged: {exc}; check it with `ragsc kb stats --verify`, "
                          "restore it or rebuild it") from None

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: str | os.PathLike, encoder, scope: Scope = "local", index: str | None = None,
               exist_ok: bool = False) -> KnowledgeBase:
        """Create an empty KB.

        Parameters
        ----------
        path
            A missing or empty folder (a folder holding a KB is refused, or opened with ``exist_ok``).
        encoder
            A MultimodalEncoder, or a dict with ``spec``, ``fingerprint`` and ``dim``.
        scope
            ``"local"`` (small, per-user, recent) or ``"global"`` (large, shared).
        index
            A FAISS factory string, or ``None`` to choose by size (and change type as it grows).
        exist_ok
            Open the KB already at ``path`` instead of refusing.

        Returns
        -------
        KnowledgeBase
            The new KB, open.
        """
        path = check_path(path)
        if scope not in ("local", "global"):
            raise ConfigError(f"scope must be 'local' or 'global', got {scope!r}")
        if exist_ok and (path / MANIFEST).exists():
            return cls.open(path, encoder=None if isinstance(encoder, dict) else encoder)
        check_new_location(path)
        enc = encoder if isinstance(encoder, dict) else {
            "spec": encoder.spec, "fingerprint": encoder.fingerprint, "dim": encoder.dim}
        dim = int(enc["dim"])
        ix.new_index(index or "Flat", dim)  # validate the factory string before touching the disk
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise KBError(f"cannot create a knowledge base at {path}: {exc}") from None
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
        return cls(path, encoder)

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
        """Nearest items by inner product for each query row.

        Parameters
        ----------
        embeddings
            ``[N, dim]`` queries (tensor, array, ``SemanticTokens``); one ``[dim]`` vector is one query.
        k
            Hits per query (fewer when the KB holds fewer).
        nprobe, ef_search, k_factor
            Query-time knobs of IVF, HNSW and re-ranking indexes, for this search only.
        modality
            Only hits of this modality (``"image"``, ``"text"``).

        Returns
        -------
        list[list[Hit]]
            One list per query, best first.
        """
        q = ix.as_matrix(embeddings, self.dim)
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
        with self._reading():
            if modality is None:
                return self._search(q, min(n_total, k), k, None)
            # filtering happens after FAISS: widen the candidate list until every row has k hits of
            # that modality, or there are no more of them
            available = self._db.execute("SELECT COUNT(*) FROM items WHERE modality = ?",
                                         (modality,)).fetchone()[0]
            fetch = min(n_total, max(4 * k, k + 32))
            while True:
                out = self._search(q, fetch, k, modality)
                if fetch >= n_total or all(len(hits) >= min(k, available) for hits in out):
                    return out
                fetch = min(n_total, 4 * fetch)

    def _search(self, q: np.ndarray, fetch: int, k: int, modality: str | None) -> list[list[Hit]]:
        scores, ids = self.index.search(q, fetch)
        rows = [[(i, s) for i, s in zip(row_i, row_s) if i >= 0]
                for row_s, row_i in zip(scores.tolist(), ids.tolist())]
        if modality is not None:  # one read of the modality column for the whole batch
            found = dict.fromkeys(i for row in rows for i, _ in row)
            match = {i for i, m in select_in(self._db, "id, modality", list(found)) if m == modality}
            rows = [[(i, s) for i, s in row if i in match] for row in rows]
        rows = [row[:k] for row in rows]
        # shared by the batch
        items = LazyItems(self._db, list(dict.fromkeys(i for row in rows for i, _ in row)), self._where)
        return [[Hit(i, s, items, self.scope) for i, s in row] for row in rows]

    def get(self, ids: Sequence[int]) -> list[Item]:
        """Metadata rows for ``ids`` (missing ids are skipped; one SQLite cannot hold is an InputError)."""
        with self._reading():
            return fetch_items(self._db, ids)

    def items(self) -> Iterator[Item]:
        """Every item, by id."""
        with self._reading():
            for r in self._db.execute(f"SELECT {ITEM_COLUMNS} FROM items ORDER BY id"):
                yield row_to_item(r)

    def progress(self, source: str) -> int:
        """How many records of ``source`` a committed ingestion has consumed (for ``--resume``)."""
        with self._reading():
            row = self._db.execute("SELECT done FROM progress WHERE source = ?", (source,)).fetchone()
        return int(row[0]) if row else 0

    def check(self) -> None:
        """SQLite's ``PRAGMA quick_check`` of the metadata: every page is read and its structure checked
        (not the contents against the checksums: that is :meth:`verify`).

        Raises
        ------
        KBError
            The metadata is damaged; the message names the first problem SQLite found.
        """
        with self._reading():
            rows = self._db.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            problems = [line for r in rows for line in str(r[0]).splitlines() if not line.startswith("***")]
            first = problems[0] if problems else rows[0][0]
            raise KBError(f"{self._where} is damaged: its metadata fails SQLite's integrity check ({first}; "
                          f"{len(problems)} problems); restore it or rebuild it")

    def stats(self, verify: bool = False) -> dict[str, Any]:
        """Counts, index type and size on disk of the generation this handle serves (after :meth:`check`).

        Parameters
        ----------
        verify
            Also compare the files with the manifest's checksums (:meth:`verify`: reads them whole).
            Without it, bytes changed inside a record go unnoticed, and ``verified`` says so.

        Returns
        -------
        dict
            ``path``, ``scope``, ``items``, ``by_modality``, ``dim``, ``factory``, ``encoder``,
            ``generation``, ``bytes``, ``bytes_per_item`` (``None`` when empty), ``verified`` (whether the
            checksums were compared).
        """
        if verify:
            self.verify()
        self.check()
        size = self._files.size()
        with self._reading():
            by_modality = dict(self._db.execute(
                "SELECT modality, COUNT(*) FROM items GROUP BY modality").fetchall())
        return {"path": str(self.path), "scope": self.scope, "items": len(self), "by_modality": by_modality,
                "dim": self.dim, "factory": self.manifest["factory"], "encoder": self.manifest["encoder"],
                "generation": self.manifest["generation"], "bytes": size,
                "bytes_per_item": size / len(self) if len(self) else None, "verified": verify}

    def export(self, out: str | os.PathLike) -> int:
        """Write metadata as JSONL to ``out`` (exact vectors to ``out`` + ``.npy`` when the index has them).

        Both files are written under temporary names and renamed at the end, so a refused or failed
        export leaves nothing behind. Each must be a missing path or a regular file outside the KB
        (:func:`ragsc.targets.check_file`: never a folder, device node, FIFO or link). Returns the number of
        items written.
        """
        import uuid

        from ragsc.targets import check_file

        out = check_file(out)
        npy = check_file(out.with_name(out.name + ".npy"))
        inside = Path(os.path.realpath(self.path))
        for target in (out, npy):
            if inside in Path(os.path.realpath(target)).parents:
                raise InputError(f"{target}: lies inside the knowledge base {self.path}; name a file outside "
                                 "it")
        self.check()
        # fresh names, created exclusively ("x"): a stale one of any kind is never opened or replaced
        tmp_out, tmp_npy = (t.with_name(f".{t.name}.{uuid.uuid4().hex[:12]}.tmp") for t in (out, npy))
        try:
            ids = []
            with open(tmp_out, "x") as f:
                for it in self.items():
                    f.write(json.dumps({"id": it.id, "modality": it.modality, "text": it.text,
                                        "source_uri": it.source_uri, "content_hash": it.content_hash,
                                        "created_at": it.created_at, "extra": it.extra}) + "\n")
                    ids.append(it.id)
            if ids and ix.can_reconstruct(self.index):
                with self._reading():  # an id the index lacks is damage, as is a row SQLite cannot read
                    vectors = np.stack([self.index.reconstruct(i) for i in ids])
                with open(tmp_npy, "xb") as f:
                    np.save(f, vectors, allow_pickle=False)
                os.replace(tmp_npy, npy)
            os.replace(tmp_out, out)
        except OSError as exc:  # writing the user's files: not damage of the KB
            raise InputError(f"cannot export to {out}: {exc}") from None
        finally:
            for tmp in (tmp_out, tmp_npy):
                tmp.unlink(missing_ok=True)
        return len(ids)

    def verify(self) -> None:
        """Check the files of the generation this handle serves against the manifest's checksums.

        Raises
        ------
        KBError
            A file does not match its checksum.
        """
        with self._reading():
            self._files.verify(self.manifest["checksums"], self.path)

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writer(self, checkpoint_every: int | None = None, wait_s: float = 0.0,
               on_wait: Callable[[str], None] | None = None) -> Iterator[Writer]:
        """Exclusive, batched writes; committed when the block exits normally (if anything changed),
        discarded on error.

        Parameters
        ----------
        checkpoint_every
            Commit every n added items (:meth:`Writer.maybe_checkpoint`), for long ingestions.
        wait_s
            How long to wait for another process's writer to finish (default: fail at once).
        on_wait
            Called once with a message when the lock is busy and the writer starts waiting.
        """
        w = Writer(self.path, read_manifest(self.path), checkpoint_every=checkpoint_every, wait_s=wait_s,
                   on_wait=on_wait)
        with w:
            yield w
            w.commit(keep_writing=False)
        if read_manifest(self.path)["generation"] != self.manifest["generation"]:
            self._serve(open_latest(self.path))  # this handle now sees the new generation

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
        ids = check_ids(ids)  # before the writer copies anything
        with self.writer() as w:
            return w.delete(ids)

    def close(self) -> None:
        self._db.close()
        if self._files is not None:
            self._files.close()
