"""The shipped students of the embedded default against their teacher (#12, point 6 and part of 7).

    python benchmarks/bench_distill.py [--student student:embedded] [--n-text 500] [--images 888]
                                       [--towers image,text]

For each tower: parameters (``num_parameters()``), encoding speed (items/s, batch 64, both models in
this run), and how well the student stands in for the teacher on data neither was trained on:

* image: easy-VQA's test split (the student trained on the train split's stored teacher outputs) and
  the sample photos (another source: no photo was in its training data): mean cosine to the teacher's
  embedding, R@1 of the image's own teacher embedding among the set's, and caption R@1 (the nearest
  of the teacher's caption embeddings is the image's caption) for the teacher and for the student;
* text: WordNet example sentences (held out of every corpus here) and the KB corpus (short fortunes
  and easy-VQA captions; the shipped text student trained on other fortune files' paragraphs): mean
  cosine to the teacher and R@1 of the sentence's teacher embedding among the set's.

Not in this script yet (issue #12, point 7): the RKD / plain-KD / scratch / DeepJSCC rows over the
channel on Fashion-MNIST and easy-VQA.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _common import machine  # noqa: E402

from ragsc.datasets import load_easy_vqa, load_photos  # noqa: E402
from ragsc.datasets.corpus import text_corpus  # noqa: E402
from ragsc.datasets.heldout import wordnet_examples  # noqa: E402
from ragsc.encoders import load_encoder  # noqa: E402
from ragsc.report import table  # noqa: E402


def speed(fn, items, repeat: int = 1) -> tuple[torch.Tensor, float]:
    fn(items[:8])  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        out = fn(items)
    return out.embeddings, repeat * len(items) / (time.perf_counter() - t0)


def retrieval(query: torch.Tensor, keys: torch.Tensor) -> float:
    q, k = F.normalize(query, dim=-1), F.normalize(keys, dim=-1)
    return float((q @ k.T).argmax(1).eq(torch.arange(len(q))).float().mean())


def caption_r1(images: torch.Tensor, captions: list[str], caption_emb: dict[str, torch.Tensor]) -> float:
    unique = sorted(caption_emb)
    keys = F.normalize(torch.stack([caption_emb[c] for c in unique]), dim=-1)
    best = (F.normalize(images, dim=-1) @ keys.T).argmax(1).tolist()
    return sum(unique[j] == c for j, c in zip(best, captions)) / len(captions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", default="student:embedded")
    ap.add_argument("--n-text", type=int, default=500, help="held-out WordNet sentences")
    ap.add_argument("--images", type=int, default=888, help="easy-VQA test images")
    ap.add_argument("--towers", default="image,text", help="which towers to measure")
    args = ap.parse_args()
    print("machine:", machine())
    teacher, student = load_encoder("embedded"), load_encoder(args.student)
    tp, sp = teacher.num_parameters(), student.num_parameters()
    rows = []
    test = load_easy_vqa("test")[: args.images]
    photos = load_photos()
    for name, imgs, captions in (("easy-VQA test", [x.path for x in test], [x.caption for x in test]),
                                 ("sample photos", [p.pixels for p in photos], [p.caption for p in photos])):
        if not sp["image"] or "image" not in args.towers:
            break
        t_emb, t_speed = speed(teacher.encode_images, imgs)
        s_emb, s_speed = speed(student.encode_images, imgs)
        cap = dict(zip(sorted(set(captions)), teacher.encode_texts(sorted(set(captions))).embeddings))
        cos = float(F.cosine_similarity(s_emb, t_emb, dim=-1).mean())
        rows.append(["image", name, f"{len(imgs)}", f"{tp['image']:,}", f"{sp['image']:,}",
                     f"{tp['image'] / sp['image']:.0f}x", f"{t_speed:.1f}", f"{s_speed:.1f}",
                     f"{s_speed / t_speed:.1f}x", f"{cos:.3f}", f"{retrieval(s_emb, t_emb):.3f}",
                     f"{caption_r1(t_emb, captions, cap):.3f} / {caption_r1(s_emb, captions, cap):.3f}"])
        print(table(rows[-1:], HEADER), flush=True)
    if sp["text"] and "text" in args.towers:
        for name, texts in (("WordNet (held out)", wordnet_examples(args.n_text, seed=7)),
                            ("KB corpus", list(text_corpus())[: args.n_text])):
            t_emb, t_speed = speed(teacher.encode_texts, texts)
            s_emb, s_speed = speed(student.encode_texts, texts)
            cos = float(F.cosine_similarity(s_emb, t_emb, dim=-1).mean())
            rows.append(["text", name, f"{len(texts)}", f"{tp['text']:,}", f"{sp['text']:,}",
                         f"{tp['text'] / sp['text']:.0f}x", f"{t_speed:.1f}", f"{s_speed:.1f}",
                         f"{s_speed / t_speed:.1f}x", f"{cos:.3f}", f"{retrieval(s_emb, t_emb):.3f}", "-"])
            print(table(rows[-1:], HEADER), flush=True)
    print()
    print(table(rows, HEADER))


HEADER = ["tower", "data", "items", "teacher params", "student params", "smaller", "teacher items/s",
          "student items/s", "faster", "cosine to teacher", "R@1 (own teacher emb.)",
          "caption R@1 teacher / student"]

if __name__ == "__main__":
    main()
