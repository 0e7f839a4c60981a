"""ragsc.kb.generation: opening a committed generation (encoder check, consistency, retries while commits
retire it) and serving it after it is retired."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragsc.errors import KBError
from ragsc.kb import KnowledgeBase, NewItem

from ._fakes import FakeEncoder, rand_unit


def texts(n, prefix="item"):
    return [NewItem("text", f"{prefix} {i}") for i in range(n)]


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def test_open_with_another_encoder_names_both(new_kb):
    a = FakeEncoder(spec="fake:alpha", fingerprint="fp-alpha")
    kb = new_kb(encoder=a)
    same = FakeEncoder(spec="fake:other-spec", fingerprint="fp-alpha")
    assert KnowledgeBase.open(kb.path, encoder=same).dim == 16
    with pytest.raises(KBError) as e:
        KnowledgeBase.open(kb.path, encoder=FakeEncoder(spec="fake:beta", fingerprint="fp-beta"))
    msg = str(e.value)
    assert all(s in msg for s in ("fake:alpha", "fp-alpha", "fake:beta", "fp-beta"))


def test_open_detects_an_inconsistent_generation(new_kb):
    kb = new_kb()
    kb.add(rand_unit(4), texts(4))
    m = manifest(kb.path)
    m["counts"]["items"] = 5
    (kb.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KBError, match="inconsistent"):
        KnowledgeBase.open(kb.path)


def test_reader_survives_the_next_commit_removing_older_generations(new_kb):
    kb = new_kb()
    x = rand_unit(3)
    kb.add(x, texts(3))
    reader = KnowledgeBase.open(kb.path)
    kb.add(rand_unit(1, seed=1), texts(1, "b"))
    kb.add(rand_unit(1, seed=2), texts(1, "c"))
    assert not (kb.path / reader.manifest["generation"]).exists()
    assert reader.search(x[1], k=1)[0][0].item.text == "item 1"


def test_a_handle_keeps_serving_its_generation_after_two_later_commits(new_kb):
    kb = new_kb()
    x = rand_unit(4)
    kb.add(x, texts(4))
    with kb.writer() as w:
        w.set_progress("src", 4)
    old = KnowledgeBase.open(kb.path)
    old_gen, old_stats = old.manifest["generation"], old.stats()
    writer = KnowledgeBase.open(kb.path)
    writer.add(rand_unit(1, seed=1), texts(1, "b"))
    writer.add(rand_unit(1, seed=2), texts(1, "c"))
    assert not (kb.path / old_gen).exists()  # retired by the second commit
    assert old.stats() == old_stats and old_stats["items"] == 4 and old_stats["generation"] == old_gen
    assert [it.text for it in old.items()] == [f"item {i}" for i in range(4)]
    assert [it.text for it in old.get([1, 2])] == ["item 0", "item 1"]
    assert old.search(x[2], k=1)[0][0].item.text == "item 2" and old.progress("src") == 4
    assert len(old.reload()) == 6 and old.reload().stats()["generation"] != old_gen
    old.verify()  # the retired files, read through the descriptors the handle holds ...
    old.manifest["checksums"]["meta.sqlite"] = "0" * 64
    with pytest.raises(KBError, match="meta.sqlite does not match its checksum"):
        old.verify()  # ... and really compared


def test_open_retries_when_commits_retire_the_generation_it_read(new_kb, monkeypatch):
    import ragsc.kb.generation as generation

    kb = new_kb()
    kb.add(rand_unit(2), texts(2))
    real_read = generation.read_manifest
    stale = real_read(kb.path)
    kb.add(rand_unit(1, seed=1), texts(1, "b"))
    kb.add(rand_unit(1, seed=2), texts(1, "c"))  # `stale` names a generation that is gone now
    first = iter([stale])
    monkeypatch.setattr(generation, "read_manifest", lambda p: next(first, None) or real_read(p))
    again = KnowledgeBase.open(kb.path)
    assert len(again) == 4 and again.manifest["generation"] == real_read(kb.path)["generation"]


@pytest.mark.parametrize("name", ["index.faiss", "meta.sqlite"])
def test_a_data_file_that_links_to_another_kb_is_refused(new_kb, name):
    mine = new_kb("mine")
    mine.add(rand_unit(3), texts(3, "mine"))
    other = new_kb("other")
    other.add(rand_unit(3, seed=1), texts(3, "other"))
    gen = mine.path / mine.manifest["generation"]
    theirs = other.path / other.manifest["generation"] / name
    (gen / name).unlink()
    (gen / name).symlink_to(theirs)
    with pytest.raises(KBError, match=f"{mine.manifest['generation']}/{name} is a link"):
        KnowledgeBase.open(mine.path)
    with pytest.raises(KBError, match=f"{name} is a link"):
        mine.add(rand_unit(1, seed=2), texts(1, "new"))
    assert manifest(mine.path)["generation"] == mine.manifest["generation"]
    assert not list(mine.path.glob(".staging-*")) and (gen / name).is_symlink()
    assert [it.text for it in KnowledgeBase.open(other.path).items()] == ["other 0", "other 1", "other 2"]
