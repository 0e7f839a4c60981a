"""The decoders' training data: the default corpora, or your own content (``ragsc decoders train --data``).

Both return the same dict: ``train`` (the image records, each with ``path`` and ``caption``), ``images``
(their embeddings ``[N, D]``), ``pixels`` (``[N, 3, 64, 64]`` in [0, 1]), ``sentences`` and their
embeddings ``texts``, ``kb_texts`` (what the PCA basis is fitted on besides the images) and ``qa``
((image index, question, answer) triples; none in your own content). Embeddings are cached under
``RAGSC_HOME/cache``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ragsc.encoders.cache import cached_embeddings, corpus_key
from ragsc.errors import InputError


def enough_data(data: dict, parts: tuple[str, ...], cfg) -> dict:
    """Refuse user data too small for the parts asked (before any training)."""
    if "image" in parts and len(data["images"]) <= cfg.context_k:
        raise InputError(
            f"training the image decoder needs more than {cfg.context_k} images (its retrieved "
            f"context), the data hold {len(data['images'])}"
        )
    if "text" in parts and len(data["sentences"]) < 2:
        raise InputError(
            f"training the text decoder needs at least 2 sentences or captions, the data hold "
            f"{len(data['sentences'])}"
        )
    return data


MAX_DATA_ITEMS = 200_000  # records read from a --data source: bounded work per training


def user_data(encoder, source: str, fmt: str | None = None, progress: bool = True) -> dict:
    """Training data from your own content (``ragsc decoders train --data SOURCE``), in the shape of
    :func:`training_data`: the images (with their captions) and sentences of any ``ragsc kb ingest``
    source (:mod:`ragsc.kb.sources`: a folder of images with same-name ``.txt`` captions, COCO captions,
    JSONL, text lines, paragraphs). It holds no questions: the answer head is trained on easy-VQA only
    (photos are answered by the open describer, ``decoder.vqa: open``).

    Raises
    ------
    InputError
        The source cannot be read, holds more than :data:`MAX_DATA_ITEMS` records, or no image and no text.
    """
    from types import SimpleNamespace

    from ragsc.decoders.context import load_pixels
    from ragsc.kb.sources import records

    images, sentences = [], []
    for n, r in enumerate(records(source, fmt)):
        if n >= MAX_DATA_ITEMS:
            raise InputError(f"{source} holds more than {MAX_DATA_ITEMS} items; train on a part of it")
        if r.modality == "image" and r.path is not None:
            images.append(SimpleNamespace(path=Path(r.path), caption=r.text or ""))
        if r.text and r.text.strip():
            sentences.append(r.text.strip())
    sentences = list(dict.fromkeys(sentences))
    if not images and not sentences:
        raise InputError(f"{source} holds no image and no text to train on")
    stamp = [f"{x.path}:{x.path.stat().st_size}:{x.path.stat().st_mtime_ns}" for x in images]
    paths = [x.path for x in images]
    emb = (
        cached_embeddings(
            encoder,
            "data-images-" + corpus_key(stamp),
            lambda: encoder.encode_images(paths, progress=progress).embeddings,
        )
        if images
        else torch.zeros(0, encoder.dim)
    )
    texts = (
        cached_embeddings(
            encoder, "texts-" + corpus_key(sentences), lambda: encoder.encode_texts(sentences).embeddings
        )
        if sentences
        else torch.zeros(0, encoder.dim)
    )
    pixels = (
        torch.from_numpy(np.stack([load_pixels(str(x.path), 64) for x in images]))
        .permute(0, 3, 1, 2)
        .contiguous()
        if images
        else torch.zeros(0, 3, 64, 64)
    )
    return {
        "train": images,
        "images": emb.float(),
        "pixels": pixels,
        "sentences": sentences,
        "texts": texts.float(),
        "kb_texts": texts.float(),
        "qa": [],
    }


def training_data(encoder, progress: bool = True) -> dict:
    """Embeddings, pixels, texts and questions of the default corpora (embeddings cached)."""
    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import decoder_corpus, text_corpus
    from ragsc.decoders.context import load_pixels

    train = load_easy_vqa("train")
    kb_texts = list(text_corpus())  # the PCA basis is fitted on what the KB holds
    sentences = list(decoder_corpus())  # the text decoder never sees the KB-only fortunes
    paths = [x.path for x in train]
    images = cached_embeddings(
        encoder,
        f"easyvqa-train-{len(train)}",
        lambda: encoder.encode_images(paths, progress=progress).embeddings,
    )
    kb_emb = cached_embeddings(
        encoder, "texts-" + corpus_key(kb_texts), lambda: encoder.encode_texts(kb_texts).embeddings
    )
    index = {t: i for i, t in enumerate(kb_texts)}
    texts = kb_emb[[index[t] for t in sentences]]
    pixels = np.stack([load_pixels(str(x.path), 64) for x in train])
    pixels = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
    qa = [(i, q, a) for i, x in enumerate(train) for q, a in x.questions]
    return {
        "train": train,
        "images": images,
        "pixels": pixels,
        "sentences": sentences,
        "texts": texts,
        "kb_texts": kb_emb,
        "qa": qa,
    }
