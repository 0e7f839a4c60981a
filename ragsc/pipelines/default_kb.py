"""The embedded default's knowledge bases, built on demand (``build: default`` in a pipeline spec).

* global: the easy-VQA train images with their captions (3,578) and the text corpus — caption
  sentences in five of the six templates and the one-line fortunes of Debian's ``fortunes``
  (1,444 when installed);
* local: the "recent" subset a user's device would hold — the last ``local_images`` train images
  and ``local_texts`` sentences of the same corpus, time-stamped now.

Test images are in neither: what the receiver decodes it has never stored. Embeddings are
computed once per encoder and cached (see :mod:`ragsc.encoders.cache`).
"""

from __future__ import annotations

import time
from pathlib import Path

from ragsc.errors import KBError


def default_content(encoder, images: int | None = None, progress: bool = False):
    """``(embeddings [N, D], NewItems)`` of the global default KB (``images``: first n train images only)."""
    import torch

    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_corpus
    from ragsc.encoders.cache import cached_embeddings, corpus_key
    from ragsc.kb import NewItem

    train = load_easy_vqa("train")
    train = train[: len(train) if images is None else images]
    img = cached_embeddings(encoder, f"easyvqa-train-{len(train)}",
                            lambda: encoder.encode_images([x.path for x in train], progress=progress).embeddings)
    sentences = list(text_corpus())
    txt = cached_embeddings(encoder, "texts-" + corpus_key(sentences), lambda: encoder.encode_texts(sentences).embeddings)
    items = [NewItem("image", x.caption, f"easy-vqa:train/{x.image_id}",
                     extra={"color": x.color, "shape": x.shape, "image_id": x.image_id}) for x in train]
    items += [NewItem("text", s, "corpus:default") for s in sentences]
    return torch.cat([img, txt]), items


def build_default_kb(path: str | Path, encoder, scope: str = "global", images: int | None = None,
                     local_images: int = 400, local_texts: int = 200, progress: bool = False):
    """Create (or complete) the default KB of ``scope`` at ``path``; returns the open KB."""
    from dataclasses import replace

    import torch

    from ragsc.kb import KnowledgeBase

    if scope not in ("global", "local"):
        raise KBError(f"scope must be 'global' or 'local', got {scope!r}")
    emb, items = default_content(encoder, images, progress)
    if scope == "local":
        n_img = sum(it.modality == "image" for it in items)
        keep = list(range(max(0, n_img - local_images), n_img)) + list(range(len(items) - local_texts, len(items)))
        now = time.time()
        emb, items = emb[torch.tensor(keep)], [replace(items[i], created_at=now) for i in keep]
    kb = KnowledgeBase.create(path, encoder, scope=scope, exist_ok=True)
    kb.add(emb, items)  # items already there (a previous build) are deduplicated no-ops
    return kb
