"""SNR sweeps of the task pipelines against the field's baselines, at equal channel uses.

``ragsc eval pipelines/multitask.yaml --snr -5:20:5 --channel awgn,rayleigh --out DIR`` writes
``DIR/eval.csv`` (one row per task, metric, method, channel and SNR) and one PNG per task. Methods,
all at the spec's ``k_symbols`` complex symbols per item:

* ``semantic+rag`` — the pipeline: analog link, retrieval from the local + global KBs, decoders;
* ``semantic`` — the same transmission (same noise) decoded without retrieval;
* ``retrieval`` — retrieval alone (image metrics only): the best retrieved neighbour's image as the
  reconstruction, no generator;
* ``digital`` — separate coding: the raw content through the source codec (WebP / deflate), 5G
  LDPC and QAM over the same channel, the best of :data:`DIGITAL_MCS` at each SNR (an oracle
  link adaptation); the receiver then captions / answers from the decoded image with the same
  encoder, KBs and heads as the semantic receiver;
* ``ideal`` — the codec at the capacity budget ``k log2(1 + |h|^2 SNR)`` bits, error-free;
* ``noiseless`` — the semantic pipeline with the same ``k`` coefficients delivered exactly.

Metrics: text BLEU-1 / BLEU-4 / sentence similarity; image PSNR (capped at 60 dB: an exact copy
would be infinite) / SSIM and class accuracy of the caption; VQA accuracy. Everything is seeded: the same call gives the same CSV.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ragsc.errors import ConfigError
from ragsc.report import table

METHODS = ("semantic+rag", "semantic", "retrieval", "digital", "ideal", "noiseless")
DIGITAL_MCS = ((4, 1 / 3), (4, 1 / 2), (16, 1 / 2), (16, 3 / 4), (64, 3 / 4))
TASK_METRICS = {"text": ("bleu1", "bleu4", "similarity"), "image": ("psnr", "ssim", "class_accuracy"),
                "vqa": ("accuracy",)}
PSNR_CAP_DB = 60.0
PRIMARY = {"text": "similarity", "image": "ssim", "vqa": "accuracy"}
SUBSETS = ("all", "held", "novel")  # which images an evaluation sends, see evaluation_set


@dataclass
class EvalSet:
    """Items to send and what the receiver should produce."""

    items: list  # as Pipeline.messages() accepts them
    texts: list[str | None] = field(default_factory=list)  # reference sentence (text items)
    images: list[Image.Image | None] = field(default_factory=list)  # reference image (image items)
    labels: list[tuple[str, str] | None] = field(default_factory=list)  # (color, shape)
    answers: list[list[str]] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)  # an image's URI as a KB stores it (easy-vqa:test/<id>)


def evaluation_set(task: str, n: int, seed: int = 0, questions_per_image: int = 3,
                   subset: str = "all") -> EvalSet:
    """``n`` items per task kind: sentences and easy-VQA *test* images with their questions.

    Sentences: :func:`ragsc.datasets.corpus.text_test_set` (test captions in six phrasings, and
    fortunes the global KB holds but no decoder was trained on). Images: half from the test images
    the default local KB holds (recent content sent again), half from test images no KB holds
    (novel content); ``subset="held"`` or ``"novel"`` keeps one half (``n`` items of it).
    """
    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_test_set
    from ragsc.pipelines.default_kb import LOCAL_TEST_IMAGES

    if n < 1:
        raise ConfigError(f"an evaluation needs at least one item per task, got n={n}")
    if subset not in SUBSETS:
        raise ConfigError(f"subset must be 'all', 'held' or 'novel', got {subset!r}")
    rng = random.Random(seed)
    out = EvalSet([])
    if task in ("text", "multitask"):
        for s in text_test_set(n, seed):
            out.items.append(s)
            out.texts.append(s), out.images.append(None), out.labels.append(None), out.answers.append([])
            out.sources.append(None)
    if task in ("image", "vqa", "multitask"):
        test = load_easy_vqa("test")
        held, novel = list(test[:LOCAL_TEST_IMAGES]), list(test[LOCAL_TEST_IMAGES:])
        n_held = {"all": n // 2, "held": n, "novel": 0}[subset]
        chosen = rng.sample(held, min(n_held, len(held))) + rng.sample(novel, min(n - n_held, len(novel)))
        for x in chosen:
            qa = rng.sample(list(x.questions), min(questions_per_image, len(x.questions)))
            with Image.open(x.path) as im:
                image = im.convert("RGB")
            out.items.append({"image": image, "questions": [q for q, _ in qa]})
            out.texts.append(None), out.images.append(image), out.labels.append((x.color, x.shape))
            out.answers.append([a for _, a in qa]), out.sources.append(f"easy-vqa:test/{x.image_id}")
    return out


def _parse_label(caption: str | None) -> tuple[str | None, str | None]:
    from ragsc.datasets import COLORS, SHAPES

    words = (caption or "").lower().replace(".", " ").split()
    return next((c for c in COLORS if c in words), None), next((s for s in SHAPES if s in words), None)


def score(outputs, ev: EvalSet, encoder=None) -> dict[str, float]:
    """Mean metrics over the items: ``{"text/bleu1": ..., "image/psnr": ..., "vqa/accuracy": ...}``.

    ``encoder``: for sentence similarity (default: the embedded encoder, loaded per call)."""
    from ragsc.eval.metrics import bleu, psnr, sentence_similarity, ssim

    res: dict[str, float] = {}
    t = [(o.text or "", r) for o, r in zip(outputs, ev.texts) if r is not None]
    if t:
        hyp, ref = [h for h, _ in t], [r for _, r in t]
        res["text/bleu1"] = float(bleu(hyp, ref, 1).mean())
        res["text/bleu4"] = float(bleu(hyp, ref, 4).mean())
        res["text/similarity"] = float(sentence_similarity(hyp, ref, encoder).mean())
    im = [(o, r, lab) for o, r, lab in zip(outputs, ev.images, ev.labels) if r is not None]
    if im and all(o.image is not None for o, _, _ in im):
        # an exact copy (retrieval of the very image) counts as 60 dB, not inf, so means stay finite
        res["image/psnr"] = float(np.minimum(psnr([o.image for o, _, _ in im], [r for _, r, _ in im]), PSNR_CAP_DB).mean())
        res["image/ssim"] = float(ssim([o.image for o, _, _ in im], [r for _, r, _ in im]).mean())
    if im and any(o.caption is not None for o, _, _ in im):
        res["image/class_accuracy"] = float(np.mean([_parse_label(o.caption) == lab for o, _, lab in im]))
    qa = [(a, b) for o, ans in zip(outputs, ev.answers) for a, b in zip(o.answers, ans)]
    if qa:
        res["vqa/accuracy"] = float(np.mean([a == b for a, b in qa]))
    return res


# ----------------------------------------------------------------------------- digital baselines


class DigitalReceiver:
    """Separate coding (best MCS per SNR) or the ideal bound, with the semantic receiver's downstream."""

    def __init__(self, pipe, ideal: bool = False, seed: int = 0, cache: dict | None = None) -> None:
        self.pipe, self.ideal, self.seed = pipe, ideal, seed
        self._emb: dict[str, torch.Tensor] = {} if cache is None else cache  # decoded image -> embedding

    def _content(self, contents: list, channel: str, snr: float):
        from ragsc.channel import IdealDigital, SeparateCoding

        k = self.pipe.spec.channel.k_symbols
        if self.ideal:
            return IdealDigital(channel=channel, k_symbols=k, seed=self.seed).content(contents, snr)
        best = None
        for m, r in DIGITAL_MCS:  # oracle link adaptation: keep the MCS that delivers the most items
            res = SeparateCoding(channel=channel, k_symbols=k, modulation=m, code_rate=r, seed=self.seed)(contents, snr)
            key = (int(res.ok.sum()), sum(res.bits_used))
            if best is None or key > best[0]:
                best = (key, res, (m, r))
        best[1].meta["mcs"] = best[2]
        return best[1]

    def _embed(self, images: list[Image.Image]) -> torch.Tensor:
        keys = [hashlib.sha1(im.tobytes()).hexdigest() for im in images]
        todo = {k: im for k, im in zip(keys, images) if k not in self._emb}
        if todo:
            for k, e in zip(todo, self.pipe.encoder.encode_images(list(todo.values())).embeddings.float()):
                self._emb[k] = e
        return torch.stack([self._emb[k] for k in keys])

    def __call__(self, messages, channel: str, snr: float) -> tuple[list, dict]:
        from ragsc.channel import Received
        from ragsc.encoders.inputs import load_image
        from ragsc.pipelines import Output, Transmission
        from ragsc.types import SemanticTokens

        outputs = [Output(m.kind, questions=list(m.questions)) for m in messages]
        meta = {}
        t_idx = [i for i, m in enumerate(messages) if m.kind == "text"]
        if t_idx:
            res = self._content([messages[i].content for i in t_idx], channel, snr)
            for i, text in zip(t_idx, res.items):
                outputs[i].text = text
            meta["text_mcs"] = res.meta.get("mcs")
        i_idx = [i for i, m in enumerate(messages) if m.kind == "image"]
        if i_idx:
            res = self._content([load_image(messages[i].content, i) for i in i_idx], channel, snr)
            emb = self._embed(res.items)
            rx = Received(SemanticTokens(emb, "image"), emb, emb, self.pipe.spec.channel.k_symbols, snr,
                          {"channel": channel, "path": "digital"})
            tx = Transmission([messages[i] for i in i_idx], rx)
            rag = self.pipe.retriever is not None
            for i, o, im in zip(i_idx, self.pipe.receive(tx, rag=rag, tasks=("caption", "vqa")), res.items):
                outputs[i].image, outputs[i].caption, outputs[i].answers = im, o.caption, o.answers
            meta["image_mcs"] = res.meta.get("mcs")
        return outputs, meta


# ----------------------------------------------------------------------------- the sweep


def run_eval(pipe, channels: list[str], snrs: list[float], n: int = 50, seed: int = 0,
             methods: tuple[str, ...] = METHODS, progress: bool = True, subset: str = "all") -> list[dict]:
    """Rows ``{task, metric, method, channel, snr_db, value, channel_uses, n, subset}`` for every point
    (``subset``: which images, see :func:`evaluation_set`)."""
    from tqdm.auto import tqdm

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    ev = evaluation_set(pipe.task, n, seed, subset=subset)
    messages = pipe.messages(ev.items)
    emb = pipe.encode(messages)
    k = pipe.spec.channel.k_symbols
    # sentence similarity is MiniLM cosine: the embedded encoder's text tower, loaded once per sweep
    from ragsc.encoders import load_encoder

    sim = pipe.encoder if pipe.encoder.spec == "embedded" else load_encoder("embedded")
    decoded: dict[str, torch.Tensor] = {}  # both digital receivers decode mostly the same (grey) images
    digital = {"digital": DigitalReceiver(pipe, False, seed, decoded), "ideal": DigitalReceiver(pipe, True, seed, decoded)}
    rows: list[dict] = []

    def add(method: str, channel: str, snr: float, scores: dict) -> None:
        for key, value in scores.items():
            task, metric = key.split("/")
            rows.append({"task": task, "metric": metric, "method": method, "channel": channel, "snr_db": snr,
                         "value": round(value, 6), "channel_uses": k, "n": n, "subset": subset})

    if "noiseless" in methods:  # no channel, no SNR: one bound for every point
        bound = score(pipe.receive(pipe.send(messages, emb, noiseless=True, seed=seed), rag=pipe.retriever is not None), ev, sim)
    bar = tqdm(total=len(channels) * len(snrs), desc=f"eval {pipe.spec.name}", disable=not progress)
    for channel in channels:
        for snr in snrs:
            tx = pipe.send(messages, emb, snr_db=snr, channel=channel, seed=seed)
            if "semantic+rag" in methods or "retrieval" in methods:
                outputs = pipe.receive(tx, rag=True)
                if "semantic+rag" in methods:
                    add("semantic+rag", channel, snr, score(outputs, ev, sim))
                if "retrieval" in methods:
                    add("retrieval", channel, snr, _retrieval_scores(outputs, ev, sim))
            if "semantic" in methods:
                add("semantic", channel, snr, score(pipe.receive(tx, rag=False), ev, sim))
            for name in ("digital", "ideal"):
                if name in methods:
                    add(name, channel, snr, score(digital[name](messages, channel, snr)[0], ev, sim))
            if "noiseless" in methods:
                add("noiseless", channel, snr, bound)
            bar.update(1)
    bar.close()
    return rows


def _retrieval_scores(outputs, ev: EvalSet, encoder=None) -> dict[str, float]:
    """Image PSNR / SSIM when the best retrieved image is the reconstruction (mid-grey when none)."""
    from dataclasses import replace

    from ragsc.decoders import Context, retrieved_image

    picked = []
    for o, ref in zip(outputs, ev.images):
        if ref is None or o.context is None:
            picked.append(o)
            continue
        im = retrieved_image(Context([o.context]))[0] or Image.new("RGB", ref.size, (128, 128, 128))
        picked.append(replace(o, image=im.resize(ref.size)))
    return {k: v for k, v in score(picked, ev, encoder).items() if k in ("image/psnr", "image/ssim")}


def save(rows: list[dict], out: Path) -> tuple[Path, list[Path]]:
    """Write a sweep's ``out/eval.csv`` and one PNG per task (``out`` is created); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "eval.csv")
    return out / "eval.csv", plot(rows, out)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["task", "metric", "method", "channel", "snr_db", "value", "channel_uses", "n",
                                          "subset"])
        w.writeheader()
        w.writerows(rows)


STYLE = {"semantic+rag": ("C0", "o", "-"), "semantic": ("C1", "s", "--"), "retrieval": ("C4", "x", ":"), "digital": ("C3", "^", "-"),
         "ideal": ("C2", "v", ":"), "noiseless": ("k", "", "-.")}


def plot(rows: list[dict], out: Path) -> list[Path]:
    """One PNG per task: metrics down, channels across, one line per method."""
    from matplotlib.figure import Figure  # not pyplot: never switches the caller's (e.g. a notebook's) backend

    paths = []
    for task in dict.fromkeys(r["task"] for r in rows):
        tr = [r for r in rows if r["task"] == task]
        metrics = list(dict.fromkeys(r["metric"] for r in tr))
        channels = list(dict.fromkeys(r["channel"] for r in tr))
        fig = Figure(figsize=(4.6 * len(channels), 3.2 * len(metrics)))
        axes = fig.subplots(len(metrics), len(channels), squeeze=False)
        for i, metric in enumerate(metrics):
            for j, ch in enumerate(channels):
                ax = axes[i][j]
                for method in dict.fromkeys(r["method"] for r in tr):
                    pts = sorted((r["snr_db"], r["value"]) for r in tr
                                 if r["metric"] == metric and r["channel"] == ch and r["method"] == method)
                    if pts:
                        color, marker, ls = STYLE[method]
                        ax.plot(*zip(*pts), color=color, marker=marker, ls=ls, label=method)
                ax.set_xlabel("SNR (dB)")
                ax.set_ylabel(metric)
                ax.set_title(f"{task} / {ch}")
                ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        k, n, subset = tr[0]["channel_uses"], tr[0]["n"], tr[0].get("subset", "all")
        images = {"held": ", images re-sent from the local KB", "novel": ", novel images"}.get(subset, "")
        fig.suptitle(f"{task}: {k} complex symbols per item in every path ({n} items{images})", fontsize=11)
        fig.tight_layout()
        path = out / f"eval_{task}.png"
        fig.savefig(path, dpi=110)
        paths.append(path)
    return paths


def summary_table(rows: list[dict]) -> str:
    """The sweep as a table: one line per task, metric, channel and SNR, one column per method."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    keys = list(dict.fromkeys((r["task"], r["metric"], r["channel"], r["snr_db"]) for r in rows))
    val = {(r["task"], r["metric"], r["channel"], r["snr_db"], r["method"]): r["value"] for r in rows}
    body = [[t, m, c, f"{s:g}"] + [f"{val[(t, m, c, s, meth)]:.3f}" if (t, m, c, s, meth) in val else "-" for meth in methods]
            for t, m, c, s in keys]
    return table(body, ["task", "metric", "channel", "SNR dB"] + methods)
