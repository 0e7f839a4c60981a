"""Captions and answers for real photos, measured on the development set
(:mod:`ragsc.datasets.photo_questions`).

:func:`evaluate_photo_text` sends the set's photos (with their questions, which the receiver asks)
through a pipeline at each SNR and scores what the receiver says:

* **caption similarity** — the encoder's cosine between the receiver's caption and our reference caption
  (text to text), averaged over photos; reported beside the *noiseless receiver's* (the same symbols sent
  without noise), whose ratio is the goal's figure;
* **answer accuracy** — the share of questions answered right
  (:func:`~ragsc.datasets.photo_questions.is_right`), over all questions, the yes/no ones and the others.
"""

from __future__ import annotations

import time

import torch.nn.functional as F

from ragsc.datasets.photo_questions import DevPhoto, is_right, load_dev_image
from ragsc.errors import InputError

POLAR = ("yes", "no")


def score_outputs(photos: list[DevPhoto], outputs, encoder) -> dict:
    """Caption similarity and answer accuracy of a receiver's ``outputs`` (one per photo)."""
    if len(outputs) != len(photos):
        raise InputError(f"{len(outputs)} outputs for {len(photos)} photos")
    caps = [o.caption or "" for o in outputs]
    refs = [p.caption for p in photos]
    emb = F.normalize(encoder.encode_texts(caps + refs).embeddings.float(), dim=-1)
    cos = (emb[: len(caps)] * emb[len(caps) :]).sum(-1)
    right = {"all": [], "yes/no": [], "open": []}
    for p, o in zip(photos, outputs):
        answers = list(o.answers or [])  # a question left unanswered counts as wrong
        answers += [""] * (len(p.questions) - len(answers))
        for q, a in zip(p.questions, answers):
            ok = is_right(a, q)
            right["all"].append(ok)
            right["yes/no" if q.answers[0] in POLAR else "open"].append(ok)
    acc = {k: sum(v) / len(v) if v else None for k, v in right.items()}
    return {
        "caption_cosine": float(cos.mean()),
        "accuracy": acc["all"],
        "accuracy_yes_no": acc["yes/no"],
        "accuracy_open": acc["open"],
        "n_questions": len(right["all"]),
    }


def evaluate_photo_text(
    pipeline,
    photos: list[DevPhoto],
    snrs: list[float],
    *,
    channel: str | None = None,
    rag: bool | None = None,
    examples: int = 0,
) -> dict:
    """Scores per SNR and of the noiseless receiver (``"noiseless"``); ``examples`` keeps that many
    photos' captions and answers per SNR for the report."""
    if not photos:
        raise InputError("no photos to evaluate")
    items = [{"image": load_dev_image(p), "questions": [q.text for q in p.questions]} for p in photos]
    messages = pipeline.messages(items)
    tokens = pipeline.encode(messages)
    tasks = ("image", "caption", "vqa") if pipeline.spec.decoder.describe == "photo" else ("caption", "vqa")
    rows: dict = {}
    for snr in [None, *snrs]:
        t0 = time.perf_counter()
        tx = pipeline.send(messages, tokens, snr_db=snr, channel=channel, noiseless=snr is None)
        outputs = pipeline.receive(tx, rag=rag, tasks=tasks)
        row = score_outputs(photos, outputs, pipeline.encoder)
        row["seconds_per_photo"] = (time.perf_counter() - t0) / len(photos)
        if examples:
            row["examples"] = [
                {
                    "photo": p.name,
                    "caption": o.caption,
                    "reference": p.caption,
                    "answers": [[q.text, a, q.answers[0]] for q, a in zip(p.questions, o.answers or [])],
                }
                for p, o in zip(photos[:examples], outputs[:examples])
            ]
        rows["noiseless" if snr is None else f"{snr:g}"] = row
    ref = rows["noiseless"]["caption_cosine"]
    for row in rows.values():
        row["caption_ratio"] = row["caption_cosine"] / ref if ref > 0 else None
    return rows
