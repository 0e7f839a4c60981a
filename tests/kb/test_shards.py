"""A KB split into shards and searched scatter-gather gives the same top-k as the whole KB (FAISS
IndexShards)."""

import faiss
import numpy as np
import pytest

from ragsc.errors import InputError, KBError
from ragsc.kb import NewItem
from ragsc.kb.shards import ShardedKB, merge, shard_paths, split
from tests.kb._fakes import rand_unit


@pytest.fixture
def whole(new_kb):
    kb = new_kb("whole")
    x = rand_unit(600, 8, seed=3)
    kb.add(x, [NewItem("image" if i % 3 == 0 else "text", f"item {i}", f"src:{i}") for i in range(600)])
    return kb


def _key(row):
    return [(round(h.score, 5), h.text) for h in row]


def test_split_then_search_gives_the_whole_kbs_top_k(whole, tmp_path):
    paths = split(whole, tmp_path / "shards", 3)
    names = ["shard-000", "shard-001", "shard-002"]
    assert [p.name for p in paths] == names == [p.name for p in shard_paths(tmp_path / "shards")]
    sharded = ShardedKB(tmp_path / "shards")
    assert len(sharded) == len(whole) == 600 and [len(s) for s in sharded.shards] == [200, 200, 200]
    q = rand_unit(25, 8, seed=9)
    for modality in (None, "image"):
        got = sharded.search(q, 10, modality=modality)
        want = whole.search(q, 10, modality=modality)
        assert [_key(r) for r in got] == [[(round(h.score, 5), h.item.text) for h in row] for row in want]
        assert all(h.modality == "image" for r in got for h in r) or modality is None
    # FAISS's own IndexShards over the same shard indexes agrees on the scores
    shards = faiss.IndexShards(8, True, False)
    for s in sharded.shards:
        shards.add_shard(s.index)
    scores, _ = shards.search(q, 10)
    assert np.allclose(scores, [[h.score for h in row] for row in sharded.search(q, 10)], atol=1e-5)
    sharded.close()


def test_merge_breaks_ties_by_shard_then_id():
    from ragsc.kb.shards import ShardHit

    a = [[ShardHit(0, 5, 0.5, "text", "a", None), ShardHit(0, 1, 0.1, "text", "b", None)]]
    b = [[ShardHit(1, 2, 0.5, "text", "c", None), ShardHit(1, 3, 0.9, "text", "d", None)]]
    assert [h.text for h in merge([a, b], 3)[0]] == ["d", "a", "c"]


def test_split_refuses_what_it_cannot_do(whole, tmp_path, new_kb):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        split(whole, tmp_path / "busy", 2)
    with pytest.raises(InputError, match="n_shards"):
        split(whole, tmp_path / "s", 0)
    lossy = new_kb("lossy", index="IVF4,PQ2x4")
    lossy.add(rand_unit(300, 8), [NewItem("text", f"t{i}") for i in range(300)])
    with pytest.raises(KBError, match="cannot give its vectors back"):
        split(lossy, tmp_path / "s2", 2)
    with pytest.raises(KBError, match="no shards"):
        ShardedKB(tmp_path)


def test_kb_shard_command(whole, cli, tmp_path):
    r = cli("kb", "shard", whole.path, "--shards", "4", "--out", tmp_path / "s")
    assert r.code == 0, r.err
    assert "into 4 shards" in r.out and "[150, 150, 150, 150]" in r.out
    r = cli("kb", "shard", whole.path, "--shards", "2", "--out", tmp_path / "s")
    assert r.code == 2 and "not empty" in r.err
