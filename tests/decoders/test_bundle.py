"""The decoders bundle: a saved model folder (ragsc.saved, kind decoders) round trip, configs in its
config.json, load errors, the encoder check."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch

from ragsc.channel import PCAOrdering
from ragsc.decoders import (
    AnswerHead,
    AnswerHeadConfig,
    Decoders,
    ImageDecoderConfig,
    ImageDecoderNet,
    TextGRU,
    TextGRUConfig,
    Vocab,
    load_decoders,
    save_decoders,
)
from ragsc.decoders.bundle import default_path
from ragsc.errors import ConfigError, ModelLoadError

DIM = 16


@pytest.fixture
def small() -> Decoders:
    torch.manual_seed(0)
    vocab = Vocab.build(["a red triangle", "Trust, but verify.", "It's a test."])
    text = TextGRU(TextGRUConfig(len(vocab), dim=DIM, emb=8, hidden=12, max_len=7))
    image = ImageDecoderNet(ImageDecoderConfig(dim=DIM, width=4))
    vqa = AnswerHead(AnswerHeadConfig(["circle", "no", "red", "yes"], dim=DIM, hidden=10))
    pca = PCAOrdering.fit(torch.randn(40, DIM))
    info = {"text_final_loss": 0.5, "config": {"seed": 0, "k_symbols": [24, 48]}, "note": "tiny"}
    return Decoders(text, vocab, image, vqa, pca, "fp-1234", info)


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_round_trip(small, tmp_path):
    path = tmp_path / "sub" / "decoders"  # the parent folder is created
    save_decoders(small, path)
    back = load_decoders(path)
    _same_state(small.text, back.text)
    _same_state(small.image, back.image)
    _same_state(small.vqa, back.vqa)
    assert back.vocab.words == small.vocab.words and back.vocab.index == small.vocab.index
    assert back.vqa.answers == small.vqa.answers
    # rebuilt from the stored (non-default) configs, which the networks honour
    for part in ("text", "image", "vqa"):
        assert getattr(back, part).config == getattr(small, part).config, part
    assert back.text.config == TextGRUConfig(len(small.vocab), dim=DIM, emb=8, hidden=12, max_len=7)
    assert back.text.config.max_len == 7
    assert back.text.gru.hidden_size == 12 and back.text.embed.embedding_dim == 8
    assert back.image.config.width == 4 and back.vqa.mlp[0].out_features == 10
    for name in ("mean", "components", "variances"):
        assert torch.equal(getattr(back.pca, name), getattr(small.pca, name))
    assert back.encoder_fingerprint == "fp-1234"
    assert back.info == small.info
    # loaded networks are frozen, in eval mode, and compute what the saved ones compute
    assert not any(p.requires_grad for m in (back.text, back.image, back.vqa) for p in m.parameters())
    assert not back.text.training and not back.vqa.training
    z = torch.nn.functional.normalize(torch.randn(2, DIM), dim=-1)
    assert torch.equal(back.text.generate(z), small.text.eval().generate(z))
    x, has, score = torch.rand(2, 6, 64, 64), torch.ones(2), torch.rand(2)
    assert torch.allclose(back.image(z, x, has, score), small.image.eval()(z, x, has, score))
    q, ctx = torch.nn.functional.normalize(torch.randn(2, DIM), dim=-1), torch.randn(2, DIM)
    assert torch.equal(back.vqa(z, q, ctx, has), small.vqa.eval()(z, q, ctx, has))


def test_folder_is_a_saved_model_with_the_configs_in_config_json(small, tmp_path):
    from safetensors import safe_open

    folder = save_decoders(small, tmp_path / "d")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert {"pca.mean", "pca.components", "pca.variances"} <= keys
    assert all(k.split(".")[0] in ("text", "image", "vqa", "pca") for k in keys)
    header = json.loads((folder / "config.json").read_text())
    assert header["kind"] == "decoders" and header["format_version"] == 1 and header["info"] == small.info
    config = header["config"]
    assert set(config) == {"text", "image", "vqa", "vocab", "encoder_fingerprint"}
    assert config["vocab"] == small.vocab.words[4:]
    assert config["vqa"] == {"answers": small.vqa.answers, "dim": DIM, "hidden": 10}
    assert config["text"] == {"vocab_size": len(small.vocab), "dim": DIM, "emb": 8, "hidden": 12,
                              "max_len": 7}
    assert config["image"] == {"dim": DIM, "size": 64, "width": 4}


def test_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelLoadError, match="nope") as err:
        load_decoders(missing)
    assert "ragsc decoders train" in str(err.value)
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_decoders(tmp_path)  # a folder of something else is not a decoders folder


def test_corrupt_or_truncated_weights(small, tmp_path):
    folder = save_decoders(small, tmp_path / "d")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="model.safetensors: missing or corrupt"):
        load_decoders(folder)
    weights.write_bytes(b"\x00\x01 this is not safetensors" * 10)
    with pytest.raises(ModelLoadError, match="model.safetensors: missing or corrupt"):
        load_decoders(folder)


def test_another_kind_is_not_decoders(small, tmp_path):
    folder = save_decoders(small, tmp_path / "d")
    _edit(folder, lambda h: h.update(kind="student"))
    with pytest.raises(ModelLoadError, match="holds a 'student', not a decoders folder"):
        load_decoders(folder)


def test_wrong_shapes_are_a_load_error(small, tmp_path):
    folder = save_decoders(small, tmp_path / "d")
    _edit(folder, lambda h: h["config"]["text"].update(hidden=99))
    with pytest.raises(ModelLoadError, match="tensor 'text.gru.[a-z_0-9]+' has shape"):
        load_decoders(folder)


def test_check_encoder(small):
    small.check_encoder(SimpleNamespace(fingerprint="fp-1234", spec="fake:ok"))
    with pytest.raises(ConfigError, match="fp-1234") as err:
        small.check_encoder(SimpleNamespace(fingerprint="fp-other", spec="open_clip:ViT-B-32/x"))
    msg = str(err.value)
    assert "fp-other" in msg and "open_clip:ViT-B-32/x" in msg and "ragsc decoders train" in msg


def test_shipped_decoders_match_the_embedded_encoder(decoders, embedded):
    assert default_path().name == "decoders" and default_path().parent.name == "embedded"
    decoders.check_encoder(embedded)
    assert decoders.text.config.dim == embedded.dim == decoders.pca.mean.shape[0]
    assert len(decoders.vqa.answers) == 13 and "yes" in decoders.vqa.answers
    # the shipped networks are the default architectures
    assert decoders.text.config == TextGRUConfig(vocab_size=len(decoders.vocab))
    assert decoders.image.config == ImageDecoderConfig()
    assert decoders.vqa.config == AnswerHeadConfig(decoders.vqa.answers)


def _edit(folder, change) -> None:
    """Rewrite a saved folder's config.json with ``change(header)``, same tensors."""
    header = json.loads((folder / "config.json").read_text())
    change(header)
    (folder / "config.json").write_text(json.dumps(header))


@pytest.mark.parametrize("key", ["text", "image", "vqa", "vocab", "encoder_fingerprint"])
def test_each_missing_key_is_named(small, tmp_path, key):
    folder = save_decoders(small, tmp_path / "d")
    _edit(folder, lambda h: h["config"].pop(key))
    with pytest.raises(ModelLoadError, match=f"the decoders' config has no '{key}'"):
        load_decoders(folder)


@pytest.mark.parametrize("key, value", [("encoder_fingerprint", None), ("vocab", [1, 2]), ("vocab", "a b")])
def test_bad_values_are_a_load_error(small, tmp_path, key, value):
    folder = save_decoders(small, tmp_path / "d")
    _edit(folder, lambda h: h["config"].update({key: value}))
    with pytest.raises(ModelLoadError, match=f"decoders' '{key}' config"):
        load_decoders(folder)


@pytest.mark.parametrize("key, change, problem", [
    ("text", lambda c: c.pop("hidden"), "missing fields \\['hidden'\\]"),
    ("image", lambda c: c.update(depth=5), "unknown fields \\['depth'\\]"),
    ("image", lambda c: c.update(width=6), "multiple of 4"),
    ("vqa", lambda c: c.update(hidden=0), "AnswerHeadConfig.hidden must be an integer >= 1"),
    ("vqa", lambda c: c.update(answers=["yes", "yes"]), "distinct"),
    ("text", lambda c: c.update(emb=8.0), "TextGRUConfig.emb must be an integer"),
    ("text", lambda c: c.update(hidden=2 ** 40), "TextGRUConfig.hidden must be at most 8192"),
    ("text", lambda c: c.update(vocab_size=2 ** 40), "TextGRUConfig.vocab_size must be at most 1000000"),
    ("image", lambda c: c.update(width=2 ** 20), "ImageDecoderConfig.width must be at most 1024"),
    ("vqa", lambda c: c.update(dim=-384), "AnswerHeadConfig.dim must be an integer >= 1, got -384"),
])
def test_bad_config_is_a_load_error_naming_the_key(small, tmp_path, key, change, problem):
    folder = save_decoders(small, tmp_path / "d")
    _edit(folder, lambda h: change(h["config"][key]))
    with pytest.raises(ModelLoadError, match=f"d: the decoders' '{key}' config: .*{problem}"):
        load_decoders(folder)


def test_config_and_vocabulary_must_agree(small, tmp_path):
    folder = save_decoders(small, tmp_path / "d")
    _edit(folder, lambda h: h["config"].update(vocab=small.vocab.words[4:] + ["extra"]))
    n = len(small.vocab)
    with pytest.raises(ModelLoadError, match=f"{n} word ids, its vocabulary {n + 1}"):
        load_decoders(folder)


def test_decoders_parts_must_fit_together(small):
    other_vocab = Vocab(small.vocab.words[4:-1])
    with pytest.raises(ConfigError, match="word ids"):
        dataclasses.replace(small, vocab=other_vocab)
    with pytest.raises(ConfigError, match="vocabulary"):
        dataclasses.replace(small, vocab=None)
    wide = ImageDecoderNet(ImageDecoderConfig(dim=DIM + 4, width=4))
    with pytest.raises(ConfigError, match=f"image decoder reads {DIM + 4}-d embeddings, the PCA basis is "
                                          f"{DIM}-d"):
        dataclasses.replace(small, image=wide)


def test_skip_leaves_parts_unread(small, tmp_path):
    """``skip`` parts are not read at all: a part whose stored config no longer parses can be retrained."""
    path = save_decoders(small, tmp_path / "d")
    _edit(path, lambda h: h["config"].update(image={"an": "older architecture"}))
    with pytest.raises(ModelLoadError, match="'image' config"):
        load_decoders(path)
    kept = load_decoders(path, skip=("image",))
    assert kept.image is None and kept.text is not None and kept.vqa is not None
    _same_state(small.vqa, kept.vqa)
    no_text = load_decoders(path, skip=("text", "image"))
    assert no_text.text is None and no_text.vocab is None
    with pytest.raises(ConfigError, match="audio"):
        load_decoders(path, skip=("audio",))
    with pytest.raises(ConfigError, match="without the image part"):
        save_decoders(kept, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_bad_save_changes_nothing_on_disk(small, tmp_path):
    path = save_decoders(small, tmp_path / "d")
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    small.info["when"] = object()  # not JSON
    with pytest.raises(ConfigError, match="JSON"):
        save_decoders(small, path, overwrite=True)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folder left


def test_shipped_folder_is_in_the_config_format():
    header = json.loads((default_path() / "config.json").read_text())
    assert header["kind"] == "decoders" and set(header["config"]) == {"text", "image", "vqa", "vocab",
                                                                      "encoder_fingerprint"}
    assert header["config"]["image"] == {"dim": 384, "size": 64, "width": 16}
