"""A knowledge base split into shards, searched scatter--gather: on threads here, or on Ray actors across
machines.

:func:`split` cuts a KB into ``n`` shard KBs (items dealt round-robin by id; each shard a whole KB folder with
its own manifest, SQLite and FAISS index of the source's factory, vectors copied exactly from the source's
index, so nothing is embedded again). :class:`ShardedKB` searches them all and merges: each shard returns
its own top ``k``, and the best ``k`` of the union are the top ``k`` of the whole collection -- FAISS's
``IndexShards`` semantics, exact for exact shard indexes (ties broken by shard, then id). With
``engine="ray"`` each shard lives in a Ray actor (``pip install 'ragsc[ray]'``), which may sit on any node of
the cluster: a collection larger than one machine's memory is served by several.

Hits come back as :class:`ShardHit`: the shard, the item's id in that shard, its score and its metadata
(plain values, so that they cross process boundaries without pickling FAISS or SQLite handles).
"""

from __future__ import annotations

import heapq
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ragsc.errors import ConfigError, InputError, KBError
from ragsc.kb import index as ix
from ragsc.kb.items import NewItem
from ragsc.kb.store import KnowledgeBase

SHARD_DIR = "shard-{:03d}"


@dataclass(frozen=True)
class ShardHit:
    """One hit of a sharded search: ``shard`` index, ``id`` within it, ``score``, and the item's metadata."""

    shard: int
    id: int
    score: float
    modality: str
    text: str | None
    source_uri: str | None
    extra: dict = field(default_factory=dict)


def split(kb: KnowledgeBase, out: str | os.PathLike, n_shards: int, batch: int = 4096) -> list[Path]:
    """Split ``kb`` into ``n_shards`` KBs under ``out`` (a missing or empty folder): ``out/shard-000``, ...

    Items are dealt round-robin in id order, vectors copied from the source index (which must be able to
    reconstruct them: Flat, HNSW, an IDMap of either). Each shard keeps the source's factory, scope and
    encoder.
    Returns the shard folders.
    """
    from ragsc.targets import check_folder

    if isinstance(n_shards, bool) or not isinstance(n_shards, int) or not 1 <= n_shards <= 1024:
        raise InputError(f"n_shards must be an integer in 1..1024, got {n_shards!r}")
    if not ix.can_reconstruct(kb.index):
        raise KBError(f"{kb.path}: its index ({kb.manifest['factory']}) cannot give its vectors back; split "
                      "the sources instead (ingest each part into its own KB)")
    root = check_folder(out, "--out")
    m = kb.manifest
    encoder = {"spec": m["encoder"]["spec"], "fingerprint": m["encoder"]["fingerprint"], "dim": m["dim"]}
    factory = None if m.get("factory_auto") else m["factory"]
    shards = [KnowledgeBase.create(root / SHARD_DIR.format(j), encoder, scope=kb.scope, index=factory)
              for j in range(n_shards)]
    items = list(kb.items())
    with ExitStack() as stack:  # one writer per shard, each committed once at the end (none on an error)
        ws = [stack.enter_context(s.writer()) for s in shards]
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            vectors = np.stack([kb.index.reconstruct(it.id) for it in chunk])
            for j, w in enumerate(ws):
                rows = [r for r in range(len(chunk)) if (start + r) % n_shards == j]
                if rows:
                    w.add(vectors[rows], [NewItem(chunk[r].modality, chunk[r].text, chunk[r].source_uri,
                                                  chunk[r].content_hash, chunk[r].created_at, chunk[r].extra)
                                          for r in rows])
    return [s.path for s in shards]


def shard_paths(root: str | os.PathLike) -> list[Path]:
    """The shard folders :func:`split` wrote under ``root``, in order."""
    root = Path(root)
    paths = sorted(p for p in root.glob("shard-*") if (p / "manifest.json").is_file())
    if not paths:
        raise KBError(f"no shards under {root} (expected {root / SHARD_DIR.format(0)}, ...)")
    return paths


def _hits(kb: KnowledgeBase, shard: int, q: np.ndarray, k: int, modality: str | None) -> list[list[ShardHit]]:
    return [[ShardHit(shard, h.id, float(h.score), h.item.modality, h.item.text, h.item.source_uri,
                      dict(h.item.extra)) for h in row] for row in kb.search(q, k, modality=modality)]


def merge(per_shard: list[list[list[ShardHit]]], k: int) -> list[list[ShardHit]]:
    """The best ``k`` hits per query of every shard's own top ``k`` (score, then shard, then id)."""
    n_queries = len(per_shard[0]) if per_shard else 0
    order = lambda h: (-h.score, h.shard, h.id)  # noqa: E731
    return [heapq.nsmallest(k, (h for shard in per_shard for h in shard[i]), key=order)
            for i in range(n_queries)]


class ShardedKB:
    """Shards searched scatter--gather (see the module docstring).

    Parameters
    ----------
    paths
        The shard folders (or one folder holding ``shard-000``, ...).
    encoder
        Checked against each shard's manifest (optional).
    engine
        ``"local"``: every shard open in this process, searched on a thread each; ``"ray"``: one Ray actor per
        shard (the running Ray instance, or a local one started for it).
    """

    def __init__(self, paths, encoder=None, engine: str = "local") -> None:
        if isinstance(paths, (str, os.PathLike)):
            paths = shard_paths(paths)
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise InputError("a sharded KB needs at least one shard")
        if engine not in ("local", "ray"):
            raise ConfigError(f"engine must be 'local' or 'ray', got {engine!r}")
        self.engine = engine
        if engine == "local":
            self.shards = [KnowledgeBase.open(p, encoder=encoder) for p in self.paths]
            self.dim = self.shards[0].dim
            self._pool = ThreadPoolExecutor(max_workers=len(self.shards))
        else:
            from ragsc._deps import require_package

            ray = require_package("ray", "ray")
            if not ray.is_initialized():
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            actor = ray.remote(num_cpus=0)(ShardActor)
            self.actors = [actor.remote(str(p)) for p in self.paths]
            self.dim = ray.get(self.actors[0].dim.remote())
        dims = {self.dim}
        if engine == "local":
            dims |= {s.dim for s in self.shards}
        if len(dims) > 1:
            raise KBError(f"shards of different dimensions {sorted(dims)}")

    def __len__(self) -> int:
        if self.engine == "local":
            return sum(len(s) for s in self.shards)
        import ray

        return sum(ray.get([a.size.remote() for a in self.actors]))

    def search(self, embeddings, k: int = 10, *, modality: str | None = None) -> list[list[ShardHit]]:
        """The top ``k`` of all shards for each query row (scatter to every shard, gather, merge)."""
        q = ix.as_matrix(embeddings, self.dim)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InputError(f"k must be an integer >= 1, got {k!r}")
        if self.engine == "local":
            per_shard = list(self._pool.map(lambda js: _hits(js[1], js[0], q, k, modality),
                                            enumerate(self.shards)))
        else:
            import ray

            per_shard = ray.get([a.search.remote(j, q, k, modality) for j, a in enumerate(self.actors)])
        return merge(per_shard, k)

    def close(self) -> None:
        if self.engine == "local":
            self._pool.shutdown()
            for s in self.shards:
                s.close()
        else:
            import ray

            for a in self.actors:
                ray.kill(a)


class ShardActor:
    """One shard in a Ray actor (``engine="ray"``): the KB opened where the actor runs."""

    def __init__(self, path: str) -> None:
        self.kb = KnowledgeBase.open(path)

    def dim(self) -> int:
        return self.kb.dim

    def size(self) -> int:
        return len(self.kb)

    def search(self, shard: int, q: np.ndarray, k: int, modality: str | None) -> list[list[ShardHit]]:
        return _hits(self.kb, shard, q, k, modality)
