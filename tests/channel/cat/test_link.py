"""CATLink (ragsc/channel/cat/link.py): channel uses per item, the rate policy, pilots, the noiseless bound,
seeds, token sources and errors."""

from __future__ import annotations

import pytest
import torch

from ragsc.channel import CATCodec, CATConfig, CATLink, ChannelConfig
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens

from ._util import TINY, tokens


def test_link_with_a_fixed_length_counts_every_symbol(codec, spy):
    link = CATLink(codec, ChannelConfig(channel="rayleigh", snr_db=5.0, seed=2), n_symbols=4)
    s = spy(link)
    st = SemanticTokens(tokens(10), ["image", "text"] * 5)
    rx = link(st)
    assert s.shapes == [(10, 4)]
    assert rx.meta["channel_uses_per_item"] == [4] * 10 and rx.meta["n_symbols"] == [4] * 10
    assert rx.channel_uses == 4 and rx.snr_db == 5.0 and rx.channel == "rayleigh" and rx.meta["path"] == "cat"
    assert rx.tokens.embeddings.shape == (10, 8) and rx.tokens.modalities == st.modalities
    torch.testing.assert_close(rx.tokens.embeddings.norm(dim=1), torch.ones(10))
    assert rx.features.shape == rx.sent.shape == (10, 8)
    torch.testing.assert_close(rx.sent.square().sum(1) / 4, torch.ones(10), atol=1e-5, rtol=0)  # unit power


def test_link_rate_policy_sends_fewer_symbols_when_the_channel_is_good(calibrated, spy):
    link = CATLink(calibrated, ChannelConfig(snr_db=20.0), quality=0.9)
    s = spy(link)
    good, poor = link(tokens(6)), link(tokens(6), snr_db=0.0)
    assert s.shapes == [(6, 2), (6, 8)]
    assert good.meta["channel_uses_per_item"] == [2] * 6 and poor.meta["channel_uses_per_item"] == [8] * 6
    assert good.features.shape == (6, 4) and poor.features.shape == (6, 16)


def test_link_with_pilots_counts_them_and_follows_each_items_estimate(calibrated, spy):
    # 15 dB sits between the table's rows: 4 pilots estimate it a few dB off either way, so lengths differ
    link = CATLink(calibrated, ChannelConfig(snr_db=15.0, seed=3), quality=0.9, n_pilots=4)
    s = spy(link)
    rx = link(tokens(40))
    n, uses = rx.meta["n_symbols"], rx.meta["channel_uses_per_item"]
    assert len(set(n)) > 1 and uses == [k + 4 for k in n] and rx.channel_uses == max(uses)
    assert s.shapes[0] == (40, 4)  # pilots first, then one call per length
    assert sorted(s.shapes[1:]) == sorted((n.count(k), k) for k in set(n))
    for i, k in enumerate(n):  # features beyond an item's length are zeros
        assert rx.sent[i, 2 * k:].abs().sum() == 0 and rx.sent[i, : 2 * k].abs().sum() > 0
        assert n[i] == calibrated.choose_length(rx.meta["snr_db_used"][i], "awgn", 0.9)


def test_link_noiseless_bound_delivers_the_symbols_exactly(calibrated, spy):
    link = CATLink(calibrated, ChannelConfig(snr_db=0.0, seed=3), quality=0.9, n_pilots=4)
    s = spy(link)
    rx = link(tokens(5), snr_db=-3.0, noiseless=True)
    assert s.shapes == []  # no channel, no pilots: the SNR given is ignored
    assert rx.meta["path"] == "noiseless" and rx.channel == "none" and rx.snr_db == float("inf")
    # the length the rate policy picks on the best channel, both ends told the top of the SNR range
    assert rx.meta["n_symbols"] == rx.meta["channel_uses_per_item"] == [2] * 5 and rx.meta["pilots"] == 0
    assert torch.equal(rx.features, rx.sent)
    fixed = CATLink(calibrated, ChannelConfig(), n_symbols=8)(tokens(5), noiseless=True)
    assert fixed.channel_uses == 8 and torch.equal(fixed.features, fixed.sent)
    again = CATLink(calibrated, ChannelConfig(seed=9), n_symbols=8)(tokens(5), noiseless=True)
    assert torch.equal(fixed.tokens.embeddings, again.tokens.embeddings)  # no noise: no seed matters


def test_link_is_reproducible_by_seed(codec):
    cfg = ChannelConfig(channel="rician", snr_db=3.0, seed=7)
    a, b = (CATLink(codec, cfg, n_symbols=8)(tokens(5)) for _ in range(2))
    c = CATLink(codec, cfg, n_symbols=8, seed=8)(tokens(5))
    assert torch.equal(a.tokens.embeddings, b.tokens.embeddings) and a.meta == b.meta
    assert not torch.equal(a.features, c.features)


def test_link_sends_tokens_with_their_mask(codec, spy):
    st = SemanticTokens(tokens(3), "image", tokens(3, 5), torch.tensor([[True] * 5, [True] * 2 + [False] * 3,
                                                                        [True] + [False] * 4]))
    link = CATLink(codec, ChannelConfig(snr_db=10.0), n_symbols=2, source="tokens")
    s = spy(link)
    rx = link(st)
    assert s.shapes == [(3, 2)] and rx.meta["bandwidth_ratio"] == pytest.approx(2 / 40)
    with pytest.raises(InputError, match="no tokens"):
        link(tokens(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(n_symbols=3), "levels"), (dict(n_symbols=8, channel="fog"), "channel"),
     (dict(n_symbols=8, equalizer="zf"), "equali"), (dict(n_symbols=8, csi="none"), "CSI"),
     (dict(), "calibrate"), (dict(n_symbols=8, n_pilots=1), "n_pilots"),
     (dict(n_symbols=8, modulation=4), "unknown"),
     (dict(n_symbols=8, source="pixels"), "source")],
)
def test_link_rejects_bad_settings(codec, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CATLink(codec, **kwargs)


def test_link_rejects_a_channel_the_codec_was_not_trained_on():
    codec = CATCodec(CATConfig(**TINY, channels=("awgn",)))
    with pytest.raises(ConfigError, match="trained on awgn"):
        CATLink(codec, channel="rayleigh", n_symbols=2)


@pytest.mark.parametrize(
    ("bad", "match"),
    [(torch.ones(3, 6), "token_dim=8"), (torch.ones(0, 8), "empty"),
     (torch.ones(3, 8, dtype=torch.int64), "float"),
     (torch.full((2, 8), float("nan")), "NaN")],
)
def test_link_bad_input_is_an_input_error_and_draws_nothing(codec, bad, match):
    link = CATLink(codec, ChannelConfig(channel="rayleigh"), n_symbols=4, n_pilots=4)
    state = link.channel.generator.get_state()
    with pytest.raises(InputError, match=match):
        link(bad)
    with pytest.raises(InputError, match="snr_db"):
        link(tokens(2), snr_db=61.0)
    assert torch.equal(link.channel.generator.get_state(), state)
