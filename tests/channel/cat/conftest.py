"""Fixtures of the CAT tests: an untrained tiny codec, and one with a known rate table (eval mode)."""

from __future__ import annotations

import pytest

from ragsc.channel import CATCodec, CATConfig

from ._util import TABLE, TINY


@pytest.fixture(scope="module")
def codec() -> CATCodec:
    return CATCodec(CATConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def calibrated() -> CATCodec:
    return CATCodec(CATConfig(**TINY, channels=("awgn", "rayleigh"), calibration=TABLE)).eval()
