"""The embedded default's knowledge bases, built on demand (``build: default`` in a pipeline spec).

* global: the easy-VQA train images with their captions (3,578) and the text corpus — caption
  sentences in five of the six templates and the one-line fortunes of Debian's ``fortunes``
  (1,444 when installed);
* local: what a user's device recently saw — the first ``local_images`` (200) easy-VQA *test*
  images with their captions, standing in for recently shared photos (as in ``kb/easy_vqa_local.yaml``),
  and the last ``local_texts`` sentences of the corpus; time-stamped now.

No decoder was trained on test images. The evaluation sends half its images from the local KB's
recent ones (content sent again) and half from test images no KB holds (novel content), see
:func:`ragsc.eval.sweep.evaluation_set`. Embeddings are computed once per encoder and cached
(see :mod:`ragsc.encoders.cache`).
"""

from __future__ import annotations

import time
from pathlib import Path

from ragsc.errors import KBError

LOCAL_TEST_IMAGES = 200  # the local KB holds the first 200 easy-VQA test images


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


def recent_content(encoder, local_images: int = LOCAL_TEST_IMAGES, local_texts: int = 200, progress: bool = False):
    """``(embeddings, NewItems)`` of the default local KB: recent test images and the corpus' last sentences."""
    import torch

    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_corpus
    from ragsc.encoders.cache import cached_embeddings, corpus_key
    from ragsc.kb import NewItem

    test = load_easy_vqa("test")[:local_images]
    img = cached_embeddings(encoder, f"easyvqa-test-{len(test)}",
                            lambda: encoder.encode_images([x.path for x in test], progress=progress).embeddings)
    corpus = list(text_corpus())
    sentences = corpus[len(corpus) - local_texts:] if local_texts else []
    txt = cached_embeddings(encoder, "texts-" + corpus_key(sentences), lambda: encoder.encode_texts(sentences).embeddings) \
        if sentences else torch.zeros(0, img.shape[1])
    now = time.time()
    items = [NewItem("image", x.caption, f"easy-vqa:test/{x.image_id}", created_at=now,
                     extra={"color": x.color, "shape": x.shape, "image_id": x.image_id}) for x in test]
    items += [NewItem("text", s, "corpus:default", created_at=now) for s in sentences]
    return torch.cat([img, txt]), items


def build_default_kb(path: str | Path, encoder, scope: str = "global", images: int | None = None,
                     local_images: int = LOCAL_TEST_IMAGES, local_texts: int = 200, progress: bool = False):
    """Create (or complete) the default KB of ``scope`` at ``path``; returns the open KB.

    ``images`` limits the global KB to the first n train images (tests, notebooks)."""
    from ragsc.kb import KnowledgeBase

    if scope not in ("global", "local"):
        raise KBError(f"scope must be 'global' or 'local', got {scope!r}")
    if scope == "global":
        emb, items = default_content(encoder, images, progress)
    else:
        emb, items = recent_content(encoder, local_images, local_texts, progress)
    kb = KnowledgeBase.create(path, encoder, scope=scope, exist_ok=True)
    kb.add(emb, items)  # items already there (a previous build) are deduplicated no-ops
    return kb
