"""The open_clip backend on a tiny, randomly initialised CLIP built inside the test (no hub, no network).

The model is written the way ``open_clip:local-dir:<dir>`` expects it (``open_clip_config.json`` with
``model_cfg`` / ``preprocess_cfg`` plus ``open_clip_model.safetensors``) and compared with the raw
open_clip model, so these tests check that the wrapper is faithful, not just that it runs.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

open_clip = pytest.importorskip("open_clip")
safetensors_torch = pytest.importorskip("safetensors.torch")

from ragsc import load_encoder  # noqa: E402

from ._images import rand_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

from ragsc.errors import ConfigError, ModelLoadError  # noqa: E402

EMBED_DIM = 32
VISION_WIDTH = 32
CONTEXT_LENGTH = 16
MODEL_CFG = {
    "embed_dim": EMBED_DIM,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": VISION_WIDTH, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
MEAN = [0.5, 0.4, 0.3]
STD = [0.2, 0.25, 0.3]
N_PATCHES = (32 // 8) ** 2


# --------------------------------------------------------------------------- helpers / fixtures


def _build_model(seed: int = 0):
    torch.manual_seed(seed)
    return open_clip.model.CLIP(**json.loads(json.dumps(MODEL_CFG))).eval()


def _write_local_dir(path, state_dict, *, with_weights: bool = True):
    path.mkdir(parents=True, exist_ok=True)
    cfg = {"model_cfg": MODEL_CFG, "preprocess_cfg": {"mean": MEAN, "std": STD}}
    (path / "open_clip_config.json").write_text(json.dumps(cfg))
    if with_weights:
        tensors = {k: v.detach().clone().contiguous() for k, v in state_dict.items()}
        safetensors_torch.save_file(tensors, str(path / "open_clip_model.safetensors"))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(directory, raw open_clip model with the same weights) for a seeded tiny CLIP."""
    model = _build_model(seed=0)
    directory = _write_local_dir(tmp_path_factory.mktemp("tiny_open_clip"), model.state_dict())
    return directory, model


@pytest.fixture(scope="module")
def enc(tiny):
    directory, _ = tiny
    return load_encoder(f"open_clip:local-dir:{directory}")


def _manual_pixels(im: Image.Image) -> torch.Tensor:
    """What the config's preprocess_cfg means for a 32x32 RGB image: /255, then (x - mean) / std."""
    assert im.size == (32, 32) and im.mode == "RGB"
    x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def _assert_unit_rows(t: torch.Tensor):
    assert torch.isfinite(t).all()
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(t.shape[0]), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- loading
def test_local_dir_loads_with_config_dim_and_preprocess(enc, tiny):
    directory, _ = tiny
    assert enc.dim == EMBED_DIM
    assert enc.spec == f"open_clip:local-dir:{directory}"
    assert enc.context_length == CONTEXT_LENGTH
    assert not enc.model.training
    assert not any(p.requires_grad for p in enc.model.parameters())
    # the preprocess_cfg of the folder is what the encoder normalises with
    im = rand_image((32, 32), seed=1)
    torch.testing.assert_close(enc.preprocess(im), _manual_pixels(im), atol=1e-6, rtol=0)


def test_local_dir_loads_the_saved_weights(enc, tiny):
    _, model = tiny
    raw = model.state_dict()
    loaded = enc.model.state_dict()
    assert set(loaded) == set(raw)
    for name, tensor in raw.items():
        assert torch.equal(loaded[name], tensor), name


# --------------------------------------------------------------------------- images
def test_encode_images_mixed_sizes_and_modes(enc):
    images = [
        rand_image((32, 32), 0),
        rand_image((10, 50), 1),  # tall, non-square
        rand_image((97, 13), 2, mode="L"),  # grayscale
        rand_image((40, 64), 3, mode="RGBA"),  # transparency
        Image.new("P", (5, 7), 3),  # palette
        Image.new("RGB", (1, 1), (200, 10, 10)),  # a single pixel
        np.random.RandomState(4).rand(20, 30, 3),  # float array in [0, 1]
    ]
    out = enc.encode_images(images)
    assert out.modality == "image"
    assert out.embeddings.shape == (len(images), EMBED_DIM)
    assert out.embeddings.dtype == torch.float32
    _assert_unit_rows(out.embeddings)
    assert out.tokens is None and out.token_mask is None
    assert out.meta["encoder"] == enc.spec
    # different inputs give different embeddings (no collapsed / constant output)
    sims = out.embeddings @ out.embeddings.T
    off_diag = sims[~torch.eye(len(images), dtype=torch.bool)]
    assert off_diag.max() < 0.9999


def test_image_embeddings_equal_raw_open_clip(enc, tiny):
    _, model = tiny
    images = [rand_image((32, 32), s) for s in range(5)]
    pixels = torch.stack([_manual_pixels(im) for im in images])
    with torch.no_grad():
        expected = model.encode_image(pixels, normalize=True)
    got = enc.encode_images(images).embeddings
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_grayscale_image_encodes_like_its_rgb_conversion(enc):
    gray = rand_image((45, 45), 7, mode="L")
    a = enc.encode_images(gray).embeddings
    b = enc.encode_images(gray.convert("RGB")).embeddings
    assert a.shape == (1, EMBED_DIM)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_image_tokens(enc, tiny):
    _, model = tiny
    images = [rand_image((32, 32), s) for s in range(3)]
    out = enc.encode_images(images, return_tokens=True)
    # patch tokens in the vision width (class token excluded)
    assert out.tokens.shape == (3, N_PATCHES, VISION_WIDTH)
    assert out.token_mask.shape == (3, N_PATCHES) and out.token_mask.dtype == torch.bool
    assert out.token_mask.all()
    pixels = torch.stack([_manual_pixels(im) for im in images])
    model.visual.output_tokens = True
    try:
        with torch.no_grad():
            pooled, tokens = model.visual(pixels)
    finally:
        model.visual.output_tokens = False
    torch.testing.assert_close(out.tokens, tokens, atol=1e-5, rtol=1e-4)
    # embeddings are unchanged by asking for tokens
    torch.testing.assert_close(out.embeddings, F.normalize(pooled, dim=-1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.embeddings, enc.encode_images(images).embeddings, atol=1e-6, rtol=0)
    # the tower is left as it was found
    assert enc.model.visual.output_tokens is False


def test_empty_batches(enc):
    assert enc.encode_images([]).embeddings.shape == (0, EMBED_DIM)
    assert enc.encode_texts([]).embeddings.shape == (0, EMBED_DIM)


# --------------------------------------------------------------------------- texts
TEXTS = ["a photo of a dog", "a red car", "two cats on a sofa", "x"]


def test_encode_texts_shape_and_normalisation(enc):
    out = enc.encode_texts(TEXTS)
    assert out.modality == "text"
    assert out.embeddings.shape == (len(TEXTS), EMBED_DIM)
    assert out.embeddings.dtype == torch.float32
    _assert_unit_rows(out.embeddings)
    assert "truncated" not in out.meta
    sims = out.embeddings @ out.embeddings.T
    assert sims[~torch.eye(len(TEXTS), dtype=torch.bool)].max() < 0.9999
    # a single string is a batch of one
    single = enc.encode_texts(TEXTS[0]).embeddings
    torch.testing.assert_close(single, out.embeddings[:1], atol=1e-6, rtol=0)


def test_text_embeddings_equal_raw_open_clip(enc, tiny):
    _, model = tiny
    long_text = " ".join(["word"] * 40)
    texts = TEXTS + [long_text]
    ids = open_clip.tokenize(texts, context_length=CONTEXT_LENGTH)
    with torch.no_grad():
        expected = model.encode_text(ids, normalize=True)
    got = enc.encode_texts(texts).embeddings
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_text_tokens_are_none(enc):
    out = enc.encode_texts(TEXTS[:2], return_tokens=True)
    assert out.embeddings.shape == (2, EMBED_DIM)
    assert out.tokens is None and out.token_mask is None


def test_truncation_is_reported_at_the_context_boundary(enc):
    # "a" is one BPE token; <sot> + n tokens + <eot> must fit in CONTEXT_LENGTH (16)
    fits = " ".join(["a"] * (CONTEXT_LENGTH - 2))
    too_long = " ".join(["a"] * (CONTEXT_LENGTH - 1))
    much_too_long = "the quick brown fox jumps over the lazy dog " * 10
    out = enc.encode_texts(["short", too_long, fits, much_too_long])
    assert out.meta["truncated"] == [1, 3]
    _assert_unit_rows(out.embeddings)
    assert "truncated" not in enc.encode_texts([fits, "short"]).meta


def test_truncated_indices_are_global_across_batches(tiny):
    directory, _ = tiny
    small = load_encoder(f"open_clip:local-dir:{directory}", batch_size=2)
    big = load_encoder(f"open_clip:local-dir:{directory}")
    texts = ["one", "two", "three", " ".join(["b"] * 30), "five"]
    a, b = small.encode_texts(texts), big.encode_texts(texts)
    assert a.meta["truncated"] == b.meta["truncated"] == [3]
    torch.testing.assert_close(a.embeddings, b.embeddings, atol=1e-5, rtol=1e-4)
    images = [rand_image((32, 32), s) for s in range(5)]
    ia, ib = small.encode_images(images, return_tokens=True), big.encode_images(images, return_tokens=True)
    torch.testing.assert_close(ia.embeddings, ib.embeddings, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ia.tokens, ib.tokens, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- fingerprint
def test_fingerprint_stable_across_loads(enc, tiny):
    directory, _ = tiny
    fp = enc.fingerprint
    assert isinstance(fp, str) and len(fp) == 32
    int(fp, 16)  # hex
    assert enc.fingerprint == fp
    assert load_encoder(f"open_clip:local-dir:{directory}").fingerprint == fp


def test_fingerprint_changes_with_one_weight(enc, tiny, tmp_path):
    _, model = tiny
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["visual.proj"][0, 0] += 1e-3
    perturbed = load_encoder(f"open_clip:local-dir:{_write_local_dir(tmp_path / 'perturbed', state)}")
    assert perturbed.fingerprint != enc.fingerprint
    # ... while an identical copy in another folder has the same fingerprint
    copy = load_encoder(f"open_clip:local-dir:{_write_local_dir(tmp_path / 'copy', model.state_dict())}")
    assert copy.fingerprint == enc.fingerprint


# --------------------------------------------------------------------------- builtin-name spec form
def test_model_name_with_checkpoint_file(tiny, monkeypatch):
    """``open_clip:<model name>/<checkpoint file>``, with a tiny config registered as a builtin."""
    directory, model = tiny
    name = "ragsc-test-tiny-clip"
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, name, json.loads(json.dumps(MODEL_CFG)))
    ckpt = directory / "open_clip_model.safetensors"
    assert ckpt.is_absolute()
    enc = load_encoder(f"open_clip:{name}/{ckpt}")
    assert enc.dim == EMBED_DIM
    for key, tensor in model.state_dict().items():
        assert torch.equal(enc.model.state_dict()[key], tensor), key
    texts = ["a photo of a dog", "a cat"]
    with torch.no_grad():
        expected = model.encode_text(open_clip.tokenize(texts, context_length=CONTEXT_LENGTH), normalize=True)
    torch.testing.assert_close(enc.encode_texts(texts).embeddings, expected, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- errors
def test_unknown_pretrained_tag_is_model_load_error_without_network():
    with pytest.raises(ModelLoadError, match="not_a_real_tag"):
        load_encoder("open_clip:ViT-B-32/not_a_real_tag")


def test_unknown_model_name_is_model_load_error():
    with pytest.raises(ModelLoadError):
        load_encoder("open_clip:No-Such-Model-xyz/whatever")


def test_missing_checkpoint_file_is_model_load_error(tmp_path, monkeypatch):
    name = "ragsc-test-tiny-clip"
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, name, json.loads(json.dumps(MODEL_CFG)))
    with pytest.raises(ModelLoadError):
        load_encoder(f"open_clip:{name}/{tmp_path / 'missing.safetensors'}")


def test_corrupt_weights_are_model_load_error(tmp_path):
    directory = _write_local_dir(tmp_path / "corrupt", {}, with_weights=False)
    (directory / "open_clip_model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(ModelLoadError):
        load_encoder(f"open_clip:local-dir:{directory}")


def test_weights_of_another_architecture_are_model_load_error(tmp_path):
    state = {"visual.proj": torch.zeros(3, 3)}
    directory = _write_local_dir(tmp_path / "wrong", state)
    with pytest.raises(ModelLoadError):
        load_encoder(f"open_clip:local-dir:{directory}")


@pytest.mark.parametrize("spec", ["open_clip:/x", "open_clip:/ViT-B-32", "open_clip:"])
def test_missing_model_name_is_config_error(spec):
    with pytest.raises(ConfigError):
        load_encoder(spec)


def test_nonexistent_local_dir_is_model_load_error(tmp_path):
    missing = tmp_path / "does_not_exist"
    with pytest.raises(ModelLoadError, match="does_not_exist"):
        load_encoder(f"open_clip:local-dir:{missing}")


def test_local_dir_without_config_is_model_load_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError):
        load_encoder(f"open_clip:local-dir:{tmp_path / 'empty'}")


def test_local_dir_without_weights_is_model_load_error(tmp_path):
    directory = _write_local_dir(tmp_path / "no_weights", {}, with_weights=False)
    with pytest.raises(ModelLoadError):
        load_encoder(f"open_clip:local-dir:{directory}")


def test_num_parameters_splits_the_towers(enc):
    counts = enc.num_parameters()
    assert counts["image"] == sum(p.numel() for p in enc.model.visual.parameters())
    total = sum(p.numel() for p in enc.model.parameters())
    bias = enc.model.logit_bias.numel() if getattr(enc.model, "logit_bias", None) is not None else 0
    scale = enc.model.logit_scale.numel()
    assert counts["text"] > 0 and counts["image"] + counts["text"] == total - scale - bias
