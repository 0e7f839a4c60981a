"""Writer: a write that changes nothing commits nothing; a writer may wait for the lock and says so."""

from __future__ import annotations

import fcntl
import json
import threading
from pathlib import Path

import pytest

from ragsc.errors import KBError
from ragsc.kb import KnowledgeBase, NewItem, ingest
from ragsc.kb.ingestion import source_key

from ._fakes import FakeEncoder, rand_unit


def texts(n, prefix="item"):
    return [NewItem("text", f"{prefix} {i}") for i in range(n)]


def generation(path: Path) -> str:
    return json.loads((path / "manifest.json").read_text())["generation"]


def test_writes_that_change_nothing_commit_nothing(new_kb):
    kb = new_kb()
    ids = kb.add(rand_unit(3), texts(3))
    gen = generation(kb.path)
    assert kb.delete([9_999]) == 0 and kb.delete([]) == 0  # missing ids
    assert kb.add(rand_unit(3, seed=1), texts(3)) == [None] * 3  # all duplicates
    assert generation(kb.path) == gen and sorted(p.name for p in kb.path.glob("gen-*"))[-1] == gen
    with kb.writer() as w:
        w.set_progress("src", 0)
    assert generation(kb.path) != gen  # a new progress marker is a change
    gen = generation(kb.path)
    with kb.writer() as w:
        w.set_progress("src", 0)  # the same marker again is not
        assert not w.commit() and not w.maybe_checkpoint()
    assert generation(kb.path) == gen and sorted(p.name for p in kb.path.glob("gen-*"))[-1] == gen
    assert not list(kb.path.glob(".staging-*"))
    assert [it.id for it in KnowledgeBase.open(kb.path).items()] == ids


def _ingested(new_kb, tmp_path):
    """A KB that has ingested a 10-line source to its end: (kb, encoder, source, its generation)."""
    enc = FakeEncoder()
    kb = new_kb(encoder=enc)
    src = tmp_path / "lines.txt"
    src.write_text("\n".join(f"line {i}" for i in range(10)) + "\n")
    ingest(kb, str(src), encoder=enc, progress=False)
    return kb, enc, src, generation(kb.path)


def test_an_ingestion_commits_only_what_moved(new_kb, tmp_path):
    kb, enc, src, gen = _ingested(new_kb, tmp_path)
    r = ingest(kb, str(src), encoder=enc, resume=True, progress=False)  # a finished source
    assert (r.seen, r.added) == (0, 0) and generation(kb.path) == gen
    r = ingest(kb, str(src), encoder=enc, progress=False)  # everything again: all duplicates, same progress
    assert (r.seen, r.duplicates) == (10, 10) and generation(kb.path) == gen
    # five more records, all repeats of stored ones: no item added, but --resume must start after them
    src.write_text("\n".join([f"line {i}" for i in range(10)] + [f"line {i}" for i in range(5)]) + "\n")
    r = ingest(kb, str(src), encoder=enc, resume=True, progress=False)
    assert (r.resumed_from, r.seen, r.added) == (10, 5, 0) and generation(kb.path) != gen
    assert KnowledgeBase.open(kb.path).progress(source_key(str(src), "text")) == 15


def hold_lock(path: Path):
    held = open(path / "writer.lock", "w")  # another process's writer: its pid in the lock file
    held.write("pid 424242 since noon")
    held.flush()
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return held


def test_a_waiting_writer_says_so_once_and_then_writes(new_kb):
    kb = new_kb()
    held = hold_lock(kb.path)
    said = []
    try:
        threading.Timer(0.5, fcntl.flock, (held, fcntl.LOCK_UN)).start()
        with kb.writer(wait_s=30, on_wait=said.append) as w:
            w.add(rand_unit(1), texts(1, "waited"))
    finally:
        held.close()
    assert said == [f"waiting up to 30 s for the writer lock of knowledge base {kb.path} (held by pid 424242 "
                    "since noon)"]
    assert [it.text for it in KnowledgeBase.open(kb.path).items()] == ["waited 0"]


def test_a_writer_that_gives_up_says_how_long_it_waited(new_kb):
    kb = new_kb()
    held = hold_lock(kb.path)
    said = []
    try:
        with pytest.raises(KBError, match=r"being written by another process \(pid 424242 since noon\) "
                                          r"\(waited 0.2 s\)"):
            with kb.writer(wait_s=0.2, on_wait=said.append):
                pass
        with pytest.raises(KBError, match=r"\(pid 424242 since noon\); only one writer"):  # no wait: at once
            with kb.writer(on_wait=said.append):
                pass
    finally:
        held.close()
    assert len(said) == 1 and "waiting up to 0.2 s" in said[0]


def test_ingest_takes_the_lock_before_it_loads_the_encoder(new_kb, tmp_path, monkeypatch):
    import ragsc.encoders

    kb = new_kb(encoder=FakeEncoder())
    src = tmp_path / "lines.txt"
    src.write_text("one\ntwo\n")
    loads = []
    monkeypatch.setattr(ragsc.encoders, "load_encoder", lambda spec: loads.append(spec) or FakeEncoder())
    held = hold_lock(kb.path)
    try:
        with pytest.raises(KBError, match="being written by another process"):
            ingest(kb, str(src), progress=False)
    finally:
        held.close()
    assert loads == [] and len(KnowledgeBase.open(kb.path)) == 0
    assert ingest(kb, str(src), progress=False).added == 2 and loads == ["fake:test"]


def test_an_identical_update_commits_nothing_a_real_one_does(new_kb):
    kb = new_kb()
    x = rand_unit(3)
    items = [NewItem("text", "a", extra={"n": 1}), NewItem("text", "b"), NewItem("text", "c")]
    ids = kb.add(x, items)
    gen = generation(kb.path)
    kb.update(ids, x, items)  # the same vectors and metadata
    kb.update(ids[1:2], x[1:2], items[1:2])
    assert generation(kb.path) == gen and sorted(p.name for p in kb.path.glob("gen-*"))[-1] == gen
    kb.update(ids[:1], x[:1], [NewItem("text", "a", extra={"n": 2})])  # new metadata
    assert generation(kb.path) != gen
    gen = generation(kb.path)
    kb.update(ids[2:], rand_unit(1, seed=7), items[2:])  # a new vector
    assert generation(kb.path) != gen
    assert [it.extra for it in KnowledgeBase.open(kb.path).items()] == [{"n": 2}, {}, {}]


def test_an_identical_update_of_an_hnsw_index_commits_nothing(new_kb):
    kb = new_kb(index="HNSW32")
    x = rand_unit(3)
    ids = kb.add(x, texts(3))
    gen = generation(kb.path)
    kb.update(ids, x, texts(3))
    assert generation(kb.path) == gen


def test_a_limited_ingestion_of_a_finished_source_does_not_roll_its_progress_back(new_kb, tmp_path):
    kb, enc, src, gen = _ingested(new_kb, tmp_path)
    r = ingest(kb, str(src), encoder=enc, limit=3, progress=False)  # no --resume: the first 3 again
    assert (r.seen, r.duplicates, r.added) == (3, 3, 0)
    assert generation(kb.path) == gen  # nothing changed, nothing committed
    assert KnowledgeBase.open(kb.path).progress(source_key(str(src), "text")) == 10
    r = ingest(kb, str(src), encoder=enc, resume=True, progress=False)
    assert (r.resumed_from, r.seen) == (10, 0)


def committed_counts(monkeypatch) -> list[int]:
    """The item count of every generation a writer commits from now on."""
    from ragsc.kb import writer as writer_mod

    counts = []
    real = writer_mod.Writer.commit

    def commit(self, keep_writing=True):
        n = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] if self.db is not None else None
        done = real(self, keep_writing)
        if done:
            counts.append(n)
        return done

    monkeypatch.setattr(writer_mod.Writer, "commit", commit)
    return counts


def test_checkpoint_every_below_the_shard_size_is_honoured(new_kb, tmp_path, monkeypatch):
    enc = FakeEncoder()
    kb = new_kb(encoder=enc)
    src = tmp_path / "lines.txt"
    src.write_text("\n".join(["line 0", "line 1", "line 0"] + [f"line {i}" for i in range(2, 10)]) + "\n")
    counts = committed_counts(monkeypatch)
    r = ingest(kb, str(src), encoder=enc, checkpoint_every=3, progress=False)  # default shard_size 512
    assert (r.seen, r.added) == (11, 10)
    assert counts == [3, 6, 9, 10]  # a commit as soon as 3 new items are staged, the rest at the end
    assert KnowledgeBase.open(kb.path).progress(source_key(str(src), "text")) == 11


# ---------------------------------------------------------------------------------------- integrity
def tamper(f: Path, old: bytes, new: bytes) -> None:
    data = f.read_bytes()
    assert old in data
    f.write_bytes(data.replace(old, new))


@pytest.mark.parametrize("name", ["meta.sqlite", "index.faiss"])
def test_a_writer_refuses_a_generation_whose_bytes_do_not_match_its_checksums(new_kb, tmp_path, name):
    enc = FakeEncoder(dim=8, spec="fake", fingerprint="f1")  # the encoder new_kb() records
    kb = new_kb()
    x = rand_unit(10)
    kb.add(x, texts(10, "original"))
    gen = generation(kb.path)
    f = kb.path / gen / name
    if name == "meta.sqlite":  # bytes inside a record: SQLite's page checks cannot see it
        tamper(f, b"original 3", b"tampered 3")
    else:  # one stored vector
        tamper(f, x[3].tobytes(), x[4].tobytes())
    before = {p.name: p.read_bytes() for p in (kb.path / gen).iterdir()}
    KnowledgeBase.open(kb.path).check()  # passes: the damage is in the bytes, not the structure
    src = tmp_path / "lines.txt"
    src.write_text("something new\n")
    writes = {"add": lambda: kb.add(rand_unit(1, seed=1), texts(1, "new")),
              "delete": lambda: kb.delete([1]),
              "update": lambda: kb.update([2], rand_unit(1, seed=2), texts(1, "changed")),
              "ingest": lambda: ingest(kb, str(src), encoder=enc, progress=False)}
    for what, write in writes.items():
        with pytest.raises(KBError, match=f"{name} does not match its checksum") as e:
            write()
        assert gen in str(e.value) and "restore" in str(e.value), what
    assert generation(kb.path) == gen and sorted(p.name for p in kb.path.glob("gen-*"))[-1] == gen
    assert not list(kb.path.glob(".staging-*"))
    assert {p.name: p.read_bytes() for p in (kb.path / gen).iterdir()} == before


def test_stats_says_whether_it_verified_the_checksums(new_kb):
    kb = new_kb()
    kb.add(rand_unit(3), texts(3, "original"))
    assert kb.stats()["verified"] is False
    assert kb.stats(verify=True)["verified"] is True
    tamper(kb.path / generation(kb.path) / "meta.sqlite", b"original 1", b"tampered 1")
    reader = KnowledgeBase.open(kb.path)
    assert reader.stats()["verified"] is False  # cheap, and says so
    with pytest.raises(KBError, match="meta.sqlite does not match its checksum"):
        reader.stats(verify=True)
