"""The CAT codec's rate policy: the fewest symbols whose measured quality reaches a target.

The policy belongs to the codec, not to its weights: :func:`ragsc.distill.cat.calibrate` measures the mean
cosine to the target per (channel, SNR, level) on a validation split through the real
:class:`~ragsc.channel.models.Channel` and stores it in the config as a
:class:`~ragsc.channel.cat.CATCalibration`; :func:`choose_length` (and
:meth:`~ragsc.channel.cat.CATCodec.choose_length`, which calls it) reads that table, so fewer symbols are
sent where the channel is good.
"""

from __future__ import annotations

from ragsc.channel.cat.config import CATConfig, channel_index
from ragsc.config import check_snr_db
from ragsc.errors import ConfigError


def choose_length(config: CATConfig, snr_db: float, channel: str, quality: float = 0.9) -> int:
    """The fewest symbols (a level of ``config``) whose calibrated quality at ``snr_db`` on ``channel``
    reaches ``quality``.

    Quality is the mean cosine to the target measured by :func:`ragsc.distill.cat.calibrate`, interpolated
    between calibrated SNRs. Where no level reaches it, or ``snr_db`` lies below every calibrated SNR,
    the longest level.

    Raises
    ------
    ConfigError
        ``channel`` is not one the codec was trained on or calibrated for, ``quality`` is not in (0, 1], or
        the config has no rate table.
    InputError
        ``snr_db`` is not finite or outside [-30, 60] dB.
    """
    channel_index(config, channel)
    snr = check_snr_db(snr_db)
    if isinstance(quality, bool) or not isinstance(quality, int | float) or not 0 < quality <= 1:
        raise ConfigError(f"quality is a mean cosine in (0, 1], got {quality!r}")
    cal = config.calibration
    if cal is None:
        raise ConfigError("this CAT codec has no rate table: calibrate it (ragsc.distill.cat.calibrate) "
                          "or send a fixed n_symbols")
    if channel not in cal.quality:
        raise ConfigError(f"the rate table has no entry for channel {channel!r} (calibrated: "
                          f"{', '.join(cal.quality)})")
    row = cal.row(channel, snr)
    if row is not None:
        for level, q in zip(config.levels, row):
            if q >= quality:
                return level
    return config.levels[-1]
