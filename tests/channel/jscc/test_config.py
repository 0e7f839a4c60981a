"""JSCCConfig: bandwidth ratios as code levels (level / 384), parse_ratio, and the validation of a config."""

from __future__ import annotations

from fractions import Fraction

import pytest

from ragsc.channel.jscc import JSCCConfig, parse_ratio
from ragsc.errors import ConfigError

from .conftest import TINY


def test_default_levels_are_the_ratios_1_48_1_12_1_6():
    c = JSCCConfig()
    assert c.levels == (8, 32, 64) and c.max_channels == 64
    assert c.ratios == (Fraction(1, 48), Fraction(1, 12), Fraction(1, 6))
    assert [c.level_for(r) for r in ("1/48", "1/12", "1/6")] == [8, 32, 64]
    assert c.level_for(Fraction(1, 6)) == 64 and c.level_for(1 / 12) == 32 and c.level_for(" 1/48 ") == 8


def test_a_ratio_is_the_level_over_384():
    c = JSCCConfig(**TINY)
    assert c.ratio(2) == Fraction(1, 192) and c.ratio(8) == Fraction(1, 48) and c.ratio(384) == 1
    assert c.ratios == (Fraction(1, 192), Fraction(1, 48))
    assert c.level_for("1/192") == 2 and c.level_for("2/384") == 2


@pytest.mark.parametrize("ratio", ["1/24", "1/12", 0.5, "1"])
def test_level_for_a_ratio_not_sent_names_the_ratios(ratio):
    with pytest.raises(ConfigError,
                       match=r"sends bandwidth ratios 1/192, 1/48, not .*ragsc jscc train --ratio"):
        JSCCConfig(**TINY).level_for(ratio)


@pytest.mark.parametrize(("text", "value"), [("1/12", Fraction(1, 12)), (" 3/8 ", Fraction(3, 8)),
                                             (1 / 48, Fraction(1, 48)), (1, Fraction(1)),
                                             (Fraction(2, 4), Fraction(1, 2)), ("0.25", Fraction(1, 4))])
def test_parse_ratio(text, value):
    assert parse_ratio(text) == value


@pytest.mark.parametrize(("text", "message"), [("abc", "must be a fraction like '1/12'"),
                                               ("1/0", "must be a fraction"), (None, "must be a fraction"),
                                               (0, r"must be in \(0, 1\], got 0"),
                                               ("-1/12", r"must be in \(0, 1\]"), (1.5, r"in \(0, 1\]"),
                                               ("3/2", r"in \(0, 1\], got '3/2'")])
def test_parse_ratio_refuses_what_is_no_ratio(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_ratio(text)


@pytest.mark.parametrize(("fields", "message"), [
    (dict(max_channels=9, levels=(9,)), r"max_channels must be even .* got 9"),
    (dict(max_channels=8, levels=(2, 6)), r"levels must be ascending even channel counts ending at "
                                          r"max_channels \(8\), got \(2, 6\)"),
    (dict(max_channels=8, levels=(8, 2)), r"ending at max_channels \(8\), got \(8, 2\)"),
    (dict(max_channels=8, levels=(3, 8)), r"got \(3, 8\)"),
    (dict(max_channels=8, levels=(2, 2, 8)), r"got \(2, 2, 8\)"),
    (dict(max_channels=8, levels=()), "levels must be ascending"),
    (dict(snr_range_db=(5.0, 5.0)),
     r"snr_range_db must be \(lo, hi\) with -30 <= lo < hi <= 60, got \(5.0, 5.0\)"),
    (dict(snr_range_db=(10.0, 0.0)), "snr_range_db must be"),
    (dict(snr_range_db=(-40.0, 0.0)), "snr_range_db must be"),
    (dict(snr_range_db=(0.0, 61.0)), "snr_range_db must be"),
    (dict(channels=("awgn", "fading")), "channels must be among awgn, rayleigh, rician"),
    (dict(channels=()), "channels must be among"),
    (dict(widths=(8, 2, 8)), r"widths must each be 4..512, got \(8, 2, 8\)"),
    (dict(blocks=(0, 9)), r"blocks must each be 0..8"),
    (dict(max_channels=770, levels=(770,)), "max_channels: Input should be less than or equal to 768"),
    (dict(rician_k=-1.0), "rician_k"),
    (dict(ratio="1/12"), "ratio: Extra inputs are not permitted"),
])
def test_invalid_configs_name_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        JSCCConfig(**{**TINY, **fields})


def test_a_config_round_trips_through_json():
    c = JSCCConfig(**TINY, side_info=True, channels=("awgn",), snr_range_db=(0.0, 20.0))
    assert JSCCConfig(**c.model_dump(mode="json")) == c
