"""FAISS index choice and handling: the autofaiss recipe, stable ids, query-time parameters.

* :func:`choose_factory` — by collection size: ``Flat`` below 10k items (exact), ``HNSW32`` up to
  1M (graph, fast and accurate, no training), ``IVF{nlist},PQ{d/4}x4fs,Refine(SQ8)`` beyond:
  4-bit fast-scan PQ finds ``k_factor * k`` candidates, 8-bit scalar-quantised vectors re-rank them
  (~460 bytes per 384-d vector instead of 1,536). Measured at 1M x 384 (``benchmarks/bench_kb.py``):
  recall@10 0.97 at 15x the queries/s of exact search with ``k_factor`` 64 (0.84 with 16: the
  re-ranking needs the candidates); float16 re-ranking reaches 0.996 at 840 bytes; OPQ cost 7
  minutes of training for nothing once re-ranking is on. Any FAISS factory string can be given.
* Every index is wrapped in ``IndexIDMap2`` so items keep the ids of their metadata rows across
  adds, deletes and rebuilds. Inner product on L2-normalised vectors (= cosine).
* :func:`as_matrix` — what FAISS takes: embeddings (tensor, array, ``SemanticTokens``) checked and
  made a C-contiguous float32 ``[N, dim]`` matrix.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
import torch

from ragsc.errors import ConfigError, InputError

FLAT_MAX = 10_000
HNSW_MAX = 1_000_000


def choose_factory(n_items: int, dim: int) -> str:
    """The factory string autofaiss-style rules pick for ``n_items`` vectors of ``dim`` dimensions."""
    if n_items < FLAT_MAX:
        return "Flat"
    if n_items < HNSW_MAX:
        return "HNSW32"
    nlist = 2 ** int(round(math.log2(4 * math.sqrt(n_items))))
    # fast-scan PQ: 4-bit codes over sub-vectors of 4 dimensions (m must divide dim)
    m = dim // 4 if dim % 4 == 0 else None
    return f"IVF{nlist},PQ{m}x4fs,Refine(SQ8)" if m else f"IVF{nlist},SQ8"


def new_index(factory: str, dim: int) -> faiss.Index:
    """An empty ``IndexIDMap2`` around ``factory`` (inner-product metric)."""
    try:
        inner = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"invalid FAISS factory string {factory!r}: {str(exc).splitlines()[-1]}") from None
    index = faiss.IndexIDMap2(inner)
    # FAISS defaults to nprobe = 1 (poor recall); these defaults are saved with the index and can be
    # overridden per query (KnowledgeBase.search(nprobe=..., k_factor=...)).
    base = faiss.downcast_index(inner.base_index) if isinstance(inner, faiss.IndexRefine) else inner
    ivf = _ivf(base)
    set_search_params(index, nprobe=min(ivf.nlist, max(8, ivf.nlist // 64)) if ivf is not None else None,
                      k_factor=64)
    return index


def as_matrix(embeddings: Any, dim: int) -> np.ndarray:
    """``embeddings`` as a C-contiguous float32 ``[N, dim]`` matrix (a 1-D vector is one row).

    Parameters
    ----------
    embeddings
        A ``[N, dim]`` or ``[dim]`` tensor or array, or anything with an ``embeddings`` attribute
        (``SemanticTokens``, an encoder's output).
    dim
        The dimension the index holds.

    Returns
    -------
    np.ndarray
        ``[N, dim]`` float32; the input itself when it already is one (no copy on the hot path).

    Raises
    ------
    InputError
        Complex, non-finite, non-floating or wrongly shaped embeddings.
    """
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


def needs_training(index: faiss.Index) -> bool:
    return not _inner(index).is_trained


def train(index: faiss.Index, vectors: np.ndarray, max_sample: int = 200_000, seed: int = 0) -> None:
    """Train on a random sample of ``vectors`` (IVF / PQ / OPQ need it; Flat / HNSW do not)."""
    if not needs_training(index):
        return
    rng = np.random.default_rng(seed)
    sample = vectors
    if len(vectors) > max_sample:
        sample = vectors[rng.choice(len(vectors), max_sample, replace=False)]
    try:
        _inner(index).train(np.ascontiguousarray(sample, dtype=np.float32))
    except RuntimeError as exc:
        raise ConfigError(f"cannot train the index on {len(sample)} vectors: {str(exc).splitlines()[-1]} "
                          "(use a smaller nlist / PQ, or a Flat / HNSW index for small collections)"
                          ) from None


def can_remove(index: faiss.Index) -> bool:
    """HNSW graphs cannot remove vectors in place; Flat and IVF can."""
    return not isinstance(_inner(index), faiss.IndexHNSW)


def can_reconstruct(index: faiss.Index) -> bool:
    """Whether exact vectors can be read back (needed to rebuild into another index type)."""
    inner = _inner(index)
    return isinstance(inner, (faiss.IndexFlat, faiss.IndexHNSWFlat))


def set_search_params(index: faiss.Index, nprobe: int | None = None, ef_search: int | None = None,
                      k_factor: int | None = None) -> None:
    """Query-time knobs: ``nprobe`` (IVF), ``efSearch`` (HNSW), ``k_factor`` (re-ranking: candidates per
    result). Set on the sub-indexes directly: ``faiss.ParameterSpace`` does not reach through
    ``IndexRefine``. Knobs that do not apply to the index are ignored."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexRefine):
        if k_factor is not None:
            inner.k_factor = float(k_factor)
        inner = faiss.downcast_index(inner.base_index)
    if nprobe is not None and (ivf := _ivf(inner)) is not None:
        ivf.nprobe = int(nprobe)
    if ef_search is not None and isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = int(ef_search)


def get_search_params(index: faiss.Index) -> dict[str, int | None]:
    """The current ``nprobe`` / ``ef_search`` / ``k_factor`` (``None`` where a knob does not apply)."""
    inner = _inner(index)
    k_factor = None
    if isinstance(inner, faiss.IndexRefine):
        k_factor = int(inner.k_factor)
        inner = faiss.downcast_index(inner.base_index)
    ivf = _ivf(inner)
    return {"nprobe": ivf.nprobe if ivf is not None else None,
            "ef_search": inner.hnsw.efSearch if isinstance(inner, faiss.IndexHNSW) else None,
            "k_factor": k_factor}


def _inner(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def _ivf(index: faiss.Index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
