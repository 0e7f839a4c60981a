"""ragsc.channel.arithmetic: the arithmetic coder alone, on random skewed frequency tables."""

from __future__ import annotations

import math
import random
from itertools import accumulate

import pytest

from ragsc.channel.arithmetic import ArithmeticDecoder, arithmetic_encode, pack_bits


@pytest.mark.parametrize("precision", [16, 32])
def test_arithmetic_coder_round_trips_random_skewed_tables(precision):
    rng = random.Random(precision)
    state_bits = precision + 18
    for _ in range(20):
        steps, symbols = [], []
        for _ in range(rng.randint(0, 40)):
            # skewed tables: one symbol with almost all the mass, the rest at the floor of 1
            freqs = [1] * rng.randint(2, 50)
            freqs[rng.randrange(len(freqs))] = 2**precision - len(freqs)
            s = rng.randrange(len(freqs)) if rng.random() < 0.3 else freqs.index(max(freqs))
            cum = [0, *accumulate(freqs)]
            steps.append(cum)
            symbols.append(s)
        intervals = [(cum[s], cum[s + 1], cum[-1]) for cum, s in zip(steps, symbols)]
        bits = arithmetic_encode(intervals, state_bits)
        assert not bits or bits[-1] == 1  # trailing zeros are implied, never sent
        info = sum(math.log2(cum[-1] / (cum[s + 1] - cum[s])) for cum, s in zip(steps, symbols))
        assert len(bits) <= info + 2.01
        dec = ArithmeticDecoder(pack_bits(bits), state_bits)
        out = []
        for cum in steps:
            target = dec.target(cum[-1])
            s = next(i for i in range(len(cum) - 1) if cum[i] <= target < cum[i + 1])
            dec.consume(cum[s], cum[s + 1], cum[-1])
            out.append(s)
        assert out == symbols
