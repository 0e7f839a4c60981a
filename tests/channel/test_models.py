"""Channel models: noise power and circularity, fading statistics, seeding, equalisation, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ragsc.channel import CHANNELS, Channel, equalize, estimate_snr_db, snr_db_to_no
from ragsc.errors import ConfigError, InputError

from ._util import unit_symbols

N_ROWS, N_COLS = 1000, 1000  # 1e6 complex samples per statistical test


# ----------------------------------------------------------------------------- SNR -> N0


@pytest.mark.parametrize(
    ("snr_db", "no"), [(0.0, 1.0), (10.0, 0.1), (-10.0, 10.0), (20.0, 0.01), (3.0, 10**-0.3)]
)
def test_snr_db_to_no(snr_db, no):
    assert snr_db_to_no(snr_db) == pytest.approx(no, rel=1e-6)
    assert isinstance(snr_db_to_no(snr_db), float)


def test_snr_db_to_no_tensor_and_range_edges():
    t = snr_db_to_no(torch.tensor([0.0, 10.0, 20.0]))
    assert isinstance(t, torch.Tensor)
    torch.testing.assert_close(t, torch.tensor([1.0, 0.1, 0.01]))
    assert snr_db_to_no(-30.0) == pytest.approx(1000.0)
    assert snr_db_to_no(60.0) == pytest.approx(1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -30.5, 60.5, 1e9])
def test_snr_db_to_no_rejects_bad_snr(bad):
    with pytest.raises(InputError):
        snr_db_to_no(bad)


@pytest.mark.parametrize("bad", [[0.0, float("nan")], [0.0, 61.0], [-31.0, 0.0], [float("inf")]])
def test_snr_db_to_no_rejects_bad_tensor(bad):
    with pytest.raises(InputError):
        snr_db_to_no(torch.tensor(bad))


# ----------------------------------------------------------------------------- AWGN


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 25.0])
def test_awgn_measured_snr_matches_configured(snr_db):
    x = unit_symbols(N_ROWS, N_COLS, seed=1)
    no = snr_db_to_no(snr_db)
    y, h = Channel("awgn", seed=11)(x, no)
    assert y.shape == x.shape and y.dtype == torch.complex64
    assert h is None or torch.equal(h, torch.ones_like(h))  # AWGN: h = 1 (None on the hot path)
    noise_power = float(((y - x).abs() ** 2).double().mean())
    assert noise_power / no == pytest.approx(1.0, rel=0.01)  # 1e6 samples: std of the ratio is 0.1 %
    measured_snr_db = 10 * math.log10(float((x.abs() ** 2).double().mean()) / noise_power)
    assert measured_snr_db == pytest.approx(snr_db, abs=10 * math.log10(1.01))


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_awgn_noise_is_circular(snr_db):
    no = snr_db_to_no(snr_db)
    x = torch.zeros(N_ROWS, N_COLS, dtype=torch.complex64)
    n, _ = Channel("awgn", seed=12)(x, no)
    re, im = n.real.double().flatten(), n.imag.double().flatten()
    assert float(re.var()) == pytest.approx(no / 2, rel=0.01)
    assert float(im.var()) == pytest.approx(no / 2, rel=0.01)
    assert abs(float(re.mean())) < 5 * math.sqrt(no / 2 / re.numel())
    assert abs(float(im.mean())) < 5 * math.sqrt(no / 2 / im.numel())
    corr = float(((re - re.mean()) * (im - im.mean())).mean() / (re.std() * im.std()))
    assert abs(corr) < 0.005  # std of the sample correlation is 1e-3
    # circular: E[n^2] = 0 (pseudo-variance), not just equal variances
    assert abs(complex((n.to(torch.complex128) ** 2).mean())) < 0.005 * no
    # Gaussian per real dimension
    assert stats.kstest(re.numpy()[:200_000] / math.sqrt(no / 2), "norm").pvalue > 0.01


def test_awgn_per_item_noise_variance():
    no = torch.tensor([1.0, 0.1, 0.01, 0.001])
    x = unit_symbols(4, 250_000, seed=2)
    y, _ = Channel("awgn", seed=13)(x, no)
    measured = ((y - x).abs() ** 2).double().mean(dim=1)
    torch.testing.assert_close(measured, no.double(), rtol=0.01, atol=0.0)


# ----------------------------------------------------------------------------- fading


def test_rayleigh_fast_fading_power_is_exponential_with_mean_one():
    h = Channel("rayleigh", fading="fast", seed=21).coefficients(N_ROWS, N_COLS)
    assert h.shape == (N_ROWS, N_COLS) and h.dtype == torch.complex64
    g = (h.abs() ** 2).double().flatten().numpy()
    assert g.mean() == pytest.approx(1.0, rel=0.01)
    assert stats.kstest(g, "expon").pvalue > 0.01
    # h ~ CN(0, 1): zero mean, variance 1/2 per real dimension, uniform phase
    assert abs(complex(h.to(torch.complex128).mean())) < 0.005
    assert float(h.real.double().var()) == pytest.approx(0.5, rel=0.01)
    assert float(h.imag.double().var()) == pytest.approx(0.5, rel=0.01)
    phase = torch.angle(h).double().flatten().numpy()
    assert stats.kstest(phase, stats.uniform(loc=-math.pi, scale=2 * math.pi).cdf).pvalue > 0.01


def test_rayleigh_fast_fading_varies_along_a_row():
    h = Channel("rayleigh", fading="fast", seed=22).coefficients(8, 64)
    assert not torch.equal(h, h[:, :1].expand_as(h))


def _per_symbol(h: torch.Tensor, shape) -> torch.Tensor:
    """The coefficient each symbol sees (block fading may return ``[N, 1]``, which broadcasts)."""
    assert h.ndim == 2 and h.shape[0] == shape[0] and h.shape[1] in (1, shape[1])
    return torch.broadcast_to(h, shape)


def test_block_fading_draws_one_coefficient_per_row():
    ch = Channel("rayleigh", fading="block", seed=23)
    h = _per_symbol(ch.coefficients(200_000, 4), (200_000, 4))
    assert torch.equal(h, h[:, :1].expand_as(h))  # equal along each row
    first = torch.view_as_real(h[:10_000, 0].contiguous())
    assert torch.unique(first, dim=0).shape[0] == 10_000  # a fresh draw per row
    g = (h[:, 0].abs() ** 2).double().numpy()
    assert g.mean() == pytest.approx(1.0, rel=0.015)
    assert stats.kstest(g, "expon").pvalue > 0.01
    # through the call: the h returned is the one applied, constant along each row
    x = unit_symbols(64, 32, seed=3)
    y, h = ch(x, 1e-6)
    h = _per_symbol(h, x.shape)
    assert torch.equal(h, h[:, :1].expand_as(h))
    torch.testing.assert_close(y, h * x, atol=1e-2, rtol=0)


@pytest.mark.parametrize("k_factor", [0.0, 1.0, 4.0, 10.0])
def test_rician_power_and_line_of_sight(k_factor):
    ch = Channel("rician", fading="fast", rician_k=k_factor, seed=24)
    h = ch.coefficients(N_ROWS, N_COLS).to(torch.complex128)
    assert float((h.abs() ** 2).mean()) == pytest.approx(1.0, rel=0.01)
    assert float(h.mean().abs()) == pytest.approx(math.sqrt(k_factor / (k_factor + 1)), abs=0.005)
    scatter = h - math.sqrt(k_factor / (k_factor + 1))
    assert float((scatter.abs() ** 2).mean()) == pytest.approx(1 / (k_factor + 1), rel=0.01)


def test_rician_block_fading_is_constant_along_rows():
    h = _per_symbol(Channel("rician", fading="block", rician_k=2.0, seed=25).coefficients(100, 16), (100, 16))
    assert torch.equal(h, h[:, :1].expand_as(h))


@pytest.mark.parametrize("name", ["rayleigh", "rician"])
def test_noise_is_added_after_fading(name):
    """y = h x + n: the noise power does not depend on h."""
    no = 0.05
    x = unit_symbols(N_ROWS, N_COLS, seed=4)
    y, h = Channel(name, fading="fast", seed=26)(x, no)
    assert float(((y - h * x).abs() ** 2).double().mean()) == pytest.approx(no, rel=0.01)


# ----------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("name", CHANNELS)
def test_channel_is_reproducible_per_instance(name):
    x = unit_symbols(16, 32, seed=5)
    y1, h1 = Channel(name, seed=7)(x, 0.1)
    torch.manual_seed(1234)  # the process-wide generators must not matter
    torch.randn(100)
    y2, h2 = Channel(name, seed=7)(x, 0.1)
    assert torch.equal(y1, y2)
    assert (h1 is None and h2 is None) if name == "awgn" else torch.equal(h1, h2)
    y3, _ = Channel(name, seed=8)(x, 0.1)
    assert not torch.equal(y1, y3)


def test_successive_calls_draw_fresh_noise_and_instances_are_independent():
    x = unit_symbols(4, 64, seed=6)
    a, b = Channel("rayleigh", seed=9), Channel("rayleigh", seed=9)
    ya1, _ = a(x, 0.1)
    ya2, _ = a(x, 0.1)
    assert not torch.equal(ya1, ya2)
    yb1, _ = b(x, 0.1)  # b's state is its own: a's two calls did not advance it
    assert torch.equal(ya1, yb1)


def test_unseeded_channels_differ():
    x = unit_symbols(4, 64, seed=6)
    assert not torch.equal(Channel(seed=None)(x, 0.1)[0], Channel(seed=None)(x, 0.1)[0])


# ----------------------------------------------------------------------------- equalisation


def test_equalize_zf_and_mmse_formulas():
    g = torch.Generator().manual_seed(0)
    h = torch.complex(torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g))
    y = torch.complex(torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g))
    no = 0.2
    x_zf, no_zf = equalize(y, h, no, method="zf")
    torch.testing.assert_close(x_zf, y / h)
    torch.testing.assert_close(no_zf, no / h.abs() ** 2)
    x_mmse, no_mmse = equalize(y, h, no, method="mmse")
    torch.testing.assert_close(x_mmse, h.conj() * y / (h.abs() ** 2 + no))
    torch.testing.assert_close(no_mmse, no_zf)
    x_none, no_none = equalize(y, h, no, csi="none")
    assert torch.equal(x_none, y)
    torch.testing.assert_close(no_none, torch.full((8, 16), no))


def test_equalize_awgn_and_block_broadcast():
    g = torch.Generator().manual_seed(1)
    y = torch.complex(torch.randn(6, 10, generator=g), torch.randn(6, 10, generator=g))
    no = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    ones = torch.ones(6, 10, dtype=torch.complex64)
    for method in ("zf", "mmse"):  # h = None is AWGN: the same as h = 1
        x_none, no_none = equalize(y, None, no, method=method)
        x_ones, no_ones = equalize(y, ones, no, method=method)
        torch.testing.assert_close(x_none, x_ones)
        torch.testing.assert_close(torch.broadcast_to(no_none, y.shape), torch.broadcast_to(no_ones, y.shape))
    torch.testing.assert_close(equalize(y, None, no, method="mmse")[0], y / (1 + no[:, None]))
    h_block = torch.complex(torch.randn(6, 1, generator=g), torch.randn(6, 1, generator=g))
    for method in ("zf", "mmse"):  # a [N, 1] block coefficient acts like its expansion
        a, na = equalize(y, h_block, no, method=method)
        b, nb = equalize(y, h_block.expand(6, 10), no, method=method)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(torch.broadcast_to(na, y.shape), nb)


def test_equalize_per_item_noise_and_zero_gain_stay_finite():
    h = torch.tensor([[0j, 1 + 0j], [2 + 0j, 0j]], dtype=torch.complex64)
    y = torch.ones(2, 2, dtype=torch.complex64)
    no = torch.tensor([0.1, 0.4])
    for method in ("zf", "mmse"):
        x, no_eff = equalize(y, h, no, method=method)
        assert torch.isfinite(torch.view_as_real(x)).all() and torch.isfinite(no_eff).all()
    _, no_eff = equalize(y, h, no, method="zf")
    assert float(no_eff[1, 0]) == pytest.approx(0.4 / 4)


def test_equalize_rejects_unknown_options():
    y = h = torch.ones(2, 2, dtype=torch.complex64)
    with pytest.raises(ConfigError):
        equalize(y, h, 0.1, csi="estimated")
    with pytest.raises(ConfigError):
        equalize(y, h, 0.1, method="ml")


# ----------------------------------------------------------------------------- SNR from pilots


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
@pytest.mark.parametrize("name", ["awgn", "rayleigh"])
def test_pilot_snr_estimate_within_half_a_db(name, snr_db):
    est, h = estimate_snr_db(Channel(name, fading="block", seed=4), 4000, 64, snr_db)
    assert est.shape == h.shape == (4000,)
    err = est.double() - snr_db
    assert float(err.abs().mean()) < 0.5  # 64 pilots: ~0.44 dB mean absolute error
    assert abs(float(err.mean())) < 0.15  # and no bias to speak of
    if name == "awgn":
        assert float((h - 1).abs().mean()) < 1.2 * math.sqrt(math.pi / 4 * snr_db_to_no(snr_db) / 64)


def test_pilot_snr_estimate_improves_with_pilots():
    ch = Channel(seed=5)
    errs = [float((estimate_snr_db(ch, 2000, n, 10.0)[0] - 10.0).abs().mean()) for n in (4, 16, 64, 256)]
    assert all(a > b for a, b in zip(errs, errs[1:]))


@pytest.mark.parametrize("n_pilots", [1, 0, -3, 2.5, float("nan"), float("inf")])
def test_snr_estimation_needs_two_pilots(n_pilots):
    with pytest.raises(ConfigError):
        estimate_snr_db(Channel(), 4, n_pilots, 10.0)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs",
    [dict(name="rayleigh-ish"), dict(name="AWGN"), dict(name=""), dict(fading="slow"),
     dict(name="rician", rician_k=-0.1),
     dict(name="rician", rician_k=float("nan")), dict(name="rician", rician_k=float("inf"))],
)
def test_bad_channel_config_raises_config_error(kwargs):
    with pytest.raises(ConfigError):
        Channel(**kwargs)


@pytest.mark.parametrize(
    "x",
    [torch.ones(4, 8), torch.ones(4, 8, dtype=torch.int64), torch.ones(8, dtype=torch.complex64),
     torch.ones(2, 4, 8, dtype=torch.complex64), [[1 + 0j, 1 + 0j]], np.ones((2, 2), dtype=np.complex64)],
    ids=["real", "int", "1d", "3d", "list", "numpy"],
)
def test_bad_channel_input_raises_input_error(x):
    ch = Channel("rayleigh", seed=0)
    state = ch.generator.get_state()
    with pytest.raises(InputError):
        ch(x, 0.1)
    assert torch.equal(ch.generator.get_state(), state)  # nothing drawn


def test_repr_names_the_channel():
    text = repr(Channel("rician", rician_k=3.0))
    assert "rician" in text and "K=3.0" in text
    assert "awgn" in repr(Channel())


@pytest.mark.parametrize("h_kind", ["awgn", "rayleigh"])
def test_debiased_mmse_is_zero_forcing_for_a_detector(h_kind):
    """What equalize_for_detection relies on: MMSE divided by its bias equals ZF (one antenna)."""
    from ragsc.channel.models import equalize_for_detection

    g = torch.Generator().manual_seed(0)
    y = torch.randn(64, 8, dtype=torch.complex64, generator=g)
    h = None if h_kind == "awgn" else torch.randn(64, 8, dtype=torch.complex64, generator=g)
    no = torch.rand(64, generator=g) + 0.05
    mmse, _ = equalize(y, h, no, "perfect", "mmse")
    gain = torch.ones(()) if h is None else h.abs() ** 2
    debiased = mmse / (gain / (gain + no[:, None]))
    zf, no_zf = equalize(y, h, no, "perfect", "zf")
    torch.testing.assert_close(debiased, zf, rtol=1e-5, atol=1e-5)
    for method in ("mmse", "zf"):
        x, n = equalize_for_detection(y, h, no, "perfect", method)
        torch.testing.assert_close(x, zf) and torch.testing.assert_close(n, no_zf)
    with pytest.raises(ConfigError, match="equalizer"):
        equalize_for_detection(y, h, no, "perfect", "lmmse")
