"""A binary arithmetic coder on Python integers (Witten, Neal and Cleary's, with pending "follow" bits).

:func:`arithmetic_encode` turns a sequence of symbol intervals (cumulative frequencies out of a total) into
bits; :class:`ArithmeticDecoder` reads the symbols back, given the same frequency tables step by step.
The LM text codec (:mod:`ragsc.channel.lm_codec`) drives both with a language model's next-token
probabilities.
"""

from __future__ import annotations


def _bounds(state_bits: int) -> tuple[int, int, int]:
    full = 1 << state_bits
    return full - 1, full >> 1, full >> 2  # top, half, quarter


def arithmetic_encode(intervals, state_bits: int) -> list[int]:
    """Bits (MSB first, trailing zeros dropped) of the sequence of symbol ``intervals``.

    Parameters
    ----------
    intervals
        Iterable of ``(lo, hi, total)``: the symbol's cumulative-frequency interval ``[lo, hi)`` out of
        ``total``; ``0 <= lo < hi <= total <= 2 ** (state_bits - 2)``.
    state_bits
        Width of the coder's ``low`` / ``high`` registers.
    """
    top, half, quarter = _bounds(state_bits)
    low, high, pending, out = 0, top, 0, []

    def emit(bit: int) -> None:
        nonlocal pending
        out.append(bit)
        out.extend([1 - bit] * pending)
        pending = 0

    for lo, hi, total in intervals:
        span = high - low + 1
        high = low + span * hi // total - 1
        low = low + span * lo // total
        while True:
            if high < half:
                emit(0)
            elif low >= half:
                emit(1)
                low, high = low - half, high - half
            elif low >= quarter and high < 3 * quarter:
                pending += 1
                low, high = low - quarter, high - quarter
            else:
                break
            low, high = 2 * low, 2 * high + 1
    # the final point: the value in [low, high] with the most trailing zeros (the decoder pads with zeros)
    shift = state_bits
    while (high >> shift) << shift < low:
        shift -= 1
    point = (high >> shift) << shift
    bits = [(point >> (state_bits - 1 - i)) & 1 for i in range(state_bits)]
    emit(bits[0])
    out.extend(bits[1:])
    while out and out[-1] == 0:
        out.pop()
    return out


class ArithmeticDecoder:
    """Reads symbols back from the bits of :func:`arithmetic_encode` (missing bits are zeros).

    Call :meth:`target` with the step's frequency ``total`` for the cumulative count the next symbol's
    interval contains, then :meth:`consume` with that symbol's ``(lo, hi, total)``.
    """

    def __init__(self, data: bytes, state_bits: int) -> None:
        self.top, self.half, self.quarter = _bounds(state_bits)
        self._bits = [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]
        self._pos = 0
        self.low, self.high, self.value = 0, self.top, 0
        for _ in range(state_bits):
            self.value = 2 * self.value + self._next_bit()

    def _next_bit(self) -> int:
        bit = self._bits[self._pos] if self._pos < len(self._bits) else 0
        self._pos += 1
        return bit

    def target(self, total: int) -> int:
        span = self.high - self.low + 1
        return ((self.value - self.low + 1) * total - 1) // span

    def consume(self, lo: int, hi: int, total: int) -> None:
        span = self.high - self.low + 1
        self.high = self.low + span * hi // total - 1
        self.low = self.low + span * lo // total
        half, quarter = self.half, self.quarter
        while True:
            if self.high < half:
                pass
            elif self.low >= half:
                self.low, self.high, self.value = self.low - half, self.high - half, self.value - half
            elif self.low >= quarter and self.high < 3 * quarter:
                self.low, self.high, self.value = (self.low - quarter, self.high - quarter,
                                                   self.value - quarter)
            else:
                break
            self.low, self.high = 2 * self.low, 2 * self.high + 1
            self.value = 2 * self.value + self._next_bit()


def pack_bits(bits: list[int]) -> bytes:
    """Bits (MSB first) as bytes, the last one zero-padded."""
    padded = bits + [0] * (-len(bits) % 8)
    return bytes(int("".join(map(str, padded[i : i + 8])), 2) for i in range(0, len(padded), 8))
