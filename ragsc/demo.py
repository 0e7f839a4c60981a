"""``ragsc demo``: the main job on the embedded default, end to end as far as the project goes.

1. The encoder: caption retrieval on easy-VQA and on real photos, zero-shot captions of photos.
2. The link and the receiver's knowledge base: easy-VQA test images are encoded, sent over AWGN and
   Rayleigh channels at a few SNRs through the analog semantic link and through the digital baseline
   (4-bit tokens, 5G LDPC R=1/2, QPSK) with the same number of channel uses, and the receiver
   retrieves the caption nearest to what it received from a global KB of captions.

The generative decoders join here with the receiver issue.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def run_demo(limit: int = 240, echo: Callable[[str], None] = print, snrs: tuple[float, ...] = (-5.0, 0.0, 5.0, 10.0),
             k_symbols: int = 48) -> dict:
    """Run the demo and return its figures (also printed through ``echo``)."""
    from ragsc.datasets import load_photos
    from ragsc.encoders import load_encoder
    from ragsc.encoders.evaluate import standard_suite
    from ragsc.report import SCORE_HEADER, score_rows, table

    t0 = time.perf_counter()
    enc = load_encoder("embedded")
    echo(f"encoder: {enc}  fingerprint={enc.fingerprint}  (loaded in {time.perf_counter() - t0:.1f}s)")
    scores = standard_suite(enc, easy_vqa_limit=limit)
    echo(table(score_rows(scores), SCORE_HEADER))

    photos = load_photos()
    captions = [p.caption for p in photos]
    sim = enc.encode_images([p.pixels for p in photos[:8]]).embeddings @ enc.encode_texts(captions).embeddings.T
    rows = [[p.name, captions[int(s.argmax())], "yes" if int(s.argmax()) == i else "no"]
            for i, (p, s) in enumerate(zip(photos, sim))]
    echo("\nzero-shot captions of real photos (none seen in training):")
    echo(table(rows, ["photo", "best caption of 23", "right"]))

    link_rows = link_and_retrieval(enc, limit, snrs, k_symbols)
    echo(f"\ncaption retrieved by the receiver from its KB after the channel ({limit} easy-VQA test images, "
         f"{k_symbols} complex symbols per image for every path):")
    echo(table([[c, f"{s:g}", f"{a:.3f}", f"{d:.3f}", f"{b:.2f}"] for c, s, a, d, b in link_rows],
               ["channel", "SNR dB", "semantic (analog) accuracy", "digital (LDPC+QPSK) accuracy", "digital BLER"]))
    echo(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return {"scores": scores, "link": link_rows}


def link_and_retrieval(enc, limit: int, snrs: tuple[float, ...], k_symbols: int) -> list[tuple]:
    """Caption accuracy after the analog link and after the digital baseline, per channel and SNR."""
    from ragsc._assets import home_dir
    from ragsc.channel import DigitalLink, Link
    from ragsc.datasets import load_easy_vqa, load_photos
    from ragsc.datasets.easy_vqa import COLORS, SHAPES, caption_for
    from ragsc.kb import KnowledgeBase, NewItem

    kb = KnowledgeBase.create(home_dir() / "demo" / "captions", enc, scope="global", exist_ok=True)
    texts = [caption_for(c, s) for c in COLORS for s in SHAPES] + [p.caption for p in load_photos()]
    kb.add(enc.encode_texts(texts), [NewItem("text", t) for t in texts])  # duplicates of a previous run: no-ops
    test = load_easy_vqa("test")[:limit]
    sent = enc.encode_images([x.path for x in test])
    truth = [x.caption for x in test]

    def accuracy(received) -> float:
        hits = kb.search(received.embeddings, 1)
        return sum(h[0].item.text == t for h, t in zip(hits, truth)) / len(truth)

    rows = []
    for channel in ("awgn", "rayleigh"):
        analog = Link(channel=channel, k_symbols=k_symbols, seed=0)
        digital = DigitalLink(channel=channel, k_symbols=k_symbols, modulation=4, code_rate=0.5, quant_bits=4, seed=0)
        for snr in snrs:
            rx_digital = digital(sent, snr)
            rows.append((channel, snr, accuracy(analog(sent, snr).tokens), accuracy(rx_digital.tokens),
                         rx_digital.meta["bler"]))
    return rows
