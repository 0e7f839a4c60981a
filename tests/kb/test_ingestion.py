"""Ingestion: checkpoints, resume, encoder checks, and surviving kill -9 in the middle of a run."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import faiss
import pytest

from ragsc.errors import KBError
from ragsc.kb import KnowledgeBase, ingest
from ragsc.kb.ingestion import source_key

from ._fakes import FakeEncoder

TESTS = Path(__file__).resolve().parents[1]


def lines_with_duplicates(n_unique: int, n_total: int, seed: int = 0) -> list[str]:
    """``n_total`` lines: ``n_unique`` distinct texts, the rest repeats of earlier ones, interleaved."""
    rng = random.Random(seed)
    out = [f"record number {i}" for i in range(n_unique)]
    for _ in range(n_total - n_unique):
        pos = rng.randrange(1, len(out) + 1)
        out.insert(pos, out[rng.randrange(pos)])
    return out


def unique_in_order(xs):
    return list(dict.fromkeys(xs))


def committed_state(path: Path) -> tuple[dict, int, int]:
    """(manifest, index ntotal, metadata rows) read straight from the files."""
    m = json.loads((path / "manifest.json").read_text())
    gen = path / m["generation"]
    ntotal = faiss.read_index(str(gen / "index.faiss")).ntotal
    db = sqlite3.connect(gen / "meta.sqlite")
    rows = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    db.close()
    return m, ntotal, rows


def test_ingest_checkpoints_and_resume(new_kb, tmp_path):
    enc = FakeEncoder()
    kb = new_kb(encoder=enc)
    src = tmp_path / "lines.txt"
    lines = lines_with_duplicates(45, 50, seed=1)
    src.write_text("\n".join(lines) + "\n")
    first_gen = int(kb.manifest["generation"].split("-")[1])
    r = ingest(kb, str(src), encoder=enc, limit=20, shard_size=5, checkpoint_every=4, progress=False)
    assert r.seen == 20 and r.resumed_from == 0
    kb = KnowledgeBase.open(kb.path)
    assert int(kb.manifest["generation"].split("-")[1]) - first_gen >= 4  # checkpoints were committed
    key = source_key(str(src), "text")
    assert kb.progress(key) == 20 and len(kb) == len(unique_in_order(lines[:20]))

    r = ingest(kb, str(src), encoder=enc, resume=True, shard_size=7, progress=False)
    assert r.resumed_from == 20 and r.seen == 30
    kb = KnowledgeBase.open(kb.path)
    assert kb.progress(key) == 50 and len(kb) == 45
    assert sorted(it.text for it in kb.items()) == sorted(set(lines))

    r = ingest(kb, str(src), encoder=enc, resume=True, progress=False)  # nothing left
    assert (r.resumed_from, r.seen, r.added) == (50, 0, 0)
    r = ingest(kb, str(src), encoder=enc, progress=False)  # without resume: all seen again, all duplicates
    assert r.seen == 50 and r.added == 0 and r.duplicates == 50
    assert len(KnowledgeBase.open(kb.path)) == 45


def test_a_text_over_the_character_limit_is_skipped_not_the_shard(new_kb, tmp_path, embedded):
    """The encoder refuses a text over limits.text_chars (ragsc.config.LIMITS): ingestion skips that
    record with a reason and adds the rest of its shard."""
    from ragsc.config import LIMITS

    kb = new_kb(encoder=embedded)
    src = tmp_path / "lines.txt"
    src.write_text("a short line\n" + "x" * (LIMITS.text_chars + 1) + "\nanother short line\n")
    r = ingest(kb, str(src), encoder=embedded, shard_size=8, progress=False)
    assert r.seen == 3 and r.added == 2 and r.skipped == {"text_too_long": 1}
    assert sorted(it.text for it in KnowledgeBase.open(kb.path).items()) == ["a short line",
                                                                             "another short line"]


def test_ingest_refuses_an_encoder_with_another_fingerprint(new_kb, tmp_path):
    kb = new_kb(encoder=FakeEncoder(spec="fake:a", fingerprint="fp-a"))
    src = tmp_path / "t.txt"
    src.write_text("hello\n")
    other = FakeEncoder(spec="fake:b", fingerprint="fp-b")
    with pytest.raises(KBError, match="fp-a.*fp-b"):
        ingest(kb, str(src), encoder=other, progress=False)
    assert other.calls == {"text": 0, "image": 0} and len(KnowledgeBase.open(kb.path)) == 0


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from kb._fakes import FakeEncoder
from ragsc.kb import KnowledgeBase, ingest
kb = KnowledgeBase.open({kb!r})
ingest(kb, {src!r}, encoder=FakeEncoder(delay_s=0.01), shard_size=20, checkpoint_every=1, progress=False)
print("finished")
"""


def test_kill_9_mid_ingestion_then_resume(new_kb, tmp_path):
    kb = new_kb(encoder=FakeEncoder())
    src = tmp_path / "big.txt"
    lines = lines_with_duplicates(2_700, 3_000, seed=2)
    src.write_text("\n".join(lines) + "\n")
    key = source_key(str(src), "text")
    start_gen = kb.manifest["generation"]

    child = subprocess.Popen([sys.executable, "-c",
                              CHILD.format(tests=str(TESTS), kb=str(kb.path), src=str(src))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # wait for a few commits, then kill at a random moment
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            gen = json.loads((kb.path / "manifest.json").read_text())["generation"]
            if gen != start_gen and int(gen.split("-")[1]) >= int(start_gen.split("-")[1]) + 3:
                break
            time.sleep(0.005)
        assert child.poll() is None, f"child ended before the kill: {child.communicate()}"
        delay = random.uniform(0.0, 0.8)
        time.sleep(delay)
        before_kill = committed_state(kb.path)[0]
        assert child.poll() is None, "child finished before the kill; make it slower"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL

    m, ntotal, rows = committed_state(kb.path)
    assert ntotal == rows == m["counts"]["items"], f"inconsistent after kill -9 (delay {delay:.3f}s)"
    assert int(m["generation"][4:]) >= int(before_kill["generation"][4:])  # nothing committed was lost
    kb = KnowledgeBase.open(kb.path)
    done = kb.progress(key)
    assert 0 < done < len(lines), f"kill landed outside the run (progress {done})"
    assert len(kb) >= before_kill["counts"]["items"]
    # exactly what the committed progress accounts for: the unique texts of the first `done` records
    assert sorted(it.text for it in kb.items()) == sorted(unique_in_order(lines[:done]))

    # (a generation folder orphaned by the kill, if any, is removed by the resuming writer)
    r = ingest(kb, str(src), encoder=FakeEncoder(), resume=True, progress=False)
    assert r.resumed_from == done and r.seen == len(lines) - done
    kb = KnowledgeBase.open(kb.path)
    m, ntotal, rows = committed_state(kb.path)
    assert len(kb) == ntotal == rows == m["counts"]["items"] == 2_700
    hashes = [it.content_hash for it in kb.items()]
    assert len(hashes) == len(set(hashes))
    assert sorted(it.text for it in kb.items()) == sorted(set(lines))
    assert kb.progress(key) == len(lines)
    assert not list(kb.path.glob(".staging-*"))  # the killed writer's staging was cleaned
    kb.verify()
