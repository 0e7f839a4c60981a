"""What a writer's checksum verification costs: SHA-256 of a generation's files against its manifest.

    python benchmarks/bench_kb_verify.py [--sizes 3500 100000] [--repeats 5]

A writer compares the files of the generation it builds on with the manifest's SHA-256 checksums before
it copies them (``ragsc.kb.generation.GenerationFiles.verify``), so damage is never copied into a new
generation under fresh checksums; ``ragsc kb stats --verify`` does the same for a reader. For a synthetic
KB of random 384-d vectors with short metadata at each size (the index type the size rule picks, unless
``--factory``), the table gives the files' sizes, the verification's time (best of ``--repeats``, files in
the page cache: a cold read from disk adds the disk's time), and for scale the time a writer takes to start
(verify, copy the metadata, read the index, SQLite's ``quick_check``) and that of SQLite's ``quick_check``
alone (``stats`` without ``--verify``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _common import Table, add_results_args, best_time, write_results  # noqa: E402

from ragsc.kb import KnowledgeBase, NewItem  # noqa: E402
from ragsc.kb.generation import GenerationFiles  # noqa: E402
from ragsc.report import table  # noqa: E402

DIM = 384


def build(path: Path, n: int, factory: str | None, seed: int = 0) -> KnowledgeBase:
    """A KB of ``n`` random unit vectors with a short caption, a source and one extra field each."""
    kb = KnowledgeBase.create(path, {"spec": "synthetic", "fingerprint": "s", "dim": DIM}, scope="global",
                              index=factory)
    rng = np.random.default_rng(seed)
    with kb.writer() as w:  # one commit
        for s in range(0, n, 20_000):
            m = min(20_000, n - s)
            x = rng.standard_normal((m, DIM), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            w.add(x, [NewItem("text", f"item {i}: a short caption of a synthetic thing", f"synthetic:{i}",
                              extra={"n": i}) for i in range(s, s + m)])
    return kb.reload()


def measure(kb: KnowledgeBase, repeats: int) -> list:
    gen = kb.path / kb.manifest["generation"]
    sizes = {name: (gen / name).stat().st_size for name in ("index.faiss", "meta.sqlite")}
    files = GenerationFiles(gen)
    try:
        t_verify = best_time(lambda: files.verify(kb.manifest["checksums"], kb.path), repeats)
    finally:
        files.close()

    def start_writer() -> None:
        with kb.writer():  # nothing changes: nothing is committed
            pass

    t_writer = best_time(start_writer, repeats)
    t_check = best_time(kb.check, repeats)
    total = sum(sizes.values())
    return [len(kb), kb.manifest["factory"], f"{sizes['index.faiss'] / 1e6:.1f}",
            f"{sizes['meta.sqlite'] / 1e6:.1f}", f"{t_verify:.3f}", f"{total / t_verify / 1e6:.0f}",
            f"{t_writer:.3f}", f"{t_check:.3f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[3_500, 100_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--factory", default=None, help="a FAISS factory instead of the size-chosen one")
    add_results_args(ap)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for n in args.sizes:
            t = time.perf_counter()
            kb = build(Path(d) / f"kb-{n}", n, args.factory)
            print(f"built {n} items in {time.perf_counter() - t:.0f} s")
            rows.append(measure(kb, args.repeats))
    out = Table("verify", ["items", "index", "index.faiss MB", "meta.sqlite MB", "sha256 verify s",
                           "verify MB/s", "writer start s", "quick_check s"], rows,
                title=f"checksum verification of a generation ({DIM}-d random vectors, short metadata; "
                      f"best of {args.repeats}, files in the page cache)")
    print(table(out.rows, out.columns))
    write_results("bench_kb_verify", [out], args=args,
                  notes=["writer start = lock, SHA-256 verification, metadata copy, index read, quick_check; "
                         "nothing committed"])


if __name__ == "__main__":
    main()
