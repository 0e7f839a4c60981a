"""The decoders bundle: one safetensors file round trip, load errors, the encoder fingerprint check."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from ragsc.channel import PCAOrdering
from ragsc.decoders import AnswerHead, Decoders, ImageDecoderNet, TextGRU, Vocab, load_decoders, save_decoders
from ragsc.decoders.bundle import DECODERS_FILE, default_path
from ragsc.errors import KBError, ModelLoadError

DIM = 16


@pytest.fixture
def small() -> Decoders:
    torch.manual_seed(0)
    vocab = Vocab.build(["a red triangle", "Trust, but verify.", "It's a test."])
    text = TextGRU(len(vocab), dim=DIM, emb=8, hidden=12, max_len=7)
    image = ImageDecoderNet(dim=DIM, width=4)
    vqa = AnswerHead(["circle", "no", "red", "yes"], dim=DIM, hidden=10)
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
    assert back.text.max_len == 7 and back.text.gru.hidden_size == 12 and back.text.embed.embedding_dim == 8
    assert back.image.width == 4 and back.vqa.mlp[0].out_features == 10
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


def test_file_is_plain_safetensors_with_json_metadata(small, tmp_path):
    from safetensors import safe_open

    path = tmp_path / DECODERS_FILE
    save_decoders(small, path)
    with safe_open(str(path), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
    assert {"pca.mean", "pca.components", "pca.variances"} <= keys
    assert all(k.split(".")[0] in ("text", "image", "vqa", "pca") for k in keys)
    assert json.loads(meta["vocab"]) == small.vocab.words[4:]
    assert json.loads(meta["answers"]) == small.vqa.answers
    assert json.loads(meta["sizes"])["dim"] == DIM


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
    meta["sizes"] = json.dumps({**json.loads(meta["sizes"]), "text_hidden": 99})
    save_file(state, str(path), metadata=meta)
    with pytest.raises(ModelLoadError, match="shapes.safetensors"):
        load_decoders(path)


def test_check_encoder(small):
    small.check_encoder(SimpleNamespace(fingerprint="fp-1234", spec="fake:ok"))
    with pytest.raises(KBError, match="fp-1234") as err:
        small.check_encoder(SimpleNamespace(fingerprint="fp-other", spec="open_clip:ViT-B-32/x"))
    msg = str(err.value)
    assert "fp-other" in msg and "open_clip:ViT-B-32/x" in msg and "ragsc decoders train" in msg


def test_shipped_decoders_match_the_embedded_encoder(decoders, embedded):
    assert default_path().name == DECODERS_FILE and default_path().parent.name == "embedded"
    decoders.check_encoder(embedded)
    assert decoders.text.init[0].in_features == embedded.dim == decoders.pca.mean.shape[0]
    assert len(decoders.vqa.answers) == 13 and "yes" in decoders.vqa.answers


@pytest.mark.parametrize("key, value", [("encoder_fingerprint", None), ("info", "{not json"), ("vocab", "[1, 2")])
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
