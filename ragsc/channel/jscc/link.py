"""JSCCLink: photos of any size through the image JSCC codec and the channel (``path(images, snr_db)``).

What the path does to a photo, in order (every step documented, none silent):

1. the photo is read as 8-bit RGB (:func:`~ragsc.encoders.inputs.load_image`: a path, a PIL image or an
   array; EXIF orientation applied, grayscale / palette / 16-bit / float converted, transparency composited
   on white; more than ``limits.image_pixels`` pixels refused from the header);
2. it is cut into tiles of at most ``tile`` x ``tile`` pixels (a photo of at most ``tile``^2 pixels is one
   tile), each padded up to multiples of 8 by repeating its edge (a 1x1 photo is an 8x8 tile): memory is
   bounded by the tile, not the photo;
3. each tile is encoded at the ratio's level; the photo's symbols are concatenated and scaled to unit mean
   power (one codeword per photo, one fading coefficient per photo: block fading);
4. the receiver equalises (perfect CSI, MMSE), decodes tile by tile at the photo's effective SNR, crops the
   padding and pastes the tiles.

Channel uses per photo are the tiles' symbols, ``sum(ceil(h/8) ceil(w/8)) * level / 2``, plus
:data:`HEADER_SYMBOLS` for the photo's size (what the receiver must know to cut and crop); the padding is
paid for. The bandwidth ratio ``channel uses / (3 H W)`` is therefore at least the nominal one (equal for
sizes that are multiples of 8).

Side information (a codec with ``side_info``): ``side`` gives, per photo, photos the receiver holds (e.g.
retrieved from its KB); each is resized to the photo's size and fused by the decoder, and the fused decode is
kept only when, re-encoded, it explains the received symbols better than the plain decode (an unrelated
neighbour then costs nothing but time). ``known`` gives, per
photo, candidate photos the receiver holds; a candidate of the photo's size whose own code explains the
received symbols within the noise (:func:`consistency`) *is* the photo, and is returned exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ragsc.channel.jscc.codec import JSCCCodec, from_symbols, to_symbols
from ragsc.channel.jscc.config import DOWNSAMPLE
from ragsc.channel.models import Channel, equalize, snr_db_to_no
from ragsc.channel.path import Observed, Received, TransmissionPath, path_configs
from ragsc.config import LIMITS, ChannelConfig, Limits
from ragsc.errors import ConfigError, InputError

HEADER_SYMBOLS = 16  # the photo's width and height (2 x 16 bits) as QPSK symbols: counted, assumed error-free
ACCEPT_SIGMAS = 6.0  # a KB photo is accepted when its residual is within this many standard deviations


def default_codec_dir() -> Path:
    """The shipped codec: ``encoders/embedded/jscc`` (trained by ``ragsc jscc train --data debian``)."""
    from ragsc._assets import asset_dir

    return asset_dir("encoders") / "embedded" / "jscc"


@dataclass
class Arrival:
    """One photo as it reached the receiver: its size ``(H, W)``, the zero-forced and the MMSE-equalised
    symbols ``[n]``, the effective noise variance per symbol, the SNR it was sent at and its effective SNR
    ``|h|^2 SNR`` (dB), and the channel uses it cost."""

    size: tuple[int, int]
    y_zf: torch.Tensor
    y_mmse: torch.Tensor
    no_eff: float
    snr_db: float
    snr_eff_db: float
    channel_uses: int


@dataclass
class _Tiles:
    """Where a photo's tiles lie: ``(top, left, height, width)`` each, and the photo's size."""

    boxes: list[tuple[int, int, int, int]]
    size: tuple[int, int]  # (height, width)


def tile_boxes(height: int, width: int, tile: int) -> _Tiles:
    """The tiles of an ``height`` x ``width`` photo: itself when it has at most ``tile``^2 pixels, else a grid
    of
    ``tile`` x ``tile`` tiles (the last row and column smaller)."""
    if height * width <= tile * tile:
        return _Tiles([(0, 0, height, width)], (height, width))
    return _Tiles(
        [
            (t, s, min(tile, height - t), min(tile, width - s))
            for t in range(0, height, tile)
            for s in range(0, width, tile)
        ],
        (height, width),
    )


def _pad8(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % DOWNSAMPLE, (-w) % DOWNSAMPLE
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def symbols_for(height: int, width: int, tile: int, level: int) -> int:
    """Complex data symbols of an ``height`` x ``width`` photo at ``level`` (without the header)."""
    return sum(
        math.ceil(h / DOWNSAMPLE) * math.ceil(w / DOWNSAMPLE) * level // 2
        for _, _, h, w in tile_boxes(height, width, tile).boxes
    )


def to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> 8-bit ``[1, 3, H, W]`` (photos stay 8-bit; each tile becomes float on its own, so a
    large photo's memory is a byte per value, not four)."""
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)[None]


def to_image(x: torch.Tensor) -> Image.Image:
    """8-bit, or float in [0, 1], ``[1, 3, H, W]`` (or ``[3, H, W]``) -> RGB PIL image (rounded)."""
    x = _bytes(x.reshape(3, *x.shape[-2:]))
    return Image.fromarray(x.permute(1, 2, 0).numpy(), "RGB")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def _bytes(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.uint8 else x.clamp(0, 1).mul(255).round().to(torch.uint8)


def consistency(y: torch.Tensor, s: torch.Tensor, no_eff: torch.Tensor | float) -> float:
    """How well symbols ``s`` explain the zero-forced ``y``: ``mean |y - s|^2 / no_eff``; about 1 (standard
    deviation ``1/sqrt(n)``) when ``s`` is what was sent, larger by ``mean |s_sent - s|^2 / no_eff``
    otherwise."""
    return float(((y - s).abs().square() / no_eff).mean())


class JSCCLink(TransmissionPath):
    """Photos through a trained :class:`JSCCCodec` over the project's :class:`Channel` (module docstring).

    Parameters
    ----------
    codec
        The codec, or its folder; ``None``: the shipped one (:func:`default_codec_dir`).
    config
        The :class:`~ragsc.config.ChannelConfig` (keyword overrides of its fields are merged in); its
        ``k_symbols`` is not used (the ratio decides), its CSI must be perfect and its fading ``block``.
    ratio
        The bandwidth ratio, one the codec sends (``"1/12"``; :attr:`JSCCConfig.ratios`).
    tile
        The largest tile side in pixels (a multiple of 8, 64..4096): the bound on the decoder's memory.
    limits
        Input bounds (``image_pixels``).

    Notes
    -----
    Call ``rx = link(images, snr_db=None, side=None, known=None)`` -> :class:`Received`: ``rx.content`` the
    reconstructed PIL photos (their own sizes), ``rx.channel_uses`` the mean per photo and
    ``rx.meta["channel_uses_per_item"]`` each; ``meta["recognised"]`` the index of the ``known`` photo each
    item was recognised as (or ``None``), ``meta["consistency"]`` its statistic, ``meta["side_used"]``
    whether the side-information decode was kept; ``noiseless=True`` is the path's bound. The two ends apart:
    :meth:`transmit` (photos -> :class:`Arrival` s) and :meth:`receive` (arrivals -> photos), as a
    pipeline's transmitter and receiver use them.
    """

    def __init__(
        self,
        codec: JSCCCodec | str | Path | None = None,
        config: ChannelConfig | None = None,
        ratio: str = "1/12",
        tile: int = 1024,
        limits: Limits = LIMITS,
        **overrides,
    ) -> None:
        (self.config,) = path_configs(config, overrides, what="JSCC link")
        c = self.config
        if c.csi != "perfect" or c.fading != "block":
            raise ConfigError(
                f"the image JSCC link decodes with perfect CSI over block fading; the channel has "
                f"csi={c.csi!r}, fading={c.fading!r}"
            )
        if isinstance(tile, bool) or not isinstance(tile, int) or tile % DOWNSAMPLE or not 64 <= tile <= 4096:
            raise ConfigError(f"tile must be a multiple of {DOWNSAMPLE} in 64..4096 pixels, got {tile!r}")
        self.codec = codec if isinstance(codec, JSCCCodec) else JSCCCodec.load(codec or default_codec_dir())
        if c.channel not in self.codec.config.channels:
            raise ConfigError(
                f"this image codec was trained on {', '.join(self.codec.config.channels)}, not {c.channel!r}"
            )
        self.level = self.codec.config.level_for(ratio)
        self.ratio, self.tile, self.limits = self.codec.config.ratio(self.level), tile, limits
        self.channel = Channel(c.channel, "block", c.rician_k, c.seed)

    def channel_uses(self, height: int, width: int) -> int:
        """Complex symbols one ``height`` x ``width`` photo costs, header included."""
        return symbols_for(height, width, self.tile, self.level) + HEADER_SYMBOLS

    # --------------------------------------------------------------------------- the two ends
    @torch.no_grad()
    def encode(self, x: torch.Tensor, snr_db: float) -> torch.Tensor:
        """One photo ``[1, 3, H, W]`` -> its complex symbols ``[n]``: the tiles' codes concatenated, each at
        unit mean power (as in training), so the photo's is 1 too."""
        codes = []
        for t, s, h, w in tile_boxes(*x.shape[-2:], self.tile).boxes:
            tile = _pad8(_unit(x[..., t : t + h, s : s + w]))  # float, one tile at a time
            codes.append(to_symbols(self.codec.encode(tile, snr_db, self.level))[0])
        return torch.cat(codes)

    @torch.no_grad()
    def decode(
        self, y_eq: torch.Tensor, snr_eff_db: float, size: tuple[int, int], side: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Equalised symbols ``[n]`` of one photo of ``size`` (H, W) -> 8-bit pixels ``[1, 3, H, W]``;
        ``side`` optional side photos ``[K, 3, H, W]`` of the photo's size."""
        out = torch.empty(1, 3, *size, dtype=torch.uint8)
        start = 0
        for t, s, h, w in tile_boxes(*size, self.tile).boxes:
            hp, wp = math.ceil(h / DOWNSAMPLE), math.ceil(w / DOWNSAMPLE)
            n = hp * wp * self.level // 2
            part = y_eq[start : start + n]
            start += n
            z = from_symbols(part[None], (1, self.level, hp, wp))
            side_t = _pad8(_unit(side[..., t : t + h, s : s + w]))[None] if side is not None else None
            out[..., t : t + h, s : s + w] = _bytes(self.codec.decode(z, snr_eff_db, side_t)[..., :h, :w])
        return out

    def transmit(self, images, snr_db: float | None = None, *, noiseless: bool = False) -> list[Arrival]:
        """The transmitter and the channel: photos -> what reached the receiver, one :class:`Arrival` each.
        ``noiseless`` delivers the symbols exactly (the path's bound; the decoder is told the top of the
        codec's SNR range)."""
        return [self.arrive(o) for o in self.observe(images, snr_db, noiseless=noiseless)]

    def observe(self, images, snr_db: float | None = None, *, noiseless: bool = False) -> list[Observed]:
        """The transmitter and the channel, one :class:`~ragsc.channel.path.Observed` per photo (``y``
        ``[1, n]``, its block-fading ``h`` ``[1, 1]``; ``side``: its ``size`` (H, W), from the header)."""
        from ragsc.encoders.inputs import as_batch, load_image

        snr = self.codec.config.snr_range_db[1] if noiseless else self.snr(snr_db)
        items = as_batch(images, "image")  # "image": one array is one photo, not a batch of rows
        pics = [load_image(im, i, self.limits) for i, im in enumerate(items)]
        no = snr_db_to_no(snr)
        out = []
        for im in pics:
            sym = self.encode(to_tensor(im), snr)[None]
            side = {"size": [[im.height, im.width]]}
            if noiseless:
                out.append(Observed(sym, None, snr, side, noiseless=True))
                continue
            y, h = self.channel(sym, no)
            out.append(Observed(y, h, snr, side))
        return out

    def arrive(self, obs: Observed) -> Arrival:
        """The receiver's front end: one photo's received symbols equalised (zero-forced for recognition,
        MMSE for the decoder), its effective SNR, its channel uses."""
        height, width = (int(v) for v in obs.side["size"][0])
        uses = self.channel_uses(height, width)
        y, snr = obs.y, obs.snr_db
        if y.shape != (1, uses - HEADER_SYMBOLS):
            raise InputError(f"a {height}x{width} photo at ratio {self.ratio} is {uses - HEADER_SYMBOLS} "
                             f"symbols (tile {self.tile}), got {tuple(y.shape)}")
        if obs.noiseless:
            return Arrival((height, width), y[0], y[0], 1e-12, snr, snr, uses)
        no = snr_db_to_no(snr)
        y_zf, no_eff = equalize(y, obs.h, no, "perfect", "zf")
        y_mmse, _ = equalize(y, obs.h, no, "perfect", "mmse")
        gain = float(obs.h.abs().square().mean()) if obs.h is not None else 1.0
        return Arrival((height, width), y_zf[0], y_mmse[0], float(no_eff[0, 0]), snr,
                       snr + 10 * math.log10(max(gain, 1e-6)), uses)

    def receive(self, arrivals: list[Arrival], side: list | None = None, known: list | None = None
                ) -> tuple[list[Image.Image], dict]:
        """The receiver: arrivals -> photos, and per photo ``recognised`` (the index of the ``known`` photo it
        was recognised as, or None), ``consistency`` (that photo's statistic) and ``side_used``."""
        side, known = _per_item(side, len(arrivals), "side"), _per_item(known, len(arrivals), "known")
        out, meta = [], {"recognised": [], "consistency": [], "side_used": []}
        for i, a in enumerate(arrivals):
            h, w = a.size
            match, stat = self._recognise(a.y_zf, a.no_eff, known[i], (w, h), a.snr_db)
            used_side = False
            if match is not None:
                rec = to_tensor(_rgb(known[i][match]))
            else:
                rec = self.decode(a.y_mmse, a.snr_eff_db, a.size)
                if side[i]:
                    rec, used_side = self._with_side(rec, a, side[i])
            out.append(to_image(rec))
            meta["recognised"].append(match)
            meta["consistency"].append(stat)
            meta["side_used"].append(used_side)
        return out, meta

    def __call__(self, images, snr_db: float | None = None, side: list | None = None,
                 known: list | None = None, *, noiseless: bool = False) -> Received:
        arrivals = self.transmit(images, snr_db, noiseless=noiseless)
        out, meta = self.receive(arrivals, side, known)
        uses = [a.channel_uses for a in arrivals]
        meta = {"path": "jscc", "channel": "none" if noiseless else self.config.channel,
                "ratio": str(self.ratio), "channel_uses_per_item": uses, **meta, "tile": self.tile}
        snr = float("inf") if noiseless else arrivals[0].snr_db if arrivals else self.snr(snr_db)
        return Received(None, None, None, round(sum(uses) / max(1, len(uses))), snr, meta, out,
                        torch.ones(len(out), dtype=torch.bool))

    def _with_side(self, plain: torch.Tensor, a: Arrival, photos: list) -> tuple[torch.Tensor, bool]:
        """The decode with side information, kept only when its own code explains the received symbols better
        than the plain decode's (:func:`consistency`): an unrelated neighbour is then almost never used."""
        h, w = a.size
        fused = self.decode(a.y_mmse, a.snr_eff_db, a.size, _side_tensor(photos, (w, h)))
        c_plain = consistency(a.y_zf, self.encode(plain, a.snr_db), a.no_eff)
        c_fused = consistency(a.y_zf, self.encode(fused, a.snr_db), a.no_eff)
        return (fused, True) if c_fused < c_plain else (plain, False)

    def _recognise(
        self, y_zf: torch.Tensor, no_eff, candidates: list, size: tuple[int, int], snr: float
    ) -> tuple[int | None, float | None]:
        best, best_stat = None, None
        for j, cand in enumerate(candidates or []):
            cand = _rgb(cand)
            if cand.size != size:
                continue
            stat = consistency(y_zf, self.encode(to_tensor(cand), snr), no_eff)
            if best_stat is None or stat < best_stat:
                best, best_stat = j, stat
        if best is None or best_stat > 1.0 + ACCEPT_SIGMAS / math.sqrt(len(y_zf)):
            return None, best_stat
        return best, best_stat


def _rgb(im) -> Image.Image:
    from ragsc.encoders.inputs import load_image

    return load_image(im)


def _side_tensor(photos: list, size: tuple[int, int]) -> torch.Tensor:
    """Side photos resized to ``size`` (W, H): ``[K, 3, H, W]`` (aligned concatenation)."""
    return torch.cat([to_tensor(_rgb(p).resize(size, Image.Resampling.BICUBIC)) for p in photos])


def _per_item(value: list | None, n: int, name: str) -> list:
    if value is None:
        return [None] * n
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise InputError(
            f"{name} must be a list with one entry (a list of photos, or None) per item: {n}, got "
            f"{len(value) if isinstance(value, (list, tuple)) else type(value).__name__}"
        )
    return [list(v) if v else None for v in value]
