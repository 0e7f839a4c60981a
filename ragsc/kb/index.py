"""FAISS index choice and handling: the autofaiss recipe, stable ids, query-time parameters.

* :func:`choose_factory` — by collection size: ``Flat`` below 10k items (exact), ``HNSW32`` up to
  1M (graph, fast and accurate, no training), ``OPQ{m}_{d},IVF{nlist},PQ{m}x8`` beyond (compressed,
  trained on a sample). Any FAISS factory string can be given instead.
* Every index is wrapped in ``IndexIDMap2`` so items keep the ids of their metadata rows across
  adds, deletes and rebuilds. Inner product on L2-normalised vectors (= cosine).
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from ragsc.errors import ConfigError

FLAT_MAX = 10_000
HNSW_MAX = 1_000_000


def choose_factory(n_items: int, dim: int) -> str:
    """The factory string autofaiss-style rules pick for ``n_items`` vectors of ``dim`` dimensions."""
    if n_items < FLAT_MAX:
        return "Flat"
    if n_items < HNSW_MAX:
        return "HNSW32"
    nlist = 2 ** int(round(math.log2(4 * math.sqrt(n_items))))
    # PQ with m sub-quantisers of >= 4 dimensions each; 8-bit codes -> m bytes per vector
    m = next((m for m in (64, 48, 32, 16, 8) if dim % m == 0 and dim // m >= 4), None)
    return f"OPQ{m}_{dim},IVF{nlist},PQ{m}x8" if m else f"IVF{nlist},SQ8"


def new_index(factory: str, dim: int) -> faiss.Index:
    """An empty ``IndexIDMap2`` around ``factory`` (inner-product metric)."""
    try:
        inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"invalid FAISS factory string {factory!r}: {str(exc).splitlines()[-1]}") from None
    return faiss.IndexIDMap2(inner)


def needs_training(index: faiss.Index) -> bool:
    return not _inner(index).is_trained


def train(index: faiss.Index, vectors: np.ndarray, max_sample: int = 200_000, seed: int = 0) -> None:
    """Train on a random sample of ``vectors`` (IVF / PQ / OPQ need it; Flat / HNSW do not)."""
    if not needs_training(index):
        return
    rng = np.random.default_rng(seed)
    sample = vectors if len(vectors) <= max_sample else vectors[rng.choice(len(vectors), max_sample, replace=False)]
    try:
        _inner(index).train(np.ascontiguousarray(sample, dtype=np.float32))
    except RuntimeError as exc:
        raise ConfigError(f"cannot train the index on {len(sample)} vectors: {str(exc).splitlines()[-1]} "
                          "(use a smaller nlist / PQ, or a Flat / HNSW index for small collections)") from None


def can_remove(index: faiss.Index) -> bool:
    """HNSW graphs cannot remove vectors in place; Flat and IVF can."""
    return not isinstance(_inner(index), faiss.IndexHNSW)


def can_reconstruct(index: faiss.Index) -> bool:
    """Whether exact vectors can be read back (needed to rebuild into another index type)."""
    inner = _inner(index)
    return isinstance(inner, (faiss.IndexFlat, faiss.IndexHNSWFlat))


def set_search_params(index: faiss.Index, nprobe: int | None = None, ef_search: int | None = None) -> None:
    """Query-time knobs: ``nprobe`` for IVF, ``efSearch`` for HNSW (ignored where they do not apply)."""
    ps = faiss.ParameterSpace()
    inner = _inner(index)
    if nprobe is not None and _ivf(inner) is not None:
        ps.set_index_parameter(index, "nprobe", int(nprobe))
    if ef_search is not None and isinstance(inner, faiss.IndexHNSW):
        ps.set_index_parameter(index, "efSearch", int(ef_search))


def _inner(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def _ivf(index: faiss.Index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
