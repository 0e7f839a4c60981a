"""``ragsc demo``: the main job on the embedded default, end to end as far as the project goes.

Today: load the embedded encoder, report its caption retrieval on easy-VQA and on real photos, and
show zero-shot captions for a few photos. The channel, knowledge-base and receiver stages join here
as their issues land.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def run_demo(limit: int = 240, echo: Callable[[str], None] = print) -> dict:
    """Run the demo and return its scores (also printed through ``echo``)."""
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
    echo(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return scores
