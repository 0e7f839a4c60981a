"""Source codecs: bits <-> bytes, token quantisation, text and image rate matching within the bit budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.channel.codecs import (
    SCALE_BITS,
    DeflateTextCodec,
    ImageCodec,
    bits_to_bytes,
    bytes_to_bits,
    dequantize,
    features_that_fit,
    quantize,
)
from ragsc.config import Limits
from ragsc.errors import ConfigError, InputError

from ._util import gaussian_features

# ----------------------------------------------------------------------------- bits <-> bytes


def test_bytes_bits_round_trip_msb_first():
    data = bytes(range(256))
    bits = bytes_to_bits(data, 8 * 256 + 13)
    assert bits.shape == (8 * 256 + 13,) and bits.dtype == torch.float32
    assert bits[8:16].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]  # byte 1, MSB first
    assert not bits[8 * 256 :].any()  # zero padding
    assert bits_to_bytes(bits[: 8 * 256]) == data
    assert bytes_to_bits(b"", 16).sum() == 0
    with pytest.raises(ValueError):
        bytes_to_bits(b"abc", 23)


# ----------------------------------------------------------------------------- quantisation


@pytest.mark.parametrize("n_send,bits", [(10, 8), (0, 4), (3, 16), (100, 1)])
def test_features_that_fit(n_send, bits):
    budget = SCALE_BITS + n_send * bits
    assert features_that_fit(budget, bits, 1000) == n_send
    assert features_that_fit(budget + bits - 1, bits, 1000) == n_send  # partial features do not count
    assert features_that_fit(budget, bits, 2) == min(n_send, 2)
    assert features_that_fit(SCALE_BITS - 1, bits, 1000) == 0


def _bound(scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Half a quantiser step, ``scale / 2**bits``, plus float32 arithmetic slack (2**-22 of the scale)."""
    return scale / 2**bits + scale * 2.0**-22


def _pow2_rows(z: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Rescale rows so their max-abs is a power of two (exactly representable in float16)."""
    e = torch.randint(-6, 6, (z.shape[0], 1), generator=torch.Generator().manual_seed(seed))
    return z / z.abs().amax(dim=1, keepdim=True) * 2.0**e


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 12, 16])
def test_quantize_round_trip_error_bound_with_float16_exact_scale(bits):
    """Rows whose max-abs is a power of two (exact in float16): error <= scale / 2**bits everywhere."""
    z = _pow2_rows(gaussian_features(500, 64, seed=bits))
    scale = z.abs().amax(dim=1, keepdim=True)
    payload = quantize(z, bits, 64)
    assert payload.shape == (500, SCALE_BITS + 64 * bits)
    assert set(payload.unique().tolist()) <= {0.0, 1.0}
    back = dequantize(payload, bits, 64, 64)
    assert ((back - z).abs() <= _bound(scale, bits)).all()


def _sent_scale(payload: torch.Tensor) -> torch.Tensor:
    """The float16 scale a payload carries in its first 16 bits, as ``[N, 1]`` float32."""
    raw = (payload[:, :SCALE_BITS].to(torch.int64) * 2 ** torch.arange(SCALE_BITS - 1, -1, -1)).sum(1)
    return torch.from_numpy(raw.numpy().astype(np.uint16).view(np.float16).astype(np.float32))[:, None]


@pytest.mark.parametrize("bits", [1, 4, 8])
def test_quantize_round_trip_error_bound(bits):
    z = gaussian_features(2000, 64, seed=100 + bits)
    payload = quantize(z, bits, 64)
    scale = _sent_scale(payload)
    assert torch.allclose(scale, z.abs().amax(dim=1, keepdim=True), rtol=2**-10, atol=0)  # the row's max-abs
    back = dequantize(payload, bits, 64, 64)
    assert ((back - z).abs() <= _bound(scale, bits)).all()  # no clipping: half a step at most


def test_quantize_sends_only_the_leading_features_and_zeros_the_rest():
    z = gaussian_features(8, 20, seed=3)
    z[:, :5] = _pow2_rows(z[:, :5])
    z[:, 5:] *= 100.0  # unsent features do not enter the scale
    back = dequantize(quantize(z, 8, 5), 8, 5, 20)
    assert back.shape == (8, 20)
    assert torch.equal(back[:, 5:], torch.zeros(8, 15))
    scale = z[:, :5].abs().amax(dim=1, keepdim=True)
    assert ((back[:, :5] - z[:, :5]).abs() <= _bound(scale, 8)).all()


def test_quantize_all_zero_and_padded_payload():
    z = torch.zeros(3, 8)
    z[1] = torch.linspace(-1, 1, 8)
    payload = quantize(z, 8, 8)
    back = dequantize(torch.nn.functional.pad(payload, (0, 37)), 8, 8, 8)  # PHY padding is ignored
    assert torch.isfinite(back).all()
    # a mid-rise quantiser has no exact zero: silent rows come back within half a step of the tiny scale
    assert (back[0].abs() <= 1e-6).all() and (back[2].abs() <= 1e-6).all()
    assert ((back[1] - z[1]).abs() <= 1 / 2**8 + 1e-6).all()


def test_dequantize_survives_garbage_scale_bits():
    payload = quantize(gaussian_features(4, 8, seed=5), 8, 8)
    payload[:, :SCALE_BITS] = 1.0  # 0xFFFF is a float16 NaN: a corrupted scale must not give NaN features
    assert torch.isfinite(dequantize(payload, 8, 8, 8)).all()


@pytest.mark.parametrize("bits", [0, 17, -1])
def test_quantize_rejects_bad_bit_width(bits):
    with pytest.raises(ConfigError):
        quantize(torch.ones(2, 4), bits, 4)


# ----------------------------------------------------------------------------- text

TEXTS = [
    "a red triangle",
    "x",
    "",
    "the quick brown fox jumps over the lazy dog " * 30,  # compressible
    "héllo wörld — ünïcode 文字 ✓ " * 5,
    "Galaxies in deep space, photographed by the Hubble telescope over several days of exposure.",
    "supercalifragilisticexpialidocious" * 4,  # one long word
    "double  spaces\tand\nnewlines  stay  exact",
]
TEXT_BUDGETS = [0, 8, 15, 16, 24, 40, 64, 128, 256, 1024, 4096, 100_000]


@pytest.mark.parametrize("text", TEXTS)
def test_text_codec_respects_budget_and_round_trips(text):
    codec = DeflateTextCodec()
    full = DeflateTextCodec._pack(text)
    for budget in TEXT_BUDGETS:
        data = codec.encode(text, budget)
        if data is None:
            continue
        assert 8 * len(data) <= budget
        decoded = codec.decode(data)
        if 8 * len(full) <= budget:
            assert decoded == text  # fits: exact round trip
        else:
            assert text.startswith(decoded) and len(decoded) < len(text)  # whole words dropped from the end
    assert codec.encode(text, 100_000) is not None
    assert codec.decode(codec.encode(text, 100_000)) == text


def test_text_codec_compresses_and_has_a_16_bit_header():
    codec = DeflateTextCodec()
    text = TEXTS[3]
    data = codec.encode(text, 100_000)
    assert len(data) < len(text.encode()) / 5
    assert codec.encode("", 16) == b"\x00\x00"
    assert codec.encode("", 15) is None
    assert codec.encode("hello", 16) is None  # the header alone takes 16 bits
    # trailing zero bytes (PHY padding) are ignored
    assert codec.decode(codec.encode(text, 100_000) + bytes(40)) == text


# ----------------------------------------------------------------------------- images


@pytest.fixture(scope="module")
def images():
    from ragsc.datasets import load_easy_vqa, load_photos

    easy = [Image.open(x.path).convert("RGB") for x in load_easy_vqa("test")[:3]]
    photos = {p.name: p for p in load_photos()}
    names = ("astronaut", "coins", "chelsea", "page")
    real = [Image.fromarray(photos[n].pixels).convert("RGB") for n in names]
    grey = Image.fromarray(photos["camera"].pixels)  # mode "L": converted inside the codec
    assert grey.mode == "L"
    return easy + real + [grey]


IMAGE_BUDGETS = [0, 48, 100, 400, 1200, 3000, 8000, 20_000, 60_000]


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_image_codec_never_exceeds_the_budget(images, fmt):
    codec = ImageCodec(fmt)
    fitted = 0
    for im in images:
        for budget in IMAGE_BUDGETS:
            data = codec.encode(im, budget)
            if data is None:
                continue
            fitted += 1
            assert 8 * len(data) <= budget, (im.size, budget, 8 * len(data))
            out = codec.decode(data)
            assert out.size == im.size and out.mode == "RGB"
        # a generous budget always fits
        assert codec.encode(im, 60_000) is not None
    assert fitted >= len(images) * 2
    assert codec.encode(images[0], 48) is None  # the header alone fills 48 bits


def test_image_codec_quality_grows_with_budget(images):
    codec = ImageCodec("webp")
    im = images[3]  # astronaut
    ref = np.asarray(im, dtype=np.float64)
    errs = [np.mean((np.asarray(codec.decode(codec.encode(im, b)), dtype=np.float64) - ref) ** 2)
            for b in (8000, 30_000, 200_000)]
    assert errs[0] > errs[1] > errs[2]


def test_image_codec_uses_most_of_a_large_budget(images):
    codec = ImageCodec("webp")
    for im in images[3:5]:
        budget = 20_000
        assert 8 * len(codec.encode(im, budget)) > 0.8 * budget  # rate matching, not a timid first guess


def test_image_codec_refuses_a_header_over_the_pixel_limit(images):
    import struct

    data = ImageCodec("webp").encode(images[0], 20_000)
    # the same payload announcing 8000 x 6000 = 48 MP (the header allows 65535 x 65535): was upsampled to it
    big = struct.pack(">IHH", struct.unpack(">I", data[:4])[0], 8000, 6000) + data[8:]
    with pytest.raises(InputError, match=r"image 0: the payload's header announces an image of 8000 x 6000 "
                                         r"= 48,000,000 pixels, more than the limit of 40,000,000"):
        ImageCodec("webp").decode(big)
    with pytest.raises(InputError, match=r"image 0: an image of 30 x 20 = 600 pixels, more than the limit "
                                         r"of 500"):
        ImageCodec("webp", Limits(image_pixels=500)).encode(Image.new("RGB", (30, 20)), 20_000)


def test_image_codec_rejects_unknown_format():
    with pytest.raises(ConfigError):
        ImageCodec("png")


def _gradient(height: int, width: int, seed: int = 0) -> Image.Image:
    """A smooth colour photo with a little noise (seeded)."""
    y, x = np.mgrid[0:height, 0:width]
    px = np.stack([x / width, y / height, (x + y) / (width + height)], -1) * 220 + 16
    px += np.random.default_rng(seed).normal(0, 6, px.shape)
    return Image.fromarray(np.clip(px, 0, 255).astype(np.uint8), "RGB")


def _psnr(a: Image.Image, b: Image.Image) -> float:
    err = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return 10 * np.log10(255**2 / err)


@pytest.mark.parametrize("fmt", ["heif", "avif"])
def test_heif_and_avif_round_trip_within_the_budget(fmt):
    codec = ImageCodec(fmt)
    im = _gradient(48, 64)
    sizes, qualities = [], []
    for budget in (4000, 12_000, 40_000):
        data = codec.encode(im, budget)
        assert data is not None and 8 * len(data) <= budget
        out = codec.decode(data)
        assert out.size == (64, 48) and out.mode == "RGB"
        sizes.append(len(data))
        qualities.append(_psnr(out, im))
    assert sizes[0] < sizes[1] and qualities[0] < qualities[2] and qualities[0] > 20
    # the container alone (~300-460 bytes) does not fit 1000 bits, even at 1/8 scale
    assert codec.encode(im, 1000) is None and codec.encode(im, 64) is None
    grey = codec.decode(codec.encode(im.convert("L"), 12_000))  # converted inside the codec
    assert grey.size == (64, 48) and grey.mode == "RGB"


def test_heif_decodes_from_a_fresh_codec_object():
    data = ImageCodec("heif").encode(_gradient(32, 40, seed=1), 20_000)
    assert ImageCodec("heif").decode(data).size == (40, 32)


def test_image_header_is_64_bits_with_a_32_bit_length():
    import io
    import struct

    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (320, 300, 3), dtype=np.uint8))
    data = ImageCodec("webp").encode(noise, 8 * 400_000)
    length, w, h = struct.unpack(">IHH", data[:8])
    assert ImageCodec.header_bits == 64
    assert (w, h) == (300, 320) and length == len(data) - 8
    assert length > 2**16  # more than a 16-bit length field could say
    out = ImageCodec("webp").decode(data)
    with Image.open(io.BytesIO(data[8:])) as payload:  # the payload is the whole WebP file after the header
        assert out.size == payload.size == (300, 320)
        assert np.array_equal(np.asarray(out), np.asarray(payload.convert("RGB")))
    # the header is inside the budget: exactly header + payload fits that payload, one byte less does not
    im = _gradient(24, 24)
    small = ImageCodec("webp").encode(im, 2000)
    assert struct.unpack(">I", small[:4])[0] == len(small) - 8 <= (2000 - 64) // 8
    assert ImageCodec("webp").encode(im, 8 * len(small)) == small
    assert len(ImageCodec("webp").encode(im, 8 * len(small) - 8)) < len(small)


def test_image_encodings_are_memoised(monkeypatch):
    calls = []
    real = ImageCodec._encode

    def counting(self, im, quality):
        calls.append((self.fmt, im.size, quality))
        return real(self, im, quality)

    monkeypatch.setattr(ImageCodec, "_encode", counting)
    codec = ImageCodec("webp")
    im = _gradient(40, 56, seed=11)
    first = codec.encode(im, 6000)
    n = len(calls)
    assert n > 0
    assert codec.encode(im, 6000) == first and len(calls) == n  # the same search: all from the memo
    assert ImageCodec("webp").encode(im.copy(), 6000) == first and len(calls) == n  # by content, not object
    codec.encode(_gradient(40, 56, seed=12), 6000)  # another photo of the same size: encoded again
    assert len(calls) > n
    m = len(calls)
    ImageCodec("jpeg").encode(im, 6000)  # another format: encoded again
    assert len(calls) > m and calls[-1][0] == "jpeg"
