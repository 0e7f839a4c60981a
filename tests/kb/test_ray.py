"""The Ray runner (extra: ray) on a local Ray instance: same result as the sequential runner."""

import pytest

ray = pytest.importorskip("ray")

from ragsc.kb import KnowledgeBase, ingest  # noqa: E402
from tests.conftest import start_local_ray  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    start_local_ray(num_cpus=1)
    yield
    ray.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_ray_ingestion_matches_sequential(embedded, tmp_path, monkeypatch):
    from ragsc.kb.writer import Writer

    committed = []  # the item count of each generation the Ray runner commits
    real_commit = Writer.commit

    def commit(self, keep_writing=True):
        n = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        done = real_commit(self, keep_writing)
        if done:
            committed.append(n)
        return done

    lines = [f"note {i}: the {['red', 'blue', 'green'][i % 3]} shape moved" for i in range(40)]
    src = tmp_path / "notes.txt"
    src.write_text("\n".join(lines + lines[:5]))  # 5 duplicates
    par = KnowledgeBase.create(tmp_path / "ray", embedded)
    monkeypatch.setattr(Writer, "commit", commit)
    rep = ingest(par, str(src), embedded, distributed="ray", batch_size=8, checkpoint_every=5,
                 progress=False)
    monkeypatch.undo()
    assert (rep.seen, rep.added, rep.duplicates) == (45, 40, 5)
    # a checkpoint every 5 new items, though batches hold 8; the last commit moves the progress past the
    # 5 duplicates at the end
    assert committed == [5, 10, 15, 20, 25, 30, 35, 40, 40]
    seq = KnowledgeBase.create(tmp_path / "seq", embedded)
    ingest(seq, str(src), embedded, progress=False)
    par, seq = par.reload(), seq.reload()
    assert len(par) == len(seq) == 40
    assert par.progress(rep.source) == 45
    assert sorted(i.content_hash for i in par.items()) == sorted(i.content_hash for i in seq.items())
    q = embedded.encode_texts(["note 7: the blue shape moved"])
    assert [h.item.text for h in par.search(q, 3)[0]] == [h.item.text for h in seq.search(q, 3)[0]]
    # resuming a finished ingestion adds nothing
    again = ingest(par, str(src), embedded, distributed="ray", resume=True, progress=False)
    assert again.added == 0 and len(par.reload()) == 40


@pytest.mark.usefixtures("local_ray")
def test_shards_on_ray_actors_match_the_whole_kb(new_kb, tmp_path):
    """Scatter-gather over one Ray actor per shard: the same top-k as the whole KB searched at once."""
    from ragsc.kb import NewItem
    from ragsc.kb.shards import ShardedKB, split
    from tests.kb._fakes import rand_unit

    whole = new_kb("whole")
    whole.add(rand_unit(300, 8, seed=4), [NewItem("text", f"item {i}") for i in range(300)])
    split(whole, tmp_path / "shards", 3)
    sharded = ShardedKB(tmp_path / "shards", engine="ray")
    try:
        assert len(sharded) == 300
        q = rand_unit(10, 8, seed=5)
        got = [[(round(h.score, 5), h.text) for h in row] for row in sharded.search(q, 7)]
        want = [[(round(h.score, 5), h.item.text) for h in row] for row in whole.search(q, 7)]
        assert got == want
    finally:
        sharded.close()
