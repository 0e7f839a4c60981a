"""The CAT rate policy (ragsc/channel/cat/policy.py): the calibrated table's look-up and its errors."""

from __future__ import annotations

import pytest

from ragsc.channel.cat.policy import choose_length
from ragsc.errors import ConfigError, InputError


@pytest.mark.parametrize(
    ("snr_db", "quality", "n"),
    [(20.0, 0.9, 2), (10.0, 0.9, 8), (10.0, 0.8, 4),
     (15.0, 0.89, 4), (15.0, 0.8, 2),  # interpolated: level 2 at 0.80, level 4 at 0.90
     (30.0, 0.9, 2), (-5.0, 0.1, 8),  # above the table: its last row; below: nothing vouches, the longest
     (0.0, 0.99, 8), (0.0, 0.5, 2)],
)
def test_choose_length_reads_the_table(calibrated, snr_db, quality, n):
    assert calibrated.choose_length(snr_db, "awgn", quality) == n
    assert choose_length(calibrated.config, snr_db, "awgn", quality) == n  # the method reads the config only


def test_choose_length_errors(codec, calibrated):
    with pytest.raises(ConfigError, match="calibrate"):
        codec.choose_length(10.0, "awgn")
    with pytest.raises(ConfigError, match="rayleigh"):
        calibrated.choose_length(10.0, "rayleigh")  # trained on, not calibrated
    with pytest.raises(ConfigError, match="trained on"):
        calibrated.choose_length(10.0, "rician")
    for q in (0.0, 1.5, True, "high"):
        with pytest.raises(ConfigError, match="quality"):
            calibrated.choose_length(10.0, "awgn", q)
    with pytest.raises(InputError, match="snr_db"):
        calibrated.choose_length(float("nan"), "awgn")
