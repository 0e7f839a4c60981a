"""The decoders bundle: one safetensors file round trip, configs in its metadata, load errors, the encoder
check."""

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
from ragsc.decoders.bundle import DECODERS_FILE, default_path
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
    path = tmp_path / "sub" / DECODERS_FILE  # the folder is created
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


def test_file_is_plain_safetensors_with_json_metadata(small, tmp_path):
    from safetensors import safe_open

    path = tmp_path / DECODERS_FILE
    save_decoders(small, path)
    with safe_open(str(path), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {"pca.mean", "pca.components", "pca.variances"} <= keys
    assert all(k.split(".")[0] in ("text", "image", "vqa", "pca") for k in keys)
    assert set(meta) == {"config.text", "config.image", "config.vqa", "vocab", "encoder_fingerprint", "info"}
    assert json.loads(meta["vocab"]) == small.vocab.words[4:]
    assert json.loads(meta["config.vqa"]) == {"answers": small.vqa.answers, "dim": DIM, "hidden": 10}
    assert json.loads(meta["config.text"]) == {"vocab_size": len(small.vocab), "dim": DIM, "emb": 8,
                                               "hidden": 12, "max_len": 7}
    assert json.loads(meta["config.image"]) == {"dim": DIM, "size": 64, "width": 4}


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelLoadError, match="nope.safetensors") as err:
        load_decoders(missing)
    assert "ragsc decoders train" in str(err.value)
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_decoders(tmp_path)  # a folder is not a decoders file


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01 this is not safetensors" * 10)
    with pytest.raises(ModelLoadError, match="bad.safetensors"):
        load_decoders(bad)


def test_truncated_file(small, tmp_path):
    path = tmp_path / "cut.safetensors"
    save_decoders(small, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.safetensors"):
        load_decoders(path)


def test_file_without_decoder_metadata(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "pca-only.safetensors"
    save_file({"pca.mean": torch.zeros(DIM)}, str(path), metadata={"note": "not a decoders file"})
    with pytest.raises(ModelLoadError, match="pca-only.safetensors"):
        load_decoders(path)


def test_wrong_shapes_are_a_load_error(small, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "shapes.safetensors"
    save_decoders(small, path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    state = load_file(str(path))
    meta["config.text"] = json.dumps({**json.loads(meta["config.text"]), "hidden": 99})
    save_file(state, str(path), metadata=meta)
    with pytest.raises(ModelLoadError, match="shapes.safetensors"):
        load_decoders(path)


def test_check_encoder(small):
    small.check_encoder(SimpleNamespace(fingerprint="fp-1234", spec="fake:ok"))
    with pytest.raises(ConfigError, match="fp-1234") as err:
        small.check_encoder(SimpleNamespace(fingerprint="fp-other", spec="open_clip:ViT-B-32/x"))
    msg = str(err.value)
    assert "fp-other" in msg and "open_clip:ViT-B-32/x" in msg and "ragsc decoders train" in msg


def test_shipped_decoders_match_the_embedded_encoder(decoders, embedded):
    assert default_path().name == DECODERS_FILE and default_path().parent.name == "embedded"
    decoders.check_encoder(embedded)
    assert decoders.text.config.dim == embedded.dim == decoders.pca.mean.shape[0]
    assert len(decoders.vqa.answers) == 13 and "yes" in decoders.vqa.answers
    # the shipped networks are the default architectures
    assert decoders.text.config == TextGRUConfig(vocab_size=len(decoders.vocab))
    assert decoders.image.config == ImageDecoderConfig()
    assert decoders.vqa.config == AnswerHeadConfig(decoders.vqa.answers)


@pytest.mark.parametrize("key, value", [("encoder_fingerprint", None), ("info", "{not json"),
                                        ("vocab", "[1, 2")])
def test_bad_metadata_is_a_load_error(small, tmp_path, key, value):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = tmp_path / "meta.safetensors"
    save_decoders(small, path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    if value is None:
        del meta[key]
    else:
        meta[key] = value
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ModelLoadError, match="meta.safetensors"):
        load_decoders(path)


def _rewrite_meta(path, change) -> None:
    """Rewrite a saved file's metadata with ``change(meta)``, same tensors."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    change(meta)
    save_file(load_file(str(path)), str(path), metadata=meta)


def test_file_without_configs_names_the_missing_key(small, tmp_path):
    """The format before configs ("sizes" + "answers") is refused with the missing key named."""
    path = tmp_path / "old.safetensors"
    save_decoders(small, path)

    def to_old_format(meta):
        vqa = json.loads(meta.pop("config.vqa"))
        for key in ("config.text", "config.image"):
            del meta[key]
        meta["answers"] = json.dumps(vqa["answers"])
        meta["sizes"] = json.dumps({"dim": DIM, "text_hidden": 12, "text_emb": 8, "max_len": 7,
                                    "image_width": 4, "vqa_hidden": 10})

    _rewrite_meta(path, to_old_format)
    with pytest.raises(ModelLoadError, match="old.safetensors") as err:
        load_decoders(path)
    msg = str(err.value)
    assert "config.text, config.image, config.vqa" in msg and "ragsc decoders train" in msg


@pytest.mark.parametrize("key", ["config.text", "config.image", "config.vqa", "vocab", "encoder_fingerprint"])
def test_each_missing_key_is_named(small, tmp_path, key):
    path = tmp_path / "d.safetensors"
    save_decoders(small, path)
    _rewrite_meta(path, lambda meta: meta.pop(key))
    with pytest.raises(ModelLoadError, match=f"metadata key\\(s\\) {key} missing"):
        load_decoders(path)


@pytest.mark.parametrize("key, change, problem", [
    ("config.text", lambda c: c.pop("hidden"), "missing fields \\['hidden'\\]"),
    ("config.image", lambda c: c.update(depth=5), "unknown fields \\['depth'\\]"),
    ("config.image", lambda c: c.update(width=6), "multiple of 4"),
    ("config.vqa", lambda c: c.update(hidden=0), "AnswerHeadConfig.hidden must be an integer >= 1"),
    ("config.vqa", lambda c: c.update(answers=["yes", "yes"]), "distinct"),
    ("config.text", lambda c: c.update(emb=8.0), "TextGRUConfig.emb must be an integer"),
])
def test_bad_config_is_a_load_error_naming_the_key(small, tmp_path, key, change, problem):
    path = tmp_path / "d.safetensors"
    save_decoders(small, path)

    def edit(meta):
        config = json.loads(meta[key])
        change(config)
        meta[key] = json.dumps(config)

    _rewrite_meta(path, edit)
    with pytest.raises(ModelLoadError, match=f"d.safetensors: metadata '{key}': .*{problem}"):
        load_decoders(path)


def test_config_and_vocabulary_must_agree(small, tmp_path):
    path = tmp_path / "d.safetensors"
    save_decoders(small, path)
    _rewrite_meta(path, lambda meta: meta.update(vocab=json.dumps(small.vocab.words[4:] + ["extra"])))
    n = len(small.vocab)
    with pytest.raises(ModelLoadError, match=f"{n} word ids, its vocabulary {n + 1}"):
        load_decoders(path)


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
    path = tmp_path / "d.safetensors"
    save_decoders(small, path)
    _rewrite_meta(path, lambda meta: meta.update({"config.image": "{\"an\": \"older architecture\"}"}))
    with pytest.raises(ModelLoadError, match="config.image"):
        load_decoders(path)
    kept = load_decoders(path, skip=("image",))
    assert kept.image is None and kept.text is not None and kept.vqa is not None
    _same_state(small.vqa, kept.vqa)
    no_text = load_decoders(path, skip=("text", "image"))
    assert no_text.text is None and no_text.vocab is None
    with pytest.raises(ConfigError, match="audio"):
        load_decoders(path, skip=("audio",))
    with pytest.raises(ConfigError, match="without the image part"):
        save_decoders(kept, tmp_path / "new.safetensors")
    assert not (tmp_path / "new.safetensors").exists()


def test_bad_save_changes_nothing_on_disk(small, tmp_path):
    path = tmp_path / "d.safetensors"
    save_decoders(small, path)
    before = path.read_bytes()
    small.info["when"] = object()  # not JSON
    with pytest.raises(ConfigError, match="JSON"):
        save_decoders(small, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.safetensors"]  # no temporary file left


def test_shipped_file_is_in_the_config_format():
    from safetensors import safe_open

    with safe_open(str(default_path()), framework="pt") as f:
        meta = f.metadata()
    assert set(meta) == {"config.text", "config.image", "config.vqa", "vocab", "encoder_fingerprint", "info"}
    assert json.loads(meta["config.image"]) == {"dim": 384, "size": 64, "width": 16}
