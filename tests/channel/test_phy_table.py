"""The PHY abstraction: 5G transport-block layouts as the coded PHY builds them, a measured code-block BLER
table (a tiny real-LDPC measurement), the delivery probability (1 - BLER)^C, and its JSON round trip."""

from __future__ import annotations

import json
import math
import warnings

import pytest

from ragsc.channel.phy_table import BlerTable, tb_layout
from ragsc.errors import ConfigError


@pytest.mark.parametrize(("k", "mcs"), [
    (1000, (4, 1 / 2)), (3000, (16, 3 / 4)), (40, (4, 1 / 3)), (30, (4, 1 / 2)), (7777, (16, 1 / 2)),
    (100_000, (64, 3 / 4)), (5, (4, 1 / 2)), (12, (4, 1 / 3)), (20, (4, 1 / 2)), (1, (64, 3 / 4))])
def test_tb_layout_is_what_the_coded_phy_sends(k, mcs):
    """Information bits and code blocks as :class:`CodedPHY` builds them; ``None`` exactly where it
    refuses."""
    from ragsc.channel.digital import CodedPHY, CodingConfig
    from ragsc.config import ChannelConfig

    layout = tb_layout(k, *mcs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            phy = CodedPHY(ChannelConfig(k_symbols=k), CodingConfig(modulation=mcs[0], code_rate=mcs[1]))
    except ConfigError:
        assert layout is None
        return
    assert layout == (phy.info_bits, phy.encoder.num_cbs)
    assert layout[0] <= k * math.log2(mcs[0]) * mcs[1]  # no more than the rate allows


def test_large_blocks_are_split_into_code_blocks():
    bits, blocks = tb_layout(100_000, 64, 3 / 4)
    assert bits == 450_000 and blocks == 54  # at most 8448 bits per LDPC code block
    assert tb_layout(1000, 4, 1 / 2) == (1000, 1)


@pytest.fixture(scope="module")
def measured() -> BlerTable:
    """QPSK R=1/2, ~500-bit blocks, 2 per point: -10 dB (hopeless) and 20 dB (clean)."""
    return BlerTable.measure([(4, 0.5)], [[-10.0, 20.0]], info_bits=500, blocks=2, seed=0)


def test_measured_bler_is_one_far_below_and_zero_far_above_threshold(measured):
    assert measured.mcs == [(4, 0.5)] and measured.snr_db == [[-10.0, 20.0]]
    assert measured.bler == [[1.0, 0.0]]
    assert (measured.info_bits, measured.blocks, measured.ldpc_iterations) == (500, 2, 20)
    assert measured.p_success((4, 0.5), 30.0, 3) == 1.0 and measured.p_success((4, 0.5), -20.0, 1) == 0.0


def test_measure_needs_one_grid_per_mcs():
    with pytest.raises(ConfigError, match="one SNR grid per MCS"):
        BlerTable.measure([(4, 0.5), (16, 0.5)], [[0.0]])


def _table() -> BlerTable:
    return BlerTable([(4, 0.5), (16, 0.75)], [[0.0, 2.0, 4.0], [10.0, 12.0]], [[1.0, 0.5, 0.1], [0.8, 0.2]],
                     info_bits=8000, blocks=8, ldpc_iterations=20)


def test_p_success_interpolates_the_bler_and_powers_it_by_the_code_blocks():
    t = _table()
    assert t.p_success((4, 0.5), 2.0, 1) == pytest.approx(0.5)
    assert t.p_success((4, 0.5), 1.0, 1) == pytest.approx(0.25)  # BLER 0.75, linear between 0 and 2 dB
    assert t.p_success((4, 0.5), 3.0, 3) == pytest.approx((1 - 0.3) ** 3)
    assert t.p_success((4, 0.5), -0.01, 1) == 0.0  # below the grid: nothing is delivered
    assert t.p_success((4, 0.5), 40.0, 2) == pytest.approx(0.9**2)  # above: the last measured BLER
    assert t.p_success([16, 0.75], 11.0, 4) == pytest.approx(0.5**4)
    for c in (1, 2, 5, 20):
        assert t.p_success((16, 0.75), 12.0, c) == pytest.approx(0.8**c)
    with pytest.raises(ValueError):
        t.p_success((64, 0.75), 10.0, 1)


def test_json_round_trip():
    t = _table()
    back = BlerTable.from_json(json.loads(json.dumps(t.to_json())))
    assert back == t and back.mcs == [(4, 0.5), (16, 0.75)]
    assert back.p_success((4, 0.5), 3.0, 2) == t.p_success((4, 0.5), 3.0, 2)
