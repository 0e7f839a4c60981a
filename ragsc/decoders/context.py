"""The RAG context: what the receiver retrieved for each received item, as every decoder takes it.

A decoder is called as ``decoder(received, context=None, ...)``; ``context`` is a :class:`Context`
(``None`` switches RAG off). Neighbours are weighted by rank (``1 / (rank + 1)``, normalised), not by
score, so the weights mean the same thing for a single KB (inner products) and for a
:class:`~ragsc.kb.HybridRetriever` (fused RRF scores); the decoders are trained with the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ragsc.errors import InputError


def rank_weights(k: int) -> torch.Tensor:
    """``[k]`` weights ``1 / (rank + 1)``, normalised to sum to one."""
    w = 1.0 / torch.arange(1, k + 1, dtype=torch.float32)
    return w / w.sum()


@dataclass
class Context:
    """Retrieved neighbours per received item (``hits[i]`` best first; lists may be shorter than k)."""

    hits: list[list]

    def __len__(self) -> int:
        return len(self.hits)

    @property
    def texts(self) -> list[list[str]]:
        return [[h.item.text for h in row if h.item.text] for row in self.hits]

    def check(self, n: int) -> None:
        if len(self.hits) != n:
            raise InputError(f"context has {len(self.hits)} rows for {n} received items")


def retrieve(searcher, embeddings: torch.Tensor, k: int, modality: str | None = None) -> Context:
    """Search a :class:`~ragsc.kb.KnowledgeBase` or :class:`~ragsc.kb.HybridRetriever` with received
    embeddings."""
    return Context(searcher.search(embeddings, k, modality=modality))


def pooled(rows: list[torch.Tensor], dim_shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-weighted mean of each row's ``[k_i, *dim_shape]`` neighbours -> ``[N, *dim_shape]`` and
    ``[N]`` has-context."""
    out = torch.zeros(len(rows), *dim_shape)
    has = torch.zeros(len(rows))
    for i, r in enumerate(rows):
        if len(r):
            w = rank_weights(len(r)).view(-1, *([1] * len(dim_shape)))
            out[i] = (w * r).sum(0)
            has[i] = 1.0
    return out, has


def item_image_path(item) -> Path | None:
    """The image file behind a KB item (folder/COCO paths, ``easy-vqa:<split>/<id>`` and ``gcompris:`` URIs),
    if any."""
    uri = item.source_uri or ""
    if item.modality != "image":
        return None
    if uri.startswith("easy-vqa:"):
        from ragsc.datasets.easy_vqa import _package_dir

        split, _, image_id = uri.removeprefix("easy-vqa:").partition("/")
        path = _package_dir() / split / "images" / f"{image_id}.png"
    elif uri.startswith("gcompris:"):
        from ragsc.datasets import gcompris
        from ragsc.errors import InputError

        try:
            path = gcompris.photo_file(uri)
        except InputError:  # the package is not installed here: the item has no pixels
            return None
    else:
        path = Path(uri)
    return path if path.is_file() else None


@lru_cache(maxsize=8192)
def load_pixels(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0


def item_pixels(item, size: int) -> torch.Tensor | None:
    """``[3, size, size]`` pixels in [0, 1] of an image item (cached), or ``None`` when it has no image."""
    path = item_image_path(item)
    if path is None:
        return None
    return torch.from_numpy(load_pixels(str(path), size)).permute(2, 0, 1)
