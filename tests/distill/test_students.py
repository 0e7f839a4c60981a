"""ragsc.distill.students / train: students train on a store, save, and load as their teacher's encoders."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.datasets.fashion_mnist import FASHION_MNIST_DIR
from ragsc.distill.store import DataRecipe, build_store
from ragsc.distill.student_nets import ImageStudent, ImageStudentConfig, TextStudentConfig
from ragsc.distill.train import (
    distill_to_folder,
    embed_store,
    evaluate_student,
    keep_labels,
    split,
    train_student,
)
from ragsc.encoders import load_encoder
from ragsc.errors import ConfigError, InputError, KBError, ModelLoadError
from tests.kb._fakes import FakeEncoder

IMAGE = ImageStudentConfig(image_size=16, widths=(4, 8), out_dim=16)
TEXT = TextStudentConfig(width=16, layers=1, heads=2, out_dim=16, max_tokens=16)
needs_fmnist = pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(),
                                  reason="dataset-fashion-mnist not installed")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    texts = root / "t.jsonl"
    texts.write_text("".join(json.dumps({"text": f"sentence number {i} about {w}"}) + "\n"
                             for i, w in enumerate(["boats", "maps", "noon", "cats"] * 8)))
    images = build_store(root / "img", FakeEncoder(), DataRecipe(source="train", n=96, label_field="shape"))
    return images, build_store(root / "txt", FakeEncoder(), DataRecipe(source=str(texts)))


def test_kd_student_learns_the_teachers_embedding(stores):
    images, _ = stores
    before = evaluate_student(train_student(images, IMAGE, epochs=1, lr=1e-9).student, IMAGE, images)
    result = train_student(images, IMAGE, epochs=8, batch_size=16, lr=5e-3, val_fraction=0.0)
    after = evaluate_student(result.student, IMAGE, images)
    assert after["cosine"] > before["cosine"] + 0.2 and after["items"] == 96
    assert 0 <= after["caption_r@1"] <= 1  # easy-VQA items are captioned
    assert [r["epoch"] for r in result.history] == list(range(1, 9))


def test_objectives_and_their_checks(stores):
    images, texts = stores
    ib = ImageStudentConfig(image_size=16, widths=(4, 8), out_dim=16, code_dim=4, num_classes=3)
    r = train_student(images, ib, objective="ib", epochs=2)
    assert "val_cosine" in r.best and r.classifier is None
    r = train_student(images, IMAGE, objective="scratch", epochs=2, label_fraction=0.5)
    assert "val_accuracy" in r.best and r.classifier is not None
    with pytest.raises(ConfigError, match="code_dim"):
        train_student(images, IMAGE, objective="ib")
    with pytest.raises(InputError, match="needs labels"):
        train_student(texts, TEXT, objective="scratch")
    with pytest.raises(InputError, match="store of images"):
        train_student(texts, IMAGE)
    with pytest.raises(ConfigError, match="objective"):
        train_student(images, IMAGE, objective="distil")
    with pytest.raises(ConfigError, match="data_fraction"):
        train_student(images, IMAGE, data_fraction=0)
    half = train_student(images, IMAGE, epochs=1, val_fraction=0.0, data_fraction=0.5)
    full = train_student(images, IMAGE, epochs=1, val_fraction=0.0)
    assert half.history[0]["train_items"] == 48 and full.history[0]["train_items"] == 96


def test_keep_labels_keeps_a_seeded_fraction():
    labels = torch.arange(100) % 5
    kept = keep_labels(labels, 0.1, seed=0)
    assert int((kept >= 0).sum()) == 10 and torch.equal(kept, keep_labels(labels, 0.1, seed=0))
    assert torch.equal(kept[kept >= 0], labels[kept >= 0])


def test_a_student_loads_as_an_encoder_that_serves_its_teacher(stores, tmp_path):
    images, texts = stores
    folder = tmp_path / "student"
    distill_to_folder(images, folder, IMAGE, epochs=2)
    enc = load_encoder(f"student:{folder}")
    assert enc.dim == 16 and enc.num_parameters()["image"] > 0 and enc.num_parameters()["text"] == 0
    emb = enc.encode_images([x.image for x in images.inputs()[:3]]).embeddings
    assert emb.shape == (3, 16) and torch.allclose(emb.norm(dim=-1), torch.ones(3))
    with pytest.raises(ConfigError, match="no text tower"):
        enc.encode_texts(["hello"])
    distill_to_folder(texts, folder, TEXT, epochs=2)  # the text tower joins the image one
    enc = load_encoder(f"student:{folder}")
    params = enc.num_parameters()
    assert params["image"] > 0 and params["text"] > 0
    assert enc.encode_texts(["a sentence nobody trained on, with €12 and 🚲"]).embeddings.shape == (1, 16)
    assert enc.serves(FakeEncoder().fingerprint) and enc.serves(enc.fingerprint)
    assert not enc.serves("another") and enc.fingerprint != FakeEncoder().fingerprint
    card = json.loads((folder / "config.json").read_text())
    assert card["kind"] == "student" and sorted(p.name for p in folder.iterdir()) == ["config.json",
                                                                                      "model.safetensors"]
    assert set(card["info"]) == {"image", "text"} and card["config"]["teacher"]["fingerprint"] == "fake-fp-1"
    with pytest.raises(InputError, match="another teacher"):
        other = build_store(tmp_path / "o", FakeEncoder(fingerprint="fp-2"), DataRecipe(source="train", n=8))
        distill_to_folder(other, folder, IMAGE, epochs=1)


def test_kbs_of_the_teacher_accept_its_student_and_no_other(tmp_path, new_kb):
    from ragsc.kb.store import check_encoder
    from tests.kb._fakes import FAKE

    images = build_store(tmp_path / "i", FakeEncoder(dim=FAKE["dim"], fingerprint=FAKE["fingerprint"]),
                         DataRecipe(source="train", n=16))
    distill_to_folder(images, tmp_path / "s", IMAGE.model_copy(update={"out_dim": FAKE["dim"]}), epochs=1)
    student = load_encoder(f"student:{tmp_path / 's'}")
    kb = new_kb()
    check_encoder(kb.path, kb.manifest, student)  # the fake teacher's KB
    other = build_store(tmp_path / "o", FakeEncoder(fingerprint="fp-2"), DataRecipe(source="train", n=8))
    distill_to_folder(other, tmp_path / "s2", IMAGE, epochs=1)
    with pytest.raises(KBError, match="fingerprint"):
        check_encoder(kb.path, kb.manifest, load_encoder(f"student:{tmp_path / 's2'}"))
    # a student of another dimension than the KB's: refused when it loads (its towers must map into the
    # teacher's space) and by the KB (an encoder that claims the teacher but makes other vectors)
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    cfg["config"]["teacher"]["dim"] = 32
    (tmp_path / "s" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match=r"maps into 8-d, but the teacher it serves .* is 32-d"):
        load_encoder(f"student:{tmp_path / 's'}")
    with pytest.raises(KBError, match="holds 8-d vectors.*makes 16-d"):
        check_encoder(kb.path, kb.manifest, FakeEncoder(fingerprint=FAKE["fingerprint"]))


def test_bad_student_folders_are_named(stores, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="no student"):
        load_encoder(f"student:{tmp_path / 'none'}")
    with pytest.raises(ConfigError, match="names its folder"):
        load_encoder("student:")
    images, _ = stores
    distill_to_folder(images, tmp_path / "s", IMAGE, epochs=1)
    good = (tmp_path / "s" / "model.safetensors").read_bytes()
    (tmp_path / "s" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelLoadError, match="model.safetensors: missing or corrupt"):
        load_encoder(f"student:{tmp_path / 's'}")
    (tmp_path / "s" / "model.safetensors").write_bytes(good)
    header = json.loads((tmp_path / "s" / "config.json").read_text())
    (tmp_path / "s" / "config.json").write_text(json.dumps({**header, "config": {}}))
    with pytest.raises(ModelLoadError, match="not a valid student config"):
        load_encoder(f"student:{tmp_path / 's'}")
    (tmp_path / "s" / "config.json").write_text(json.dumps({**header, "kind": "cat-codec"}))
    with pytest.raises(ModelLoadError, match="holds a 'cat-codec', not a student"):
        load_encoder(f"student:{tmp_path / 's'}")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    import ragsc.distill.train

    monkeypatch.setattr(ragsc.distill.train, "train_student", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(InputError, match="busy: holds other files, not a saved model"):  # before training
        distill_to_folder(images, tmp_path / "busy", IMAGE, epochs=1)


@pytest.fixture(scope="module")
def image_student(stores, tmp_path_factory):
    """A saved image student (one epoch) and its config.json's header."""
    folder = tmp_path_factory.mktemp("image_student") / "s"
    distill_to_folder(stores[0], folder, IMAGE, epochs=1)
    return folder, json.loads((folder / "config.json").read_text())


def _resize(c: dict, dim: int) -> None:
    c["image"]["out_dim"] = c["teacher"]["dim"] = dim


@pytest.mark.parametrize(("change", "match"), [
    (lambda c: c["image"].update(widths=[-4]), r"image\.widths\.0: Input should be greater than or equal "
                                                r"to 1"),
    (lambda c: c["image"].update(widths=[4, 2 ** 40]), r"image\.widths\.1: Input should be less than or "
                                                        r"equal to 8192"),
    (lambda c: _resize(c, 2 ** 40), r"teacher\.dim: Input should be less than or equal to 65536"),
    (lambda c: c.update(text={**TEXT.model_dump(), "heads": 3}), r"text: .*width \(16\) must be divisible by "
                                                                 r"heads \(3\)"),
    (lambda c: c.update(image={**c["image"], "architecture": {"channels": 8}}), r"image: .*a cnn student has "
                                                                               "none"),
    (lambda c: c.update(self=1), r"self: Extra inputs are not permitted"),
])
def test_a_student_config_asking_for_bad_sizes_is_refused_by_name(image_student, tmp_path, change, match):
    """Negative, huge or inconsistent sizes: a load error naming the field, before anything is allocated."""
    folder, header = image_student
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    config = json.loads(json.dumps(header["config"]))
    change(config)
    (bad / "config.json").write_text(json.dumps({**header, "config": config}))
    with pytest.raises(ModelLoadError, match=r"not a valid student config: .*" + match):
        load_encoder(f"student:{bad}")


def test_a_config_that_holds_its_own_info_loads_with_the_folders(image_student, tmp_path):
    folder, header = image_student
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    (tmp_path / "s" / "config.json").write_text(json.dumps({**header, "config": {**header["config"],
                                                                                  "info": {"x": 1}}}))
    assert load_encoder(f"student:{tmp_path / 's'}").config.info == header["info"]


@needs_fmnist
def test_fashion_mnist_students_at_equal_labels(tmp_path):
    store = build_store(tmp_path / "f", FakeEncoder(), DataRecipe(source="fashion-mnist:test", n=128))
    config = ImageStudentConfig(image_size=16, widths=(4,), out_dim=16)
    r = train_student(store, config, objective="scratch", epochs=1, label_fraction=0.1)
    # the reported accuracy, recomputed by hand: the kept (only) epoch's tower and classifier on the
    # validation split (val_fraction 0.1, seed 0), every validation label counted (labels are dropped for
    # training only)
    _, val = split(len(store), 0.1, 0)
    emb = torch.nn.functional.normalize(embed_store(r.student, store, config)[val], dim=-1)
    labels = store.tensors()["label"][val]
    assert len(val) == 13 and bool((labels >= 0).all())
    by_hand = float((r.classifier(emb * 10).argmax(-1) == labels).float().mean())
    assert r.best["val_accuracy"] == pytest.approx(by_hand, abs=1e-6)


def test_scratch_trains_on_the_labelled_items_only_for_as_many_steps(stores, monkeypatch):
    images, _ = stores
    # 10 % of 96 labels: most batches of 16 would hold none, and a batch without labels has no gradient;
    # the labelled items are cycled to the split's length (as many steps as with every label)
    import ragsc.distill.train as train
    from ragsc.distill.train import split

    seen = []
    loss = train._loss
    monkeypatch.setattr(train, "_loss", lambda objective, emb, bott, cls, target, labels, *a:
                        seen.append(labels.clone()) or loss(objective, emb, bott, cls, target, labels, *a))
    r = train_student(images, IMAGE, objective="scratch", epochs=2, batch_size=16, label_fraction=0.1)
    train_idx, _ = split(len(images), 0.1, 0)  # train_student's own split (val_fraction 0.1, seed 0)
    labelled = int((keep_labels(images.tensors()["label"], 0.1, 0)[train_idx] >= 0).sum())
    assert 0 < labelled < 16 and r.history[0]["train_items"] == len(train_idx)
    assert len(seen) == 2 * -(-len(train_idx) // 16) and all(bool((b >= 0).all()) for b in seen)


def test_kd_with_few_labels_reads_a_labelled_batch_every_step(stores, monkeypatch):
    """10 % of the labels: the task term is the cross-entropy of a batch of labelled items drawn at every
    step (one or two labelled items per training batch would be noise as large as the KD gradient)."""
    import types

    import torch.nn.functional as F

    import ragsc.distill.train as train
    from ragsc.distill.train import split

    images, _ = stores
    seen = []

    def cross_entropy(logits, target, *a, **k):
        seen.append(target.clone())
        return F.cross_entropy(logits, target, *a, **k)

    spy = types.SimpleNamespace(**{n: getattr(F, n) for n in dir(F) if not n.startswith("__")})
    spy.cross_entropy = cross_entropy
    monkeypatch.setattr(train, "F", spy)
    train_student(images, IMAGE, objective="kd", epochs=2, batch_size=16, label_fraction=0.1)
    train_idx, _ = split(len(images), 0.1, 0)
    labelled = int((keep_labels(images.tensors()["label"], 0.1, 0)[train_idx] >= 0).sum())
    assert len(seen) == 2 * -(-len(train_idx) // 16)  # one task term per step
    assert all(len(t) == labelled and bool((t >= 0).all()) for t in seen)


def test_a_searched_architecture_is_a_student_tower(stores, tmp_path):
    from ragsc.distill.darts import ArchitectureConfig, Genotype

    images, _ = stores
    cell = (("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("conv_3x3", 2))
    arch = ArchitectureConfig(Genotype(cell, cell), in_channels=3, image_size=16, channels=4, layers=3,
                              reductions=1, out_dim=16)
    cfg = ImageStudentConfig(kind="darts", image_size=16, out_dim=16, architecture=json.loads(arch.to_json()))
    from ragsc.distill.darts import DerivedNetwork

    # the searched network already ends in the teacher's space: no second projection on top of it
    assert sum(p.numel() for p in ImageStudent(cfg).parameters()) == DerivedNetwork(arch).num_parameters()
    distill_to_folder(images, tmp_path / "d", cfg, epochs=1)
    enc = load_encoder(f"student:{tmp_path / 'd'}")
    assert enc.encode_images([x.image for x in images.inputs()[:2]]).embeddings.shape == (2, 16)
    with pytest.raises(ConfigError, match="projects onto 8-d"):
        ImageStudent(cfg.model_copy(update={"architecture": {**json.loads(arch.to_json()), "out_dim": 8}}))
    with pytest.raises(ConfigError, match="searched architecture"):  # searched at 16 px, asked at 32
        ImageStudent(ImageStudentConfig(kind="darts", image_size=32, out_dim=16,
                                        architecture=json.loads(arch.to_json())))


def test_the_shipped_students_serve_the_embedded_teacher(embedded):
    enc = load_encoder("student:embedded")
    assert enc.teacher.fingerprint == embedded.fingerprint and enc.serves(embedded.fingerprint)
    params, teacher = enc.num_parameters(), embedded.num_parameters()
    assert 0 < params["image"] < teacher["image"] / 4 and 0 < params["text"] < teacher["text"] / 4
    from ragsc.datasets import load_easy_vqa

    test = load_easy_vqa("test")[:24]
    s = enc.encode_images([x.path for x in test]).embeddings
    t = embedded.encode_images([x.path for x in test]).embeddings
    assert float(torch.nn.functional.cosine_similarity(s, t).mean()) > 0.9  # held-out shapes
    assert enc.encode_texts(["Please send the updated map of the harbour before noon."]).embeddings.shape == (
        1, 384)


def test_the_image_student_transmits_for_the_teachers_decoders():
    from ragsc import Pipeline
    from ragsc.datasets import load_easy_vqa

    imgs = load_easy_vqa("test")[:6]
    pipe = Pipeline.from_config({"name": "student", "task": "image", "encoder": {"spec": "student:embedded"},
                                 "decoder": {"rag": False}})
    outs = pipe.run([x.path for x in imgs], snr_db=15)
    assert sum(o.caption == x.caption for x, o in zip(imgs, outs)) >= 5  # decoders trained behind the teacher
