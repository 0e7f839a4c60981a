"""Analog link: symbol mapping, channel uses, feature MSE and cosine against theory, seeding, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ragsc.channel import AnalogLink, ChannelConfig, Received, theory
from ragsc.channel.analog import from_symbols, to_symbols
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens

from ._util import gaussian_features

# 1000 items x 1024 complex symbols = 1.02e6 channel uses per statistical check
N_ITEMS, DIM = 1000, 2048


@pytest.fixture(scope="module")
def features():
    return gaussian_features(N_ITEMS, DIM, seed=42)


# ----------------------------------------------------------------------------- symbol mapping


def test_to_symbols_pairs_reals_and_normalises_power_per_item():
    f = gaussian_features(6, 10, seed=1) * torch.arange(1, 7)[:, None]
    x, gain = to_symbols(f)
    assert x.shape == (6, 5) and x.is_complex() and gain.shape == (6,)
    torch.testing.assert_close((x.abs() ** 2).mean(dim=1), torch.ones(6))
    # (re, im) = consecutive reals
    torch.testing.assert_close(x[:, 0], torch.complex(f[:, 0], f[:, 1]) * gain)
    torch.testing.assert_close(from_symbols(x) / gain[:, None], f)
    torch.testing.assert_close(from_symbols(torch.complex(f[:, 0::2], f[:, 1::2])), f)


def test_to_symbols_all_zero_item_stays_zero():
    f = torch.zeros(3, 8)
    f[1] = 1.0
    x, gain = to_symbols(f)
    assert torch.isfinite(torch.view_as_real(x)).all() and torch.isfinite(gain).all()
    assert torch.equal(x[0], torch.zeros(4, dtype=x.dtype)) and float(gain[0]) == 1.0
    torch.testing.assert_close((x[1].abs() ** 2).mean(), torch.tensor(1.0))


# ----------------------------------------------------------------------------- channel uses


@pytest.mark.parametrize("k", [1, 7, 96, 192])
@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_channel_uses_equal_complex_symbols_sent(spy, k, channel):
    z = gaussian_features(5, 384, seed=2)
    link = AnalogLink(k_symbols=k, channel=channel)
    s = spy(link)
    rx = link(z)
    assert isinstance(rx, Received)
    assert s.shapes == [(5, k)] and s.dtypes[0].is_complex  # one channel call, k complex symbols per item
    assert rx.channel_uses == k == rx.meta["k_symbols"]
    assert rx.features.shape == rx.sent.shape == (5, 2 * k)
    assert rx.meta["bandwidth_ratio"] == pytest.approx(k / 384)
    assert rx.tokens.embeddings.shape == (5, 384)


def test_k_none_sends_every_feature(spy):
    link = AnalogLink(k_symbols=None)
    s = spy(link)
    rx = link(gaussian_features(3, 33, seed=3))  # odd dimension: the last real cannot fill a symbol
    assert s.shapes == [(3, 16)] and rx.channel_uses == 16


def test_token_source_counts_token_symbols(spy):
    g = torch.Generator().manual_seed(4)
    tokens = torch.randn(2, 5, 8, generator=g)
    pooled = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    st = SemanticTokens(pooled, "text", tokens, torch.ones(2, 5, dtype=torch.bool))
    link = AnalogLink(source="tokens", k_symbols=20, snr_db=30)
    s = spy(link)
    rx = link(st)
    assert s.shapes == [(2, 20)] and rx.channel_uses == 20
    assert rx.tokens.tokens.shape == tokens.shape and rx.tokens.embeddings.shape == (2, 8)
    with pytest.raises(ConfigError):
        AnalogLink(source="tokens", k_symbols=21)(st)  # 5 * 8 reals carry at most 20 symbols
    with pytest.raises(InputError):
        AnalogLink(k_symbols=None, source="tokens")(SemanticTokens(st.embeddings, "text"))  # no tokens


def test_unsent_features_arrive_as_zeros_and_tokens_are_normalised(features):
    rx = AnalogLink(k_symbols=100, snr_db=20)(features[:20])
    assert rx.tokens.embeddings.shape == (20, DIM)
    torch.testing.assert_close(rx.tokens.embeddings.norm(dim=-1), torch.ones(20))
    assert torch.equal(rx.tokens.embeddings[:, 200:], torch.zeros(20, DIM - 200))


# ----------------------------------------------------------------------------- against theory


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
@pytest.mark.parametrize("equalizer", ["zf", "mmse"])
def test_awgn_feature_mse_matches_theory(features, snr_db, equalizer):
    rx = AnalogLink(k_symbols=None, channel="awgn", equalizer=equalizer, snr_db=snr_db, seed=5)(features)
    assert rx.channel_uses * N_ITEMS >= 1_000_000
    power = (rx.sent.reshape(N_ITEMS, -1, 2) ** 2).sum(-1).mean(1)
    assert torch.allclose(power, torch.ones(N_ITEMS))  # Es = 1 per item
    assert rx.mse == pytest.approx(float(theory.analog_mse("awgn", snr_db, equalizer)), rel=0.02)


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_rayleigh_mmse_feature_mse_matches_theory(features, snr_db):
    # fast fading: every symbol sees its own h, so 1e6 symbols average over 1e6 fades
    rx = AnalogLink(k_symbols=None, channel="rayleigh", fading="fast", equalizer="mmse", snr_db=snr_db,
              seed=6)(features)
    assert rx.mse == pytest.approx(float(theory.analog_mse("rayleigh", snr_db, "mmse")), rel=0.02)


def test_mmse_beats_zf_on_rayleigh(features):
    kw = dict(channel="rayleigh", fading="fast", snr_db=5.0, seed=7)
    assert (AnalogLink(k_symbols=None, equalizer="mmse", **kw)(features[:200]).mse
            < AnalogLink(k_symbols=None, equalizer="zf", **kw)(features[:200]).mse)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
@pytest.mark.parametrize("equalizer", ["zf", "mmse"])
def test_awgn_cosine_matches_theory(features, snr_db, equalizer):
    rx = AnalogLink(k_symbols=None, channel="awgn", equalizer=equalizer, snr_db=snr_db, seed=8)(features)
    assert float(rx.cosine.mean()) == pytest.approx(float(theory.analog_cosine("awgn", snr_db)), rel=0.01)


@pytest.mark.parametrize("snr_db", [0.0, 10.0])
def test_rayleigh_block_cosine_matches_theory(snr_db):
    # the cosine depends on each item's own |h|^2: many items (4000), each with 256 symbols
    z = gaussian_features(4000, 512, seed=9)
    rx = AnalogLink(k_symbols=None, channel="rayleigh", fading="block", snr_db=snr_db, seed=10)(z)
    expected = float(theory.analog_cosine("rayleigh", snr_db))
    assert float(rx.cosine.mean()) == pytest.approx(expected, rel=0.015)


def test_no_csi_on_fading_is_worse_than_perfect_csi(features):
    kw = dict(channel="rayleigh", fading="block", snr_db=20.0, seed=11)
    perfect = float(AnalogLink(k_symbols=None, csi="perfect", **kw)(features[:300]).cosine.mean())
    blind = float(AnalogLink(k_symbols=None, csi="none", **kw)(features[:300]).cosine.mean())
    assert perfect > 0.95 and blind < 0.5  # an unknown random phase destroys the real features


def test_snr_override_per_call(features):
    link = AnalogLink(k_symbols=None, snr_db=30.0, equalizer="zf", seed=12)
    rx = link(features[:500], snr_db=0.0)
    assert rx.snr_db == 0.0
    assert rx.mse == pytest.approx(float(theory.analog_mse("awgn", 0.0, "zf")), rel=0.03)
    assert link(features[:500]).snr_db == 30.0


# ----------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("channel", ["awgn", "rayleigh", "rician"])
def test_same_seed_same_output_different_seed_different(channel):
    z = gaussian_features(16, 64, seed=13)
    a = AnalogLink(k_symbols=None, channel=channel, snr_db=5.0, seed=3)(z)
    b = AnalogLink(k_symbols=None, channel=channel, snr_db=5.0, seed=3)(z)
    c = AnalogLink(k_symbols=None, channel=channel, snr_db=5.0, seed=4)(z)
    assert torch.equal(a.features, b.features) and torch.equal(a.tokens.embeddings, b.tokens.embeddings)
    assert not torch.equal(a.features, c.features)
    link = AnalogLink(k_symbols=None, channel=channel, snr_db=5.0, seed=3)
    assert torch.equal(link(z).features, a.features)
    assert not torch.equal(link(z).features, a.features)  # the next call draws fresh noise


def test_link_accepts_semantic_tokens_and_keeps_modality():
    st = SemanticTokens(F.normalize(gaussian_features(4, 32, seed=14), dim=-1), "image", meta={"src": "x"})
    rx = AnalogLink(k_symbols=None, snr_db=20)(st)
    assert rx.tokens.modality == "image" and rx.tokens.meta["src"] == "x"
    assert rx.tokens.meta["link"]["snr_db"] == 20


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("snr_db", [float("nan"), float("inf"), float("-inf"), 60.01, -30.01, 1e6])
def test_bad_configured_snr_is_a_config_error(snr_db):
    with pytest.raises(ConfigError):
        AnalogLink(k_symbols=None, snr_db=snr_db)


@pytest.mark.parametrize("snr_db", [float("nan"), float("inf"), float("-inf"), 60.01, -30.01])
def test_bad_call_snr_is_an_input_error_and_draws_nothing(snr_db):
    z = gaussian_features(4, 16, seed=15)
    link = AnalogLink(k_symbols=None, channel="rayleigh", seed=1)
    with pytest.raises(InputError):
        link(z, snr_db=snr_db)
    # nothing half-done: the failed call did not advance the channel
    assert torch.equal(link(z).features, AnalogLink(k_symbols=None, channel="rayleigh", seed=1)(z).features)


@pytest.mark.parametrize("snr_db", [-30.0, 60.0])
def test_snr_range_edges_are_accepted(snr_db):
    assert torch.isfinite(AnalogLink(k_symbols=None, snr_db=snr_db)(gaussian_features(2, 8, seed=16))
                          .features).all()


@pytest.mark.parametrize("k", [0, -1, -100])
def test_non_positive_k_is_a_config_error(k):
    with pytest.raises(ConfigError):
        AnalogLink(k_symbols=k)


def test_k_beyond_the_dimension_is_a_config_error():
    z = gaussian_features(3, 16, seed=17)
    link = AnalogLink(k_symbols=9, channel="rayleigh", seed=2)
    state = link.channel.generator.get_state()
    with pytest.raises(ConfigError, match="k_symbols"):
        link(z)
    assert torch.equal(link.channel.generator.get_state(), state)  # nothing drawn
    assert AnalogLink(k_symbols=8)(z).channel_uses == 8  # the largest k that fits


@pytest.mark.parametrize(
    "bad",
    [torch.ones(4, 8, dtype=torch.int64), torch.ones(4, 8, dtype=torch.int32), torch.ones(8),
     torch.ones(2, 4, 8),
     torch.ones(4, 8, dtype=torch.complex64), [[0.1, 0.2], [0.3, 0.4]], np.ones((4, 8), dtype=np.float32),
     torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), torch.tensor([[1.0, float("inf")], [0.0, 1.0]]),
     "text"],
    ids=["int64", "int32", "1d", "3d", "complex", "list", "numpy", "nan", "inf", "str"],
)
def test_bad_input_is_an_input_error(bad):
    with pytest.raises(InputError):
        AnalogLink(k_symbols=None)(bad)


def test_all_zero_input_gives_finite_output():
    z = torch.zeros(4, 32)
    z[2] = 1.0  # a mix of silent and non-silent items
    for channel in ("awgn", "rayleigh"):
        for eq in ("zf", "mmse"):
            rx = AnalogLink(k_symbols=None, channel=channel, equalizer=eq, snr_db=10)(z)
            for t in (rx.features, rx.sent, rx.cosine, rx.tokens.embeddings):
                assert torch.isfinite(t).all()
            assert math.isfinite(rx.mse)
            assert torch.equal(rx.sent[0], torch.zeros(32))


@pytest.mark.parametrize(
    "kwargs",
    [dict(channel="wifi"), dict(channel="Rayleigh"), dict(rician_k=-1.0),
     dict(channel="rician", rician_k=-0.5),
     dict(equalizer="ml"), dict(csi="estimated"), dict(fading="slow"), dict(source="pixels")],
)
def test_bad_config_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        AnalogLink(**kwargs)
    with pytest.raises(ConfigError):
        AnalogLink(ChannelConfig(), **kwargs)


def test_unknown_override_is_a_config_error():
    with pytest.raises(ConfigError):
        AnalogLink(snr=5.0)


def test_link_with_a_pca_transform_reconstructs_at_high_snr():
    from ragsc.channel import PCAOrdering

    z = torch.nn.functional.normalize(torch.randn(300, 32, generator=torch.Generator().manual_seed(0)) + 2.0,
                                      dim=-1)
    rx = AnalogLink(k_symbols=None, snr_db=60.0, transform=PCAOrdering.fit(z))(z)
    assert torch.nn.functional.cosine_similarity(rx.tokens.embeddings, z).min() > 0.999


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_noiseless_delivers_the_same_k_symbols_exactly_and_draws_nothing(channel):
    from ragsc.channel import PCAOrdering

    z = F.normalize(torch.randn(50, 32, generator=torch.Generator().manual_seed(0)) + 1.0, dim=-1)
    pca = PCAOrdering.fit(z)
    link = AnalogLink(channel=channel, k_symbols=4, transform=pca, seed=3)
    rx = link(z, noiseless=True)
    assert rx.snr_db == math.inf and rx.channel_uses == 4 and rx.meta["path"] == "noiseless"
    kept = pca.encode(z)
    kept[:, 8:] = 0.0  # the same 8 leading coefficients, nothing else
    torch.testing.assert_close(rx.tokens.embeddings, F.normalize(pca.decode(kept), dim=-1), atol=1e-5, rtol=0)
    # no noise was drawn: the next noisy call is the one a fresh link makes
    fresh = AnalogLink(channel=channel, k_symbols=4, transform=pca, seed=3)
    assert torch.equal(link(z, 0.0).features, fresh(z, 0.0).features)


def test_noiseless_without_a_transform_keeps_the_leading_features():
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    rx = AnalogLink(k_symbols=3)(z, snr_db=-20.0, noiseless=True)  # the SNR is ignored
    kept = torch.zeros_like(z)
    kept[:, :6] = z[:, :6]
    torch.testing.assert_close(rx.tokens.embeddings, F.normalize(kept, dim=-1))


def test_token_source_ignores_padding():
    from ragsc.types import SemanticTokens

    g = torch.Generator().manual_seed(1)
    tokens = torch.nn.functional.normalize(torch.randn(2, 4, 8, generator=g), dim=-1)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    tokens = tokens * mask[..., None]
    st = SemanticTokens(torch.nn.functional.normalize(tokens.sum(1), dim=-1), "text", tokens, mask)
    rx = AnalogLink(k_symbols=None, snr_db=60.0, source="tokens")(st)
    assert torch.all(rx.tokens.tokens[~mask] == 0)
    assert torch.nn.functional.cosine_similarity(rx.tokens.embeddings, st.embeddings).min() > 0.999
