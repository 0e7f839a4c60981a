"""Encoder figures for the README: caption retrieval R@1 and encode throughput vs. the raw towers.

    python benchmarks/bench_encoders.py [--spec embedded] [--repeats 3]

Prints (never asserts): image<->caption R@1 on the easy-VQA test split and on the captioned sample
photos, then images/s and texts/s at batch 1 and 64 through ``ragsc`` and through the raw towers
(EfficientNet-Lite0 forward and ``SentenceTransformer.encode``) on the same decoded inputs, and the
ratio (ragsc time / raw time; goal <= 1.1).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from _common import Table, add_results_args, best_time, machine, write_results  # noqa: E402
from PIL import Image  # noqa: E402

from ragsc import load_encoder  # noqa: E402
from ragsc.datasets import load_easy_vqa, load_photos  # noqa: E402
from ragsc.encoders.evaluate import standard_suite  # noqa: E402
from ragsc.report import SCORE_HEADER, score_rows, table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="embedded")
    ap.add_argument("--repeats", type=int, default=3)
    add_results_args(ap)
    args = ap.parse_args()

    print(f"machine: {machine()}")
    enc = load_encoder(args.spec)
    encoder = f"encoder: {enc}  fingerprint={enc.fingerprint}"
    print(encoder + "\n")
    scores = Table("retrieval", SCORE_HEADER, score_rows(standard_suite(enc)),
                   title="image <-> caption retrieval R@1")
    print(table(scores.rows, scores.columns))

    if args.spec != "embedded":
        write_results("bench_encoders", [scores], args=args, notes=[encoder])
        return
    images = [Image.open(x.path).convert("RGB") for x in load_easy_vqa("test")[:64]]
    texts = [p.caption for p in load_photos()] * 3
    texts = (texts + [x.caption for x in load_easy_vqa("test")])[:64]

    @torch.inference_mode()
    def raw_images(batch):
        pixels = torch.stack([enc.transform(im) for im in batch])
        return enc.image_tower(pixels)

    @torch.inference_mode()
    def raw_texts(batch):
        return enc.text_tower.encode(batch, batch_size=64, convert_to_tensor=True)

    rows = []
    for kind, items, ours, raw in (
        ("images", images, enc.encode_images, raw_images),
        ("texts", texts, enc.encode_texts, raw_texts),
    ):
        for bs in (1, 64):
            n = 16 if bs == 1 else 64
            chunks = [items[i : i + bs] for i in range(0, n, bs)]
            t_ours = best_time(lambda ours=ours, chunks=chunks: [ours(c) for c in chunks], args.repeats)
            t_raw = best_time(lambda raw=raw, chunks=chunks: [raw(c) for c in chunks], args.repeats)
            rows.append([kind, str(bs), f"{n / t_ours:.1f}", f"{n / t_raw:.1f}", f"{t_ours / t_raw:.3f}"])
    speed = Table("throughput", ["input", "batch", "ragsc items/s", "raw towers items/s",
                                 "ratio (goal <= 1.1)"], rows,
                  title="encode throughput through ragsc and through the raw towers")
    print()
    print(table(speed.rows, speed.columns))
    write_results("bench_encoders", [scores, speed], args=args, notes=[encoder])


if __name__ == "__main__":
    main()
