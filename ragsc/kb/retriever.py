"""Hybrid retrieval over a local and a global knowledge base.

The receiver only has the noisy received embedding, so queries are embeddings first; text or image
queries are encoded with the KBs' encoder. Results of the two KBs are fused:

* ``"weighted"`` (default, :data:`ragsc.config.FUSION_DEFAULT`, also a spec's) — ``w_kb * inner
  product``, the best of an item's scores: comparable when both KBs hold exact vectors, and right when
  the local KB is a subset of the global one;
* ``"rrf"`` — reciprocal-rank fusion, ``sum_kb w_kb / (rrf_k + rank)``: robust when the two indexes'
  scores are not comparable (different index types, PQ approximations).

Local items may get a recency boost: the local KB's contribution to an item's fused score is
multiplied by ``1 + recency_weight * 2 ** (-age / half_life)``. The same content in both KBs is one
hit with provenance ``local+global``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ragsc.config import FUSION_DEFAULT, Fusion
from ragsc.errors import ConfigError, InputError, KBError
from ragsc.kb.items import Hit
from ragsc.kb.store import KnowledgeBase


class HybridRetriever:
    """Search a local and a global KB as one.

    Parameters
    ----------
    local, global_
        The two knowledge bases (either may be ``None``); they must share an encoder fingerprint.
    fusion
        ``"weighted"`` (default) or ``"rrf"``.
    weights
        ``(local, global)`` weights in the fusion.
    rrf_k
        The RRF constant (60, as in Cormack et al.).
    recency_half_life_s, recency_weight
        Recency boost for local items; ``None`` disables it.
    fetch_k
        Candidates taken from each KB before fusion (default ``2 * k``).
    encoder
        For text / image queries (default: loaded from the KBs' encoder spec on first use).
    """

    def __init__(self, local: KnowledgeBase | None, global_: KnowledgeBase | None, *,
                 fusion: Fusion = FUSION_DEFAULT, weights: tuple[float, float] = (1.0, 1.0),
                 rrf_k: int = 60, recency_half_life_s: float | None = None, recency_weight: float = 0.25,
                 fetch_k: int | None = None, encoder=None) -> None:
        self.kbs = [(name, kb) for name, kb in (("local", local), ("global", global_)) if kb is not None]
        if not self.kbs:
            raise ConfigError("a HybridRetriever needs at least one knowledge base")
        fps = {kb.manifest["encoder"]["fingerprint"]: kb for _, kb in self.kbs}
        if len(fps) > 1:
            (fa, a), (fb, b) = fps.items()
            raise KBError(f"local and global KBs were built by different encoders: {a.path} by "
                          f"{a.manifest['encoder']['spec']!r} ({fa}), {b.path} by "
                          f"{b.manifest['encoder']['spec']!r} ({fb})")
        from ragsc.encoders.base import serves

        if encoder is not None and not any(serves(encoder, fp) for fp in fps):
            raise KBError(f"encoder {encoder.spec!r} (fingerprint {encoder.fingerprint}) is not the one the "
                          f"KBs were built with ({', '.join(fps)})")
        if fusion not in ("rrf", "weighted"):
            raise ConfigError(f"fusion must be 'rrf' or 'weighted', got {fusion!r}")
        self.fusion, self.weights, self.rrf_k = fusion, dict(zip(("local", "global"), weights)), rrf_k
        self.half_life, self.recency_weight = recency_half_life_s, recency_weight
        self.fetch_k = fetch_k
        self._encoder = encoder

    @property
    def encoder(self):
        if self._encoder is None:
            from ragsc.encoders import load_encoder

            kb = self.kbs[0][1]
            self._encoder = load_encoder(kb.manifest["encoder"]["spec"])
            if self._encoder.fingerprint != kb.manifest["encoder"]["fingerprint"]:
                raise KBError(f"encoder {kb.manifest['encoder']['spec']!r} no longer matches the fingerprint "
                              f"the KB {kb.path} was built with")
        return self._encoder

    def embed(self, query) -> torch.Tensor:
        """Embeddings of a query: passed through if already embeddings, else encoded."""
        if hasattr(query, "embeddings"):
            return query.embeddings
        if isinstance(query, torch.Tensor):
            return query if query.ndim == 2 else query[None]
        texts = isinstance(query, Sequence) and query and all(isinstance(q, str) for q in query)
        if isinstance(query, str) or texts:
            return self.encoder.encode_texts(query).embeddings
        return self.encoder.encode_images(query).embeddings

    def search(self, query, k: int = 10, *, modality: str | None = None) -> list[list[Hit]]:
        """Fused top-``k`` hits per query row (embeddings ``[Q, D]``, SemanticTokens, texts or images)."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        q = self.embed(query)
        fetch = self.fetch_k or 2 * k
        per_kb = [(name, kb.search(q, fetch, modality=modality)) for name, kb in self.kbs]
        now = time.time()
        out = []
        for row in range(q.shape[0]):
            fused: dict[str, tuple[float, Hit, set[str]]] = {}
            for name, results in per_kb:
                for rank, hit in enumerate(results[row]):
                    w = self.weights[name]
                    s = w / (self.rrf_k + rank + 1) if self.fusion == "rrf" else w * hit.score
                    if name == "local" and self.half_life:
                        age = max(0.0, now - hit.item.created_at)
                        s *= 1 + self.recency_weight * 2 ** (-age / self.half_life)
                    key = hit.item.content_hash
                    if key in fused:
                        prev, best, names = fused[key]
                        total = prev + s if self.fusion == "rrf" else max(prev, s)
                        fused[key] = (total, best, names | {name})
                    else:
                        fused[key] = (s, hit, {name})
            ranked = sorted(fused.values(), key=lambda t: -t[0])[:k]
            out.append([h.rescored(s, "+".join(sorted(n, key=["local", "global"].index)))
                        for s, h, n in ranked])
        return out
