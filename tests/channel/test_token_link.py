"""ragsc.channel.token_link: a token codebook, the length header, and a variable-length link."""

from __future__ import annotations

import pytest
import torch

from ragsc.channel import ChannelConfig, Received, TransmissionPath
from ragsc.channel.token_link import (
    TokenCodebook,
    TokenCodebookConfig,
    TokenLink,
    TokenObservation,
    gaussian_codewords,
)
from ragsc.errors import ConfigError, InputError

CB = TokenCodebook(TokenCodebookConfig(vocab_size=300, symbols_per_token=4, seed=3))
IDS = [[5, 17, 299, 0, 42], [7], []]


def test_gaussian_codewords_have_unit_power_and_follow_the_config():
    cb = TokenCodebook(TokenCodebookConfig(vocab_size=300, symbols_per_token=4, seed=3, kind="gaussian"))
    c = cb.codewords
    assert c.shape == (300, 4) and c.dtype == torch.complex64
    torch.testing.assert_close(c.abs().square().mean(1), torch.ones(300))
    assert torch.equal(TokenCodebook(TokenCodebookConfig(300, 4, 3, "gaussian")).codewords, c)  # both ends
    assert not torch.equal(TokenCodebook(TokenCodebookConfig(300, 4, 4, "gaussian")).codewords, c)
    assert cb.gains.tolist() == [1.0] and cb.gain_index([5, 6]) == 0
    # spread apart: no two of 300 random codewords of 4 symbols nearly coincide
    d = (c[:, None] - c[None]).abs().square().sum(-1) + torch.eye(300) * 1e9
    assert float(d.min()) > 0.05
    for bad in ({"vocab_size": 0}, {"vocab_size": 10, "symbols_per_token": 0}, {"vocab_size": 2.5},
                {"vocab_size": 10, "kind": "learned"}):
        with pytest.raises(ConfigError):
            TokenCodebookConfig(**bad)


def test_log_likelihood_is_the_gaussian_one():
    g = torch.Generator().manual_seed(0)
    y = torch.complex(torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g))
    no = torch.rand(3, 4, generator=g) + 0.1
    brute = -((y[:, None, :] - CB.codewords[None]).abs().square() / no[:, None, :]).sum(-1)
    torch.testing.assert_close(CB.log_likelihood(y, no), brute, rtol=1e-4, atol=1e-3)


def test_link_counts_every_symbol_and_delivers_at_high_snr():
    link = TokenLink(ChannelConfig(snr_db=40.0, seed=1), CB)
    assert isinstance(link, TransmissionPath)
    rx = link(IDS)
    assert isinstance(rx, Received) and rx.tokens is None and rx.channel == "awgn"
    uses = rx.meta["channel_uses_per_item"]
    # header 16 + gain 2 (a lattice codebook scales each frame) + 4 per token
    assert uses == [18 + 5 * 4, 18 + 4, 18] == [link.channel_uses(len(x)) for x in IDS]
    assert rx.meta["length_errors"] == 0
    for obs, ids in zip(rx.content, IDS):
        assert isinstance(obs, TokenObservation) and obs.length == obs.sent_length == len(ids)
        assert obs.symbols.shape == obs.no_eff.shape == (len(ids), 4)
        if ids:  # per-token maximum likelihood recovers every id
            assert CB.log_likelihood(obs.symbols, obs.no_eff).argmax(1).tolist() == ids


@pytest.mark.parametrize("channel", ["awgn", "rayleigh", "rician"])
def test_link_is_seeded_and_noise_follows_the_snr(channel):
    ids = [list(range(40))] * 50
    a = TokenLink(ChannelConfig(channel=channel, seed=2, snr_db=5.0), CB)(ids)
    b = TokenLink(ChannelConfig(channel=channel, seed=2, snr_db=5.0), CB)(ids)
    assert torch.equal(a.content[0].symbols, b.content[0].symbols)
    if channel == "awgn":  # ZF-equalised AWGN: the error variance is N0 = 10^(-SNR/10) per complex symbol
        sent = CB.codewords[torch.arange(40)]
        g = float(CB.gains[CB.gain_index(list(range(40)))])
        # as received, the noise is N0; in the codebook's scale (divided by the frame's gain) N0 / g^2
        raw = torch.stack([(o.buffer[:40] - g * sent).abs().square().mean() for o in a.content]).mean()
        assert float(raw) == pytest.approx(10 ** -0.5, rel=0.05)
        err = torch.stack([(o.symbols - sent).abs().square().mean() for o in a.content]).mean()
        assert float(err) == pytest.approx(10 ** -0.5 / g ** 2, rel=0.05)
        assert torch.allclose(a.content[0].no_eff * g ** 2, torch.full((40, 4), 10 ** -0.5))


def test_header_errors_show_up_at_low_snr_and_are_reported():
    rx = TokenLink(ChannelConfig(snr_db=-10.0, seed=0), CB, header_symbols=2)([[1, 2, 3]] * 200)
    wrong = sum(o.length != 3 for o in rx.content)
    assert rx.meta["length_errors"] == wrong > 0  # the receiver reads what it decoded, and says so
    assert all(o.symbols.shape[0] == o.length for o in rx.content)


def test_snr_default_and_bad_input():
    link = TokenLink(ChannelConfig(snr_db=7.0), CB, max_tokens=6)
    assert link(IDS).snr_db == 7.0 and link(IDS, snr_db=1.0).snr_db == 1.0
    with pytest.raises(InputError, match="empty batch"):
        link([])
    with pytest.raises(InputError, match=r"\[0, 300\)"):
        link([[1, 300]])
    with pytest.raises(InputError, match=r"\[0, 300\)"):
        link([[1, -1]])
    with pytest.raises(InputError, match="max_tokens=6; split"):
        link([list(range(7))])
    with pytest.raises(InputError, match="list of token-id lists"):
        link("a sentence")
    with pytest.raises(InputError, match="snr_db"):
        link(IDS, snr_db=float("nan"))
    with pytest.raises(ConfigError, match="TokenCodebook"):
        TokenLink(ChannelConfig())
    with pytest.raises(ConfigError):
        TokenLink(ChannelConfig(), CB, header_symbols=0)


@pytest.mark.parametrize("name", ["max_tokens", "header_symbols", "gain_symbols"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.5, 4.0, True])
def test_sizes_that_are_not_integers_are_config_errors(name, value):
    with pytest.raises(ConfigError, match=f"{name} must be an integer >= 1, got {value!r}"):
        TokenLink(ChannelConfig(), CB, **{name: value})


def test_gaussian_codewords_are_independent_of_the_global_rng():
    torch.manual_seed(0)
    a = gaussian_codewords(5, 3, seed=9)
    torch.manual_seed(1)
    assert torch.equal(a, gaussian_codewords(5, 3, seed=9))


def test_noiseless_delivers_the_codewords():
    link = TokenLink(ChannelConfig(), CB)
    rx = link(IDS, noiseless=True)
    assert rx.snr_db == float("inf") and rx.meta["length_errors"] == 0
    for obs, row in zip(rx.content, IDS):
        sent = CB.codewords[torch.tensor(row, dtype=torch.long)].reshape(-1)
        assert torch.equal(obs.symbols.reshape(-1), sent)


def test_lattice_codebook_spends_less_energy_on_low_ids_and_keeps_its_distance():
    cb = TokenCodebook(TokenCodebookConfig(vocab_size=3000, symbols_per_token=4))
    c = cb.codewords
    power = c.abs().square().mean(1)
    assert float(power.mean()) == pytest.approx(1.0, rel=1e-4)
    # energy grows with the id, band by band (2048 ids a band, shuffled inside)
    assert float(power[:2048].max()) <= float(power[2048:].min()) + 1e-6
    d = (c[:, None] - c[None]).abs().square().sum(-1) + torch.eye(3000) * 1e9
    # E8's minimum distance: no two codewords closer than the first shell's points are to the origin
    energy = c.abs().square().sum(1)
    assert float(d.min()) == pytest.approx(float(energy[energy > 0].min()), rel=1e-4)
    assert torch.equal(TokenCodebook(TokenCodebookConfig(3000, 4)).codewords, c)  # both ends rebuild it


@pytest.mark.parametrize("ids", [[1, 2, 3], [2999, 2998], list(range(0, 3000, 7)), [0, 0]])
def test_each_frame_is_scaled_to_at_most_unit_power_and_its_gain_is_sent(ids):
    cb = TokenCodebook(TokenCodebookConfig(vocab_size=3000, symbols_per_token=4))
    j = cb.gain_index(ids)
    power = float((cb.gains[j] * cb.codewords[torch.tensor(ids)]).abs().square().mean())
    assert power <= 1 + 1e-5
    if j + 1 < len(cb.gains):  # the largest gain that fits: one step more would exceed unit power
        assert power * float(cb.gains[j + 1] / cb.gains[j]) ** 2 > 1
    rx = TokenLink(ChannelConfig(snr_db=30.0), cb, max_tokens=500)([ids])
    obs = rx.content[0]
    assert obs.length == len(ids) and obs.gain == pytest.approx(float(cb.gains[j]))
    assert cb.log_likelihood(obs.symbols, obs.no_eff).argmax(1).tolist() == ids


def test_gain_errors_land_on_nearby_gains_and_gaussian_codebooks_send_none():
    cb = TokenCodebook(TokenCodebookConfig(vocab_size=3000, symbols_per_token=4))
    ids = [[5, 6, 7, 8]] * 300
    true = float(cb.gains[cb.gain_index(ids[0])])
    rx = TokenLink(ChannelConfig(snr_db=0.0, seed=0), cb)(ids)
    off_db = torch.tensor([20 * torch.log10(torch.tensor(o.gain / true)) for o in rx.content]).abs()
    assert float(off_db.max()) > 0 and float(off_db.median()) <= 1.0  # a noisy guess, but a close one
    gauss = TokenCodebook(TokenCodebookConfig(vocab_size=3000, symbols_per_token=4, kind="gaussian"))
    rx = TokenLink(ChannelConfig(snr_db=0.0), gauss)(ids)
    assert rx.meta["gain_symbols"] == 0 and all(o.gain == 1.0 for o in rx.content)
    assert rx.meta["channel_uses_per_item"][0] == 16 + 4 * 4
