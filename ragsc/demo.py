"""``ragsc demo``: the main job on the embedded default, end to end.

1. The encoder: caption retrieval on easy-VQA and on real photos (none seen in training).
2. The receiver's knowledge bases: the embedded default's global KB (easy-VQA train images with
   captions + caption sentences + Debian fortunes) and local KB (a recent subset), built on first
   use under ``RAGSC_HOME/kb`` (about 3 minutes the first time: 3,578 images are encoded once).
3. The multitask pipeline (``pipelines/multitask.yaml``) on examples at 5 dB: sentences, decoded
   images with their captions and answers, RAG on and off, and SmolLM2 writing the sentences.
4. A sweep against the baselines at equal channel uses (semantic + RAG, without RAG, digital
   separate coding, ideal digital, noiseless), AWGN and Rayleigh: a table, a CSV and the plots in
   ``RAGSC_HOME/demo/eval``.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def run_demo(limit: int = 240, echo: Callable[[str], None] = print,
             snrs: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0), n: int = 40, lm: bool = True,
             out=None) -> dict:
    """Run the demo and return its figures (also printed through ``echo``)."""
    from ragsc._assets import asset_dir, home_dir
    from ragsc.encoders.evaluate import standard_suite
    from ragsc.eval import PRIMARY, run_eval, save, summary_table
    from ragsc.pipelines import Pipeline
    from ragsc.report import SCORE_HEADER, score_rows, table

    t0 = time.perf_counter()
    echo("building the multitask pipeline "
         "(first run: encodes the default KBs' 3,578 images, about 3 minutes)")
    pipe = Pipeline.from_config(asset_dir("pipelines") / "multitask.yaml")
    enc = pipe.encoder
    kbs = ", ".join(f"{name} {len(kb)} items" for name, kb in pipe.retriever.kbs)
    echo(f"encoder: {enc}  fingerprint={enc.fingerprint}\nknowledge bases: {kbs}  "
         f"({time.perf_counter() - t0:.1f}s)")
    scores = standard_suite(enc, easy_vqa_limit=limit)
    echo(table(score_rows(scores), SCORE_HEADER))

    examples(pipe, echo, lm)

    rows = run_eval(pipe, ["awgn", "rayleigh"], list(snrs), n=n, seed=0)
    csv_path, pngs = save(rows, out or home_dir() / "demo" / "eval")
    primary = [r for r in rows if PRIMARY[r["task"]] == r["metric"] or r["metric"] == "class_accuracy"]
    echo(f"\nsweep, {pipe.spec.channel.k_symbols} complex symbols per item in every path ({n} sentences, "
         f"{n} images with 3 questions each); primary metrics:")
    echo(summary_table(primary))
    echo(f"all metrics: {csv_path}; plots: {', '.join(str(p) for p in pngs)}")
    echo(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return {"scores": scores, "eval": rows}


def examples(pipe, echo: Callable[[str], None], lm: bool = True, snr_db: float = 5.0) -> None:
    """A few items through the pipeline at one SNR, with and without RAG (and the LM text decoder)."""
    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_test_set
    from ragsc.report import table

    sentences = text_test_set(4, seed=3)
    images = load_easy_vqa("test")[:3]
    items = sentences + [{"image": x.path, "questions": [q for q, _ in x.questions[:2]]} for x in images]
    tx = pipe.transmit(items, snr_db=snr_db, channel="awgn")
    rag, plain = pipe.receive(tx, rag=True), pipe.receive(tx, rag=False)
    rows = [[s, r.text, p.text] for s, r, p in zip(sentences, rag, plain)]
    if lm:
        from ragsc.decoders import Context, TextDecoder

        t = time.perf_counter()
        writer = TextDecoder(pipe.decoders.text, pipe.decoders.vocab, "lm", lm=pipe.spec.decoder.lm)
        written = writer(tx.received.tokens.embeddings[: len(sentences)],
                           Context([o.context for o in rag[: len(sentences)]]))
        rows = [r + [w] for r, w in zip(rows, written)]
        echo(f"(SmolLM2-135M loaded and ran in {time.perf_counter() - t:.1f}s)")
    echo(f"\nsentences over AWGN at {snr_db:g} dB, {tx.channel_uses} complex symbols each:")
    echo(table(rows, ["sent", "decoded, RAG (fast)", "decoded, no RAG (GRU)"]
               + (["decoded, RAG (SmolLM2)"] if lm else [])))
    rows = []
    for x, r, p in zip(images, rag[len(sentences):], plain[len(sentences):]):
        qa = "; ".join(f"{q} -> {a} / {b}" for q, a, b in zip(r.questions, r.answers, p.answers))
        rows.append([x.caption, r.caption, p.caption, qa])
    echo(f"\nimages over AWGN at {snr_db:g} dB (answers: RAG / no RAG):")
    echo(table(rows, ["sent (caption)", "caption, RAG", "caption, no RAG", "questions"]))
