"""Scoring a receiver's outputs against an :class:`~ragsc.eval.sets.EvalSet`: one mean per task metric.

Metrics (:data:`TASK_METRICS`): text BLEU-1 / BLEU-4 / sentence similarity; image PSNR (capped at
:data:`PSNR_CAP_DB`: an exact copy would be infinite) / SSIM and the class accuracy of the caption; VQA
accuracy. :data:`PRIMARY` names each task's headline metric.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from ragsc.errors import InputError
from ragsc.eval.metrics import accuracy, bleu, psnr, sentence_similarity, ssim
from ragsc.eval.sets import EvalSet

TASK_METRICS = {"text": ("bleu1", "bleu4", "similarity"), "image": ("psnr", "ssim", "class_accuracy"),
                "vqa": ("accuracy",)}
PRIMARY = {"text": "similarity", "image": "ssim", "vqa": "accuracy"}
PSNR_CAP_DB = 60.0


def score(outputs, ev: EvalSet, encoder=None) -> dict[str, float]:
    """Mean metrics over the items: ``{"text/bleu1": ..., "image/psnr": ..., "vqa/accuracy": ...}``.

    Parameters
    ----------
    outputs
        The receiver's :class:`~ragsc.pipelines.Output` per item of ``ev``, in order.
    ev
        The evaluation set that was sent.
    encoder
        For sentence similarity (default: the embedded encoder, loaded per call).

    Returns
    -------
    dict
        ``"task/metric"`` -> mean; only the metrics the outputs allow (no images decoded: no PSNR / SSIM;
        no captions: no class accuracy; no answers: no VQA accuracy).
    """
    _check_lengths(outputs, ev)
    res: dict[str, float] = {}
    t = [(o.text or "", r) for o, r in zip(outputs, ev.texts) if r is not None]
    if t:
        hyp, ref = [h for h, _ in t], [r for _, r in t]
        res["text/bleu1"] = float(bleu(hyp, ref, 1).mean())
        res["text/bleu4"] = float(bleu(hyp, ref, 4).mean())
        res["text/similarity"] = float(sentence_similarity(hyp, ref, encoder).mean())
    im = [(o, r, lab) for o, r, lab in zip(outputs, ev.images, ev.labels) if r is not None]
    if im and all(o.image is not None for o, _, _ in im):
        decoded, originals = [o.image for o, _, _ in im], [r for _, r, _ in im]
        # an exact copy (retrieval of the very image) counts as 60 dB, not inf, so means stay finite
        res["image/psnr"] = float(np.minimum(psnr(decoded, originals), PSNR_CAP_DB).mean())
        res["image/ssim"] = float(ssim(decoded, originals).mean())
    if im and any(o.caption is not None for o, _, _ in im):
        res["image/class_accuracy"] = float(np.mean([_parse_label(o.caption) == lab for o, _, lab in im]))
    qa = [(a, b) for o, ans in zip(outputs, ev.answers) for a, b in zip(o.answers, ans)]
    if qa:
        res["vqa/accuracy"] = float(accuracy([a for a, _ in qa], [b for _, b in qa]).mean())
    return res


def retrieval_scores(outputs, ev: EvalSet, encoder=None) -> dict[str, float]:
    """Image PSNR / SSIM when the best retrieved image is the reconstruction (mid-grey when none).

    ``outputs`` must carry their retrieved context (decoded with RAG); items without context (texts, or
    no RAG) keep their own output. Returns the ``"image/psnr"`` and ``"image/ssim"`` entries of
    :func:`score`.
    """
    from ragsc.decoders import Context, retrieved_image

    _check_lengths(outputs, ev)
    picked = []
    for o, ref in zip(outputs, ev.images):
        if ref is None or o.context is None:
            picked.append(o)
            continue
        im = retrieved_image(Context([o.context]))[0] or Image.new("RGB", ref.size, (128, 128, 128))
        picked.append(replace(o, image=im.resize(ref.size)))
    return {k: v for k, v in score(picked, ev, encoder).items() if k in ("image/psnr", "image/ssim")}


def _check_lengths(outputs, ev: EvalSet) -> None:
    lists = {"items": ev.items, "texts": ev.texts, "images": ev.images, "labels": ev.labels,
             "answers": ev.answers}
    bad = {name: len(x) for name, x in lists.items() if len(x) != len(outputs)}
    if bad:
        raise InputError(f"{len(outputs)} outputs to score against an evaluation set with {bad} entries "
                         "(one output per item, and one entry per item in each of the set's lists)")


def _parse_label(caption: str | None) -> tuple[str | None, str | None]:
    """(colour, shape) named in a caption (``None`` where it names none)."""
    from ragsc.datasets import COLORS, SHAPES

    words = (caption or "").lower().replace(".", " ").split()
    return next((c for c in COLORS if c in words), None), next((s for s in SHAPES if s in words), None)
