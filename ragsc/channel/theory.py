"""Closed-form curves the tests and sweep plots compare measurements against (Es = 1, SNR = Es/N0)."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special


def _snr(snr_db) -> np.ndarray:
    return 10.0 ** (np.asarray(snr_db, dtype=np.float64) / 10.0)


def ber_qam_awgn(num_bits_per_symbol: int, snr_db) -> np.ndarray:
    """Exact bit error rate of Gray-coded square M-QAM on AWGN (Cho & Yoon, IEEE T-COM 2002)."""
    m = 2 ** num_bits_per_symbol
    sqrt_m = int(round(math.sqrt(m)))
    if sqrt_m * sqrt_m != m:
        raise ValueError("square QAM only (num_bits_per_symbol even)")
    gamma_s = _snr(snr_db)
    ber = np.zeros_like(gamma_s)
    for k in range(1, int(math.log2(sqrt_m)) + 1):
        for i in range(int((1 - 2.0 ** -k) * sqrt_m)):
            w = ((-1) ** math.floor(i * 2 ** (k - 1) / sqrt_m)
                 * (2 ** (k - 1) - math.floor(i * 2 ** (k - 1) / sqrt_m + 0.5)))
            ber += w * special.erfc((2 * i + 1) * np.sqrt(3 * gamma_s / (2 * (m - 1))))
    return ber / (sqrt_m * math.log2(sqrt_m))


def ber_qpsk_rayleigh(snr_db) -> np.ndarray:
    """BER of Gray QPSK on Rayleigh fading with perfect CSI: ``(1 - sqrt(g / (1 + g))) / 2``,
    g = Es/(2 N0)."""
    g = _snr(snr_db) / 2.0
    return 0.5 * (1.0 - np.sqrt(g / (1.0 + g)))


def capacity_awgn(snr_db) -> np.ndarray:
    """Shannon capacity in bits per complex channel use: ``log2(1 + SNR)``."""
    return np.log2(1.0 + _snr(snr_db))


def capacity_rayleigh(snr_db) -> np.ndarray:
    """Ergodic capacity of Rayleigh fading with receiver CSI: ``log2(e) e^(1/SNR) E1(1/SNR)``."""
    inv = 1.0 / _snr(snr_db)
    return np.log2(np.e) * np.exp(inv) * special.exp1(inv)


def analog_mse(channel: str, snr_db, equalizer: str = "mmse") -> np.ndarray:
    """Expected MSE per real feature of the analog link (power-normalised domain, perfect CSI).

    AWGN: ``N0/2`` (ZF), ``N0 / (2 (1 + N0))`` (MMSE). Rayleigh + MMSE:
    ``(N0/2) E[1/(|h|^2 + N0)] = (N0/2) e^N0 E1(N0)``; Rayleigh + ZF is unbounded (deep fades).
    """
    no = 1.0 / _snr(snr_db)
    if channel == "awgn":
        return no / 2 if equalizer == "zf" else no / (2 * (1 + no))
    if channel == "rayleigh":
        if equalizer == "zf":
            return np.full_like(no, np.inf)
        return no / 2 * np.exp(no) * special.exp1(no)
    raise ValueError(f"no closed form for channel {channel!r}")


def analog_cosine(channel: str, snr_db) -> np.ndarray:
    """Expected cosine between sent and received features for many dimensions (perfect CSI).

    AWGN: ``1 / sqrt(1 + N0)``; Rayleigh block fading: ``E[1 / sqrt(1 + N0 / |h|^2)]``, |h|^2 ~ Exp(1).
    """
    no = 1.0 / _snr(snr_db)
    if channel == "awgn":
        return 1.0 / np.sqrt(1.0 + no)
    if channel == "rayleigh":
        return np.array([integrate.quad(lambda g, n=n: np.exp(-g) / np.sqrt(1 + n / g), 0, np.inf)[0]
                         for n in np.atleast_1d(no)]).reshape(np.shape(no))
    raise ValueError(f"no closed form for channel {channel!r}")


def outage_rayleigh(rate_bits: float, snr_db) -> np.ndarray:
    """Outage probability of block Rayleigh fading at ``rate_bits`` per channel use:
    ``P(log2(1 + |h|^2 SNR) < R) = 1 - exp(-(2^R - 1) / SNR)`` — the BLER of an ideal long code."""
    return 1.0 - np.exp(-(2.0**rate_bits - 1.0) / _snr(snr_db))
