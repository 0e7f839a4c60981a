"""The transformers backend on tiny, randomly initialised CLIP and SigLIP models built inside the test.

Each model is saved with ``save_pretrained`` into a temporary folder together with a small BERT
word-piece tokenizer and an image processor, loaded through ``load_encoder("hf:<dir>")`` and compared
with the raw transformers model. Nothing touches a model hub or the network.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    BertConfig,
    BertModel,
    BertTokenizerFast,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
)

from ragsc import load_encoder  # noqa: E402

from ._images import rand_image  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_network")

from ragsc.errors import ModelLoadError  # noqa: E402

PROJECTION_DIM = 16
HIDDEN = 32
MAX_LEN = 32
N_PATCHES = (32 // 8) ** 2
MEAN = [0.5, 0.4, 0.3]
STD = [0.2, 0.25, 0.3]
WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS += list("abcdefghijklmnopqrstuvwxyz0123456789")
WORDS += "the photo of dog cat red blue car sofa two on in with and picture".split()
WORDS += [f"w{i}" for i in range(200)]
PAD, UNK, CLS, SEP = 0, 1, 2, 3
TOWER = {"hidden_size": HIDDEN, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}
TEXT_CFG = {**TOWER, "vocab_size": len(WORDS), "max_position_embeddings": MAX_LEN,
            "pad_token_id": PAD, "bos_token_id": CLS, "eos_token_id": SEP}
VISION_CFG = {**TOWER, "image_size": 32, "patch_size": 8}
TEXTS = ["a photo of a dog", "a red car", "two cats on a sofa", "x"]


# --------------------------------------------------------------------------- helpers / fixtures


def _tokenizer(**kwargs) -> BertTokenizerFast:
    return BertTokenizerFast(vocab={w: i for i, w in enumerate(WORDS)}, model_max_length=MAX_LEN, **kwargs)


def _clip_processor() -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                              image_mean=MEAN, image_std=STD)


def _save(directory, model, tokenizer, processor):
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    if processor is not None:
        processor.save_pretrained(directory)
    return directory


def _build_clip(seed=0) -> CLIPModel:
    torch.manual_seed(seed)
    config = CLIPConfig(text_config=TEXT_CFG, vision_config=VISION_CFG, projection_dim=PROJECTION_DIM)
    return CLIPModel(config).eval()


def _build_siglip(seed=1) -> SiglipModel:
    torch.manual_seed(seed)
    return SiglipModel(SiglipConfig(text_config=TEXT_CFG, vision_config=VISION_CFG)).eval()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    model = _build_clip()
    return _save(tmp_path_factory.mktemp("tiny_hf_clip"), model, _tokenizer(), _clip_processor()), model


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    model = _build_siglip()
    # like the real SigLIP tokenizer: input ids only, no attention mask (the model pads to max_length)
    tok = _tokenizer(model_input_names=["input_ids"])
    proc = SiglipImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD)
    return _save(tmp_path_factory.mktemp("tiny_hf_siglip"), model, tok, proc), model


@pytest.fixture(scope="module")
def clip(clip_dir):
    return load_encoder(f"hf:{clip_dir[0]}")


@pytest.fixture(scope="module")
def siglip(siglip_dir):
    return load_encoder(f"hf:{siglip_dir[0]}")


def _pooled(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _manual_pixels(images) -> torch.Tensor:
    """What the processors mean for 32x32 RGB images: /255, then (x - mean) / std."""
    out = []
    for im in images:
        assert im.size == (32, 32) and im.mode == "RGB"
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0
        out.append((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])
    return torch.stack(out)


def _assert_unit_rows(t: torch.Tensor):
    assert torch.isfinite(t).all()
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(t.shape[0]), atol=1e-5, rtol=0)


def _assert_distinct_rows(t: torch.Tensor):
    sims = t @ t.T
    assert sims[~torch.eye(t.shape[0], dtype=torch.bool)].max() < 0.9999


def _ids(text: str) -> list[int]:
    """[CLS] + word ids (unknown -> [UNK]) cut to MAX_LEN - 2 + [SEP]: what the tokenizer should give."""
    ids = [WORDS.index(w) if w in WORDS else UNK for w in text.lower().split()]
    return [CLS] + ids[: MAX_LEN - 2] + [SEP]


def _words(n: int) -> str:
    return " ".join(f"w{i % 200}" for i in range(n))  # n known word pieces -> n + 2 ids with [CLS] [SEP]


MIXED_IMAGES = [
    lambda: rand_image((32, 32), 0),
    lambda: rand_image((10, 50), 1),
    lambda: rand_image((97, 13), 2, mode="L"),
    lambda: rand_image((40, 64), 3, mode="RGBA"),
    lambda: Image.new("P", (5, 7), 3),
    lambda: Image.new("RGB", (1, 1), (200, 10, 10)),
    lambda: np.random.RandomState(4).rand(20, 30, 3),
]


# --------------------------------------------------------------------------- loading
def test_clip_loads_with_projection_dim(clip, clip_dir):
    assert clip.dim == PROJECTION_DIM
    assert clip.spec == f"hf:{clip_dir[0]}"
    assert type(clip.model).__name__ == "CLIPModel"
    assert clip.is_siglip is False
    assert clip.max_length == MAX_LEN
    assert not clip.model.training
    assert not any(p.requires_grad for p in clip.model.parameters())
    for name, tensor in clip_dir[1].state_dict().items():
        assert torch.equal(clip.model.state_dict()[name], tensor), name


def test_siglip_loads_with_hidden_size(siglip, siglip_dir):
    assert siglip.dim == HIDDEN
    assert type(siglip.model).__name__ == "SiglipModel"
    assert siglip.is_siglip is True
    assert siglip.max_length == MAX_LEN
    for name, tensor in siglip_dir[1].state_dict().items():
        assert torch.equal(siglip.model.state_dict()[name], tensor), name


# --------------------------------------------------------------------------- images
@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_encode_images_mixed_sizes_and_modes(which, request):
    enc = request.getfixturevalue(which)
    out = enc.encode_images([make() for make in MIXED_IMAGES])
    assert out.modality == "image"
    assert out.embeddings.shape == (len(MIXED_IMAGES), enc.dim)
    assert out.embeddings.dtype == torch.float32
    assert out.tokens is None and out.token_mask is None
    assert out.meta["encoder"] == enc.spec
    _assert_unit_rows(out.embeddings)
    _assert_distinct_rows(out.embeddings)


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_image_embeddings_equal_raw_model(which, request):
    enc = request.getfixturevalue(which)
    model = request.getfixturevalue(f"{which}_dir")[1]
    images = [rand_image((32, 32), s) for s in range(4)]
    with torch.no_grad():
        expected = F.normalize(_pooled(model.get_image_features(pixel_values=_manual_pixels(images))), dim=-1)
    got = enc.encode_images(images).embeddings
    assert got.shape == (4, enc.dim)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_clip_image_tokens(clip):
    images = [rand_image((32, 32), s) for s in range(3)]
    out = clip.encode_images(images, return_tokens=True)
    # class token + patches, post-layernormed and projected into the shared space
    assert out.tokens.shape == (3, N_PATCHES + 1, PROJECTION_DIM)
    assert out.token_mask.shape == (3, N_PATCHES + 1) and out.token_mask.all()
    # CLIP's image embedding is exactly the projected class token
    torch.testing.assert_close(F.normalize(out.tokens[:, 0], dim=-1), out.embeddings, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.embeddings, clip.encode_images(images).embeddings, atol=1e-6, rtol=0)


def test_siglip_image_tokens(siglip):
    images = [rand_image((32, 32), s) for s in range(3)]
    out = siglip.encode_images(images, return_tokens=True)
    assert out.tokens.shape == (3, N_PATCHES, HIDDEN)
    assert out.token_mask.shape == (3, N_PATCHES) and out.token_mask.all()
    # SigLIP's image embedding is its attention-pooling head applied to these tokens
    with torch.no_grad():
        pooled = siglip.model.vision_model.head(out.tokens)
    torch.testing.assert_close(F.normalize(pooled, dim=-1), out.embeddings, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- texts
@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_encode_texts_shape_and_normalisation(which, request):
    enc = request.getfixturevalue(which)
    out = enc.encode_texts(TEXTS)
    assert out.modality == "text"
    assert out.embeddings.shape == (len(TEXTS), enc.dim)
    assert out.embeddings.dtype == torch.float32
    assert out.tokens is None and out.token_mask is None
    assert "truncated" not in out.meta
    _assert_unit_rows(out.embeddings)
    _assert_distinct_rows(out.embeddings)
    single = enc.encode_texts(TEXTS[1]).embeddings
    torch.testing.assert_close(single, out.embeddings[1:2], atol=1e-5, rtol=1e-4)


def test_clip_text_embeddings_equal_raw_model(clip, clip_dir):
    model = clip_dir[1]
    texts = TEXTS + [_words(50)]
    ids = [_ids(t) for t in texts]
    assert ids[0] == [CLS, WORDS.index("a"), WORDS.index("photo"), WORDS.index("of"), WORDS.index("a"),
                      WORDS.index("dog"), SEP]
    expected = []
    with torch.no_grad():
        for row in ids:  # one at a time, no padding at all
            expected.append(_pooled(model.get_text_features(input_ids=torch.tensor([row]))))
    expected = F.normalize(torch.cat(expected), dim=-1)
    torch.testing.assert_close(clip.encode_texts(texts).embeddings, expected, atol=1e-5, rtol=1e-4)


def test_siglip_text_embeddings_equal_raw_model(siglip, siglip_dir):
    model = siglip_dir[1]
    texts = TEXTS + [_words(50)]
    ids = [_ids(t) for t in texts]
    padded = torch.tensor([row + [PAD] * (MAX_LEN - len(row)) for row in ids])  # SigLIP: max_length padding
    with torch.no_grad():
        expected = F.normalize(_pooled(model.get_text_features(input_ids=padded)), dim=-1)
    torch.testing.assert_close(siglip.encode_texts(texts).embeddings, expected, atol=1e-5, rtol=1e-4)


def test_clip_text_tokens(clip):
    texts = ["a dog", "a photo of a red car", "x"]
    out = clip.encode_texts(texts, return_tokens=True)
    lengths = [4, 8, 3]  # [CLS] ... [SEP]
    assert out.tokens.shape == (3, max(lengths), PROJECTION_DIM)
    assert out.token_mask.dtype == torch.bool
    expected_mask = torch.tensor([[j < n for j in range(max(lengths))] for n in lengths])
    assert torch.equal(out.token_mask, expected_mask)
    # CLIP's text embedding is the projected token at the [SEP] (eos) position
    eos = torch.stack([out.tokens[i, n - 1] for i, n in enumerate(lengths)])
    torch.testing.assert_close(F.normalize(eos, dim=-1), out.embeddings, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.embeddings, clip.encode_texts(texts).embeddings, atol=1e-6, rtol=0)


def test_siglip_text_tokens(siglip):
    texts = ["a dog", "a photo of a red car"]
    out = siglip.encode_texts(texts, return_tokens=True)
    assert out.tokens.shape == (2, MAX_LEN, HIDDEN)  # padded to max_length, as SigLIP was trained
    assert out.token_mask.shape == (2, MAX_LEN) and out.token_mask.dtype == torch.bool
    # SigLIP pools the last position through its text head
    with torch.no_grad():
        pooled = siglip.model.text_model.head(out.tokens[:, -1])
    torch.testing.assert_close(F.normalize(pooled, dim=-1), out.embeddings, atol=1e-5, rtol=1e-4)


def test_siglip_text_token_mask_excludes_padding(siglip):
    out = siglip.encode_texts(["a dog", "a photo of a red car"], return_tokens=True)
    lengths = [4, 8]
    expected = torch.tensor([[j < n for j in range(MAX_LEN)] for n in lengths])
    assert torch.equal(out.token_mask, expected)


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_truncation_is_reported_at_the_context_boundary(which, request):
    enc = request.getfixturevalue(which)
    fits = _words(MAX_LEN - 2)  # [CLS] + 30 + [SEP] == 32: full, not cut
    too_long = _words(MAX_LEN - 1)
    much_too_long = _words(200)
    out = enc.encode_texts(["a dog", too_long, fits, much_too_long])
    assert out.meta["truncated"] == [1, 3]
    _assert_unit_rows(out.embeddings)
    assert "truncated" not in enc.encode_texts([fits, "a dog"]).meta
    # the cut text is encoded as its first MAX_LEN ids: same as the exactly-fitting prefix + [SEP]
    torch.testing.assert_close(out.embeddings[1], enc.encode_texts(fits).embeddings[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_batching_keeps_results_and_global_truncated_indices(which, request):
    directory = request.getfixturevalue(f"{which}_dir")[0]
    small = load_encoder(f"hf:{directory}", batch_size=2)
    big = load_encoder(f"hf:{directory}", batch_size=64)
    texts = ["a dog", "a photo of a red car on a sofa", "x", _words(40), "two cats"]
    a = small.encode_texts(texts, return_tokens=True)
    b = big.encode_texts(texts, return_tokens=True)
    assert a.meta["truncated"] == b.meta["truncated"] == [3]
    torch.testing.assert_close(a.embeddings, b.embeddings, atol=1e-5, rtol=1e-4)
    assert a.tokens.shape == b.tokens.shape
    assert torch.equal(a.token_mask, b.token_mask)
    m = a.token_mask
    torch.testing.assert_close(a.tokens[m], b.tokens[m], atol=1e-5, rtol=1e-4)
    images = [rand_image((32, 32), s) for s in range(5)]
    ia, ib = small.encode_images(images, return_tokens=True), big.encode_images(images, return_tokens=True)
    torch.testing.assert_close(ia.embeddings, ib.embeddings, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ia.tokens, ib.tokens, atol=1e-5, rtol=1e-4)


def test_empty_batches(clip, siglip):
    assert clip.encode_images([]).embeddings.shape == (0, PROJECTION_DIM)
    assert siglip.encode_texts([]).embeddings.shape == (0, HIDDEN)


# --------------------------------------------------------------------------- fingerprint
def _perturbed_copy(model, key, directory, tokenizer, processor):
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state[key].view(-1)[0] += 1e-3
    clone = type(model)(model.config).eval()
    clone.load_state_dict(state)
    return _save(directory, clone, tokenizer, processor)


def test_clip_fingerprint_stable_and_weight_sensitive(clip, clip_dir, tmp_path):
    directory, model = clip_dir
    fp = clip.fingerprint
    assert isinstance(fp, str) and len(fp) == 32
    int(fp, 16)
    assert load_encoder(f"hf:{directory}").fingerprint == fp
    key = "visual_projection.weight"
    other = _perturbed_copy(model, key, tmp_path / "p", _tokenizer(), _clip_processor())
    assert load_encoder(f"hf:{other}").fingerprint != fp


def test_siglip_fingerprint_stable_and_weight_sensitive(siglip, siglip_dir, tmp_path):
    directory, model = siglip_dir
    fp = siglip.fingerprint
    assert isinstance(fp, str) and len(fp) == 32
    int(fp, 16)
    assert siglip.fingerprint == fp
    assert load_encoder(f"hf:{directory}").fingerprint == fp
    proc = SiglipImageProcessor(size={"height": 32, "width": 32}, image_mean=MEAN, image_std=STD)
    key = "text_model.head.weight"
    other = _perturbed_copy(model, key, tmp_path / "p", _tokenizer(model_input_names=["input_ids"]), proc)
    assert load_encoder(f"hf:{other}").fingerprint != fp


# --------------------------------------------------------------------------- errors
def test_non_dual_encoder_is_model_load_error(tmp_path):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**TOWER, vocab_size=len(WORDS), max_position_embeddings=MAX_LEN)).eval()
    directory = _save(tmp_path / "bert", bert, _tokenizer(), _clip_processor())
    with pytest.raises(ModelLoadError, match="not a CLIP-style dual encoder"):
        load_encoder(f"hf:{directory}")


def test_text_only_folder_is_model_load_error(tmp_path):
    torch.manual_seed(0)
    bert = BertModel(BertConfig(**TOWER, vocab_size=len(WORDS), max_position_embeddings=MAX_LEN)).eval()
    directory = _save(tmp_path / "bert_no_processor", bert, _tokenizer(), None)
    with pytest.raises(ModelLoadError):
        load_encoder(f"hf:{directory}")


def test_clip_folder_without_image_processor_is_model_load_error(tmp_path, clip_dir):
    directory = _save(tmp_path / "no_processor", clip_dir[1], _tokenizer(), None)
    with pytest.raises(ModelLoadError):
        load_encoder(f"hf:{directory}")


def test_clip_folder_without_tokenizer_is_model_load_error(tmp_path, clip_dir):
    directory = _save(tmp_path / "no_tok", clip_dir[1], None, _clip_processor())
    with pytest.raises(ModelLoadError):
        enc = load_encoder(f"hf:{directory}")
        # what goes wrong when the load is accepted: distinct texts collapse onto one embedding
        emb = enc.encode_texts(["a dog", "a red car"]).embeddings
        assert not torch.allclose(emb[0], emb[1])


@pytest.mark.parametrize("target", ["/nonexistent/dir", "ragsc-test-org/not-a-cached-model"])
def test_missing_model_is_model_load_error_without_network(target):
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        load_encoder(f"hf:{target}")


def test_empty_hf_target_is_model_load_error():
    with pytest.raises(ModelLoadError):
        load_encoder("hf:")


@pytest.mark.parametrize("which", ["clip", "siglip"])
def test_num_parameters_splits_the_towers(which, request):
    enc = request.getfixturevalue(which)
    counts = enc.num_parameters()
    vision = sum(p.numel() for p in enc.model.vision_model.parameters())
    text = sum(p.numel() for p in enc.model.text_model.parameters())
    extra = {"clip": (enc.model.visual_projection.weight.numel() if which == "clip" else 0),
             "siglip": 0}[which]
    assert counts["image"] == vision + extra and counts["text"] >= text > 0
    total = sum(p.numel() for p in enc.model.parameters())
    assert counts["image"] + counts["text"] <= total  # the logit scale / bias belong to neither tower
