"""``ragsc demo``: the main job on the embedded default, end to end, in a few minutes on a laptop's CPU.

1. The encoder: caption retrieval on easy-VQA and on real photos (none seen in training): the first
   table, within about a minute.
2. The receiver's knowledge bases: the embedded default's global KB (easy-VQA train images with
   captions + caption sentences + Debian fortunes) and local KB (a recent subset), built on first
   use under ``RAGSC_HOME/kb`` from the images' shipped embeddings (:mod:`ragsc.kb.shipped`; only the
   sentences are encoded).
3. The multitask pipeline (``pipelines/multitask.yaml``) on examples: ordinary sentences of the demo's
   own on the token link at 0, 5 and 10 dB (decoded by channel likelihood + SmolLM2, RAG on), the
   same as embeddings (the semantic-embedding baseline), and images with their captions and answers
   at 5 dB, RAG on and off; then one real photo (not a training photo) through the image JSCC at 0 and
   10 dB beside HEIF (HEVC intra, BPG's codec) + 5G LDPC + QAM at the same channel uses and its best MCS,
   with its caption and an answer: a PNG in ``RAGSC_HOME/demo/photo.png``.
4. A small sweep against the baselines at equal channel uses (semantic + RAG, without RAG, sentences as
   embeddings, digital separate coding with deflate or SmolLM2 as the source code, ideal digital,
   noiseless), AWGN then Rayleigh, each channel's table printed as it finishes; a CSV and the plots in
   ``RAGSC_HOME/demo/eval``. It is sized to a few minutes (``n`` items, :data:`DEMO_SNRS`);
   ``ragsc eval pipelines/multitask.yaml`` runs the full one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

DEMO_SNRS = (0.0, 10.0)  # the sweep's SNRs in dB (each point decodes every sentence several times)
DEMO_CHANNELS = ("awgn", "rayleigh")


def run_demo(limit: int = 240, echo: Callable[[str], None] = print,
             snrs: tuple[float, ...] = DEMO_SNRS, n: int = 8, lm: bool = True, out=None,
             channels: tuple[str, ...] = DEMO_CHANNELS) -> dict:
    """Run the demo and return its figures (also printed through ``echo``).

    Parameters
    ----------
    limit
        easy-VQA test images of the encoder check.
    echo
        Where the tables go.
    snrs, channels, n
        The sweep: SNRs in dB, channel names, sentences and images (:func:`ragsc.eval.run_eval`).
    lm
        Also decode the example sentences the embedding way.
    out
        The sweep's folder (default ``RAGSC_HOME/demo/eval``).
    """
    from ragsc._assets import asset_dir, home_dir
    from ragsc.encoders import load_encoder
    from ragsc.encoders.evaluate import standard_suite
    from ragsc.eval import PRIMARY, run_eval, save, summary_table
    from ragsc.pipelines import Pipeline
    from ragsc.report import SCORE_HEADER, score_rows, table

    t0 = time.perf_counter()
    enc = load_encoder("embedded")
    echo(f"encoder: {enc}  fingerprint={enc.fingerprint}; caption retrieval on {limit} easy-VQA test "
         "images and the sample photos:")
    scores = standard_suite(enc, easy_vqa_limit=limit)
    echo(table(score_rows(scores), SCORE_HEADER))
    echo(f"({time.perf_counter() - t0:.1f}s)\n\nbuilding the multitask pipeline (first run: the default KBs "
         "from the images' shipped embeddings, their sentences encoded)")
    pipe = Pipeline.from_config(asset_dir("pipelines") / "multitask.yaml", encoder=enc)
    kbs = ", ".join(f"{name} {len(kb)} items" for name, kb in pipe.retriever.kbs)
    echo(f"knowledge bases: {kbs}  ({time.perf_counter() - t0:.1f}s)")

    examples(pipe, echo, lm)
    if pipe.jscc is not None:
        photo_example(pipe, echo, (out and Path(out).parent or home_dir() / "demo") / "photo.png")

    rows: list[dict] = []
    echo(f"\nsweep at equal channel uses ({n} sentences, {n} images with 3 questions each; "
         f"`ragsc eval {asset_dir('pipelines').name}/multitask.yaml` for the full one):")
    for channel in channels:  # the same rows as one call over both (every point is seeded alike)
        t = time.perf_counter()
        part = run_eval(pipe, [channel], list(snrs), n=n, seed=0)
        rows += part
        text_uses = {r["channel_uses"] for r in part if r["task"] == "text" and r["method"] == "semantic+rag"}
        echo(f"\n{channel}: {pipe.spec.channel.k_symbols} complex symbols per image, "
             f"{', '.join(map(str, sorted(text_uses)))} per sentence on average in every path but "
             f"semantic-embedding; primary metrics ({time.perf_counter() - t:.1f}s):")
        echo(summary_table([r for r in part if PRIMARY[r["task"]] == r["metric"]
                            or r["metric"] == "class_accuracy"]))
    csv_path, pngs = save(rows, out or home_dir() / "demo" / "eval")
    echo(f"all metrics: {csv_path}; plots: {', '.join(str(p) for p in pngs)}")
    echo(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return {"scores": scores, "eval": rows}


# ordinary sentences written for the demo: in no corpus, KB or training set
DEMO_SENTENCES = ("Please send the updated map of the harbour before noon.",
                  "My sister's bike has a flat tyre again, so she'll be late.",
                  "The meeting moved to Thursday at 3 pm, room 214.",
                  "Could you water the tomatoes while I'm away this weekend?")


def examples(pipe, echo: Callable[[str], None], lm: bool = True, snr_db: float = 5.0,
             sentence_snrs: tuple[float, ...] = (0.0, 5.0, 10.0)) -> None:
    """Sentences of the demo's own at ``sentence_snrs`` (and a KB-held one), then images at ``snr_db``.

    ``lm``: also decode the sentences the embedding way (``text.link: embedding``, the
    ``semantic-embedding`` baseline) at ``snr_db``, for contrast.
    """
    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_test_set
    from ragsc.report import table

    sentences = list(DEMO_SENTENCES) + text_test_set(1, seed=3)  # the last one is in the global KB
    if pipe.sentence_path is not None:
        t = time.perf_counter()
        runs = [pipe.run(sentences, snr_db=s, channel="awgn") for s in sentence_snrs]
        uses = [o.meta["channel_uses"] for o in runs[0]]
        rows = [[s, u] + [r[i].text for r in runs] for i, (s, u) in enumerate(zip(sentences, uses))]
        echo(f"\nsentences over AWGN on the token link ({pipe.spec.text.symbols_per_token} complex symbols "
             f"per token + a {pipe.spec.text.header_symbols}-symbol header), decoded by channel likelihood "
             f"+ {pipe.spec.decoder.lm} with RAG ({time.perf_counter() - t:.1f}s); the last is in the KB:")
        echo(table(rows, ["sent", "symbols"] + [f"decoded at {s:g} dB" for s in sentence_snrs]))
    if lm or pipe.sentence_path is None:
        emb = pipe.with_text_link("embedding") if pipe.sentence_path is not None else pipe
        tx = emb.transmit(sentences, snr_db=snr_db, channel="awgn")
        rag, plain = emb.receive(tx, rag=True), emb.receive(tx, rag=False)
        echo(f"\nthe same sentences as embeddings (semantic-embedding baseline) at {snr_db:g} dB, "
             f"{tx.channel_uses} complex symbols each:")
        echo(table([[s, r.text, p.text] for s, r, p in zip(sentences, rag, plain)],
                   ["sent", "decoded, RAG (fast)", "decoded, no RAG (GRU)"]))
    images = load_easy_vqa("test")[:3]
    items = [{"image": x.path, "questions": [q for q, _ in x.questions[:2]]} for x in images]
    tx = pipe.transmit(items, snr_db=snr_db, channel="awgn")
    rag, plain = pipe.receive(tx, rag=True), pipe.receive(tx, rag=False)
    rows = []
    for x, r, p in zip(images, rag, plain):
        qa = "; ".join(f"{q} -> {a} / {b}" for q, a, b in zip(r.questions, r.answers, p.answers))
        rows.append([x.caption, r.caption, p.caption, qa])
    echo(f"\nimages over AWGN at {snr_db:g} dB, {tx.channel_uses} complex symbols each "
         "(answers: RAG / no RAG):")
    echo(table(rows, ["sent (caption)", "caption, RAG", "caption, no RAG", "questions"]))


def photo_example(pipe, echo: Callable[[str], None], png: Path,
                  snrs: tuple[float, ...] = (0.0, 10.0)) -> dict:
    """One held-out photo through the pipeline's image JSCC at ``snrs`` (AWGN) beside HEIF + 5G LDPC + QAM on
    the same channel uses (the real chain, its best MCS per SNR); the grid of images is written to ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    from skimage import data

    from ragsc.eval.digital import best_mcs
    from ragsc.eval.image import score
    from ragsc.report import table

    photo = Image.fromarray(data.chelsea())
    questions = ["what animal is this?", "is there a dog?"]
    rows, shown = [], [("sent", photo)]
    for snr in snrs:
        t = time.perf_counter()
        tx = pipe.transmit([{"image": photo, "questions": questions}], snr_db=snr, channel="awgn")
        out = pipe.receive(tx)[0]
        seconds = time.perf_counter() - t
        uses = tx.channel_uses_per_item[0]
        rx, mcs = best_mcs([photo], pipe.spec.channel, "awgn", snr, channel_uses=[uses], image_format="heif")
        digital = rx.content[0]
        s_j, s_d = score([out.image], [photo]), score([digital], [photo])
        name = f"{mcs[0]}-QAM R={mcs[1]:.2f}" if mcs else "nothing delivered"
        rows.append([f"{snr:g}", uses, f"{s_j['psnr'][0]:.2f} / {s_j['ms_ssim'][0]:.3f}",
                     f"{s_d['psnr'][0]:.2f} / {s_d['ms_ssim'][0]:.3f} ({name})", out.caption,
                     " / ".join(out.answers), f"{seconds:.1f}"])
        shown += [(f"JSCC {snr:g} dB: {s_j['psnr'][0]:.1f} dB", out.image),
                  (f"HEIF+LDPC {snr:g} dB: {s_d['psnr'][0]:.1f} dB", digital)]
    echo(f"\na real photo ({photo.width}x{photo.height}, scikit-image's 'chelsea') over AWGN through the "
         f"image JSCC at ratio {pipe.spec.image.ratio} (+ its embedding), and HEIF + 5G LDPC + QAM on the "
         "same channel uses (PSNR dB / MS-SSIM):")
    echo(table(rows, ["SNR dB", "symbols", "JSCC", "HEIF + LDPC (best MCS)", "caption", " / ".join(questions),
                      "s"]))
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.6))
    for ax, (title, im) in zip(axes, shown):
        ax.imshow(im)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    echo(f"side by side: {png}")
    return {"rows": rows, "png": str(png)}
