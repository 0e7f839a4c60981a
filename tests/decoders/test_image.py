"""Image decoder: the conv generator and its config, ImageDecoder with RAG on/off, the retrieval-only
baseline, context pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ragsc.datasets import load_easy_vqa
from ragsc.decoders import (
    Context,
    ImageDecoder,
    ImageDecoderConfig,
    ImageDecoderNet,
    retrieve,
    retrieved_image,
)
from ragsc.decoders.context import item_image_path, load_pixels, rank_weights
from ragsc.decoders.image import context_pixels, to_pil
from ragsc.errors import ConfigError, InputError

from ._fakes import hits, item


def _png(path, colour) -> str:
    Image.new("RGB", (64, 64), colour).save(path)
    return str(path)


@pytest.fixture
def tiny_net():
    torch.manual_seed(0)
    return ImageDecoderNet(ImageDecoderConfig(dim=16, width=8))


def test_net_config_defaults_and_validation(tiny_net):
    assert ImageDecoderConfig() == ImageDecoderConfig(dim=384, size=64, width=16)
    assert tiny_net.config == ImageDecoderConfig(dim=16, width=8)
    # the blocks follow the config: 8w at 4x4, then 6w, 4w, 2w, w channels
    assert tiny_net.lift.in_features == 16 and tiny_net.lift.out_features == 8 * 8 * 16
    assert [block[1].out_channels for block in tiny_net.up] == [48, 32, 16, 8]
    with pytest.raises(ConfigError, match="multiple of 4, got 6"):
        ImageDecoderConfig(width=6)
    with pytest.raises(ConfigError, match="ImageDecoderConfig.dim must be an integer >= 1"):
        ImageDecoderConfig(dim=-3)
    with pytest.raises(ConfigError, match="built from an ImageDecoderConfig"):
        ImageDecoderNet(16)


def test_net_output_shape_and_range(tiny_net):
    tiny_net.eval()
    z = F.normalize(torch.randn(5, 16), dim=-1)
    ctx = torch.rand(5, 6, 64, 64)  # best neighbour + rank-weighted mean
    has, score = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0]), torch.rand(5)
    out = tiny_net(z, ctx, has, score)
    assert out.shape == (5, 3, 64, 64)
    assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
    # rows are decoded independently (batch size 1 is the same path) and each follows its own embedding
    assert torch.allclose(tiny_net(z[3:4], ctx[3:4], has[3:4], score[3:4]), out[3:4], atol=1e-5)
    assert not torch.allclose(out[1], out[3], atol=1e-3)  # both without context: only z differs
    out.mean().backward()
    assert tiny_net.lift.weight.grad is not None and tiny_net.lift.weight.grad.abs().sum() > 0


def test_net_ignores_context_when_flag_is_off(tiny_net):
    tiny_net.eval()
    z = F.normalize(torch.randn(2, 16), dim=-1)
    a, b = torch.rand(2, 6, 64, 64), torch.rand(2, 6, 64, 64)
    off, on = torch.zeros(2), torch.ones(2)
    # RAG off: neither the context pixels nor the retrieval score matter
    assert torch.allclose(tiny_net(z, a, off, torch.ones(2)), tiny_net(z, b, off, torch.zeros(2)))
    assert not torch.allclose(tiny_net(z, a, on, torch.ones(2)), tiny_net(z, b, on, torch.ones(2)))
    assert not torch.allclose(tiny_net(z, a, on, torch.ones(2)), tiny_net(z, a, on, torch.zeros(2)))


def test_net_only_makes_64x64():
    with pytest.raises(InputError, match="64x64"):
        ImageDecoderNet(ImageDecoderConfig(dim=16, size=32))


def test_to_pil_rounds_and_clamps():
    px = torch.zeros(1, 3, 2, 2)
    px[0, 0] = 1.5  # clamped
    px[0, 1] = 0.5
    px[0, 2] = -1.0
    (im,) = to_pil(px)
    assert im.size == (2, 2) and im.mode == "RGB"
    assert im.getpixel((0, 0)) == (255, 128, 0)


def test_context_pixels_best_mean_flags_and_scores(tmp_path):
    red, blue = _png(tmp_path / "r.png", (255, 0, 0)), _png(tmp_path / "b.png", (0, 0, 255))
    ctx = Context([
        hits([item("image", "red", red), item("text", "a caption"), item("image", "blue", blue)]),
        hits([item("text", "only text")]),
        [],
        hits([item("image", "gone", str(tmp_path / "missing.png")), item("image", "blue", blue)]),
    ])
    px, has, score = context_pixels(ctx, 64)
    assert px.shape == (4, 6, 64, 64) and has.tolist() == [1.0, 0.0, 0.0, 1.0]
    # channels 0-2: the best image neighbour; 3-5: the rank-weighted mean of the image neighbours
    assert torch.equal(px[0, :3, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
    w = rank_weights(2)  # the two image hits of row 0, ranked among images only
    assert torch.allclose(px[0, 3:, 5, 5], torch.tensor([float(w[0]), 0.0, float(w[1])]), atol=1e-6)
    assert not px[1].any() and not px[2].any()
    blue_px = torch.tensor([0.0, 0.0, 1.0]).view(3, 1, 1).expand(3, 64, 64)
    assert torch.allclose(px[3, :3], blue_px) and torch.allclose(px[3, 3:], blue_px)
    # the score of the best neighbour that has an image (row 3: the second hit, the first has no file)
    assert score.tolist() == pytest.approx([1.0, 0.0, 0.0, 0.9])


def test_context_pixels_score_is_the_kb_cosine_not_a_fused_score(tmp_path):
    """Behind a HybridRetriever a hit's score is the fused RRF score (~1/61); the generator was trained on
    the KB's cosine, which the hit keeps as ``kb_score``."""
    red = _png(tmp_path / "r.png", (255, 0, 0))
    (hit,) = hits([item("image", "red", red)])
    fused = hit.rescored(2 / 61, "local+global")
    assert fused.kb_score == pytest.approx(1.0)
    _, has, score = context_pixels(Context([[fused]]), 64)
    assert has.tolist() == [1.0] and score.tolist() == pytest.approx([1.0])


def test_context_pixels_behind_a_hybrid_retriever(default_kbs, embedded):
    from ragsc.kb import HybridRetriever

    _, global_ = default_kbs
    x = load_easy_vqa("train")[0]  # stored in the global KB: retrieval finds the image itself
    emb = embedded.encode_images([x.path]).embeddings
    single = retrieve(global_, emb, k=4, modality="image")
    hybrid = retrieve(HybridRetriever(None, global_, fusion="rrf", encoder=embedded), emb, k=4,
                      modality="image")
    assert item_image_path(single.hits[0][0].item).resolve() == x.path.resolve()
    assert hybrid.hits[0][0].score < 0.1  # a fused score
    px_s, _, score_s = context_pixels(single, 64)
    px_h, _, score_h = context_pixels(hybrid, 64)
    assert score_s.item() == pytest.approx(1.0, abs=1e-3)
    assert score_h.item() == pytest.approx(score_s.item(), abs=1e-5)
    assert torch.equal(px_h[:, :3], px_s[:, :3])


def test_retrieved_image_is_the_top_image_neighbour(tmp_path):
    red, blue = _png(tmp_path / "r.png", (255, 0, 0)), _png(tmp_path / "b.png", (0, 0, 255))
    ctx = Context([
        hits([item("text", "a red square"), item("image", "blue", blue), item("image", "red", red)]),
        hits([item("text", "nothing to show")]),
        [],
    ])
    out = retrieved_image(ctx)
    assert len(out) == 3 and out[1] is None and out[2] is None
    assert out[0].size == (64, 64) and out[0].mode == "RGB"
    assert out[0].getpixel((10, 10)) == (0, 0, 255)
    assert retrieved_image(ctx, size=16)[0].size == (16, 16)


def test_retrieved_image_from_kb(default_kbs, embedded):
    _, global_ = default_kbs
    test = load_easy_vqa("test")[:3]
    emb = embedded.encode_images([x.path for x in test]).embeddings
    ctx = retrieve(global_, emb, k=3, modality="image")
    out = retrieved_image(ctx)
    for im, row in zip(out, ctx.hits):
        top = item_image_path(row[0].item)
        assert top is not None and row[0].item.source_uri.startswith("easy-vqa:train/")
        expected = (load_pixels(str(top), 64) * 255).round().astype(np.uint8)
        assert np.array_equal(np.asarray(im), expected)


def test_image_decoder_with_and_without_context(tiny_net, tmp_path):
    dec = ImageDecoder(tiny_net)
    z = F.normalize(torch.randn(2, 16), dim=-1)
    red = _png(tmp_path / "r.png", (255, 0, 0))
    for ctx in (None, Context([hits([item("image", "red", red)]), []])):
        out = dec(z, ctx)
        assert len(out) == 2
        assert all(isinstance(im, Image.Image) and im.size == (64, 64) and im.mode == "RGB" for im in out)
    px_off = dec.pixels(z)
    px_on = dec.pixels(z, Context([hits([item("image", "red", red)]), []]))
    assert px_off.shape == (2, 3, 64, 64)
    assert torch.allclose(px_off[1], px_on[1])  # an empty row is decoded as with RAG off
    assert not torch.allclose(px_off[0], px_on[0])


def test_image_decoder_validation(tiny_net):
    dec = ImageDecoder(tiny_net)
    z = F.normalize(torch.randn(2, 16), dim=-1)
    with pytest.raises(InputError, match=r"\[N, D\]"):
        dec(z[0])
    with pytest.raises(InputError, match="1 rows for 2"):
        dec(z, Context([[]]))


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -float("inf"), 1.5, "0.7"])
def test_copy_threshold_is_a_cosine(tiny_net, threshold):
    # NaN compared False with every score: the decoder silently never copied
    with pytest.raises(ConfigError, match="copy_threshold must be a finite number >= -1.0 and <= 1.0"):
        ImageDecoder(tiny_net, threshold)
    assert ImageDecoder(tiny_net, None).copy_threshold is None


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def test_shipped_decoder_on_clean_test_images(decoders, embedded):
    test = load_easy_vqa("test")[:16]
    emb = embedded.encode_images([x.path for x in test]).embeddings
    dec = ImageDecoder(decoders.image)
    out = dec(emb)
    assert len(out) == 16 and all(im.size == (64, 64) for im in out)
    orig = np.stack([load_pixels(str(x.path), 64) for x in test])
    decoded = np.stack([np.asarray(im, dtype=np.float32) / 255 for im in out])
    grey = np.full_like(orig[0], 0.5)
    p_dec = np.mean([_psnr(o, d) for o, d in zip(orig, decoded)])
    p_grey = np.mean([_psnr(o, grey) for o in orig])
    assert p_dec > p_grey + 3.0, (p_dec, p_grey)


@pytest.fixture(scope="module")
def decoded_test_images(decoders, embedded):
    """32 easy-VQA test images: originals, decoded with RAG off, decoded with the image itself retrieved."""
    test = load_easy_vqa("test")[:32]
    emb = embedded.encode_images([x.path for x in test]).embeddings
    pix = torch.from_numpy(np.stack([load_pixels(str(x.path), 64) for x in test])).permute(0, 3, 1, 2)
    n = len(test)
    with torch.no_grad():
        off = decoders.image(emb, torch.zeros(n, 6, 64, 64), torch.zeros(n), torch.zeros(n))
        on = decoders.image(emb, torch.cat([pix, pix], dim=1), torch.ones(n), torch.ones(n))
    return test, pix, off, on


def test_shipped_decoder_uses_the_context(decoded_test_images):
    """With the sent image itself retrieved (score 1) the decoded image is much closer to it than with RAG
    off."""
    _, pix, off, on = decoded_test_images
    assert F.mse_loss(on, pix) < 0.5 * F.mse_loss(off, pix)


def test_shipped_decoder_copies_the_colour_of_an_exact_match(decoded_test_images):
    """RAG on with the sent image retrieved: the shape's colour (its offset from the background) comes
    back."""
    test, pix, _, on = decoded_test_images
    good = 0
    for orig, dec in zip(pix, on):
        bg = orig[:, 0, 0]
        shape = (orig - bg[:, None, None]).abs().sum(0) > 0.3
        want = orig[:, shape].mean(1) - bg
        got = dec[:, shape].mean(1) - dec[:, 0, 0]
        good += F.cosine_similarity(want, got, dim=0) > 0.8
    assert good >= 0.8 * len(test)


def test_shipped_decoder_carries_colour_without_rag(decoded_test_images):
    """RAG off the shape's position is unknown (a blurred prototype), but the colour cast follows the sent
    colour."""
    test, _, off, _ = decoded_test_images
    blue_minus_red = (off[:, 2] - off[:, 0]).mean((1, 2))
    bluish = [float(v) for v, x in zip(blue_minus_red, test) if x.color in ("blue", "teal")]
    reddish = [float(v) for v, x in zip(blue_minus_red, test) if x.color in ("red", "yellow", "brown")]
    assert len(bluish) >= 3 and len(reddish) >= 3
    assert np.mean(bluish) > np.mean(reddish) + 0.05


def test_retrieve_or_generate_shows_an_exact_kb_match(decoders, embedded, default_kbs):
    import numpy as np

    from ragsc.datasets import load_easy_vqa
    from ragsc.decoders import Context, ImageDecoder

    local, _ = default_kbs  # holds the first easy-VQA test images
    x = load_easy_vqa("test")[0]
    z = embedded.encode_images([x.path]).embeddings.float()
    ctx = Context(local.search(z, 4, modality="image"))
    assert ctx.hits[0][0].item.source_uri == f"easy-vqa:test/{x.image_id}"
    with Image.open(x.path) as im:
        sent = np.asarray(im.convert("RGB").resize((64, 64)))
    copied = np.asarray(ImageDecoder(decoders.image, copy_threshold=0.7)(z, ctx)[0])
    generated = np.asarray(ImageDecoder(decoders.image, copy_threshold=None)(z, ctx)[0])
    assert np.abs(copied.astype(int) - sent).max() <= 1  # the KB's copy of the sent image
    assert np.abs(generated.astype(int) - sent).mean() > 5  # the generator alone does not reproduce it
