"""What a compression costs and what it keeps: size, latency on this machine, parameters, scores.

* **size**: bytes of the safetensors file the compressed unit is saved as (int8 weights with their scales
  and zero points, half or float tensors as they are);
* **latency**: one forward pass of the unit on prepared inputs (token ids, normalised pixels; tokenising
  and image decoding are the same for every compression and not timed), the median of ``repeats`` runs
  after a warm-up, at each batch size, with ``threads`` torch threads;
* **parameters**: the tower's, as :meth:`~ragsc.encoders.base.MultimodalEncoder.num_parameters` counts them
  (pruning lowers them, quantisation does not);
* **scores**, on held-out data (:class:`~ragsc.compress.data.EvalData`): ``r1``, how often an item's
  compressed embedding retrieves the float embedding of the same item first among all items' (sentences
  for the text tower, images for the image tower; a check that the tower still is the float one, which
  saturates at 1 for any fair compression of MiniLM); ``pair_r1`` (text tower, when the data has pairs),
  WordNet definition -> example sentence R@1 with both sides encoded by the compressed tower, as a device
  using it would retrieve (MiniLM float is well below 1 on it, so a drop shows); ``caption_r1``, easy-VQA
  image -> caption R@1 with the other tower float (when the encoder has one); ``cosine`` to the float
  embedding. ``score`` is the mean of the tower's retrieval figure (``pair_r1`` where measured, else
  ``r1``) and ``caption_r1`` (the first alone without captions).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.compress.data import EvalData
from ragsc.compress.serialize import stored_bytes
from ragsc.compress.towers import Tower, batch_of


@dataclass
class Measurement:
    """The figures of one compressed unit (see the module docstring)."""

    size_bytes: int
    params: int
    ms: dict[int, float]  # batch size -> median milliseconds per forward pass
    r1: float
    caption_r1: float | None
    cosine: float
    macs: int | None = None
    pair_r1: float | None = None

    @property
    def score(self) -> float:
        own = self.r1 if self.pair_r1 is None else self.pair_r1
        return own if self.caption_r1 is None else (own + self.caption_r1) / 2

    @property
    def fidelity(self) -> float:
        """Closeness to the float tower (what breaks a front's ties): the cosine."""
        return self.cosine

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    def as_dict(self) -> dict:
        """JSON-able figures (what a saved compression records of its front point)."""
        return {"size_bytes": self.size_bytes, "params": self.params, "macs": self.macs,
                "ms": {str(b): round(v, 3) for b, v in self.ms.items()}, "r1": self.r1,
                "caption_r1": self.caption_r1, "pair_r1": self.pair_r1, "cosine": self.cosine,
                "score": self.score}


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Torch on ``n`` intra-op threads inside the block (None: as configured)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def median_ms(run: Callable[[Any], object], *, repeats: int = 5, n_threads: int | None = None,
              setup: Callable[[], Any] = lambda: None) -> float:
    """Median milliseconds of ``run(setup())`` over ``repeats`` runs after a warm-up (lazy packing,
    allocator, kernel choice), with ``n_threads`` torch threads, in inference mode; ``setup`` (untimed)
    makes each run's fresh argument."""
    times = []
    with threads(n_threads), torch.inference_mode():
        run(setup())
        for _ in range(repeats):
            arg = setup()
            t0 = time.perf_counter()
            run(arg)
            times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def latency_ms(tower: Tower, unit: nn.Module, items: Sequence, batch: int, *, repeats: int = 5,
               n_threads: int | None = None) -> float:
    """Median milliseconds of one forward pass of ``unit`` over ``batch`` prepared items."""
    inputs = tower.prepare(batch_of(items, batch))
    return median_ms(lambda _: inputs.call(unit), repeats=repeats, n_threads=n_threads)


@dataclass
class Reference:
    """The float tower's embeddings of the evaluation items, and the other tower's side of captions."""

    own: torch.Tensor  # [N, dim] float embeddings of the items the tower encodes
    other: torch.Tensor | None  # text tower: float image embeddings; image tower: distinct caption embeddings
    labels: torch.Tensor | None  # [images] index of each image's caption among the distinct ones
    distinct: list[str]


def _has(encoder, modality: str) -> bool:
    return getattr(encoder, f"{modality}_net", True) is not None  # a student may lack a tower


def _encode(encoder, modality: str, items: Sequence) -> torch.Tensor:
    fn = encoder.encode_texts if modality == "text" else encoder.encode_images
    return fn(list(items)).embeddings


def reference(encoder, tower: Tower, data: EvalData) -> Reference:
    """Encode ``data`` with the float towers (once per front)."""
    other = "image" if tower.modality == "text" else "text"
    items = data.texts if tower.modality == "text" else data.images
    own = _encode(encoder, tower.modality, items)
    distinct = sorted(set(data.captions))
    if not data.captions or not data.images or not _has(encoder, other):
        return Reference(own, None, None, distinct)
    labels = torch.tensor([distinct.index(c) for c in data.captions])
    side = _encode(encoder, "image", data.images) if other == "image" else _encode(encoder, "text", distinct)
    return Reference(own, side, labels, distinct)


def _r1(queries: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """R@1 of each row of ``queries`` retrieving its key (``labels``, default row i of ``keys``; cosine)."""
    from ragsc.encoders.evaluate import recall_at_1

    q, k = F.normalize(queries.float(), dim=-1), F.normalize(keys.float(), dim=-1)
    return recall_at_1(q, k, torch.arange(len(q)) if labels is None else labels)["image_to_caption_r1"]


def scores(encoder, tower: Tower, unit: nn.Module, data: EvalData, ref: Reference) -> dict[str, float | None]:
    """``r1``, ``pair_r1`` (None unless a text tower with pairs), ``caption_r1`` (None without captions or
    the other tower) and ``cosine`` of ``unit`` in place of the tower's own."""
    items = data.texts if tower.modality == "text" else data.images
    text = tower.modality == "text"
    with tower.swapped(unit):
        emb = _encode(encoder, tower.modality, items)
        captions = _encode(encoder, "text", ref.distinct) if text and ref.other is not None else None
        queries, answers = ((_encode(encoder, "text", [q for q, _ in data.pairs]),
                             _encode(encoder, "text", [a for _, a in data.pairs]))
                            if text and data.pairs else (None, None))
    emb = F.normalize(emb.float(), dim=-1)
    out: dict[str, float | None] = {"r1": _r1(emb, ref.own),
                                    "cosine": float((emb * ref.own).sum(-1).mean()), "caption_r1": None,
                                    "pair_r1": None if queries is None else _r1(queries, answers)}
    if ref.other is not None:
        images, caps = (ref.other, captions) if tower.modality == "text" else (emb, ref.other)
        out["caption_r1"] = _r1(images, caps, ref.labels)
    return out


def measure(encoder, compressed, data: EvalData, ref: Reference, *, batches: Sequence[int] = (1, 64),
            repeats: int = 5, n_threads: int | None = None, tower_params: int | None = None,
            macs: int | None = None) -> Measurement:
    """All figures of one :class:`~ragsc.compress.apply.Compressed`.

    ``tower_params``: the float tower's parameter count (default: the encoder's own count now, which is
    only right while the float unit is in place).
    """
    tower = compressed.tower
    items = data.texts if tower.modality == "text" else data.images
    tensors, _ = compressed.state()
    base = tower_params if tower_params is not None else encoder.num_parameters()[tower.modality]
    ms = {b: latency_ms(tower, compressed.unit, items, b, repeats=repeats, n_threads=n_threads)
          for b in batches}
    s = scores(encoder, tower, compressed.unit, data, ref)
    if compressed.pruning:
        macs = compressed.pruning["macs_after"]
    return Measurement(stored_bytes(tensors), base - compressed.base_params + compressed.params, ms, s["r1"],
                       s["caption_r1"], s["cosine"], macs, s["pair_r1"])
