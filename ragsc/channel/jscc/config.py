"""The image JSCC codec's config: its architecture, its rates, and the channels and SNRs it is trained for.

Rates. The encoder maps an ``H x W`` RGB image to a ``max_channels``-channel feature map at ``1/8`` of its
size (``H`` and ``W`` padded up to multiples of 8); channel pair ``2i, 2i+1`` of a position is one complex
symbol. Sending the first ``c`` channels costs ``(H/8)(W/8) c/2`` complex symbols for ``3HW`` source values:
a bandwidth ratio of ``c / 384``. ``levels`` are the channel counts one model is trained to send (trained
with a random level per batch, both ends told the level): one model serves the ratios ``1/48, 1/12, 1/6`` of
the defaults ``(8, 32, 64)``. The encoder is told the level, so the code at 1/48 is not a prefix of the code
at 1/12: three codes from one network, not a successive refinement (that needs a level-blind encoder).
"""

from __future__ import annotations

from fractions import Fraction

from pydantic import Field, model_validator

from ragsc.channel.models import CHANNELS
from ragsc.config import Config
from ragsc.errors import ConfigError
from ragsc.types import parse_ratio

DOWNSAMPLE = 8  # three stride-2 stages
SOURCE_VALUES_PER_POSITION = 3 * DOWNSAMPLE * DOWNSAMPLE  # RGB values one 1/8-scale position stands for


class JSCCConfig(Config):
    """What a :class:`~ragsc.channel.jscc.JSCCCodec` is built from.

    The bounds (``widths`` 4..512, ``blocks`` 0..8 per stage, ``max_channels`` <= 768) keep a config from a
    file from allocating an unbounded network; the training fields say what the codec was trained for (the
    SNR told to the network is clamped to ``snr_range_db``).

    Attributes
    ----------
    widths
        Feature channels at 1/2, 1/4 and 1/8 of the image size.
    blocks
        ConvNeXt blocks at 1/4 and 1/8 (encoder and decoder each).
    max_channels
        Real channels of the code at 1/8 (even: pairs are complex symbols); the largest level.
    levels
        Channel counts the code is trained to be sent at (ascending, even, the last ``max_channels``).
    side_info
        Whether the decoder has the side-information branch (KB photos fused at every decoder stage).
    channels, snr_range_db, rician_k
        What it is trained on.
    """

    widths: tuple[int, int, int] = (32, 64, 128)
    blocks: tuple[int, int] = (1, 2)
    max_channels: int = Field(64, ge=2, le=768)
    levels: tuple[int, ...] = (8, 32, 64)
    side_info: bool = False
    channels: tuple[str, ...] = CHANNELS
    snr_range_db: tuple[float, float] = (-5.0, 25.0)
    rician_k: float = Field(4.0, ge=0.0, le=1e4)

    @model_validator(mode="after")
    def _check(self) -> JSCCConfig:
        if any(not 4 <= w <= 512 for w in self.widths):
            raise ValueError(f"widths must each be 4..512, got {self.widths}")
        if any(not 0 <= b <= 8 for b in self.blocks):
            raise ValueError(f"blocks must each be 0..8, got {self.blocks}")
        if self.max_channels % 2:
            raise ValueError(
                f"max_channels must be even (channel pairs are complex symbols), got {self.max_channels}"
            )
        lv = self.levels
        if (
            not lv
            or list(lv) != sorted(set(lv))
            or any(c % 2 or c < 2 for c in lv)
            or lv[-1] != self.max_channels
        ):
            raise ValueError(
                f"levels must be ascending even channel counts ending at max_channels "
                f"({self.max_channels}), got {lv}"
            )
        if any(c not in CHANNELS for c in self.channels) or not self.channels:
            raise ValueError(f"channels must be among {', '.join(CHANNELS)}, got {self.channels}")
        lo, hi = self.snr_range_db
        if not -30 <= lo < hi <= 60:
            raise ValueError(
                f"snr_range_db must be (lo, hi) with -30 <= lo < hi <= 60, got {self.snr_range_db}"
            )
        return self

    def ratio(self, level: int) -> Fraction:
        """The bandwidth ratio of sending ``level`` channels (``level / 384``)."""
        return Fraction(level, 2 * 3 * DOWNSAMPLE * DOWNSAMPLE)

    @property
    def ratios(self) -> tuple[Fraction, ...]:
        return tuple(self.ratio(c) for c in self.levels)

    def level_for(self, ratio: str | float | Fraction) -> int:
        """The level whose ratio is ``ratio`` (a number within 0.5 % of it matches: ``0.0833`` is 1/12);
        :class:`ConfigError` naming the ratios this codec sends."""
        r = parse_ratio(ratio)
        for c in self.levels:
            if abs(float(self.ratio(c)) - float(r)) <= 0.005 * float(self.ratio(c)):
                return c
        have = ", ".join(str(x) for x in self.ratios)
        raise ConfigError(
            f"this image codec sends bandwidth ratios {have}, not {r}; pick one of them or "
            "train a codec for it (ragsc jscc train --ratio)"
        )
