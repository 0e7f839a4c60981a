"""What a CAT codec is built from: :class:`CATConfig` (the architecture, the channels and SNRs it is trained
for) and its rate table :class:`CATCalibration` (filled in by :func:`ragsc.distill.cat.calibrate`).

The config is stored as ``config.json`` beside the codec's weights (:mod:`ragsc.channel.cat.files`); a JSON
that does not validate is a :class:`~ragsc.errors.ConfigError` naming each bad field. The two checks every
call of the codec makes against it, a channel name and a length, are here too (:func:`channel_index`,
:func:`check_level`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ragsc.channel.models import CHANNELS
from ragsc.config import MAX_DIM, MAX_WIDTH, SNR_RANGE_DB, Config
from ragsc.errors import ConfigError

Size = Annotated[int, Field(strict=True, ge=1)]  # strict: a JSON 8.0 must not build another architecture
Dim = Annotated[int, Field(strict=True, ge=1, le=MAX_DIM)]
Width = Annotated[int, Field(strict=True, ge=1, le=MAX_WIDTH)]
ChannelName = Literal["awgn", "rayleigh", "rician"]
# The receiver reads each symbol position out through its own model_dim x model_dim matrix: the codec's
# largest weight, max_symbols * model_dim ** 2 numbers, is bounded (2^28: 1 GiB of float32; the shipped
# sizes hold 2^20)
MAX_READOUT = 2 ** 28


class CATCalibration(Config):
    """The rate table: mean cosine to the target per channel, SNR and level, measured on validation data.

    ``quality[channel][i][j]`` is the quality at ``snrs_db[i]`` with ``levels[j]`` symbols (the codec's
    levels).
    """

    snrs_db: tuple[float, ...] = Field(min_length=1)
    quality: dict[ChannelName, tuple[tuple[float, ...], ...]]
    n_items: Size = Field(description="validation items behind each entry")
    seed: int = 0

    @model_validator(mode="after")
    def _shape(self) -> CATCalibration:
        s = self.snrs_db
        if any(not math.isfinite(x) or not SNR_RANGE_DB[0] <= x <= SNR_RANGE_DB[1] for x in s):
            raise ValueError(f"snrs_db must be finite and in {list(SNR_RANGE_DB)} dB, got {list(s)}")
        if any(b <= a for a, b in zip(s, s[1:])):
            raise ValueError(f"snrs_db must be strictly increasing, got {list(s)}")
        for name, rows in self.quality.items():
            if len(rows) != len(s):
                raise ValueError(f"quality[{name!r}] has {len(rows)} rows for {len(s)} SNRs")
        return self

    def row(self, channel: str, snr_db: float) -> tuple[float, ...] | None:
        """Quality per level at ``snr_db``, interpolated linearly between the calibrated SNRs; above the
        highest, the highest's; ``None`` below the lowest (nothing measured vouches for it)."""
        rows, s = self.quality[channel], self.snrs_db
        if snr_db < s[0]:
            return None
        if snr_db >= s[-1]:
            return rows[-1]
        i = max(j for j, x in enumerate(s) if x <= snr_db)
        w = (snr_db - s[i]) / (s[i + 1] - s[i])
        return tuple((1 - w) * a + w * b for a, b in zip(rows[i], rows[i + 1]))


class CATConfig(Config):
    """What a :class:`~ragsc.channel.cat.CATCodec` is built from, and what it was trained and calibrated for.

    Every size is bounded, so that a ``config.json`` cannot ask for an allocation of any size: ``token_dim``
    and ``target_dim`` up to :data:`~ragsc.config.MAX_DIM`, ``model_dim`` up to
    :data:`~ragsc.config.MAX_WIDTH`, 48 layers, 64 heads, 65,536 tokens and symbols, and
    ``max_symbols * model_dim ** 2`` up to :data:`MAX_READOUT`.

    Attributes
    ----------
    token_dim, target_dim
        Dimension of the input semantic tokens, and of the (teacher) embedding the receiver reconstructs.
    model_dim, layers, heads
        Width (divisible by ``heads``) and depth of each end's transformer.
    max_tokens
        Input tokens per item at most (learned positions).
    max_symbols, levels
        Complex symbols per item at most, and the prefix lengths that are codes (strictly increasing, the
        last one ``max_symbols``).
    channels, snr_range_db, rician_k, fading, equalizer
        The channel kinds and the SNR range (Es/N0, dB) trained for, the training channel's Rician K, its
        fading and the receiver's equaliser (perfect CSI).
    seed
        Seed of the weights' initialisation.
    calibration
        The rate table (:func:`ragsc.distill.cat.calibrate`), or ``None`` before calibration.
    """

    token_dim: Dim
    target_dim: Dim
    model_dim: Width = 128
    layers: Annotated[int, Field(strict=True, ge=1, le=48)] = 2
    heads: Annotated[int, Field(strict=True, ge=1, le=64)] = 4
    max_tokens: Annotated[int, Field(strict=True, ge=1, le=65_536)] = 256
    max_symbols: Annotated[int, Field(strict=True, ge=1, le=65_536)] = 64
    levels: tuple[Size, ...] = (8, 16, 32, 48, 64)
    channels: tuple[ChannelName, ...] = CHANNELS
    snr_range_db: tuple[float, float] = (-5.0, 20.0)
    rician_k: float = Field(4.0, ge=0.0, allow_inf_nan=False)
    fading: Literal["block", "fast"] = "block"
    equalizer: Literal["mmse", "zf"] = "mmse"
    seed: int = 0
    calibration: CATCalibration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CATConfig:
        if self.model_dim % self.heads:
            raise ValueError(f"model_dim ({self.model_dim}) must be divisible by heads ({self.heads})")
        if self.max_symbols * self.model_dim ** 2 > MAX_READOUT:
            raise ValueError(f"max_symbols x model_dim^2 ({self.max_symbols} x {self.model_dim}^2) is the "
                             f"receiver's read-out size; at most {MAX_READOUT:,} (2^28)")
        lv = self.levels
        if not lv or any(b <= a for a, b in zip(lv, lv[1:])) or lv[-1] != self.max_symbols:
            raise ValueError("levels must be strictly increasing and end at max_symbols "
                             f"({self.max_symbols}), got {list(lv)}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels must be distinct names among {', '.join(CHANNELS)}, "
                             f"got {list(self.channels)}")
        lo, hi = self.snr_range_db
        if not (SNR_RANGE_DB[0] <= lo < hi <= SNR_RANGE_DB[1]):
            raise ValueError("snr_range_db must be (low, high) with low < high inside "
                             f"{list(SNR_RANGE_DB)} dB, got {[lo, hi]}")
        cal = self.calibration
        if cal is not None:
            for name, rows in cal.quality.items():
                if name not in self.channels:
                    raise ValueError(f"calibration for channel {name!r}, which the codec was not trained on "
                                     f"({', '.join(self.channels)})")
                if any(len(r) != len(lv) for r in rows):
                    raise ValueError(f"calibration[{name!r}] rows must have one quality per level "
                                     f"({len(lv)})")
        return self


def channel_index(config: CATConfig, channel: Any) -> int:
    """The index of ``channel`` in :data:`~ragsc.channel.models.CHANNELS` (the row of the codec's channel-kind
    embedding); :class:`~ragsc.errors.ConfigError` unless it is a kind ``config`` was trained on."""
    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r}; choose one of {', '.join(CHANNELS)}")
    if channel not in config.channels:
        raise ConfigError(f"this CAT codec was trained on {', '.join(config.channels)}, not {channel!r}")
    return CHANNELS.index(channel)


def check_level(config: CATConfig, n_symbols: Any) -> int:
    """``n_symbols`` itself if it is one of ``config.levels`` (a code length); ConfigError otherwise."""
    levels = config.levels
    if isinstance(n_symbols, bool) or not isinstance(n_symbols, int) or n_symbols not in levels:
        raise ConfigError(f"n_symbols must be one of this CAT codec's levels {list(levels)}, "
                          f"got {n_symbols!r}")
    return n_symbols
