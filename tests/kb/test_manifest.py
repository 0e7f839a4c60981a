"""The manifest is validated before any path in it is used: generation folder, checksum names, field types."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ragsc.errors import KBError
from ragsc.kb import KnowledgeBase, NewItem

from ._fakes import rand_unit


def texts(n, prefix="item"):
    return [NewItem("text", f"{prefix} {i}") for i in range(n)]


def edit_manifest(path: Path, **changes) -> None:
    m = json.loads((path / "manifest.json").read_text())
    m.update(changes)
    (path / "manifest.json").write_text(json.dumps(m))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, but the lock file's (a writer writes its pid there before reading the manifest)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "writer.lock"}


@pytest.fixture
def two_kbs(new_kb):
    """A KB and another one beside it (the one a hostile manifest points at)."""
    mine = new_kb("mine")
    mine.add(rand_unit(3), texts(3, "mine"))
    other = new_kb("other-kb")
    other.add(rand_unit(5, seed=1), texts(5, "other"))
    return mine, other


@pytest.mark.parametrize("generation", ["../other-kb/gen-000002", "ABSOLUTE", "gen-2", "gen-000002/", ".", "",
                                        "gen-000002/../../other-kb/gen-000002",
                                        "gen-" + "1" * 253])  # longer than a file name may be
def test_a_generation_outside_the_kb_is_refused_everywhere(two_kbs, generation):
    mine, other = two_kbs
    if generation == "ABSOLUTE":
        generation = str(other.path / other.manifest["generation"])
    own_generations = sorted(p.name for p in mine.path.glob("gen-*"))
    edit_manifest(mine.path, generation=generation)
    before_other, before_mine = snapshot(other.path), snapshot(mine.path)
    for read in (KnowledgeBase.open, lambda p: KnowledgeBase.open(p).stats(),
                 lambda p: KnowledgeBase.open(p).export(p.parent / "out.jsonl")):
        with pytest.raises(KBError, match="generation: must name a generation folder inside the knowledge"):
            read(mine.path)
    with pytest.raises(KBError, match="generation"):  # a writer refuses it: nothing copied, nothing deleted
        mine.add(rand_unit(1, seed=2), texts(1, "new"))
    assert sorted(p.name for p in mine.path.glob("gen-*")) == own_generations
    assert snapshot(other.path) == before_other
    assert snapshot(mine.path) == before_mine
    assert not (mine.path.parent / "out.jsonl").exists()


def test_a_generation_that_links_elsewhere_is_refused(two_kbs):
    mine, other = two_kbs
    (mine.path / "gen-000009").symlink_to(other.path / other.manifest["generation"], target_is_directory=True)
    edit_manifest(mine.path, generation="gen-000009")
    with pytest.raises(KBError, match="gen-000009 is a link"):
        KnowledgeBase.open(mine.path)
    with pytest.raises(KBError, match="is a link"):
        mine.add(rand_unit(1, seed=2), texts(1, "new"))
    assert len(KnowledgeBase.open(other.path)) == 5 and (other.path / other.manifest["generation"]).is_dir()


@pytest.mark.parametrize("checksums, problem", [
    ({"index.faiss": "0" * 64, "meta.sqlite": "0" * 64, "../../../etc/passwd": "0" * 64},
     "exactly index.faiss and"),
    ({"index.faiss": "0" * 64, "../other-kb/gen-000002/meta.sqlite": "0" * 64}, "exactly index.faiss and"),
    ({"index.faiss": "0" * 64}, "exactly index.faiss and meta.sqlite"),
    ({"index.faiss": "0" * 64, "meta.sqlite": "not a digest"}, "meta.sqlite: a checksum is 64"),
])
def test_checksum_names_must_be_the_generation_files(two_kbs, checksums, problem):
    mine, _ = two_kbs
    edit_manifest(mine.path, checksums=checksums)
    with pytest.raises(KBError, match="invalid manifest: checksums: ") as e:
        KnowledgeBase.open(mine.path)
    assert problem in str(e.value)


@pytest.mark.parametrize("field, value, named", [
    ("generation", 7, "generation: Input should be a valid string (got 7)"),
    ("generation", None, "generation: Input should be a valid string (got None)"),
    ("dim", "8", "dim: Input should be a valid integer (got '8')"),
    ("dim", 0, "dim: Input should be greater than 0"),
    ("counts", {"items": -1}, "counts.items: Input should be greater than or equal to 0"),
    ("counts", [], "counts: Input should be a valid dictionary"),
    ("scope", "team", "scope: Input should be 'local' or 'global'"),
    ("encoder", {"spec": "fake"}, "encoder.fingerprint: Field required"),
    ("factory_auto", "yes", "factory_auto: Input should be a valid boolean"),
    ("checksums", None, "checksums: Input should be a valid dictionary"),
    ("surprise", 1, "surprise: Extra inputs are not permitted"),
])
def test_a_manifest_field_of_the_wrong_type_is_a_kb_error_naming_it(two_kbs, field, value, named):
    mine, _ = two_kbs
    edit_manifest(mine.path, **{field: value})
    with pytest.raises(KBError) as e:
        KnowledgeBase.open(mine.path)
    assert "invalid manifest" in str(e.value) and named in str(e.value)


def test_a_missing_field_is_named(two_kbs):
    mine, _ = two_kbs
    m = json.loads((mine.path / "manifest.json").read_text())
    del m["generation"], m["counts"]
    (mine.path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KBError, match="generation: Field required; counts: Field required"):
        KnowledgeBase.open(mine.path)


def test_a_valid_manifest_written_by_an_older_run_still_opens(two_kbs):
    mine, _ = two_kbs
    m = json.loads((mine.path / "manifest.json").read_text())
    for optional in ("metric", "factory_auto", "created_at", "committed_at"):
        del m[optional]
    (mine.path / "manifest.json").write_text(json.dumps(m))
    assert [it.text for it in KnowledgeBase.open(mine.path).items()] == ["mine 0", "mine 1", "mine 2"]


def test_generation_numbers_past_six_digits(new_kb):
    kb = new_kb()
    gen = kb.path / kb.manifest["generation"]
    shutil.move(gen, kb.path / "gen-1000000")
    edit_manifest(kb.path, generation="gen-1000000")
    kb = KnowledgeBase.open(kb.path)
    kb.add(rand_unit(1), texts(1))
    assert kb.manifest["generation"] == "gen-1000001" and len(KnowledgeBase.open(kb.path)) == 1
