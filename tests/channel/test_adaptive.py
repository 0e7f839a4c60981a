"""Channel-adaptive transmission: PCA ordering, rate policy, scaling, pilot SNR estimation, AdaptiveLink."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ragsc.channel import (
    AdaptiveLink,
    AdaptiveScaling,
    Channel,
    ChannelConfig,
    Link,
    PCAOrdering,
    RatePolicy,
    estimate_snr_db,
    snr_db_to_no,
)
from ragsc.errors import ConfigError, InputError

from ._util import gaussian_features


def _decaying(n: int, d: int, seed: int) -> torch.Tensor:
    """Gaussian features with a decaying spectrum in a fixed random basis (so PCA has something to find)."""
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(1000 + d)))
    g = torch.Generator().manual_seed(seed)
    std = 0.8 ** torch.arange(d, dtype=torch.float32)
    return 0.3 + (torch.randn(n, d, generator=g) * std) @ basis.T


def _clustered(n: int, d: int = 64, n_clusters: int = 12, subspace: int = 6, seed: int = 0) -> torch.Tensor:
    """Unit-norm embeddings in clusters whose centres span a low-dimensional subspace of R^d."""
    g = torch.Generator().manual_seed(1000)  # the same clusters for every sample drawn
    basis, _ = torch.linalg.qr(torch.randn(d, subspace, generator=g))
    centres = torch.randn(n_clusters, subspace, generator=g) @ basis.T
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, n_clusters, (n,), generator=g)
    return F.normalize(centres[label] + 0.05 * torch.randn(n, d, generator=g), dim=-1)


@pytest.fixture(scope="module")
def data():
    return _decaying(4000, 32, seed=1)


@pytest.fixture(scope="module")
def ordering(data):
    return PCAOrdering.fit(data)


# ----------------------------------------------------------------------------- PCA ordering


def test_pca_round_trip_with_all_coefficients_is_exact(ordering, data):
    z = data[:500]
    c = ordering.encode(z)
    assert c.shape == (500, 32)
    torch.testing.assert_close(ordering.decode(c), z, atol=1e-5, rtol=0)
    torch.testing.assert_close(ordering.components.T @ ordering.components, torch.eye(32), atol=1e-5, rtol=0)


def test_pca_orders_by_variance(ordering, data):
    v = ordering.variances
    assert (v[:-1] >= v[1:]).all() and (v >= 0).all()
    coeffs = ordering.encode(data).double()
    torch.testing.assert_close(coeffs.var(0), v.double(), rtol=1e-3, atol=1e-7)
    torch.testing.assert_close(coeffs.mean(0), torch.zeros(32, dtype=torch.float64), atol=1e-5, rtol=0)
    # the spectrum it found is the one built in: 0.8 ** (2 i) per coefficient
    built_in = 0.64 ** torch.arange(6, dtype=torch.float64)
    torch.testing.assert_close(v[:6].double() / v[0].double(), built_in, rtol=0.1, atol=0)


def test_pca_save_and_load(ordering, data, tmp_path):
    ordering.save(tmp_path / "pca.safetensors")
    back = PCAOrdering.load(tmp_path / "pca.safetensors")
    assert torch.equal(back.encode(data[:10]), ordering.encode(data[:10]))
    assert torch.equal(back.variances, ordering.variances)


@pytest.mark.parametrize(
    "bad",
    [torch.ones(1, 8), torch.ones(8), torch.ones(2, 3, 4), torch.tensor([[0.0, 1.0], [float("nan"), 0.0]])],
    ids=["one-row", "1d", "3d", "nan"],
)
def test_pca_fit_rejects_bad_input(bad):
    with pytest.raises(InputError):
        PCAOrdering.fit(bad)


@pytest.mark.parametrize("snr_db", [0.5, 5.0, 10.0, 20.0])
def test_predicted_distortion_decreases_with_sent_coefficients(ordering, snr_db):
    no = snr_db_to_no(snr_db)
    d = [ordering.predicted_distortion(n, snr_db) for n in range(33)]
    assert d[0] == pytest.approx(1.0) and d[-1] == pytest.approx(no, rel=1e-5)
    assert all(a > b for a, b in zip(d, d[1:]))  # N0 < 1: every extra coefficient helps


def test_predicted_distortion_is_flat_at_0_db_and_grows_below(ordering):
    assert [ordering.predicted_distortion(n, 0.0) for n in (0, 8, 32)] == pytest.approx([1.0, 1.0, 1.0])
    d = [ordering.predicted_distortion(n, -5.0) for n in range(33)]
    assert all(a < b for a, b in zip(d, d[1:]))  # N0 > 1: sending noise costs more than dropping


@pytest.mark.parametrize("k", [2, 6, 16])
@pytest.mark.parametrize("snr_db", [3.0, 12.0])
def test_predicted_distortion_matches_the_link(ordering, k, snr_db):
    """AWGN + ZF through AdaptiveLink: measured squared error / total variance is the prediction."""
    z = _decaying(40_000, 32, seed=2)
    link = AdaptiveLink(ordering, ChannelConfig(k_symbols=k, equalizer="zf", snr_db=snr_db, seed=3))
    rx = link(z)
    coeffs = ordering.encode(z)
    err = ((rx.features - rx.sent) ** 2).sum(1).mean() + (coeffs[:, 2 * k:] ** 2).sum(1).mean()
    measured = float(err / ordering.variances.sum())
    assert measured == pytest.approx(ordering.predicted_distortion(2 * k, snr_db), rel=0.03)


# ----------------------------------------------------------------------------- rate policy


def test_rate_policy_sends_fewer_symbols_at_high_snr(ordering):
    policy = RatePolicy(ordering, target_distortion=0.2)
    snrs = np.arange(-10.0, 40.5, 0.5)
    ks = [policy.k_for(float(s)) for s in snrs]
    assert policy.k_for(30.0) < policy.k_for(8.0) <= policy.k_for(0.0)
    assert all(a >= b for a, b in zip(ks, ks[1:]))  # never more symbols at a higher SNR
    assert all(1 <= k <= policy.max_symbols for k in ks)
    for snr, k in zip(snrs, ks):  # the fewest that meet the target (or the whole budget)
        if ordering.predicted_distortion(2 * k, snr) <= 0.2:
            assert k == 1 or ordering.predicted_distortion(2 * (k - 1), snr) > 0.2
        else:
            assert k == policy.max_symbols


@pytest.mark.parametrize("max_symbols", [1, 3, 8, 16])
@pytest.mark.parametrize("target", [0.05, 0.2, 0.6])
def test_rate_policy_never_exceeds_max_symbols(ordering, max_symbols, target):
    policy = RatePolicy(ordering, target, max_symbols=max_symbols)
    assert policy.max_symbols == max_symbols
    assert all(1 <= policy.k_for(s) <= max_symbols for s in (-30.0, -5.0, 0.0, 5.0, 10.0, 20.0, 40.0, 60.0))


@pytest.mark.parametrize(
    "kwargs",
    [dict(target_distortion=0.0), dict(target_distortion=1.0), dict(target_distortion=-0.1),
     dict(target_distortion=1.5), dict(max_symbols=17), dict(max_symbols=-1)],
)
def test_rate_policy_rejects_bad_settings(ordering, kwargs):
    with pytest.raises(ConfigError):
        RatePolicy(ordering, **kwargs)


def test_rate_policy_rejects_zero_max_symbols(ordering):
    with pytest.raises(ConfigError):
        RatePolicy(ordering, 0.2, max_symbols=0)


def test_rate_policy_rejects_bad_snr(ordering):
    with pytest.raises(InputError):
        RatePolicy(ordering).k_for(float("nan"))


# ----------------------------------------------------------------------------- SNR estimation


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


@pytest.mark.parametrize("n_pilots", [1, 0, -3])
def test_snr_estimation_needs_two_pilots(n_pilots):
    with pytest.raises(ConfigError):
        estimate_snr_db(Channel(), 4, n_pilots, 10.0)


# ----------------------------------------------------------------------------- trained scaling


def test_train_scaling_reduces_the_loss(ordering, data):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        scaling = AdaptiveScaling(16, hidden=32)
    link = AdaptiveLink(ordering, ChannelConfig(k_symbols=8, snr_db=5.0), scaling=scaling)
    losses = link.train_scaling(data, steps=150, batch_size=128, lr=1e-2, seed=1)
    assert len(losses) == 150 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-20:]) < 0.8 * np.mean(losses[:20])
    w = scaling.tx_weights(torch.tensor([0.0, 10.0]))
    assert w.shape == (2, 16) and (w > 0).all()
    assert scaling.tx_weights(5.0).shape == scaling.rx_weights(5.0).shape == (1, 16)
    rx = link(data[:64])
    assert torch.isfinite(rx.tokens.embeddings).all() and rx.channel_uses == 8


# ----------------------------------------------------------------------------- AdaptiveLink


def test_adaptive_link_counts_pilots_and_header(ordering, data, spy):
    policy = RatePolicy(ordering, 0.2, max_symbols=16)
    link = AdaptiveLink(ordering, ChannelConfig(snr_db=15.0), policy=policy, n_pilots=8)
    s = spy(link)
    rx = link(data[:10])
    k = rx.meta["k_symbols"]
    header = math.ceil(math.log2(16) / 2)  # k in 1..16 needs 4 bits: 2 QPSK symbols
    assert rx.meta["header"] == header and rx.meta["pilots"] == 8
    assert rx.channel_uses == k + 8 + header
    assert s.shapes == [(10, 8), (10, k)]  # pilots, then k data symbols
    assert rx.features.shape == rx.sent.shape == (10, 2 * k)
    assert rx.meta["bandwidth_ratio"] == pytest.approx(rx.channel_uses / 32)


def test_adaptive_link_without_policy_spends_k(ordering, data, spy):
    link = AdaptiveLink(ordering, ChannelConfig(k_symbols=5, snr_db=10.0))
    s = spy(link)
    rx = link(data[:7])
    assert rx.channel_uses == 5 and s.shapes == [(7, 5)] and rx.meta["header"] == 0 and rx.meta["pilots"] == 0


def test_adaptive_link_uses_fewer_symbols_at_high_snr(ordering, data):
    link = AdaptiveLink(ordering, ChannelConfig(), policy=RatePolicy(ordering, 0.2, max_symbols=16))
    assert link(data[:8], snr_db=30.0).channel_uses < link(data[:8], snr_db=3.0).channel_uses <= 16 + 2


def test_adaptive_link_power_is_one_per_symbol_on_average(ordering):
    z = _decaying(20_000, 32, seed=6)
    for k in (1, 4, 16):
        link = AdaptiveLink(ordering, ChannelConfig(k_symbols=k, snr_db=20.0))
        s_shapes = []
        orig = link.channel

        def record(x, no, orig=orig, s_shapes=s_shapes):
            s_shapes.append(float((x.abs() ** 2).mean()))
            return orig(x, no)

        link.channel = type("C", (), {"__call__": staticmethod(record)})()
        link(z)
        assert s_shapes[0] == pytest.approx(1.0, rel=0.03)


def test_adaptive_link_beats_plain_link_on_clustered_data():
    kb, queries = _clustered(3000, seed=1), _clustered(1000, seed=2)
    pca = PCAOrdering.fit(kb)
    for snr_db in (5.0, 15.0):
        cfg = ChannelConfig(k_symbols=4, snr_db=snr_db, seed=7)  # 8 of 64 real values
        adaptive = AdaptiveLink(pca, cfg)(queries)
        plain = Link(cfg)(queries)
        assert adaptive.channel_uses == plain.channel_uses == 4
        cos_a = float(F.cosine_similarity(adaptive.tokens.embeddings, queries).mean())
        cos_p = float(F.cosine_similarity(plain.tokens.embeddings, queries).mean())
        assert cos_a > cos_p + 0.3, (cos_a, cos_p)
        assert cos_a > 0.85


def test_adaptive_link_reproducible(ordering, data):
    cfg = ChannelConfig(k_symbols=6, snr_db=5.0, channel="rayleigh", seed=8)
    policy = RatePolicy(ordering, 0.2)
    a = AdaptiveLink(ordering, cfg, policy, n_pilots=4)(data[:20])
    b = AdaptiveLink(ordering, cfg, policy, n_pilots=4)(data[:20])
    c = AdaptiveLink(ordering, cfg.model_copy(update={"seed": 9}), policy, n_pilots=4)(data[:20])
    assert torch.equal(a.tokens.embeddings, b.tokens.embeddings) and a.meta == b.meta
    assert not torch.equal(a.tokens.embeddings, c.tokens.embeddings)


def test_adaptive_link_all_zero_input_is_finite(ordering):
    rx = AdaptiveLink(ordering, ChannelConfig(k_symbols=4))(torch.zeros(3, 32))
    assert torch.isfinite(rx.tokens.embeddings).all() and torch.isfinite(rx.features).all()


@pytest.mark.parametrize("snr_db", [float("nan"), float("inf"), 61.0, -31.0])
@pytest.mark.parametrize("n_pilots", [0, 8])
def test_adaptive_link_bad_snr_is_an_input_error_and_draws_nothing(ordering, data, snr_db, n_pilots):
    cfg = ChannelConfig(k_symbols=4, channel="rayleigh")
    link = AdaptiveLink(ordering, cfg, RatePolicy(ordering), n_pilots=n_pilots)
    state = link.channel.generator.get_state()
    with pytest.raises(InputError):
        link(data[:4], snr_db=snr_db)
    assert torch.equal(link.channel.generator.get_state(), state)


@pytest.mark.parametrize(
    "bad",
    [torch.ones(4, 32, dtype=torch.int64), torch.ones(32), torch.ones(4, 32, dtype=torch.complex64),
     [[0.0] * 32],
     torch.full((2, 32), float("nan"))],
    ids=["int", "1d", "complex", "list", "nan"],
)
def test_adaptive_link_bad_input_is_an_input_error(ordering, bad):
    with pytest.raises(InputError):
        AdaptiveLink(ordering, ChannelConfig(k_symbols=4))(bad)


def test_adaptive_link_scaling_of_the_wrong_size_is_a_config_error(ordering):
    with pytest.raises(ConfigError):
        AdaptiveLink(ordering, ChannelConfig(k_symbols=4), scaling=AdaptiveScaling(6))


def test_adaptive_link_one_pilot_is_a_config_error(ordering, data):
    with pytest.raises(ConfigError):
        AdaptiveLink(ordering, ChannelConfig(k_symbols=4), n_pilots=1)(data[:2])


def test_adaptive_link_k_beyond_the_dimension_is_a_config_error(ordering, data):
    with pytest.raises(ConfigError):
        AdaptiveLink(ordering, ChannelConfig(k_symbols=17))(data[:2])


def test_adaptive_link_wrong_dimension_is_an_input_error(ordering):
    with pytest.raises(InputError):
        AdaptiveLink(ordering, ChannelConfig(k_symbols=4))(gaussian_features(3, 24, seed=9))


@pytest.mark.parametrize("snr_db", [60.0, -30.0])
def test_adaptive_link_with_pilots_works_at_the_range_edges(ordering, data, snr_db):
    policy = RatePolicy(ordering, 0.2)
    for seed in range(10):  # each call estimates above/below the edge about half the time
        rx = AdaptiveLink(ordering, ChannelConfig(snr_db=snr_db, seed=seed), policy, n_pilots=4)(data[:1])
        assert 1 <= rx.meta["k_symbols"] <= policy.max_symbols
