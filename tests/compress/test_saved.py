"""ragsc.compress.apply / saved: each method on a tiny student, saved and reloaded by load_encoder with
equal outputs, serving what its base serves."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.compress import CompressionConfig, FinetuneConfig, compress, save_compressed
from ragsc.encoders import load_encoder
from ragsc.errors import ConfigError, InputError, ModelLoadError
from tests.compress.conftest import TEACHER_FP
from tests.kb._fakes import FakeEncoder

TUNE = FinetuneConfig(epochs=1, batch_size=8)


def _encode(encoder, tower: str, data):
    out = encoder.encode_texts(data.texts) if tower == "text" else encoder.encode_images(data.images)
    return out.embeddings


@pytest.mark.parametrize("tower,methods", [
    ("text", ("int8-dynamic",)), ("text", ("int8-static",)), ("text", ("fp16",)), ("text", ("bf16",)),
    ("image", ("int8-static",)), ("image", ("prune",)), ("image", ("prune", "int8-dynamic")),
])
def test_a_saved_compression_reloads_with_equal_outputs(student, data, train_images, tmp_path, tower,
                                                        methods):
    config = CompressionConfig(encoder=student.spec, tower=tower, methods=methods, calibration=4,
                               finetune=TUNE)
    calibration = data.texts if tower == "text" else train_images[:4]
    float_emb = _encode(student, tower, data)
    c = compress(config, student, images=train_images, calibration=calibration)
    assert torch.equal(_encode(student, tower, data), float_emb)  # the base encoder is left as it was
    with c.tower.swapped(c.unit):
        expected = _encode(student, tower, data)
    assert not torch.equal(expected, float_emb)  # the compression changed something
    folder = save_compressed(tmp_path / "c", c, figures={"score": 1.0})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["info"]["figures"] == {"score": 1.0}
    loaded = load_encoder(f"compressed:{folder}")
    assert torch.equal(_encode(loaded, tower, data), expected)
    other = "image" if tower == "text" else "text"
    assert torch.equal(_encode(loaded, other, data), _encode(student, other, data))
    # it serves its base's KBs and decoders (and, the base being a student, its teacher's), not others'
    assert loaded.serves(student.fingerprint) and loaded.serves(TEACHER_FP)
    assert loaded.serves(loaded.fingerprint)
    assert loaded.fingerprint != student.fingerprint and not loaded.serves("another")
    counts, base = loaded.num_parameters(), student.num_parameters()
    assert counts[other] == base[other]
    assert (counts[tower] < base[tower]) if "prune" in methods else (counts[tower] == base[tower])
    assert counts[tower] == base[tower] - c.base_params + c.params


def test_pruning_keeps_its_figures_and_fine_tune_helps(student, data, train_images):
    untuned = compress(CompressionConfig(encoder=student.spec, tower="image", methods=("prune",),
                                         finetune=FinetuneConfig(epochs=0)), student, images=train_images)
    tuned = compress(CompressionConfig(encoder=student.spec, tower="image", methods=("prune",),
                                       finetune=FinetuneConfig(epochs=6, batch_size=4, lr=3e-3)),
                     student, images=train_images)
    assert tuned.pruning["macs_after"] <= 0.5 * tuned.pruning["macs_before"] and len(tuned.history) == 6
    assert untuned.history == [] and tuned.architecture is not None and tuned.params < tuned.base_params
    ref = _encode(student, "image", data)
    cos = {}
    for name, c in (("untuned", untuned), ("tuned", tuned)):
        with c.tower.swapped(c.unit):
            cos[name] = float((_encode(student, "image", data) * ref).sum(-1).mean())
    assert cos["tuned"] > cos["untuned"] + 0.03, cos  # on held-out images (about 0.90 -> 0.97)


def test_what_cannot_be_compressed_is_refused(student, tmp_path):
    with pytest.raises(ValueError, match="prune applies to image towers"):
        CompressionConfig(encoder=student.spec, tower="text", methods=("prune",))
    with pytest.raises(ConfigError, match="the encoder given is"):
        compress(CompressionConfig(encoder="embedded", tower="text"), student)
    fake = FakeEncoder()
    with pytest.raises(ConfigError, match="cannot compress fake:test"):
        compress(CompressionConfig(encoder=fake.spec), fake)
    with pytest.raises(ConfigError, match="unknown encoder spec"):
        compress(CompressionConfig(encoder="nonsense:x"))


def test_broken_folders_are_load_errors(student, data, tmp_path):
    c = compress(CompressionConfig(encoder=student.spec, tower="text"), student)
    folder = save_compressed(tmp_path / "c", c)
    with pytest.raises(InputError, match="holds other files"):
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("x")
        save_compressed(tmp_path / "busy", c)
    with pytest.raises(ModelLoadError, match="no compressed encoder"):
        load_encoder(f"compressed:{tmp_path / 'missing'}")
    with pytest.raises(ConfigError, match="names its folder"):
        load_encoder("compressed:")
    with pytest.raises(ConfigError, match="run on the CPU"):
        load_encoder(f"compressed:{folder}", device="cuda")
    header = json.loads((folder / "config.json").read_text())
    changed = json.loads(json.dumps(header))
    changed["config"]["base"]["fingerprint"] = "0" * 32  # the base spec now loads another model
    (folder / "config.json").write_text(json.dumps(changed))
    with pytest.raises(ModelLoadError, match="compress it again"):
        load_encoder(f"compressed:{folder}")
    (folder / "config.json").write_text(json.dumps({**header, "config": {"base": 3}}))
    with pytest.raises(ModelLoadError, match="not a valid compressed encoder config"):
        load_encoder(f"compressed:{folder}")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="no compressed encoder.*not valid JSON"):
        load_encoder(f"compressed:{folder}")


def test_a_base_chain_that_comes_back_is_refused(student, tmp_path):
    """A compressed: folder whose base names itself, or two that name each other: a load error naming the
    chain (was RecursionError)."""
    import shutil

    c = compress(CompressionConfig(encoder=student.spec, tower="text"), student)
    a = save_compressed(tmp_path / "a", c)
    b = tmp_path / "b"
    shutil.copytree(a, b)

    def base(folder, spec):
        header = json.loads((folder / "config.json").read_text())
        header["config"]["base"]["spec"] = spec
        (folder / "config.json").write_text(json.dumps(header))

    base(a, f"compressed:{a}")
    with pytest.raises(ModelLoadError, match=r"compressed encoder's base comes back to a folder already "
                                             r"being loaded \(.*a -> .*a\)"):
        load_encoder(f"compressed:{a}")
    base(a, f"compressed:{b}")
    base(b, f"compressed:{tmp_path}/./a")
    with pytest.raises(ModelLoadError, match=r"comes back .*\(.*a -> .*b -> .*a\)"):
        load_encoder(f"compressed:{a}")
    base(b, student.spec)
    with pytest.raises(ModelLoadError, match="compress it again"):  # a chain that ends: loads to the end
        load_encoder(f"compressed:{a}")


def test_a_teacher_store_is_the_fine_tune_data_when_given(student, tmp_path):
    from ragsc.distill.store import DataRecipe, build_store

    store = build_store(tmp_path / "store", FakeEncoder(dim=16, fingerprint=TEACHER_FP),
                        DataRecipe(source="train", n=12))
    config = CompressionConfig(encoder=student.spec, tower="image", methods=("prune",),
                               finetune=FinetuneConfig(epochs=2, batch_size=4, store=str(store.path)))
    c = compress(config, student)
    assert len(c.history) == 2 and c.history[-1]["cosine"] > c.history[0]["cosine"]
    other = build_store(tmp_path / "other", FakeEncoder(dim=16, fingerprint="someone-else"),
                        DataRecipe(source="train", n=4))
    with pytest.raises(InputError, match="a teacher .* does not serve"):
        compress(config.model_copy(update={"finetune": FinetuneConfig(store=str(other.path))}), student)
