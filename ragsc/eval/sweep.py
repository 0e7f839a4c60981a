"""SNR sweeps of the task pipelines against the field's baselines, at equal channel uses.

``ragsc eval pipelines/multitask.yaml --snr -5:20:5 --channel awgn,rayleigh --out DIR`` writes
``DIR/eval.csv`` (one row per task, metric, method, channel and SNR, columns :data:`COLUMNS`) and one
PNG per task (:mod:`ragsc.eval.results`). Methods (:data:`SWEEP_METHODS`), at equal channel uses per item:
what the pipeline spent on each item, i.e. the spec's ``k_symbols`` complex symbols per image (and per
sentence sent as an embedding) on the analog link, each item's own length on CAT (``channel.path:
cat``), and for a sentence on the token link what the token link spent on it:

* ``semantic+rag`` — the pipeline: images on its semantic path (analog or CAT), sentences on the token
  link (unless the spec says ``text.link: embedding``), retrieval from the local + global KBs, decoders;
* ``semantic`` — the same transmission (same noise) decoded without retrieval;
* ``semantic-embedding`` — sentences as embeddings on the semantic path (``k_symbols`` each on the
  analog link), decoded with RAG by the trained decoders: the text path before the token link (text
  metrics only; only for a pipeline whose sentences are on the token link);
* ``retrieval`` — retrieval alone (image metrics only): the best retrieved neighbour's image as the
  reconstruction, no generator;
* ``digital`` — separate coding: the raw content through the source codec (WebP / deflate), 5G
  LDPC and QAM over the same channel, the best of :data:`~ragsc.eval.digital.DIGITAL_MCS` at each
  SNR (an oracle link adaptation); the receiver then captions / answers from the decoded image with
  the same encoder, KBs and heads as the semantic receiver (:mod:`ragsc.eval.digital`);
* ``digital-lm`` — the same with the receiver's LM as the sentences' arithmetic source coder
  (:class:`~ragsc.channel.LMTextCodec`): the strongest digital peer of the token link (text metrics only);
* ``ideal`` — the codec at the capacity budget ``k log2(1 + |h|^2 SNR)`` bits, error-free (sentences on
  the token link: with the LM source code);
* ``noiseless`` — the semantic pipeline with the same symbols delivered exactly (on CAT: at the length
  its rate policy picks on the best channel).

Sentences on the token link cost what their tokens cost, items on CAT what its rate policy chose; every
digital path sends each item in the same number of channel uses as the pipeline did (``channel_uses`` in
the rows is the mean per item of the task's kind: sentences for text, images for image and VQA).

Items come from :func:`~ragsc.eval.sets.evaluation_set`, metrics from :func:`~ragsc.eval.scoring.score`.
Everything is seeded: the same call gives the same rows.
"""

from __future__ import annotations

import torch

from ragsc.errors import ConfigError
from ragsc.eval.digital import DigitalReceiver
from ragsc.eval.scoring import retrieval_scores, score
from ragsc.eval.sets import evaluation_set

SWEEP_METHODS = ("semantic+rag", "semantic", "semantic-embedding", "retrieval", "digital", "digital-lm",
                 "ideal", "noiseless")
# methods that score sentences only
TEXT_ONLY = ("semantic-embedding", "digital-lm")
# a sweep's row: these keys, in this order (also the CSV's columns)
COLUMNS = ("task", "metric", "method", "channel", "snr_db", "value", "channel_uses", "n", "subset")


def run_eval(pipe, channels: list[str], snrs: list[float], n: int = 50, seed: int = 0,
             methods: tuple[str, ...] = SWEEP_METHODS, progress: bool = True,
             subset: str = "all") -> list[dict]:
    """Score ``methods`` on ``pipe``'s task at every channel and SNR.

    Parameters
    ----------
    pipe
        The :class:`~ragsc.pipelines.Pipeline` under test: what it spends on each item (``k_symbols`` per
        image on the analog link, each item's length on CAT, a sentence's tokens on the token link) is
        every method's budget for that item.
    channels, snrs
        The grid: channel names and SNRs in dB.
    n
        Items per task kind (see :func:`~ragsc.eval.sets.evaluation_set`).
    seed
        Seeds the items and every path's noise.
    methods
        A subset of :data:`SWEEP_METHODS`.
    progress
        Show a progress bar.
    subset
        Which sentences and images: one of :data:`~ragsc.eval.sets.SUBSETS`.

    Returns
    -------
    list of dict
        Rows with the keys :data:`COLUMNS`, one per task, metric, method, channel and SNR.
    """
    from tqdm.auto import tqdm

    from ragsc.encoders import load_encoder

    bad = [m for m in methods if m not in SWEEP_METHODS]
    if bad:
        raise ConfigError(f"unknown method(s) {bad}; choose from {', '.join(SWEEP_METHODS)}")
    ev = evaluation_set(pipe.task, n, seed, subset=subset)
    messages = pipe.messages(ev.items)
    tokens = pipe.encode(messages)  # encoded once, sent at every point
    k = pipe.spec.channel.k_symbols
    # sentence similarity is MiniLM cosine: the embedded encoder's text tower, loaded once per sweep
    sim = pipe.encoder if pipe.encoder.spec == "embedded" else load_encoder("embedded")
    decoded: dict[str, torch.Tensor] = {}  # both digital receivers decode mostly the same (grey) images
    by_token = pipe.sentence_path is not None
    lm_codec = None
    if by_token and ({"digital-lm", "ideal"} & set(methods)):
        from ragsc.channel import LMTextCodec

        lm_codec = LMTextCodec(pipe.sentence_path.decoder.lm, prompt=pipe.sentence_path.decoder.prompt)
    digital = {"digital": DigitalReceiver(pipe, False, seed, decoded),
               "ideal": DigitalReceiver(pipe, True, seed, decoded, text_codec=lm_codec)}
    text_rows = [i for i, m in enumerate(messages) if m.kind == "text"]
    image_rows = [i for i, m in enumerate(messages) if m.kind == "image"]
    if lm_codec is not None and text_rows:
        digital["digital-lm"] = DigitalReceiver(pipe, False, seed, decoded, text_codec=lm_codec)
    embedding = pipe.with_text_link("embedding") if by_token and "semantic-embedding" in methods else None
    text_ev = ev.select(text_rows) if text_rows else None
    rag = pipe.retriever is not None
    rows: list[dict] = []

    def add(method: str, channel: str, snr: float, scores: dict, uses: dict) -> None:
        for key, value in scores.items():
            task, metric = key.split("/")
            values = (task, metric, method, channel, snr, round(value, 6), uses.get(task, k), n, subset)
            rows.append(dict(zip(COLUMNS, values)))

    def mean_uses(tx, rows_: list[int]) -> int:
        per_item = tx.channel_uses_per_item
        return round(sum(per_item[i] for i in rows_) / len(rows_))

    def task_uses(tx) -> dict:  # the mean channel uses per task: its items' own (token link, CAT)
        uses = {"text": mean_uses(tx, text_rows)} if text_rows else {}
        if image_rows:
            uses["image"] = uses["vqa"] = mean_uses(tx, image_rows)
        return uses

    if "noiseless" in methods:  # no channel, no SNR: one bound for every point
        clean = pipe.send(messages, tokens, noiseless=True, seed=seed)
        bound = score(pipe.receive(clean, rag=rag), ev, sim)
    bar = tqdm(total=len(channels) * len(snrs), desc=f"eval {pipe.spec.name}", disable=not progress)
    for channel in channels:
        for snr in snrs:
            tx = pipe.send(messages, tokens, snr_db=snr, channel=channel, seed=seed)
            uses = task_uses(tx)
            if "semantic+rag" in methods or "retrieval" in methods:
                outputs = pipe.receive(tx, rag=True)
                if "semantic+rag" in methods:
                    add("semantic+rag", channel, snr, score(outputs, ev, sim), uses)
                if "retrieval" in methods:
                    add("retrieval", channel, snr, retrieval_scores(outputs, ev, sim), uses)
            if "semantic" in methods:
                add("semantic", channel, snr, score(pipe.receive(tx, rag=False), ev, sim), uses)
            if embedding is not None and text_rows:
                text_msgs = [messages[i] for i in text_rows]
                etx = embedding.send(text_msgs, tokens.select(text_rows), snr_db=snr, channel=channel,
                                     seed=seed)
                add("semantic-embedding", channel, snr, score(embedding.receive(etx, rag=rag), text_ev, sim),
                    {"text": mean_uses(etx, list(range(len(text_rows))))})
            for name in ("digital", "digital-lm", "ideal"):
                if name in methods and name in digital:
                    msgs, ev_, per_item = messages, ev, tx.channel_uses_per_item
                    if name in TEXT_ONLY:
                        msgs, ev_ = [messages[i] for i in text_rows], text_ev
                        per_item = [per_item[i] for i in text_rows]
                    outputs = digital[name](msgs, channel, snr, per_item)[0]
                    add(name, channel, snr, score(outputs, ev_, sim), uses)
            if "noiseless" in methods:
                add("noiseless", channel, snr, bound, task_uses(clean))
            bar.update(1)
    bar.close()
    return rows
