"""KnowledgeBase: folder layout, add / search / delete / get, dedupe, stable ids, index types,
atomic generations, the single-writer lock, and name / encoder checks."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from ragsc.errors import ConfigError, InputError, KBError
from ragsc.kb import KnowledgeBase, NewItem
from ragsc.kb import manifest as manifest_mod
from ragsc.kb import writer as writer_mod
from ragsc.kb.manifest import check_path

from ._fakes import FAKE, rand_unit, unit


def texts(n, prefix="item"):
    return [NewItem("text", f"{prefix} {i}") for i in range(n)]


def gen_dir(kb: KnowledgeBase) -> Path:
    return kb.path / kb.manifest["generation"]


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def inner(kb):
    return faiss.downcast_index(kb.index.index)


# ---------------------------------------------------------------------------------------- layout
def test_folder_layout_manifest_index_and_sqlite(new_kb):
    kb = new_kb()
    x = rand_unit(20)
    ids = kb.add(x, texts(20))
    m = manifest(kb.path)
    assert m["schema_version"] == manifest_mod.SCHEMA_VERSION == 1
    assert m["encoder"] == {"spec": "fake", "fingerprint": "f1"}
    assert m["dim"] == 8 and m["metric"] == "inner_product" and m["scope"] == "local"
    assert m["factory"] == "Flat" and m["factory_auto"] is True
    assert m["counts"] == {"items": 20}
    assert m["generation"] == "gen-000002"  # create committed gen 1, the add gen 2
    gen = kb.path / m["generation"]
    assert sorted(p.name for p in gen.iterdir()) == ["index.faiss", "meta.sqlite"]
    assert set(m["checksums"]) == {"index.faiss", "meta.sqlite"}
    for name, digest in m["checksums"].items():
        assert manifest_mod.sha256_file(gen / name) == digest

    index = faiss.read_index(str(gen / "index.faiss"))
    assert isinstance(index, faiss.IndexIDMap2) and index.ntotal == 20
    assert sorted(faiss.vector_to_array(index.id_map).tolist()) == sorted(ids)
    np.testing.assert_allclose(index.reconstruct(ids[3]), x[3], atol=1e-6)

    db = sqlite3.connect(gen / "meta.sqlite")
    cols = [r[1] for r in db.execute("PRAGMA table_info(items)")]
    assert cols == ["id", "modality", "text", "source_uri", "content_hash", "created_at", "extra"]
    rows = db.execute("SELECT id, modality, text FROM items ORDER BY id").fetchall()
    db.close()
    assert rows == [(i, "text", f"item {n}") for n, i in enumerate(ids)]

    # the previous generation is kept for readers that still use it; older ones are removed
    kb.add(rand_unit(1, seed=1), [NewItem("text", "one more")])
    kb.add(rand_unit(1, seed=2), [NewItem("text", "and another")])
    assert sorted(p.name for p in kb.path.glob("gen-*")) == ["gen-000003", "gen-000004"]


def test_no_pickle_anywhere(new_kb, tmp_path):
    kb = new_kb()
    kb.add(rand_unit(10), texts(10))
    kb.delete([1])
    out = tmp_path / "export.jsonl"
    kb.export(out)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle")]
    for p in files:
        head = p.read_bytes()[:16]
        assert not head.startswith(b"\x80"), f"{p} looks like a pickle"
        if p.name == "index.faiss":
            assert head[:4] == b"IxM2"  # FAISS's own IndexIDMap2 format
            faiss.read_index(str(p))
        elif p.name == "meta.sqlite":
            assert head == b"SQLite format 3\x00"
        elif p.suffix in (".json", ".jsonl"):
            for line in (p.read_text().splitlines() if p.suffix == ".jsonl" else [p.read_text()]):
                json.loads(line)
        elif p.suffix == ".npy":
            assert np.load(p, allow_pickle=False).shape == (9, 8)
        else:
            assert p.name == "writer.lock" and p.read_text().startswith("pid ")


def test_verify_detects_a_tampered_index(new_kb):
    kb = new_kb()
    kb.add(rand_unit(10), texts(10))
    kb.verify()
    f = gen_dir(kb) / "index.faiss"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(KBError, match="index.faiss does not match its checksum"):
        kb.verify()


def test_verify_detects_tampered_metadata(new_kb):
    kb = new_kb()
    kb.add(rand_unit(10), texts(10, prefix="original"))
    f = gen_dir(kb) / "meta.sqlite"
    data = f.read_bytes()
    assert b"original 3" in data
    f.write_bytes(data.replace(b"original 3", b"tampered 3"))
    reopened = KnowledgeBase.open(kb.path)  # still opens (same row count) ...
    with pytest.raises(KBError, match="meta.sqlite does not match its checksum"):
        reopened.verify()  # ... but verify notices


# ---------------------------------------------------------------------------------------- add / search
def test_add_search_get_len(new_kb):
    kb = new_kb()
    assert len(kb) == 0 and kb.search(rand_unit(2), k=3) == [[], []]
    x = rand_unit(50)
    ids = kb.add(torch.from_numpy(x), [NewItem("text", f"t{i}", source_uri=f"src:{i}", extra={"n": i})
                                        for i in range(50)])
    assert len(ids) == 50 and len(set(ids)) == 50 and all(isinstance(i, int) for i in ids)
    assert len(kb) == 50
    hits = kb.search(x[:5], k=3)
    assert len(hits) == 5
    for n, row in enumerate(hits):
        assert len(row) == 3
        assert row[0].id == ids[n] and row[0].score == pytest.approx(1.0, abs=1e-5)
        assert row[0].item.text == f"t{n}" and row[0].provenance == "local"
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
    # exact inner product for Flat
    assert hits[0][1].score == pytest.approx(float(x[0] @ x[ids.index(hits[0][1].id)]), abs=1e-5)
    items = kb.get([ids[7], 10_000, ids[2]])
    assert sorted((it.id, it.text, it.source_uri, it.extra["n"]) for it in items) == sorted(
        [(ids[7], "t7", "src:7", 7), (ids[2], "t2", "src:2", 2)])
    assert [it.id for it in kb.items()] == sorted(ids)
    assert len(kb.search(x[0], k=500)[0]) == 50  # k above the size: everything, no padding
    with pytest.raises(InputError):
        kb.search(x[:1], k=0)


def test_bad_embeddings_are_input_errors(new_kb):
    kb = new_kb()
    with pytest.raises(InputError, match=r"shape \[N, 8\]"):
        kb.add(rand_unit(2, dim=5), texts(2))
    with pytest.raises(InputError, match="2 embeddings but 3 items"):
        kb.add(rand_unit(2), texts(3))
    bad = rand_unit(2)
    bad[1, 0] = np.nan
    with pytest.raises(InputError, match="finite"):
        kb.add(bad, texts(2))
    assert len(kb.reload()) == 0


def test_dedupe_by_content_hash(new_kb):
    kb = new_kb()
    [a] = kb.add(rand_unit(1), [NewItem("text", "hello world")])
    gen = kb.manifest["generation"]
    assert kb.add(rand_unit(1, seed=5), [NewItem("text", "hello world", source_uri="elsewhere")]) == [None]
    assert len(kb) == 1 and len(kb.reload()) == 1
    assert kb.reload().manifest["generation"] == gen  # nothing was added, so nothing was committed
    # repeated inside one batch
    ids = kb.add(rand_unit(3, seed=6), [NewItem("text", "x"), NewItem("text", "x"), NewItem("text", "y")])
    assert ids[0] is not None and ids[1] is None and ids[2] is not None
    assert len(kb) == 3
    # an explicit content hash wins over the text
    ids = kb.add(rand_unit(2, seed=7), [NewItem("text", "p", content_hash="h1"),
                                        NewItem("text", "q", content_hash="h1")])
    assert ids[1] is None and len(kb) == 4
    # same text, other modality: not a duplicate
    assert kb.add(rand_unit(1, seed=8), [NewItem("image", "hello world")])[0] is not None
    db_hashes = [it.content_hash for it in kb.items()]
    assert len(db_hashes) == len(set(db_hashes)) == 5 == len(kb)
    assert kb.get([a])[0].text == "hello world"


def test_delete_and_update(new_kb):
    kb = new_kb()
    x = rand_unit(10)
    ids = kb.add(x, texts(10))
    assert kb.delete([ids[2], ids[5], 9999]) == 2
    assert len(kb) == 8 and kb.reload().manifest["counts"]["items"] == 8
    assert kb.get([ids[2], ids[5]]) == []
    assert all(h.id not in (ids[2], ids[5]) for h in kb.search(x, k=10)[2] + kb.search(x, k=10)[5])
    assert kb.delete([]) == 0 and kb.delete([ids[2]]) == 0
    # update = delete + add, in one commit: the old vector is gone, the new one is searchable
    new_vec = rand_unit(1, seed=99)
    with kb.writer() as w:
        assert w.delete([ids[0]]) == 1
        [new_id] = w.add(new_vec, [NewItem("text", "item 0", extra={"v": 2})])
    assert new_id is not None and len(kb) == 8
    top = kb.search(new_vec, k=1)[0][0]
    assert top.id == new_id and top.item.extra == {"v": 2} and top.score == pytest.approx(1.0, abs=1e-5)
    old = kb.search(x[0], k=1)[0][0]
    assert old.score < 0.999  # nothing stored at the old vector any more
    # the remaining items kept their ids and vectors
    for n in (1, 3, 4, 6, 7, 8, 9):
        hit = kb.search(x[n], k=1)[0][0]
        assert hit.id == ids[n] and hit.item.text == f"item {n}"


def test_ids_of_deleted_items_are_never_reused(new_kb):
    kb = new_kb()
    ids = kb.add(rand_unit(3), texts(3))
    kb.delete([ids[-1]])
    [new] = kb.add(rand_unit(1, seed=3), [NewItem("text", "a new item")])
    assert new not in ids  # a stale reference to the deleted id must not now name other content


def test_modality_filter(new_kb):
    kb = new_kb()
    x = rand_unit(30)
    items = [NewItem("image" if i % 3 == 0 else "text", f"m{i}", source_uri=f"im{i}.png") for i in range(30)]
    kb.add(x, items)
    for row in kb.search(x[:4], k=5, modality="image"):
        assert len(row) == 5 and all(h.item.modality == "image" for h in row)
    assert kb.search(x[0], k=1, modality="image")[0][0].item.text == "m0"
    assert all(h.item.modality == "text" for h in kb.search(x[0], k=5, modality="text")[0])
    assert kb.search(x[:1], k=3, modality="audio") == [[]]
    assert kb.stats()["by_modality"] == {"image": 10, "text": 20}


def test_modality_filter_finds_a_rare_modality(new_kb):
    kb = new_kb()
    q = rand_unit(1, seed=1)[0]
    rng = np.random.default_rng(2)
    near = unit(q + 0.3 * rng.standard_normal((200, 8)))  # 200 texts close to the query
    far = unit(-q + 0.3 * rng.standard_normal((3, 8)))  # 3 images on the other side
    kb.add(np.concatenate([near, far]), texts(200) + [NewItem("image", f"img {i}") for i in range(3)])
    hits = kb.search(q, k=3, modality="image")[0]
    assert sorted(h.item.text for h in hits) == ["img 0", "img 1", "img 2"]


def test_stats_and_export(new_kb, tmp_path):
    kb = new_kb(scope="global")
    x = rand_unit(6)
    ids = kb.add(x, [NewItem("text", f"e{i}", source_uri=f"u{i}", extra={"k": i}) for i in range(6)])
    s = kb.stats()
    assert s["items"] == 6 and s["scope"] == "global" and s["factory"] == "Flat" and s["dim"] == 8
    assert s["generation"] == kb.manifest["generation"]
    assert s["bytes"] == sum(f.stat().st_size for f in gen_dir(kb).iterdir()) > 0
    assert s["bytes_per_item"] == pytest.approx(s["bytes"] / 6)
    out = tmp_path / "out.jsonl"
    assert kb.export(out) == 6
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ids and rows[4]["text"] == "e4" and rows[4]["extra"] == {"k": 4}
    assert set(rows[0]) == {"id", "modality", "text", "source_uri", "content_hash", "created_at", "extra"}
    np.testing.assert_allclose(np.load(tmp_path / "out.jsonl.npy", allow_pickle=False), x, atol=1e-6)
    assert new_kb("empty").stats()["bytes_per_item"] is None


# ---------------------------------------------------------------------------------------- ids and index types
def test_ids_stable_across_commits(new_kb):
    kb = new_kb()
    xa, xb = rand_unit(20, seed=1), rand_unit(20, seed=2)
    a = kb.add(xa, texts(20, "a"))
    b = kb.add(xb, texts(20, "b"))
    kb.delete(a[:5])
    kb.add(rand_unit(5, seed=3), texts(5, "c"))
    kb = KnowledgeBase.open(kb.path)
    for n in range(5, 20):
        assert kb.get([a[n]])[0].text == f"a {n}" and kb.search(xa[n], k=1)[0][0].id == a[n]
    for n in range(20):
        assert kb.get([b[n]])[0].text == f"b {n}" and kb.search(xb[n], k=1)[0][0].id == b[n]


def test_auto_index_flat_to_hnsw_and_hnsw_delete_keep_ids(new_kb):
    kb = new_kb()
    x = rand_unit(10_010, seed=4)
    ids = kb.add(x[:9_990], texts(9_990))
    assert kb.manifest["factory"] == "Flat" and isinstance(inner(kb), faiss.IndexFlat)
    ids += kb.add(x[9_990:], [NewItem("text", f"item {i}") for i in range(9_990, 10_010)])
    kb = KnowledgeBase.open(kb.path)
    assert len(kb) == 10_010 and kb.manifest["factory"] == "HNSW32" and kb.stats()["factory"] == "HNSW32"
    assert isinstance(inner(kb), faiss.IndexHNSW)
    sample = [0, 1, 777, 5_000, 9_989, 9_990, 10_009]
    hits = kb.search(x[sample], k=1, ef_search=128)
    assert [h[0].id for h in hits] == [ids[n] for n in sample]
    assert all(h[0].score == pytest.approx(1.0, abs=1e-4) for h in hits)
    assert [it.text for it in kb.get([ids[n] for n in sample])] == [f"item {n}" for n in sample]

    gone = [ids[n] for n in (1, 5_000, 9_990)]
    assert kb.delete(gone) == 3  # HNSW cannot remove in place: rebuilt without them at commit
    kb = KnowledgeBase.open(kb.path)
    assert len(kb) == 10_007 and kb.manifest["factory"] == "HNSW32"
    keep = [0, 777, 9_989, 10_009]
    hits = kb.search(x[keep], k=1, ef_search=128)
    assert [h[0].id for h in hits] == [ids[n] for n in keep]
    found = {h.id for row in kb.search(x[[1, 5_000, 9_990]], k=5, ef_search=128) for h in row}
    assert not found & set(gone) and kb.get(gone) == []


def test_explicit_hnsw_delete_rebuilds_with_same_ids(new_kb):
    kb = new_kb(index="HNSW32")
    x = rand_unit(300, seed=5)
    ids = kb.add(x, texts(300))
    assert isinstance(inner(kb), faiss.IndexHNSW)
    kb.delete(ids[::2])
    kb = KnowledgeBase.open(kb.path)
    assert len(kb) == 150 and kb.manifest["factory"] == "HNSW32" and isinstance(inner(kb), faiss.IndexHNSW)
    assert sorted(faiss.vector_to_array(kb.index.id_map).tolist()) == sorted(ids[1::2])
    hits = kb.search(x[1::2], k=1, ef_search=64)
    assert [h[0].id for h in hits] == ids[1::2]
    assert [it.text for it in kb.get(ids[1:8:2])] == [f"item {n}" for n in range(1, 8, 2)]
    # again, now that the ids are no longer contiguous, with an add in the same commit
    y = rand_unit(10, seed=6)
    with kb.writer() as w:
        w.delete(ids[1:100:4])
        more = w.add(y, texts(10, "more"))
    kb = KnowledgeBase.open(kb.path)
    left = [i for i in ids[1::2] if i not in ids[1:100:4]] + more
    assert len(kb) == 135 and sorted(faiss.vector_to_array(kb.index.id_map).tolist()) == sorted(left)
    hits = kb.search(np.concatenate([x[101::2], y]), k=1, ef_search=64)
    assert [h[0].id for h in hits] == ids[101::2] + more


def recall(kb, q, truth, **kw):
    got = kb.search(q, k=10, **kw)
    return np.mean([len({h.id for h in row} & set(t)) / 10 for row, t in zip(got, truth)])


def test_custom_ivf_factory_and_nprobe(new_kb):
    kb = new_kb(index="IVF16,Flat")
    assert kb.manifest["factory"] == "IVF16,Flat" and kb.manifest["factory_auto"] is False
    with pytest.raises(ConfigError, match="cannot train"):
        kb.add(rand_unit(5), texts(5))  # too few vectors to train 16 centroids
    assert len(kb.reload()) == 0
    x = rand_unit(2_000, seed=6)
    ids = np.array(kb.add(x, texts(2_000)))
    kb = KnowledgeBase.open(kb.path)
    assert len(kb) == 2_000 and faiss.extract_index_ivf(inner(kb)).nlist == 16
    q = rand_unit(40, seed=7)
    truth = [ids[np.argsort(-(x @ v))[:10]] for v in q]
    low = recall(kb, q, truth, nprobe=1)
    full = recall(kb, q, truth, nprobe=16)
    assert full == 1.0 and low < 0.9
    assert recall(kb, q, truth, nprobe=1) == low  # settable both ways, not stuck at the last value
    # IVF removes in place; later adds go straight into the trained index
    kb.delete(ids[:100].tolist())
    kb.add(rand_unit(3, seed=8), texts(3, "late"))
    kb = KnowledgeBase.open(kb.path)
    assert len(kb) == 1_903 and kb.manifest["factory"] == "IVF16,Flat"


def test_invalid_factory_is_a_config_error_and_nothing_is_created(tmp_path):
    target = tmp_path / "sub" / "kb"
    with pytest.raises(ConfigError, match="invalid FAISS factory string 'NoSuchIndex42'"):
        KnowledgeBase.create(target, dict(FAKE), index="NoSuchIndex42")
    assert not target.exists() and not (tmp_path / "sub").exists()
    with pytest.raises(ConfigError):
        KnowledgeBase.create(tmp_path / "kb2", dict(FAKE), scope="team")
    assert not (tmp_path / "kb2").exists()


def test_create_refuses_existing_or_non_empty(new_kb, tmp_path):
    kb = new_kb()
    kb.add(rand_unit(2), texts(2))
    with pytest.raises(KBError, match="already exists"):
        new_kb()
    assert len(KnowledgeBase.create(kb.path, dict(FAKE), exist_ok=True)) == 2
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(KBError, match="not an empty folder"):
        new_kb("junk")
    (tmp_path / "empty").mkdir()
    assert len(new_kb("empty")) == 0


def test_create_accepts_an_encoder_object(new_kb, fake_encoder):
    kb = new_kb(encoder=fake_encoder)
    assert kb.dim == 16 and kb.manifest["encoder"] == {"spec": "fake:test", "fingerprint": "fake-fp-1"}


# ---------------------------------------------------------------------------------------- names / encoders
@pytest.mark.parametrize("bad", ["../x", "a/../b", "kbs/.."])
def test_dotdot_paths_are_refused(tmp_path, bad):
    with pytest.raises(InputError, match=r"must not contain '\.\.'"):
        check_path(bad)
    with pytest.raises(InputError):
        KnowledgeBase.create(tmp_path / bad, dict(FAKE))
    with pytest.raises(InputError):
        KnowledgeBase.open(tmp_path / bad)
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
    assert check_path(tmp_path / "a.b" / "..c") == tmp_path / "a.b" / "..c"  # dots inside a name are fine


def test_open_nonexistent_or_broken(tmp_path, new_kb):
    with pytest.raises(KBError, match="no knowledge base"):
        KnowledgeBase.open(tmp_path / "nope")
    kb = new_kb()
    (kb.path / "manifest.json").write_text("{not json")
    with pytest.raises(KBError, match="not valid JSON"):
        KnowledgeBase.open(kb.path)


# ---------------------------------------------------------------------------------------- writers and readers
def test_second_writer_is_refused_with_a_clear_message(new_kb):
    kb = new_kb()
    other = KnowledgeBase.open(kb.path)
    with kb.writer() as w:
        w.add(rand_unit(1), [NewItem("text", "first writer")])
        with pytest.raises(KBError, match="being written by another process") as e:
            other.add(rand_unit(1, seed=1), [NewItem("text", "second writer")])
        assert f"pid {os.getpid()}" in str(e.value) and "one writer at a time" in str(e.value)
        with pytest.raises(KBError, match="being written"):
            with other.writer():
                pass
    assert [it.text for it in KnowledgeBase.open(kb.path).items()] == ["first writer"]
    other.add(rand_unit(1, seed=1), [NewItem("text", "second writer")])  # the lock was released
    assert len(KnowledgeBase.open(kb.path)) == 2


def test_a_writer_may_wait_for_the_other_one(new_kb):
    import fcntl
    import threading

    kb = new_kb()
    held = open(kb.path / "writer.lock", "a+")  # another writer holds the lock (released in 0.5 s)
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(KBError, match="being written"):  # a short wait is not enough
            with kb.writer(wait_s=0.1):
                pass
        threading.Timer(0.5, fcntl.flock, (held, fcntl.LOCK_UN)).start()
        with kb.writer(wait_s=30) as w:
            w.add(rand_unit(1), [NewItem("text", "waited")])
    finally:
        held.close()
    assert [it.text for it in KnowledgeBase.open(kb.path).items()] == ["waited"]


def test_readers_see_the_last_committed_state(new_kb):
    kb = new_kb()
    x = rand_unit(10)
    kb.add(x[:5], texts(5))
    old_gen = kb.manifest["generation"]
    reader = KnowledgeBase.open(kb.path)
    with kb.writer() as w:
        w.add(x[5:], [NewItem("text", f"item {i}") for i in range(5, 10)])
        assert len(reader) == 5
        during = KnowledgeBase.open(kb.path)  # a reader opened mid-write sees the committed state only
        assert len(during) == 5 and during.manifest["generation"] == old_gen
        assert during.search(x[7], k=1)[0][0].item.text != "item 7"
    fresh = KnowledgeBase.open(kb.path)
    assert len(fresh) == 10 and fresh.search(x[7], k=1)[0][0].item.text == "item 7"
    assert len(reader) == 5 and reader.manifest["generation"] == old_gen  # the old view keeps working
    assert reader.search(x[2], k=1)[0][0].item.text == "item 2" and len(reader.get(range(1, 11))) == 5
    assert len(reader.reload()) == 10
    assert len(kb) == 10  # the writing handle follows its own commit


def test_checkpoint_commits_become_visible_while_writing(new_kb):
    kb = new_kb()
    with kb.writer(checkpoint_every=3) as w:
        w.add(rand_unit(2), texts(2))
        assert not w.maybe_checkpoint() and len(KnowledgeBase.open(kb.path)) == 0
        w.add(rand_unit(2, seed=1), texts(2, "more"))
        assert w.maybe_checkpoint() and len(KnowledgeBase.open(kb.path)) == 4
        w.add(rand_unit(1, seed=2), texts(1, "last"))
        w.commit()
        assert len(KnowledgeBase.open(kb.path)) == 5
        w.add(rand_unit(1, seed=3), texts(1, "after"))
    assert len(KnowledgeBase.open(kb.path)) == 6


def test_exception_inside_writer_discards_changes(new_kb):
    kb = new_kb()
    kb.add(rand_unit(3), texts(3))
    gen = kb.manifest["generation"]
    with pytest.raises(RuntimeError, match="boom"):
        with kb.writer() as w:
            w.add(rand_unit(4, seed=1), texts(4, "doomed"))
            w.delete([1])
            raise RuntimeError("boom")
    again = KnowledgeBase.open(kb.path)
    assert len(again) == 3 and again.manifest["generation"] == gen
    assert [it.text for it in again.items()] == ["item 0", "item 1", "item 2"]
    assert not list(kb.path.glob(".staging-*"))
    again.add(rand_unit(1, seed=2), texts(1, "next"))  # the lock was released
    assert len(again) == 4


def test_stale_staging_folders_are_cleaned_by_the_next_writer(new_kb):
    kb = new_kb()
    stale = kb.path / ".staging-99999-deadbeef"
    stale.mkdir()
    (stale / "meta.sqlite").write_bytes(b"half written")
    (stale / "index.faiss").write_bytes(b"half written")
    # readers ignore it
    assert KnowledgeBase.open(kb.path).manifest["generation"] == kb.manifest["generation"]
    kb.add(rand_unit(1), texts(1))
    assert not stale.exists() and not list(kb.path.glob(".staging-*"))
    assert len(KnowledgeBase.open(kb.path)) == 1


def test_a_failed_manifest_write_keeps_the_last_commit(new_kb, monkeypatch):
    kb = new_kb()
    kb.add(rand_unit(2), texts(2))
    gen = kb.manifest["generation"]

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer_mod, "write_json_atomic", disk_full)
    with pytest.raises(OSError, match="No space left"):
        kb.add(rand_unit(1, seed=1), texts(1, "lost"))
    again = KnowledgeBase.open(kb.path)
    assert again.manifest["generation"] == gen and len(again) == 2


def test_a_writer_that_died_before_its_manifest_does_not_block_later_commits(new_kb, monkeypatch):
    kb = new_kb()
    kb.add(rand_unit(2), texts(2))
    with monkeypatch.context() as m:  # the writer "dies" between renaming its generation and the manifest
        m.setattr(writer_mod, "write_json_atomic", lambda *_: (_ for _ in ()).throw(OSError("killed")))
        with pytest.raises(OSError):
            kb.add(rand_unit(1, seed=1), texts(1, "lost"))
    kb = KnowledgeBase.open(kb.path)
    kb.add(rand_unit(1, seed=2), texts(1, "next"))
    assert len(KnowledgeBase.open(kb.path)) == 3


def test_hits_keep_their_items_after_the_kb_changes(new_kb):
    kb = new_kb()
    x = rand_unit(3)
    kb.add(x, texts(3))
    hits = kb.search(x, k=1)
    kb.delete([hits[0][0].id])  # commits through the same handle
    assert hits[0][0].item.text == "item 0"  # a hit describes the generation it was found in


@pytest.mark.parametrize("factory", ["Flat", "HNSW32"])
def test_update_keeps_ids_and_replaces_vectors_and_metadata(tmp_path, factory):
    kb = KnowledgeBase.create(tmp_path / factory, dict(FAKE), index=factory)
    x = rand_unit(20, 8, seed=1)
    ids = kb.add(x, texts(20))
    new = rand_unit(2, 8, seed=2)
    kb.update(ids[:2], new, [NewItem("text", "changed 0"), NewItem("text", "changed 1")])
    kb = kb.reload()
    assert len(kb) == 20
    hit = kb.search(new[:1], 1)[0][0]
    assert hit.id == ids[0] and hit.item.text == "changed 0" and hit.score == pytest.approx(1.0, abs=1e-4)
    assert all(h.score < 0.999 for h in kb.search(x[:1], 20)[0] if h.id == ids[0])  # the old vector is gone
    with pytest.raises(InputError, match="not stored"):
        kb.update([999], new[:1], [NewItem("text", "x")])
    with pytest.raises(InputError, match="already stored"):
        kb.update([ids[3]], new[:1], [NewItem("text", "item 4")])
    assert kb.reload().get([ids[3]])[0].text == "item 3"  # a refused update changes nothing


def test_images_with_the_same_caption_are_different_items(tmp_path):
    kb = KnowledgeBase.create(tmp_path / "k", dict(FAKE))
    ids = kb.add(rand_unit(2, 8, seed=3), [NewItem("image", "a red triangle", "a.png"),
                                          NewItem("image", "a red triangle", "b.png")])
    assert None not in ids and len(kb) == 2


def test_delete_of_items_staged_for_an_untrained_index(tmp_path):
    kb = KnowledgeBase.create(tmp_path / "ivf", dict(FAKE), index="IVF2,Flat")
    with kb.writer() as w:
        ids = w.add(rand_unit(100, 8, seed=4), texts(100))
        assert w.delete(ids[:3]) == 3
    assert len(kb) == 97 and not kb.get(ids[:3])


def test_a_second_create_never_wipes_a_committed_kb(tmp_path):
    from ragsc.kb.manifest import read_manifest
    from ragsc.kb.writer import Writer

    kb = KnowledgeBase.create(tmp_path / "k", dict(FAKE))
    kb.add(rand_unit(1, 8), texts(1))
    manifest = {**read_manifest(kb.path), "generation": None}
    with pytest.raises(KBError, match="already exists"):
        with Writer(kb.path, manifest, fresh=True):
            pass
    assert len(KnowledgeBase.open(kb.path)) == 1


def test_paths_with_uri_characters(tmp_path):
    kb = KnowledgeBase.create(tmp_path / "kb#1%41", dict(FAKE))
    kb.add(rand_unit(2, 8), texts(2))
    assert len(KnowledgeBase.open(tmp_path / "kb#1%41")) == 2


def test_query_time_knobs_do_not_stick(tmp_path):
    from ragsc.kb import index as ix

    kb = KnowledgeBase.create(tmp_path / "ivf", dict(FAKE), index="IVF16,Flat")
    kb.add(rand_unit(1000, 8, seed=5), texts(1000))
    before = ix.get_search_params(kb.index)
    kb.search(rand_unit(2, 8, seed=6), 3, nprobe=1)
    assert ix.get_search_params(kb.index) == before


# ---------------------------------------------------------------------------------------- damage, old handles


def corrupt_page(f: Path, page: int, size: int = 4096) -> None:
    """Flip bytes 8..200 of one page (page 0, with the file header, is left intact)."""
    data = bytearray(f.read_bytes())
    for i in range(page * size + 8, page * size + 200):
        data[i] ^= 0x5A
    f.write_bytes(bytes(data))


def test_damaged_metadata_pages_give_kb_errors_on_every_read_path(new_kb, tmp_path):
    kb = new_kb()
    n = 1_500
    kb.add(rand_unit(n), [NewItem("text", f"a fairly ordinary caption number {i} of a red circle",
                                  f"easy-vqa:train/{i}", extra={"image_id": i}) for i in range(n)])
    f = gen_dir(kb) / "meta.sqlite"
    pristine = f.read_bytes()
    q = rand_unit(5, seed=9)
    outcomes = {"stats caught it": 0, "unharmed": 0}
    for page in range(1, len(pristine) // 4096, 2):
        f.write_bytes(pristine)
        corrupt_page(f, page)
        out = tmp_path / f"export-{page}.jsonl"
        try:
            reader = KnowledgeBase.open(kb.path)
        except KBError:
            continue
        reads = {"items": lambda r: list(r.items()), "get": lambda r: r.get(range(1, n + 1)),
                 "search": lambda r: [h.item for row in r.search(q, 50, modality="text") for h in row],
                 "progress": lambda r: r.progress("x")}
        for name, read in reads.items():
            try:
                read(reader)
            except KBError:
                pass
            except Exception as exc:  # a raw sqlite3 / FAISS / JSON error
                pytest.fail(f"page {page}: {name} raised {type(exc).__name__}: {exc}")
        try:
            reader.stats()
        except KBError as exc:
            assert "is damaged" in str(exc)
            outcomes["stats caught it"] += 1
            with pytest.raises(KBError, match="is damaged"):
                reader.export(out)
            assert not out.exists() and not list(tmp_path.glob(".export-*"))
            continue
        assert reader.export(out) == n, f"page {page}: stats passed, so export must work"
        outcomes["unharmed"] += 1
    assert outcomes["stats caught it"] > 2 * outcomes["unharmed"], outcomes


def test_check_is_quick_check_and_a_writer_refuses_to_copy_damage(new_kb):
    kb = new_kb()
    kb.add(rand_unit(3_000), texts(3_000))
    kb.check()
    gen = kb.manifest["generation"]
    corrupt_page(gen_dir(kb) / "meta.sqlite", 3)
    with pytest.raises(KBError, match="fails SQLite's integrity check"):
        KnowledgeBase.open(kb.path).check()
    with pytest.raises(KBError, match="is damaged"):
        kb.add(rand_unit(1, seed=1), texts(1, "new"))
    assert KnowledgeBase.open(kb.path).manifest["generation"] == gen and not list(kb.path.glob(".staging-*"))


def test_export_to_a_folder_or_a_missing_folder_is_an_input_error(new_kb, tmp_path):
    kb = new_kb()
    kb.add(rand_unit(3), texts(3))
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "v.jsonl.npy").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        kb.export(tmp_path / "a-folder")
    with pytest.raises(InputError, match=r"v\.jsonl\.npy: is a folder"):
        kb.export(tmp_path / "v.jsonl")
    with pytest.raises(InputError, match="does not exist"):
        kb.export(tmp_path / "missing" / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "kb", "v.jsonl.npy"]
    assert not list((tmp_path / "a-folder").iterdir())


def test_export_never_replaces_a_special_file_or_a_file_of_the_kb(new_kb, tmp_path):
    """Only a new path or a regular file outside the KB is replaced (ragsc.targets.check_file)."""
    import stat

    kb = new_kb()
    kb.add(rand_unit(3), texts(3))
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InputError, match="pipe: is a FIFO"):
        kb.export(tmp_path / "pipe")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    manifest = (kb.path / "manifest.json").read_bytes()
    with pytest.raises(InputError, match="lies inside the knowledge base"):
        kb.export(kb.path / "manifest.json")
    assert (kb.path / "manifest.json").read_bytes() == manifest and kb.check() is None
    assert kb.export(tmp_path / "ok.jsonl") == 3 and not list(tmp_path.glob(".*.tmp"))


def test_create_on_a_file_is_a_kb_error_and_leaves_it(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    with pytest.raises(KBError, match="is a file, not a folder"):
        KnowledgeBase.create(f, dict(FAKE))
    with pytest.raises(KBError, match="notes.txt is a file, not a folder"):
        KnowledgeBase.create(f / "kb", dict(FAKE))
    assert f.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


# ---------------------------------------------------------------------------------------- bad input
def test_an_id_out_of_sqlites_range_is_an_input_error(new_kb):
    kb = new_kb()
    kb.add(rand_unit(2), texts(2))
    gen = kb.manifest["generation"]
    huge = 99999999999999999999999
    for call in (lambda: kb.delete([1, huge]), lambda: kb.get([huge]),
                 lambda: kb.update([huge], rand_unit(1), texts(1, "x")), lambda: kb.delete([-(2**63) - 1])):
        with pytest.raises(InputError, match="out of range"):
            call()
    assert manifest(kb.path)["generation"] == gen and len(KnowledgeBase.open(kb.path)) == 2


def test_metadata_that_json_cannot_hold_is_an_input_error_naming_it(new_kb):
    import datetime

    kb = new_kb()
    kb.add(rand_unit(1), texts(1))
    gen = kb.manifest["generation"]
    when = datetime.datetime(2024, 5, 1)
    with pytest.raises(InputError, match=r"item 1: extra field 'when' .*datetime"):
        kb.add(rand_unit(2, seed=1), [NewItem("text", "fine"), NewItem("text", "not", extra={"when": when})])
    with pytest.raises(InputError, match=r"item 0: extra field 'when' .*datetime"):
        kb.update([1], rand_unit(1, seed=2), [NewItem("text", "not", extra={"when": when})])
    assert manifest(kb.path)["generation"] == gen and [it.text for it in kb.reload().items()] == ["item 0"]


def test_names_longer_than_the_file_system_allows_are_input_errors(tmp_path):
    long = tmp_path / ("x" * 300)
    for call in (lambda: KnowledgeBase.open(long), lambda: KnowledgeBase.create(long, dict(FAKE)),
                 lambda: KnowledgeBase.open(tmp_path / "a" / ("y" * 256) / "b")):
        with pytest.raises(InputError, match="too long"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_an_empty_path_is_an_input_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for call in (lambda: KnowledgeBase.create("", dict(FAKE)), lambda: manifest_mod.resolve_path("")):
        with pytest.raises(InputError, match="empty"):
            call()
    assert list(tmp_path.iterdir()) == []
