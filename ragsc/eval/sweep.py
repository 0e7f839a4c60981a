"""SNR sweeps of the task pipelines against the field's baselines, at equal channel uses.

``ragsc eval pipelines/multitask.yaml --snr -5:20:5 --channel awgn,rayleigh --out DIR`` writes
``DIR/eval.csv`` (one row per task, metric, method, channel and SNR, columns :data:`COLUMNS`) and one
PNG per task (:mod:`ragsc.eval.results`). Methods (:data:`METHODS`), all at the spec's ``k_symbols``
complex symbols per item:

* ``semantic+rag`` — the pipeline: analog link, retrieval from the local + global KBs, decoders;
* ``semantic`` — the same transmission (same noise) decoded without retrieval;
* ``retrieval`` — retrieval alone (image metrics only): the best retrieved neighbour's image as the
  reconstruction, no generator;
* ``digital`` — separate coding: the raw content through the source codec (WebP / deflate), 5G
  LDPC and QAM over the same channel, the best of :data:`~ragsc.eval.digital.DIGITAL_MCS` at each
  SNR (an oracle link adaptation); the receiver then captions / answers from the decoded image with
  the same encoder, KBs and heads as the semantic receiver (:mod:`ragsc.eval.digital`);
* ``ideal`` — the codec at the capacity budget ``k log2(1 + |h|^2 SNR)`` bits, error-free;
* ``noiseless`` — the semantic pipeline with the same ``k`` coefficients delivered exactly.

Items come from :func:`~ragsc.eval.sets.evaluation_set`, metrics from :func:`~ragsc.eval.scoring.score`.
Everything is seeded: the same call gives the same rows.
"""

from __future__ import annotations

import torch

from ragsc.errors import ConfigError
from ragsc.eval.digital import DigitalReceiver
from ragsc.eval.scoring import retrieval_scores, score
from ragsc.eval.sets import evaluation_set

METHODS = ("semantic+rag", "semantic", "retrieval", "digital", "ideal", "noiseless")
# a sweep's row: these keys, in this order (also the CSV's columns)
COLUMNS = ("task", "metric", "method", "channel", "snr_db", "value", "channel_uses", "n", "subset")


def run_eval(pipe, channels: list[str], snrs: list[float], n: int = 50, seed: int = 0,
             methods: tuple[str, ...] = METHODS, progress: bool = True, subset: str = "all") -> list[dict]:
    """Score ``methods`` on ``pipe``'s task at every channel and SNR.

    Parameters
    ----------
    pipe
        The :class:`~ragsc.pipelines.Pipeline` under test (its ``k_symbols`` is every method's budget).
    channels, snrs
        The grid: channel names and SNRs in dB.
    n
        Items per task kind (see :func:`~ragsc.eval.sets.evaluation_set`).
    seed
        Seeds the items and every path's noise.
    methods
        A subset of :data:`METHODS`.
    progress
        Show a progress bar.
    subset
        Which images: one of :data:`~ragsc.eval.sets.SUBSETS`.

    Returns
    -------
    list of dict
        Rows with the keys :data:`COLUMNS`, one per task, metric, method, channel and SNR.
    """
    from tqdm.auto import tqdm

    from ragsc.encoders import load_encoder

    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    ev = evaluation_set(pipe.task, n, seed, subset=subset)
    messages = pipe.messages(ev.items)
    tokens = pipe.encode(messages)  # encoded once, sent at every point
    k = pipe.spec.channel.k_symbols
    # sentence similarity is MiniLM cosine: the embedded encoder's text tower, loaded once per sweep
    sim = pipe.encoder if pipe.encoder.spec == "embedded" else load_encoder("embedded")
    decoded: dict[str, torch.Tensor] = {}  # both digital receivers decode mostly the same (grey) images
    digital = {"digital": DigitalReceiver(pipe, False, seed, decoded),
               "ideal": DigitalReceiver(pipe, True, seed, decoded)}
    rag = pipe.retriever is not None
    rows: list[dict] = []

    def add(method: str, channel: str, snr: float, scores: dict) -> None:
        for key, value in scores.items():
            task, metric = key.split("/")
            values = (task, metric, method, channel, snr, round(value, 6), k, n, subset)
            rows.append(dict(zip(COLUMNS, values)))

    if "noiseless" in methods:  # no channel, no SNR: one bound for every point
        bound = score(pipe.receive(pipe.send(messages, tokens, noiseless=True, seed=seed), rag=rag), ev, sim)
    bar = tqdm(total=len(channels) * len(snrs), desc=f"eval {pipe.spec.name}", disable=not progress)
    for channel in channels:
        for snr in snrs:
            tx = pipe.send(messages, tokens, snr_db=snr, channel=channel, seed=seed)
            if "semantic+rag" in methods or "retrieval" in methods:
                outputs = pipe.receive(tx, rag=True)
                if "semantic+rag" in methods:
                    add("semantic+rag", channel, snr, score(outputs, ev, sim))
                if "retrieval" in methods:
                    add("retrieval", channel, snr, retrieval_scores(outputs, ev, sim))
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
