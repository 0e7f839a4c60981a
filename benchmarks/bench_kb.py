"""Knowledge-base figures for the README (printed, never asserted).

    python benchmarks/bench_kb.py [--texts 2000] [--images 128] [--kb-size 100000] [--large 1000000]

1. Ingestion throughput vs. raw encoding of the same items (goal <= 1.2x): ``ingest`` of a text file
   and of an image folder into a fresh KB, against ``encoder.encode_texts / encode_images`` alone.
2. Query latency vs. calling FAISS directly on the same index (goal <= 1.1x), at batch 1 and 100.
3. Large synthetic collection (``--large`` clustered vectors of 384-d): the size-chosen IVF-PQ index's
   recall@10 against exact search (goal >= 0.9) and its queries/s ratio over exact search (goal >= 10x).
4. Bytes per stored item (index + metadata) for each index type.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from _common import Table, add_results_args, best_time, write_results  # noqa: E402

from ragsc.kb import KnowledgeBase, choose_factory, ingest  # noqa: E402
from ragsc.kb import index as ix  # noqa: E402
from ragsc.kb.items import NewItem  # noqa: E402
from ragsc.report import table  # noqa: E402


def clustered(n: int, dim: int, n_clusters: int = 1000, spread: float = 1.0, seed: int = 0,
              centre_seed: int = 0) -> np.ndarray:
    """Normalised vectors around random centres (noise as large as the centres: a nearest neighbour
    sits at cosine ~0.6, as in sentence-embedding collections, not at near-duplicate distance)."""
    centres = np.random.default_rng(centre_seed).standard_normal((n_clusters, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    x = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x[start : start + m] = (centres[rng.integers(0, n_clusters, m)]
                                + spread * rng.standard_normal((m, dim), dtype=np.float32))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def bench_ingest(args, tmp: Path) -> Table:
    from PIL import Image

    from ragsc import load_encoder
    from ragsc.datasets import load_easy_vqa

    enc = load_encoder("embedded")
    questions = sorted({q for x in load_easy_vqa("train") for q, _ in x.questions})
    texts = [f"{q} ({i})"
             for i, q in enumerate((questions * (args.texts // len(questions) + 1))[: args.texts])]
    (tmp / "texts.txt").write_text("\n".join(texts))
    folder = tmp / "images"
    folder.mkdir()
    for x in load_easy_vqa("train")[: args.images]:
        shutil.copy(x.path, folder / x.path.name)
        (folder / x.path.with_suffix(".txt").name).write_text(x.caption)
    rows = []
    for kind, source, raw in (
        ("texts", str(tmp / "texts.txt"), lambda: enc.encode_texts(texts)),
        ("images", str(folder),
         lambda: enc.encode_images([Image.open(p) for p in sorted(folder.glob("*.png"))])),
    ):
        t_raw = best_time(raw, 1)
        kb = KnowledgeBase.create(tmp / f"kb-{kind}", enc, scope="global")
        t = time.perf_counter()
        rep = ingest(kb, source, enc, progress=False)
        t_ours = time.perf_counter() - t
        n = rep.added
        rows.append([kind, str(n), f"{n / t_ours:.1f}", f"{n / t_raw:.1f}", f"{t_ours / t_raw:.3f}"])
    out = Table("ingest", ["ingest", "items", "ragsc items/s", "raw encode items/s", "ratio (goal <= 1.2)"],
                rows, title="ingestion into a fresh KB vs. raw encoding of the same items")
    print(table(out.rows, out.columns))
    return out


def bench_query(args, tmp: Path) -> Table:
    dim = 384
    x = clustered(args.kb_size, dim, seed=1)
    rows = []
    for factory in ("Flat", "HNSW32"):
        kb = KnowledgeBase.create(tmp / f"q-{factory}", {"spec": "synthetic", "fingerprint": "s", "dim": dim},
                                  scope="global", index=factory)
        with kb.writer() as w:
            for s in range(0, len(x), 50_000):
                w.add(x[s : s + 50_000],
                      [NewItem("text", f"item {i}") for i in range(s, min(s + 50_000, len(x)))])
        kb = kb.reload()
        q = clustered(100, dim, seed=2)
        for bs in (1, 100):
            qs = q[:bs]
            t_ours = best_time(lambda kb=kb, qs=qs: kb.search(qs, 10))
            t_meta = best_time(lambda kb=kb, qs=qs: [h.item for hits in kb.search(qs, 10) for h in hits])
            t_raw = best_time(lambda kb=kb, qs=qs: kb.index.search(qs, 10))
            rows.append([factory, str(len(kb)), str(bs), f"{t_ours / bs * 1e3:.3f}",
                         f"{t_raw / bs * 1e3:.3f}", f"{t_ours / t_raw:.3f}", f"{t_meta / bs * 1e3:.3f}"])
        st = kb.stats()
        rows[-1].append(f"{st['bytes_per_item']:.0f}")
        rows[-2].append("")
    out = Table("query", ["index", "items", "batch", "ragsc ms/query", "faiss ms/query",
                          "ratio (goal <= 1.1)", "ragsc + metadata ms/query", "bytes/item"], rows,
                title=f"query latency, {args.kb_size} clustered {dim}-d vectors, k = 10")
    print(table(out.rows, out.columns))
    return out


def bench_large(args) -> Table:
    dim = 384
    n = args.large
    t0 = time.perf_counter()
    x = clustered(n, dim, seed=3)
    q = clustered(1000, dim, seed=4)  # same centres, fresh points
    factory = args.factory or choose_factory(n, dim)
    title = f"large: {n} x {dim} clustered vectors (generated in {time.perf_counter() - t0:.0f}s); " \
            f"auto factory {factory}"
    print("\n" + title)
    flat = faiss.IndexFlatIP(dim)
    flat.add(x)
    t_flat = best_time(lambda f=flat: f.search(q, 10), 1)
    _, truth = flat.search(q, 10)
    del flat
    idx = ix.new_index(factory, dim)
    t = time.perf_counter()
    ix.train(idx, x, max_sample=args.train_sample)
    t_train = time.perf_counter() - t
    t = time.perf_counter()
    idx.add_with_ids(x, np.arange(n, dtype=np.int64))
    t_add = time.perf_counter() - t
    rows = []
    for nprobe, k_factor in ((32, 16), (64, 16), (32, 64), (64, 64), (128, 64)):
        ix.set_search_params(idx, nprobe=nprobe, k_factor=k_factor)
        t_ivf = best_time(lambda: idx.search(q, 10), 1)
        _, found = idx.search(q, 10)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, found)])
        rows.append([str(nprobe), str(k_factor), f"{recall:.3f}", f"{len(q) / t_ivf:.0f}",
                     f"{len(q) / t_flat:.0f}", f"{t_flat / t_ivf:.1f}x"])
    out = Table("large", ["nprobe", "k_factor", "recall@10 vs Flat (goal >= 0.9)", "IVF-PQ q/s", "Flat q/s",
                          "speed-up (goal >= 10x)"], rows, title=title,
                notes=[f"trained in {t_train:.0f}s on {min(n, args.train_sample)} vectors, added in "
                       f"{t_add:.0f}s; {faiss.serialize_index(idx).nbytes / n:.0f} bytes/vector vs "
                       f"{4 * dim} for Flat"])
    print(out.notes[0])
    print(table(out.rows, out.columns))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--kb-size", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--train-sample", type=int, default=200_000)
    ap.add_argument("--factory", default=None,
                    help="large part: a FAISS factory instead of the size-chosen one")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: ingest,query,large")
    add_results_args(ap)
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    tables = []
    with tempfile.TemporaryDirectory() as d:
        if "ingest" not in skip:
            tables.append(bench_ingest(args, Path(d)))
        if "query" not in skip:
            print()
            tables.append(bench_query(args, Path(d)))
    if "large" not in skip:
        tables.append(bench_large(args))
    write_results("bench_kb", tables, args=args)


if __name__ == "__main__":
    main()
