"""Source codecs for the digital baselines: token quantisation, text (UTF-8 + deflate), images (WebP, JPEG,
HEIF / HEVC intra, AVIF).

Every codec has a *bit budget* interface: ``encode(item, max_bits) -> bytes`` returns the best
encoding that fits (or ``None`` when nothing fits), ``decode(bytes) -> item``. Headers are inside
the budget: nothing reaches the receiver for free.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from ragsc import checks
from ragsc.config import LIMITS, Limits
from ragsc.errors import ConfigError

# ----------------------------------------------------------------------------- bits <-> bytes


def bytes_to_bits(data: bytes, n_bits: int) -> torch.Tensor:
    """``bytes`` -> float tensor of ``n_bits`` bits (MSB first), zero-padded."""
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)) if data else np.zeros(0, np.uint8)
    if len(bits) > n_bits:
        raise ValueError(f"{len(bits)} bits do not fit in {n_bits}")
    out = np.zeros(n_bits, np.float32)
    out[: len(bits)] = bits
    return torch.from_numpy(out)


def bits_to_bytes(bits: torch.Tensor) -> bytes:
    b = bits.detach().to("cpu").round().clamp(0, 1).to(torch.uint8).numpy()
    return np.packbits(b).tobytes()


# ----------------------------------------------------------------------------- semantic tokens

SCALE_BITS = 16  # per-item scale, sent as float16 inside the payload


def features_that_fit(max_bits: int, bits_per_value: int, n_features: int) -> int:
    """How many quantised features (plus the 16-bit scale) fit in ``max_bits``."""
    return max(0, min(n_features, (max_bits - SCALE_BITS) // bits_per_value))


def quantize(z: torch.Tensor, bits_per_value: int, n_send: int) -> torch.Tensor:
    """``[N, D]`` -> ``[N, 16 + n_send * b]`` bits: float16 max-abs scale, then uniform mid-rise codes."""
    if bits_per_value not in range(1, 17):
        raise ConfigError(f"quantiser bits must be 1..16, got {bits_per_value}")
    z = z[:, :n_send].float()
    amax = z.abs().amax(dim=1).clamp_min(1e-6)
    scale = amax.to(torch.float16)
    # round the float16 scale *up*: a scale below the largest value would clip it
    scale = torch.where(scale.float() < amax, torch.nextafter(scale, torch.full_like(scale, float("inf"))),
                        scale)
    levels = 2 ** bits_per_value
    q = ((z / scale.float()[:, None] + 1) / 2 * levels).floor().clamp(0, levels - 1).to(torch.int64)
    scale_bits = _int_to_bits(scale.view(torch.int16).to(torch.int64) & 0xFFFF, SCALE_BITS)
    code_bits = _int_to_bits(q, bits_per_value).reshape(z.shape[0], -1)
    return torch.cat([scale_bits, code_bits], dim=1)


def dequantize(bits: torch.Tensor, bits_per_value: int, n_send: int, n_features: int) -> torch.Tensor:
    """Inverse of :func:`quantize`; features not sent are zero. Returns ``[N, n_features]``."""
    n = bits.shape[0]
    raw = _bits_to_int(bits[:, :SCALE_BITS], SCALE_BITS).to(torch.int16)  # wraps into int16 like the sender
    scale = raw.view(torch.float16).float()
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    q = _bits_to_int(bits[:, SCALE_BITS : SCALE_BITS + n_send * bits_per_value]
                     .reshape(n, n_send, bits_per_value), bits_per_value)
    levels = 2 ** bits_per_value
    out = torch.zeros(n, n_features)
    out[:, :n_send] = ((q.float() + 0.5) / levels * 2 - 1) * scale[:, None]
    return out


def _int_to_bits(x: torch.Tensor, width: int) -> torch.Tensor:
    shifts = torch.arange(width - 1, -1, -1)
    return ((x[..., None] >> shifts) & 1).float()


def _bits_to_int(bits: torch.Tensor, width: int) -> torch.Tensor:
    weights = 2 ** torch.arange(width - 1, -1, -1)
    return (bits.round().to(torch.int64) * weights).sum(-1)


# ----------------------------------------------------------------------------- text


class DeflateTextCodec:
    """UTF-8, raw-deflated when that is shorter, behind a 16-bit header (1 flag bit + 15-bit length).

    Raw deflate (no zlib header / checksum: the channel code's CRC already protects the payload).
    Over budget, whole words are dropped from the end until the text fits.
    """

    header_bits = 16

    @staticmethod
    def _pack(text: str) -> bytes:
        raw = text.encode("utf-8")
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = comp.compress(raw) + comp.flush()
        flag, body = (1, deflated) if len(deflated) < len(raw) else (0, raw)
        return struct.pack(">H", (flag << 15) | len(body)) + body if len(body) < 2**15 else b""

    def encode(self, text: str, max_bits: int) -> bytes | None:
        words = text.split(" ")
        while True:
            data = self._pack(" ".join(words))
            if data and 8 * len(data) <= max_bits:
                return data
            if len(words) <= 1:
                return None
            words = words[: max(1, int(len(words) * 0.8)) if len(words) > 10 else len(words) - 1]

    def decode(self, data: bytes) -> str:
        (header,) = struct.unpack(">H", data[:2])
        body = data[2 : 2 + (header & 0x7FFF)]
        if header >> 15:
            body = zlib.decompress(body, -15)
        return body.decode("utf-8", errors="replace")


# ----------------------------------------------------------------------------- images


FORMATS = ("webp", "jpeg", "heif", "avif")
_MEMO: OrderedDict[tuple, bytes] = OrderedDict()  # (format, image digest, scale, quality) -> bytes
_MEMO_BYTES = [0, 256 << 20]  # held, most


def _memo(key: tuple, make) -> bytes:
    """An encoding, computed once: the quality search visits the same qualities for every budget of a photo
    (each MCS, each SNR of the ideal bound), and HEVC / AV1 encoders take up to a second per call."""
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    data = _MEMO[key] = make()
    _MEMO_BYTES[0] += len(data)
    while _MEMO_BYTES[0] > _MEMO_BYTES[1] and len(_MEMO) > 1:
        _MEMO_BYTES[0] -= len(_MEMO.popitem(last=False)[1])
    return data


class ImageCodec:
    """An image codec at the highest quality whose size fits the budget, downscaling when none does.

    Formats: ``webp`` (the default), ``jpeg``, ``heif`` (HEVC intra, the codec inside BPG, through
    ``pillow-heif`` with x265's default preset) and ``avif`` (AV1 intra, Pillow's own encoder at speed 6).
    JPEG's own headers (quantisation and Huffman tables, ~600 bytes) and HEIF's and AVIF's containers (~460
    and ~310 bytes) are inside the budget: nothing reaches the receiver for free.

    Header (64 bits): payload length (32 bits), original width and height (16 bits each); the receiver
    upsamples to the original size. An image over ``limits.image_pixels`` is refused
    (:class:`~ragsc.errors.InputError`) by both: the encoder would search qualities at full resolution, and
    a header could announce 65535 x 65535, 12.9 GB of RGB. Candidates are tried from full resolution down
    to 1/8. Encodings are memoised (256 MB, least recently used first out) by the image's digest, scale
    and quality.
    """

    header_bits = 64
    scales = (1.0, 0.5, 0.25, 0.125)

    def __init__(self, fmt: str = "webp", limits: Limits = LIMITS) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"image codec must be one of {', '.join(FORMATS)}, got {fmt!r}")
        if fmt == "heif":
            _register_heif()
        self.fmt, self.limits = fmt, limits

    def _encode(self, im: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        extra = {"speed": 6} if self.fmt == "avif" else {}
        im.save(buf, format=self.fmt.upper(), quality=quality, **extra)
        return buf.getvalue()

    def encode(self, image: Image.Image, max_bits: int) -> bytes | None:
        checks.image_pixels(image.size, 0, self.limits, label="image")
        image = image.convert("RGB")
        budget = (max_bits - self.header_bits) // 8
        if budget <= 0:
            return None
        digest = hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + f"{image.size}"
        for scale in self.scales:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            im = image if scale == 1.0 else image.resize(size, Image.Resampling.LANCZOS)
            lo, hi, best = 1, 95, None
            while lo <= hi:  # size grows with quality: binary search the highest that fits
                q = (lo + hi) // 2
                data = _memo((self.fmt, digest, scale, q), lambda im=im, q=q: self._encode(im, q))
                if len(data) <= budget:
                    best, lo = data, q + 1
                else:
                    hi = q - 1
            if best is not None and len(best) < 2**32:
                return struct.pack(">IHH", len(best), image.width, image.height) + best
        return None

    def decode(self, data: bytes) -> Image.Image:
        length, w, h = struct.unpack(">IHH", data[:8])
        checks.image_pixels((w, h), 0, self.limits, "the payload's header announces ", "image")
        im = Image.open(io.BytesIO(data[8 : 8 + length]))
        im.load()
        im = im.convert("RGB")
        return im if im.size == (w, h) else im.resize((w, h), Image.Resampling.BICUBIC)


def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
