"""JSCCCodec: a fully convolutional, SNR-adaptive deep JSCC for photos of any size (after DeepJSCC, ADJSCC).

The encoder (pixels -> a feature map at 1/8 scale) and the decoder (the received map -> pixels) are ConvNeXt
stages: stride-2 convolutions down (pixel shuffles up), depthwise 7x7 blocks in between. After every stage an
*attention-feature* module (ADJSCC, Xu et al. 2021) rescales the channels from their global mean, the SNR and
the sent share of the code, so one model serves every SNR, channel kind and rate: the encoder is told the
average SNR, the decoder the effective SNR it received at (``|h|^2 SNR`` after equalisation). A code of
``c`` channels is sent for each ``c`` in ``levels`` (both ends told ``c``; see
:mod:`ragsc.channel.jscc.config`).

With ``side_info`` the decoder also takes *side information*: one or more photos the receiver holds (retrieved
from its knowledge base), encoded by a side encoder of the same stages and fused into the decoder at 1/8, 1/4
and 1/2 scale by zero-initialised 1x1 convolutions (a decoder-only Wyner–Ziv code, after Yilmaz et al. 2024;
the transmitter never sees the side information). Without side information the branch is skipped and the
decoder is the plain one.

Pixels are float ``[B, 3, H, W]`` in [0, 1] with ``H`` and ``W`` multiples of 8 (the link pads);
:meth:`encode` gives the real code map, :meth:`decode` the reconstruction. The channel, power normalisation
and tiling live in :class:`~ragsc.channel.jscc.JSCCLink`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.channel.jscc.config import DOWNSAMPLE, JSCCConfig
from ragsc.errors import ConfigError, InputError
from ragsc.saved import Saved, build, load, parse_config, save


class _AF(nn.Module):
    """Attention-feature module: channel gains from the map's global mean and the conditioning."""

    def __init__(self, ch: int, n_cond: int = 2) -> None:
        super().__init__()
        hidden = max(16, ch // 2)
        self.mlp = nn.Sequential(nn.Linear(ch + n_cond, hidden), nn.SiLU(), nn.Linear(hidden, ch))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gains = torch.sigmoid(self.mlp(torch.cat([x.mean(dim=(2, 3)), cond], dim=1)))
        return x * (2.0 * gains)[:, :, None, None]  # 2x: a gain of 1 at initialisation


class _Block(nn.Module):
    """ConvNeXt block: depthwise 7x7, per-position LayerNorm, 1x1 MLP (x2), layer scale, residual."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(ch, ch, 7, padding=3, groups=ch)
        self.norm = nn.LayerNorm(ch)
        self.mlp = nn.Sequential(nn.Linear(ch, 2 * ch), nn.GELU(), nn.Linear(2 * ch, ch))
        self.scale = nn.Parameter(torch.full((ch,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dw(x).permute(0, 2, 3, 1)
        h = self.mlp(self.norm(h)) * self.scale
        return x + h.permute(0, 3, 1, 2)


def _stages(w: tuple[int, int, int], blocks: tuple[int, int]) -> nn.ModuleList:
    """Pixels -> features at 1/2, 1/4, 1/8 (the encoder's and the side encoder's trunk)."""
    return nn.ModuleList(
        [
            nn.Sequential(nn.Conv2d(3, w[0], 5, stride=2, padding=2), nn.GELU()),
            nn.Sequential(
                nn.Conv2d(w[0], w[1], 3, stride=2, padding=1), *[_Block(w[1]) for _ in range(blocks[0])]
            ),
            nn.Sequential(
                nn.Conv2d(w[1], w[2], 3, stride=2, padding=1), *[_Block(w[2]) for _ in range(blocks[1])]
            ),
        ]
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, 1), nn.PixelShuffle(2))


def _fuse(ch: int) -> nn.Conv2d:
    conv = nn.Conv2d(2 * ch, ch, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class JSCCCodec(nn.Module):
    """The image JSCC network (see the module docstring); built from a :class:`JSCCConfig` (or its fields)."""

    kind, format_version = "image-jscc", 1

    def __init__(self, config: JSCCConfig | dict) -> None:
        super().__init__()
        self.config = c = config if isinstance(config, JSCCConfig) else JSCCConfig(**config)
        w, b = c.widths, c.blocks
        self.enc = _stages(w, b)
        self.enc_af = nn.ModuleList([_AF(ch) for ch in w])
        self.enc_head = nn.Conv2d(w[2], c.max_channels, 3, padding=1)
        self.dec_head = nn.Sequential(
            nn.Conv2d(c.max_channels, w[2], 3, padding=1), nn.GELU(), *[_Block(w[2]) for _ in range(b[1])]
        )
        self.dec_mid = nn.Sequential(_up(w[2], w[1]), *[_Block(w[1]) for _ in range(b[0])])
        self.dec_low = nn.Sequential(_up(w[1], w[0]), nn.GELU())
        self.dec_out = nn.Sequential(nn.Conv2d(w[0], 3 * 4, 3, padding=1), nn.PixelShuffle(2))
        self.dec_af = nn.ModuleList([_AF(ch) for ch in reversed(w)])
        if c.side_info:
            self.side = _stages(w, b)
            self.fuse = nn.ModuleList([_fuse(ch) for ch in reversed(w)])

    # --------------------------------------------------------------------------- conditioning
    def _cond(self, snr_db: torch.Tensor | float, level: int, n: int, device) -> torch.Tensor:
        lo, hi = self.config.snr_range_db
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=device).reshape(-1).expand(n)
        s = 2 * (snr.clamp(lo, hi) - lo) / (hi - lo) - 1
        return torch.stack([s, torch.full_like(s, level / self.config.max_channels)], dim=1)

    def check_level(self, level: int) -> int:
        if level not in self.config.levels:
            raise ConfigError(f"this codec sends {self.config.levels} channels, not {level}")
        return level

    @staticmethod
    def _check_pixels(x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise InputError(
                f"pixels must be a float tensor [B, 3, H, W], got "
                f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}"
            )
        if x.shape[2] % DOWNSAMPLE or x.shape[3] % DOWNSAMPLE:
            raise InputError(
                f"pixels' height and width must be multiples of {DOWNSAMPLE} (the link pads), "
                f"got {tuple(x.shape[2:])}"
            )

    # --------------------------------------------------------------------------- the two ends
    def encode(self, x: torch.Tensor, snr_db: torch.Tensor | float, level: int) -> torch.Tensor:
        """``[B, 3, H, W]`` pixels in [0, 1] -> the code map ``[B, level, H/8, W/8]`` (before power
        normalisation)."""
        self._check_pixels(x)
        cond = self._cond(snr_db, self.check_level(level), len(x), x.device)
        h = x - 0.5
        for stage, af in zip(self.enc, self.enc_af):
            h = af(stage(h), cond)
        return self.enc_head(h)[:, :level]

    def side_features(self, side: torch.Tensor) -> list[torch.Tensor]:
        """Side photos ``[B, K, 3, H, W]`` (or ``[B, 3, H, W]``) -> features at 1/8, 1/4, 1/2 (K averaged)."""
        if not self.config.side_info:
            raise ConfigError("this codec has no side-information branch (config.side_info is false)")
        if side.ndim == 4:
            side = side[:, None]
        b, k = side.shape[:2]
        h, feats = side.flatten(0, 1) - 0.5, []
        for stage in self.side:
            h = stage(h)
            feats.append(h.unflatten(0, (b, k)).mean(dim=1))
        return feats[::-1]

    def decode(
        self, z: torch.Tensor, snr_db: torch.Tensor | float, side: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The received code map ``[B, level, H/8, W/8]`` (equalised) -> pixels ``[B, 3, H, W]`` in [0, 1].

        ``snr_db`` is the effective SNR of each item (``[B]`` or a float); ``side`` optional side photos
        ``[B, (K,) 3, H, W]``, aligned to the item's padded size."""
        level = self.check_level(z.shape[1])
        cond = self._cond(snr_db, level, len(z), z.device)
        if level < self.config.max_channels:  # the channels not sent are zeros (their expected value)
            z = F.pad(z, (0, 0, 0, 0, 0, self.config.max_channels - level))
        feats = self.side_features(side) if side is not None else None
        h = z
        for i, (stage, af) in enumerate(zip((self.dec_head, self.dec_mid, self.dec_low), self.dec_af)):
            h = stage(h)
            if feats is not None:
                h = h + self.fuse[i](torch.cat([h, feats[i]], dim=1))
            h = af(h, cond)
        return torch.sigmoid(self.dec_out(h))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --------------------------------------------------------------------------- saved folder
    def to_saved(self) -> Saved:
        return Saved(
            self.kind,
            self.format_version,
            self.config.model_dump(mode="json"),
            self.state_dict(),
            getattr(self, "info", {}),
        )

    @classmethod
    def from_saved(cls, saved: Saved, device: str = "cpu") -> JSCCCodec:
        """Rebuild a codec from its :class:`~ragsc.saved.Saved` folder, on ``device``, in eval mode."""
        config = parse_config(JSCCConfig, saved.config, saved.folder, "image JSCC")
        codec = build(lambda: cls(config), saved.tensors, str(saved.folder)).to(device).eval()
        codec.info = dict(saved.info)
        return codec

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """:func:`ragsc.saved.save` of this codec (``config.json`` + ``model.safetensors``)."""
        return save(self, folder, overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> JSCCCodec:
        """:func:`ragsc.saved.load` of an image JSCC folder (``ModelLoadError`` naming what is wrong)."""
        return load(folder, kind=cls.kind, device=device)


# ----------------------------------------------------------------------------- code map <-> channel symbols
def to_symbols(z: torch.Tensor) -> torch.Tensor:
    """Code map ``[B, c, h, w]`` -> complex symbols ``[B, c/2 * h * w]``, unit mean power per symbol and item
    (channel pair ``2i, 2i+1`` of a position is one symbol)."""
    b, c, h, w = z.shape
    s = torch.view_as_complex(z.reshape(b, c // 2, 2, h, w).permute(0, 1, 3, 4, 2).contiguous()).reshape(
        b, -1
    )
    power = s.real.square().add(s.imag.square()).mean(dim=1, keepdim=True)
    return s * power.clamp_min(1e-12).rsqrt()


def from_symbols(s: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """The inverse of :func:`to_symbols`'s layout: complex ``[B, n]`` -> the real map ``[B, c, h, w]``."""
    b, c, h, w = shape
    return torch.view_as_real(s.reshape(b, c // 2, h, w)).permute(0, 1, 4, 2, 3).reshape(b, c, h, w)
