"""The embedded default, for real: shipped heads on the registry-shipped towers."""

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc import ConfigError, InputError, ModelLoadError, load_encoder
from ragsc.datasets import load_easy_vqa, load_photos


def _norms(x):
    return x.norm(dim=-1)


def test_shapes_and_normalisation(embedded):
    imgs = [x.path for x in load_easy_vqa("test")[:3]]
    img = embedded.encode_images(imgs)
    txt = embedded.encode_texts(["a red circle", "a cat", "a rocket on a launch pad", "grass"])
    assert img.embeddings.shape == (3, 384) and txt.embeddings.shape == (4, 384) and embedded.dim == 384
    assert img.modality == "image" and txt.modality == "text" and img.meta["encoder"] == "embedded"
    assert torch.allclose(_norms(img.embeddings), torch.ones(3), atol=1e-5)
    assert torch.allclose(_norms(txt.embeddings), torch.ones(4), atol=1e-5)


def test_easy_vqa_caption_ranking_is_right(embedded):
    # one test image per caption: every image must pick its own caption out of the 24
    seen, picks = set(), []
    for x in load_easy_vqa("test"):
        if x.caption not in seen:
            seen.add(x.caption)
            picks.append(x)
    captions = sorted(seen)
    sim = (embedded.encode_images([x.path for x in picks]).embeddings
           @ embedded.encode_texts(captions).embeddings.T)
    predicted = [captions[i] for i in sim.argmax(1).tolist()]
    assert predicted == [x.caption for x in picks]


def test_real_photo_ranking(embedded):
    photos = {p.name: p for p in load_photos()}
    captions = ["a cat", "a cup of coffee", "a rocket on a launch pad", "a motorcycle", "a red triangle"]
    sim = embedded.encode_images([photos[n].pixels
                                  for n in ("chelsea", "coffee", "rocket", "motorcycle")]).embeddings \
        @ embedded.encode_texts(captions).embeddings.T
    assert sim.argmax(1).tolist() == [0, 1, 2, 3]


def test_batch_of_one_is_the_same_path(embedded):
    imgs = [x.path for x in load_easy_vqa("test")[:4]]
    together = embedded.encode_images(imgs).embeddings
    alone = torch.cat([embedded.encode_images(p).embeddings for p in imgs])
    assert torch.allclose(together, alone, atol=1e-4)


def test_tokens(embedded):
    img = embedded.encode_images([load_easy_vqa("test")[0].path], return_tokens=True)
    assert img.tokens.shape == (1, 49, 384) and img.token_mask.all()
    txt = embedded.encode_texts(["a cat", "a much longer sentence about a red circle"], return_tokens=True)
    assert txt.tokens.shape[0] == 2 and txt.tokens.shape[2] == 384
    assert txt.token_mask[0].sum() < txt.token_mask[1].sum()
    assert torch.all(txt.tokens[~txt.token_mask] == 0)
    assert embedded.encode_texts(["a cat"]).tokens is None


def test_fingerprint_stable_and_weight_sensitive(embedded, tmp_path):
    from ragsc.encoders.embedded import load_heads, save_heads

    fp = embedded.fingerprint
    assert len(fp) == 32 and fp == embedded.fingerprint
    heads = load_heads()
    with torch.no_grad():
        heads.text_residual.bias[0] += 1e-3
    path = save_heads(heads, tmp_path / "heads")
    other = load_encoder(f"embedded:{path}")
    assert other.fingerprint != fp


def test_bad_heads_folder(tmp_path):
    from ragsc.encoders.embedded import load_heads, save_heads

    folder = save_heads(load_heads(), tmp_path / "heads")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="cannot load embedded encoder heads.*missing or corrupt"):
        load_encoder(f"embedded:{folder}")
    with pytest.raises(ModelLoadError, match="cannot load embedded encoder heads.*train-embedded"):
        load_encoder(f"embedded:{tmp_path / 'missing'}")


@pytest.mark.parametrize(("changes", "match"), [
    ({"num_classes": -1}, "HeadsConfig.num_classes must be an integer >= 1, got -1"),
    ({"feature_dim": 2 ** 40}, "HeadsConfig.feature_dim must be at most 65536"),
    ({"std": 0}, "HeadsConfig.std must be a finite number > 0.0, got 0"),
])
def test_a_heads_config_asking_for_bad_sizes_is_refused_by_name(tmp_path, changes, match):
    import json

    from ragsc.encoders.embedded import load_heads, save_heads

    folder = save_heads(load_heads(), tmp_path / "heads")
    header = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**header, "config": {**header["config"], **changes}}))
    with pytest.raises(ModelLoadError, match="invalid heads config: " + match):
        load_heads(folder)


def test_bad_input_never_a_torch_traceback(embedded, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(InputError, match=r"image 1: cannot read image file .*corrupt\.png"):
        embedded.encode_images([load_easy_vqa("test")[0].path, corrupt])
    with pytest.raises(InputError, match="file not found"):
        embedded.encode_images(tmp_path / "missing.png")
    with pytest.raises(InputError, match="text 0: is empty"):
        embedded.encode_texts([""])
    with pytest.raises(InputError, match="image was given where a text"):
        embedded.encode_texts([Image.new("RGB", (4, 4))])
    with pytest.raises(ConfigError, match="unknown encoder spec"):
        load_encoder("clip:ViT-B-32")
    with pytest.raises(ConfigError):
        load_encoder("")


def test_documented_handling(embedded, tmp_path):
    # empty batch -> empty result with the right dim
    assert embedded.encode_images([]).embeddings.shape == (0, 384)
    assert embedded.encode_texts([]).embeddings.shape == (0, 384)
    # a 10,000-word text is truncated to the text tower's context and reported
    long = " ".join(["semantic"] * 10_000)
    out = embedded.encode_texts(["short", long])
    assert out.meta["truncated"] == [1] and torch.isfinite(out.embeddings).all()
    # odd image formats all encode to finite, normalised vectors
    deep = tmp_path / "deep.png"
    Image.fromarray(np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)).save(deep)
    odd = [Image.new("L", (32, 32), 128), Image.new("RGBA", (40, 30), (0, 0, 255, 128)), deep,
           Image.new("RGB", (1, 1), (255, 0, 0)), np.zeros((5, 7), np.uint8)]
    emb = embedded.encode_images(odd).embeddings
    assert emb.shape == (5, 384) and torch.isfinite(emb).all()
    assert torch.allclose(_norms(emb), torch.ones(5), atol=1e-5)


def test_num_parameters_per_modality(embedded):
    counts = embedded.num_parameters()
    tower = sum(p.numel() for p in embedded.image_tower.parameters())
    minilm = sum(p.numel() for p in embedded.text_tower.parameters())
    assert counts["image"] > tower > 3_000_000 and counts["text"] > minilm > 20_000_000
