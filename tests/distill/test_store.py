"""ragsc.distill.store: teacher outputs computed once, resumable, refused for another teacher or recipe."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.datasets import SHAPES
from ragsc.datasets.fashion_mnist import FASHION_MNIST_DIR
from ragsc.distill.store import DataRecipe, TeacherStore, augmented, build_store, image_array
from ragsc.errors import InputError
from tests.kb._fakes import FakeEncoder

needs_fmnist = pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                                  reason="dataset-fashion-mnist not installed")


class Failing(FakeEncoder):
    """Dies on its n-th image batch, like a run killed halfway."""

    def __init__(self, die_at: int, **kw) -> None:
        super().__init__(**kw)
        self.die_at = die_at

    def encode_images(self, images, **kw):
        if self.calls["image"] + 1 >= self.die_at:
            raise KeyboardInterrupt("killed")
        return super().encode_images(images, **kw)


@needs_fmnist
def test_fashion_mnist_store_with_views(tmp_path):
    recipe = DataRecipe(source="fashion-mnist:test", n=40, views=2)
    store = build_store(tmp_path / "s", FakeEncoder(), recipe, shard_size=16)
    t = store.tensors()
    assert len(store) == 40 and [s["count"] for s in store.manifest["shards"]] == [16, 16, 8]
    assert t["image"].shape == (40, 16) and t["views"].shape == (40, 2, 16) and t["has_image"].all()
    assert not t["has_text"].any() and t["label"].min() >= 0 and store.labels[0] == "T-shirt/top"
    assert len(set(store.keys)) == len(store.keys) == 40
    assert not torch.allclose(t["views"][:, 0], t["image"])  # a view is another image
    again = build_store(tmp_path / "t", FakeEncoder(), recipe, shard_size=16).tensors()
    assert torch.equal(again["views"], t["views"])  # views are drawn from (seed, key, view) alone
    x = image_array(store.inputs(), 28, channels=1)
    assert x.shape == (40, 1, 28, 28) and 0 <= float(x.min()) and float(x.max()) <= 1


@needs_fmnist
def test_a_killed_run_resumes_where_it_stopped(tmp_path):
    recipe = DataRecipe(source="fashion-mnist:test", n=50)
    with pytest.raises(KeyboardInterrupt):
        build_store(tmp_path / "s", Failing(die_at=3), recipe, shard_size=10)
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert not m["complete"] and len(m["shards"]) == 2
    with pytest.raises(InputError, match="unfinished"):
        TeacherStore(tmp_path / "s")
    teacher = FakeEncoder()
    store = build_store(tmp_path / "s", teacher, recipe, shard_size=10)
    assert teacher.calls["image"] == 3  # only the three shards the killed run did not finish
    fresh = build_store(tmp_path / "f", FakeEncoder(), recipe, shard_size=10)
    assert store.keys == fresh.keys and torch.equal(store.tensors()["image"], fresh.tensors()["image"])


@needs_fmnist
def test_another_teacher_or_recipe_is_refused_and_nothing_changes(tmp_path):
    recipe = DataRecipe(source="fashion-mnist:test", n=12)
    build_store(tmp_path / "s", FakeEncoder(), recipe, shard_size=8)
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()}
    with pytest.raises(InputError, match="another teacher"):
        build_store(tmp_path / "s", FakeEncoder(fingerprint="other"), recipe)
    with pytest.raises(InputError, match="another data recipe.*views"):
        build_store(tmp_path / "s", FakeEncoder(), DataRecipe(source="fashion-mnist:test", n=12, views=1))
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()} == before
    with pytest.raises(InputError, match="not of"):
        TeacherStore(tmp_path / "s").check_teacher(FakeEncoder(fingerprint="other"))


def test_easy_vqa_items_carry_image_caption_and_label(tmp_path):
    store = build_store(tmp_path / "s", FakeEncoder(), DataRecipe(source="train", n=12, label_field="shape"))
    t = store.tensors()
    assert store.labels == list(SHAPES) and t["has_image"].all() and t["has_text"].all()
    items = store.inputs()
    assert all(SHAPES[i] in x.text for i, x in zip(t["label"].tolist(), items))  # "a red circle"


def test_text_sources_and_bad_input(tmp_path):
    src = tmp_path / "t.jsonl"
    src.write_text('{"text": "a red bicycle"}\n{"text": "the harbour at noon"}\n')
    store = build_store(tmp_path / "s", FakeEncoder(), DataRecipe(source=str(src)))
    t = store.tensors()
    assert len(store) == 2 and t["has_text"].all() and not t["has_image"].any()
    assert torch.allclose(t["text"][0], FakeEncoder().encode_texts(["a red bicycle"]).embeddings[0].float())
    with pytest.raises(InputError, match="no teacher store"):
        TeacherStore(tmp_path / "nothing")
    src.write_text('{"text": "something else"}\n{"text": "the harbour at noon"}\n')
    with pytest.raises(InputError, match="no longer holds"):
        TeacherStore(tmp_path / "s").inputs()
    (tmp_path / "s" / "shard-00000.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError, match="corrupt shard"):
        TeacherStore(tmp_path / "s").tensors()
    empty = tmp_path / "e.txt"
    empty.write_text("\n")
    with pytest.raises(InputError, match="no items"):
        build_store(tmp_path / "e", FakeEncoder(), DataRecipe(source=str(empty)))


def test_views_are_seeded():
    from PIL import Image

    img = Image.new("RGB", (32, 32))
    img.paste((255, 0, 0), (0, 0, 16, 32))
    a = [augmented(img, "ab" * 32, v, seed=0) for v in range(4)]
    assert all(x.size == (32, 32) for x in a)
    assert augmented(img, "ab" * 32, 1, seed=0).tobytes() == a[1].tobytes()
    assert len({x.tobytes() for x in a}) > 1


def _text_store(tmp_path, name: str, texts: list[str]):
    src = tmp_path / f"{name}.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return build_store(tmp_path / name, FakeEncoder(), DataRecipe(source=str(src)))


def _edit_manifest(store, **changes):
    """Change fields of the store's manifest; a field set to ``...`` is removed."""
    path = store.path / "manifest.json"
    manifest = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({k: v for k, v in manifest.items() if v is not ...}))


def test_a_shard_outside_the_store_is_never_read(tmp_path):
    store = _text_store(tmp_path, "s", ["a red bicycle", "the harbour at noon"])
    other = _text_store(tmp_path, "other", ["something else", "another thing"])
    elsewhere = str(other.path / "shard-00000.safetensors")
    for file in (elsewhere, "../other/shard-00000.safetensors", "manifest.json", "shard-0.safetensors"):
        _edit_manifest(store, shards=[{"file": file, "count": 2}])
        with pytest.raises(InputError, match=r"shards\.0\.file: must name a shard file inside the store"):
            TeacherStore(store.path).tensors()
        with pytest.raises(InputError, match=r"shards\.0\.file"):  # nor resumed into
            build_store(store.path, FakeEncoder(), store.recipe)
    _edit_manifest(store, shards=[{"file": "shard-00000.safetensors", "count": 2}])
    (store.path / "shard-00000.safetensors").unlink()
    (store.path / "shard-00000.safetensors").symlink_to(elsewhere)
    with pytest.raises(InputError, match="a link, not a shard"):
        TeacherStore(store.path).tensors()


@pytest.mark.parametrize(("changes", "match"), [
    ({"complete": ...}, r"complete: Field required"),
    ({"complete": 1}, r"complete: Input should be a valid boolean"),
    ({"items": "2"}, r"items: Input should be a valid integer"),
    ({"items": 5}, r"items \(5\) must be the shards' counts added up \(2\)"),
    ({"shards": [{"file": "shard-00000.safetensors"}]}, r"shards\.0\.count: Field required"),
    ({"shards": "shard-00000.safetensors"}, r"shards: Input should be a valid list"),
    ({"teacher": {"spec": "fake"}}, r"teacher\.fingerprint: Field required"),
    ({"teacher": {"spec": "fake", "fingerprint": "x", "dim": -3}}, r"teacher\.dim: Input should be greater"),
    ({"recipe": {"source": 3}}, r"recipe\.source: Input should be a valid string"),
    ({"labels": "abc"}, r"labels: Input should be a valid list"),
    ({"extra": 1}, r"extra: Extra inputs are not permitted"),
])
def test_a_damaged_manifest_names_its_field(tmp_path, changes, match):
    store = _text_store(tmp_path, "s", ["a red bicycle", "the harbour at noon"])
    _edit_manifest(store, **changes)
    with pytest.raises(InputError, match=r"manifest\.json: invalid teacher-store manifest: .*" + match):
        TeacherStore(store.path).check_teacher(FakeEncoder())
