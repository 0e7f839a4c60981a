"""Closed forms, checked against independent derivations (exact sums, numerical integrals, Monte Carlo)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special, stats

from ragsc.channel import theory

SNRS = np.array([-5.0, 0.0, 3.0, 7.5, 10.0, 15.0, 20.0])


def _ber_gray_qam_min_distance(bits_per_symbol: int, snr_db: float) -> float:
    """Exact BER of Gray square QAM with a minimum-distance detector, from the PAM transition probabilities.

    Per dimension: L = sqrt(M) levels ``d (2j - L + 1)`` with ``d^2 = 3 / (2 (M - 1))`` (Es = 1), Gray labels
    ``j ^ (j >> 1)``, noise variance N0 / 2; bit errors are Hamming distances between labels.
    """
    m = 2**bits_per_symbol
    levels_n = int(round(math.sqrt(m)))
    d = math.sqrt(3 / (2 * (m - 1)))
    sigma = math.sqrt(10 ** (-snr_db / 10) / 2)
    a = d * (2 * np.arange(levels_n) - levels_n + 1)
    edges = np.concatenate([[-np.inf], (a[:-1] + a[1:]) / 2, [np.inf]])
    gray = np.arange(levels_n) ^ (np.arange(levels_n) >> 1)
    errors = 0.0
    for j in range(levels_n):
        p = stats.norm.cdf((edges[1:] - a[j]) / sigma) - stats.norm.cdf((edges[:-1] - a[j]) / sigma)
        hamming = np.array([bin(int(gray[i] ^ gray[j])).count("1") for i in range(levels_n)])
        errors += float((p * hamming).sum())
    return errors / levels_n / math.log2(levels_n)


@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_ber_qam_awgn_is_exact_for_gray_min_distance_detection(bits):
    got = theory.ber_qam_awgn(bits, SNRS)
    want = np.array([_ber_gray_qam_min_distance(bits, s) for s in SNRS])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


def test_ber_qam_awgn_known_forms():
    g = 10 ** (SNRS / 10)
    np.testing.assert_allclose(theory.ber_qam_awgn(2, SNRS), 0.5 * special.erfc(np.sqrt(g / 2)), rtol=1e-12)
    a = np.sqrt(g / 10)  # 16-QAM: (3 erfc(a) + 2 erfc(3a) - erfc(5a)) / 8
    closed = (3 * special.erfc(a) + 2 * special.erfc(3 * a) - special.erfc(5 * a)) / 8
    np.testing.assert_allclose(theory.ber_qam_awgn(4, SNRS), closed, rtol=1e-12)
    assert float(theory.ber_qam_awgn(2, 0.0)) == pytest.approx(0.15865525393, rel=1e-9)
    # scalar in, 0-d out; monotone in SNR; more bits per symbol -> more errors at equal Es/N0
    assert np.ndim(theory.ber_qam_awgn(2, 3.0)) == 0
    assert np.all(np.diff(theory.ber_qam_awgn(4, SNRS)) < 0)
    assert np.all(theory.ber_qam_awgn(4, SNRS) > theory.ber_qam_awgn(2, SNRS))


@pytest.mark.parametrize("bits", [1, 3, 5])
def test_ber_qam_awgn_rejects_non_square(bits):
    with pytest.raises(ValueError):
        theory.ber_qam_awgn(bits, 10.0)


def test_ber_qpsk_rayleigh_is_the_fading_average_of_awgn():
    for snr_db in SNRS:
        gamma = 10 ** (snr_db / 10)
        avg, _ = integrate.quad(lambda g, gamma=gamma: (0.5 * special.erfc(np.sqrt(gamma * g / 2))
                                                        * np.exp(-g)), 0, np.inf)
        assert float(theory.ber_qpsk_rayleigh(snr_db)) == pytest.approx(avg, rel=1e-7)
    # high SNR slope: BER ~ 1 / (2 SNR) (diversity order 1)
    assert float(theory.ber_qpsk_rayleigh(40.0)) == pytest.approx(1 / (2 * 1e4), rel=1e-3)
    assert np.all(theory.ber_qpsk_rayleigh(SNRS) > theory.ber_qam_awgn(2, SNRS))


def test_capacities():
    np.testing.assert_allclose(theory.capacity_awgn(SNRS), np.log2(1 + 10 ** (SNRS / 10)), rtol=1e-12)
    assert float(theory.capacity_awgn(0.0)) == pytest.approx(1.0)
    for snr_db in SNRS:
        gamma = 10 ** (snr_db / 10)
        ergodic, _ = integrate.quad(lambda g, gamma=gamma: np.log2(1 + gamma * g) * np.exp(-g), 0, np.inf)
        assert float(theory.capacity_rayleigh(snr_db)) == pytest.approx(ergodic, rel=1e-7)
    assert np.all(theory.capacity_rayleigh(SNRS) < theory.capacity_awgn(SNRS))  # Jensen


def test_analog_mse_closed_forms():
    no = 10 ** (-SNRS / 10)
    np.testing.assert_allclose(theory.analog_mse("awgn", SNRS, "zf"), no / 2, rtol=1e-12)
    np.testing.assert_allclose(theory.analog_mse("awgn", SNRS, "mmse"), no / (2 * (1 + no)), rtol=1e-12)
    assert np.all(theory.analog_mse("awgn", SNRS, "mmse") < theory.analog_mse("awgn", SNRS, "zf"))
    for snr_db, n0 in zip(SNRS, no):
        integral, _ = integrate.quad(lambda g, n0=n0: n0 / (2 * (g + n0)) * np.exp(-g), 0, np.inf)
        assert float(theory.analog_mse("rayleigh", snr_db, "mmse")) == pytest.approx(integral, rel=1e-7)
    assert np.all(np.isinf(theory.analog_mse("rayleigh", SNRS, "zf")))
    with pytest.raises(ValueError):
        theory.analog_mse("rician", 10.0)


def test_analog_cosine_closed_forms():
    no = 10 ** (-SNRS / 10)
    np.testing.assert_allclose(theory.analog_cosine("awgn", SNRS), 1 / np.sqrt(1 + no), rtol=1e-12)
    got = theory.analog_cosine("rayleigh", SNRS)
    assert got.shape == SNRS.shape
    g = np.random.default_rng(0).exponential(size=2_000_000)
    for value, n0 in zip(got, no):
        assert value == pytest.approx(np.mean(1 / np.sqrt(1 + n0 / g)), abs=2e-3)
    assert np.all(got < theory.analog_cosine("awgn", SNRS))
    assert np.ndim(theory.analog_cosine("rayleigh", 10.0)) == 0
    with pytest.raises(ValueError):
        theory.analog_cosine("rician", 10.0)


def test_outage_rayleigh():
    g = np.random.default_rng(1).exponential(size=1_000_000)
    for rate in (0.5, 1.0, 2.0):
        for snr_db in (0.0, 10.0, 20.0):
            mc = np.mean(np.log2(1 + g * 10 ** (snr_db / 10)) < rate)
            tol = 5 * np.sqrt(mc * (1 - mc) / g.size) + 1e-5
            assert float(theory.outage_rayleigh(rate, snr_db)) == pytest.approx(mc, abs=tol)
    assert np.all(np.diff(theory.outage_rayleigh(1.0, SNRS)) < 0)
    assert float(theory.outage_rayleigh(1.0, 0.0)) == pytest.approx(1 - np.exp(-1.0))
