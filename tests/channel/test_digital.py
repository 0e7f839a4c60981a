"""Digital paths: uncoded / LDPC-coded QAM vs theory, channel uses, fallbacks, the ideal bound, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.channel import (
    ChannelConfig,
    CodedPHY,
    CodingConfig,
    DigitalLink,
    IdealDigital,
    LMTextCodec,
    SeparateCoding,
    theory,
)
from ragsc.channel.codecs import DeflateTextCodec, features_that_fit
from ragsc.errors import ConfigError, InputError

from ._util import gaussian_features


def _bits(n: int, k: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 2, (n, k), generator=torch.Generator().manual_seed(seed)).float()


def _spy_mapper(phy: CodedPHY) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Record (bits in, symbols out) shapes of every call to ``phy``'s QAM mapper."""
    calls, mapper = [], phy.mapper

    def spy(bits):
        out = mapper(bits)
        calls.append((tuple(bits.shape), tuple(out.shape)))
        return out

    phy.mapper = spy
    return calls


def _ber(phy: CodedPHY, n_items: int, snr_db: float, seed: int) -> tuple[float, int]:
    res = phy(_bits(n_items, phy.info_bits, seed), snr_db)
    return res.bit_errors / res.n_bits, res.n_bits


def _within(measured: float, expected: float, n_bits: int, bits_per_symbol: int, sigmas: float = 5.0) -> bool:
    """|measured - expected| within ``sigmas`` binomial standard deviations (bits of one PAM dimension are
    correlated, so only ``n_bits / (bits_per_symbol / 2)`` count as independent)."""
    n_eff = n_bits / max(1, bits_per_symbol // 2)
    return abs(measured - expected) <= sigmas * math.sqrt(expected * (1 - expected) / n_eff)


# ----------------------------------------------------------------------------- uncoded QAM vs theory


@pytest.fixture(scope="module")
def uncoded_qpsk():
    # 500k bits per item
    return CodedPHY(ChannelConfig(k_symbols=250_000, seed=1), CodingConfig(coded=False, modulation=4))


@pytest.mark.parametrize("snr_db", [0.0, 4.0, 8.0])
def test_uncoded_qpsk_ber_matches_theory(uncoded_qpsk, snr_db):
    ber, n = _ber(uncoded_qpsk, 4, snr_db, seed=int(snr_db))  # 2e6 bits, 1e6 symbols
    expected = float(theory.ber_qam_awgn(2, snr_db))
    assert _within(ber, expected, n, 2), (ber, expected)


# The APP demapper decides each bit by MAP, which beats the minimum-distance detector that the closed form
# describes on 16-QAM's inner/outer bit at low SNR (0 dB: 0.2827 vs 0.2873). From ~8 dB on the two agree to
# < 1e-5, so the check runs where the closed form is the right reference.
@pytest.mark.parametrize("snr_db", [8.0, 11.0, 14.0])
def test_uncoded_16qam_ber_matches_theory(snr_db):
    phy = CodedPHY(ChannelConfig(k_symbols=200_000, seed=2), CodingConfig(coded=False, modulation=16))
    ber, n = _ber(phy, 4, snr_db, seed=10 + int(snr_db))  # 3.2e6 bits
    expected = float(theory.ber_qam_awgn(4, snr_db))
    assert _within(ber, expected, n, 4), (ber, expected)


def test_uncoded_16qam_map_detection_is_no_worse_than_min_distance():
    phy = CodedPHY(ChannelConfig(k_symbols=100_000, seed=3), CodingConfig(coded=False, modulation=16))
    ber, n = _ber(phy, 4, 0.0, seed=3)
    expected = float(theory.ber_qam_awgn(4, 0.0))
    assert expected - 0.01 < ber < expected  # bitwise MAP: slightly better, never worse


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0])
def test_uncoded_qpsk_rayleigh_perfect_csi_matches_theory(snr_db):
    phy = CodedPHY(ChannelConfig(channel="rayleigh", fading="fast", k_symbols=250_000, seed=4),
                   CodingConfig(coded=False, modulation=4))
    ber, n = _ber(phy, 4, snr_db, seed=20 + int(snr_db))
    expected = float(theory.ber_qpsk_rayleigh(snr_db))
    assert _within(ber, expected, n, 2), (ber, expected)


# ----------------------------------------------------------------------------- LDPC


@pytest.fixture(scope="module")
def ldpc_qpsk():
    phy = CodedPHY(ChannelConfig(k_symbols=192, seed=5),
                   CodingConfig(coded=True, modulation=4, code_rate=0.5))
    assert phy.info_bits == 192 and phy.n_coded == 384
    return phy


def test_ldpc_bler_vanishes_at_high_snr(ldpc_qpsk):
    res = ldpc_qpsk(_bits(300, ldpc_qpsk.info_bits, 30), 6.0)
    assert bool(res.crc_ok.all()) and res.bit_errors == 0


def test_ldpc_bler_is_one_far_below_threshold(ldpc_qpsk):
    res = ldpc_qpsk(_bits(300, ldpc_qpsk.info_bits, 31), -3.0)
    assert not bool(res.crc_ok.any())
    assert res.bit_errors / res.n_bits > 0.2


def test_ldpc_beats_uncoded_at_equal_eb_n0(ldpc_qpsk):
    ebno_db = 4.0  # past the waterfall of the rate-1/2 code, where uncoded QPSK still has BER ~ 1e-2
    rate = ldpc_qpsk.info_bits / ldpc_qpsk.n_coded
    coded_ber, _ = _ber(ldpc_qpsk, 300, ebno_db + 10 * math.log10(rate * 2), seed=32)
    uncoded = CodedPHY(ChannelConfig(k_symbols=50_000, seed=6), CodingConfig(coded=False, modulation=4))
    uncoded_ber, n = _ber(uncoded, 4, ebno_db + 10 * math.log10(2), seed=33)
    assert _within(uncoded_ber, float(theory.ber_qam_awgn(2, ebno_db + 10 * math.log10(2))), n, 2)
    assert coded_ber < uncoded_ber / 100


def test_ldpc_16qam_decodes_at_high_snr():
    phy = CodedPHY(ChannelConfig(k_symbols=96, seed=7),
                   CodingConfig(coded=True, modulation=16, code_rate=0.5))
    assert phy.n_coded == 384
    res = phy(_bits(200, phy.info_bits, 34), 14.0)
    assert bool(res.crc_ok.all()) and res.bit_errors == 0
    res = phy(_bits(200, phy.info_bits, 35), 0.0)
    assert not bool(res.crc_ok.any())


# ----------------------------------------------------------------------------- a channel use is one symbol


@pytest.mark.parametrize("modulation", [4, 16, 64])
@pytest.mark.parametrize("coded", [True, False])
def test_phy_maps_exactly_k_symbols_per_item(spy, modulation, coded):
    k = 240
    phy = CodedPHY(ChannelConfig(k_symbols=k, seed=8), CodingConfig(coded=coded, modulation=modulation))
    m = int(math.log2(modulation))
    assert phy.n_coded == k * m
    calls = _spy_mapper(phy)
    ch = spy(phy)
    res = phy(_bits(3, phy.info_bits, 36), 40.0)
    assert calls == [((3, k * m), (3, k))]  # coded bits == k log2(M), mapped to k symbols
    assert ch.shapes == [(3, k)]
    assert res.n_bits == 3 * phy.info_bits and res.bits.shape == (3, phy.info_bits)
    if coded:
        assert phy.info_bits <= k * m * 0.5 + 24
    else:
        assert phy.info_bits == k * m


def test_digital_link_spends_k_symbols(spy):
    z = gaussian_features(6, 384, seed=40)
    link = DigitalLink(k_symbols=192, modulation=4, code_rate=0.5, snr_db=20.0)
    calls = _spy_mapper(link.phy)
    ch = spy(link.phy)
    rx = link(z)
    assert rx.channel_uses == 192 == rx.meta["k_symbols"]
    assert calls == [((6, 384), (6, 192))] and ch.shapes == [(6, 192)]
    n_send = features_that_fit(link.phy.info_bits, 8, 384)
    assert rx.meta["features_sent"] == n_send == (192 - 16) // 8
    assert rx.features.shape == rx.sent.shape == (6, n_send)


def test_separate_coding_spends_k_symbols(spy):
    sc = SeparateCoding(k_symbols=256, snr_db=20.0)
    calls = _spy_mapper(sc.phy)
    ch = spy(sc.phy)
    res = sc(["a red triangle", "a blue circle on a white background"])
    assert res.channel_uses == 256
    assert calls == [((2, 512), (2, 256))] and ch.shapes == [(2, 256)]


def test_ideal_digital_reports_k_symbols():
    ideal = IdealDigital(k_symbols=128)
    assert ideal(["hello world"], 10.0).channel_uses == 128
    assert ideal(gaussian_features(2, 64, seed=41), 10.0).channel_uses == 128


# ----------------------------------------------------------------------------- DigitalLink


def test_digital_link_is_error_free_at_high_snr_and_falls_back_at_low_snr():
    z = gaussian_features(8, 64, seed=42)
    link = DigitalLink(k_symbols=384, snr_db=20.0)  # 384 info bits: the 16-bit scale + 46 8-bit features
    rx = link(z)
    assert bool(rx.ok.all()) and rx.meta["ber"] == 0.0 and rx.meta["bler"] == 0.0
    assert torch.equal(rx.features, rx.sent)
    scale = z[:, :46].abs().amax(dim=1, keepdim=True)
    # half a quantisation step of the (rounded-up) float16 scale
    assert ((rx.sent - z[:, :46]).abs() <= scale * (2.0**-8 + 2.0**-10)).all()
    low = link(z, snr_db=-8.0)
    assert not bool(low.ok.any()) and low.meta["bler"] == 1.0
    assert torch.equal(low.features, torch.zeros_like(low.features))  # failed CRC -> zero features
    assert torch.isfinite(low.tokens.embeddings).all()
    assert low.snr_db == -8.0


def test_uncoded_digital_link_has_no_crc():
    rx = DigitalLink(coded=False, k_symbols=100, snr_db=0.0)(gaussian_features(4, 64, seed=43))
    assert bool(rx.ok.all()) and rx.meta["ber"] > 0.05


def test_digital_link_reproducible():
    z = gaussian_features(16, 64, seed=44)
    a = DigitalLink(k_symbols=192, snr_db=1.5, seed=3)(z)
    b = DigitalLink(k_symbols=192, snr_db=1.5, seed=3)(z)
    c = DigitalLink(k_symbols=192, snr_db=1.5, seed=4)(z)
    assert torch.equal(a.features, b.features) and a.meta["ber"] == b.meta["ber"]
    assert a.meta["ber"] != c.meta["ber"]


# ----------------------------------------------------------------------------- SeparateCoding / IdealDigital


@pytest.fixture(scope="module")
def easy_images():
    from ragsc.datasets import load_easy_vqa

    return [Image.open(x.path).convert("RGB") for x in load_easy_vqa("test")[:2]]


def test_separate_coding_text():
    texts = ["a red triangle", "the quick brown fox jumps over the lazy dog " * 20, "word " * 200]
    sc = SeparateCoding(k_symbols=256, snr_db=20.0)
    res = sc(texts)
    assert res.ok.tolist() == [True, True, True] and res.meta["budget_bits"] == [256] * 3
    assert all(0 < b <= 256 for b in res.meta["bits_used"])
    assert res.content[0] == texts[0]
    assert all(t.startswith(d) for t, d in zip(texts, res.content))
    low = sc(texts, snr_db=-8.0)
    assert low.ok.tolist() == [False] * 3 and low.content == ["", "", ""]


def test_separate_coding_images(easy_images):
    sc = SeparateCoding(k_symbols=3072, snr_db=20.0)  # 3072 information bits: a 64x64 WebP fits
    res = sc(easy_images)
    assert res.ok.all() and all(0 < b <= 3072 for b in res.meta["bits_used"])
    assert [im.size for im in res.content] == [im.size for im in easy_images]
    low = sc(easy_images, snr_db=-8.0)
    assert not low.ok.any()
    for im, out in zip(easy_images, low.content):  # fallback: flat mean grey at the original size
        assert out.size == im.size and set(out.getdata()) == {(128, 128, 128)}


def test_separate_coding_too_small_budget_falls_back(easy_images):
    res = SeparateCoding(k_symbols=128, snr_db=20.0)(easy_images)  # 128 bits: no image fits
    assert res.meta["bits_used"] == [0, 0] and not res.ok.any()
    assert [im.size for im in res.content] == [im.size for im in easy_images]


def test_ideal_budgets_are_capacity():
    k = 100
    for snr_db in (0.0, 10.0, 20.0):
        budgets = IdealDigital(k_symbols=k).budgets(3, snr_db)
        assert budgets == [math.floor(k * math.log2(1 + 10 ** (snr_db / 10)))] * 3
    budgets = np.array(IdealDigital(k_symbols=k, channel="rayleigh", seed=1).budgets(20_000, 10.0))
    assert len(set(budgets.tolist())) > 100  # each item its own fade
    assert budgets.mean() == pytest.approx(k * float(theory.capacity_rayleigh(10.0)), rel=0.02)


def test_ideal_content_and_tokens_improve_with_snr(easy_images):
    ideal = IdealDigital(k_symbols=1024)
    low, high = ideal(easy_images, -5.0), ideal(easy_images, 20.0)
    assert not low.ok.any() and high.ok.all()
    assert all(b <= budget for b, budget in zip(high.meta["bits_used"], high.meta["budget_bits"]))
    assert [im.size for im in high.content] == [im.size for im in easy_images]
    z = gaussian_features(4, 256, seed=45)
    ideal = IdealDigital(k_symbols=64)
    err = [float(((ideal(z, s).features - z) ** 2).mean()) for s in (0.0, 10.0, 30.0)]
    assert err[0] > err[1] > err[2]


# ----------------------------------------------------------------------------- text codecs, per-item budgets

LM_TEXTS = ["the cat sat on the mat", "Zoë paid €12.50 at 9:45!", "please send the map before noon"]


@pytest.fixture(scope="module")
def lm_codec():
    from ..decoders._tiny_lm import tiny_lm

    return LMTextCodec(tiny_lm())


def test_the_default_text_codec_is_deflate():
    assert isinstance(SeparateCoding(k_symbols=192).text_codec, DeflateTextCodec)
    assert isinstance(IdealDigital(k_symbols=192).text_codec, DeflateTextCodec)


def test_separate_coding_with_the_lm_codec_delivers_texts_exactly(lm_codec):
    sc = SeparateCoding(k_symbols=256, snr_db=20.0, text_codec=lm_codec)
    rx = sc(LM_TEXTS)
    assert rx.ok.all() and rx.content == LM_TEXTS
    assert rx.meta["bits_used"] == [8 * math.ceil(lm_codec.n_bits(t) / 8) for t in LM_TEXTS]
    low = sc(LM_TEXTS, snr_db=-8.0)
    assert not low.ok.any() and low.content == [""] * 3


def test_separate_coding_per_item_channel_uses(spy):
    texts = ["a red triangle", "the quick brown fox jumps", "a blue circle", "a dot"]
    ks = [64, 256, 64, 4]  # 4 symbols: no 5G transport block fits
    sc = SeparateCoding(k_symbols=256, snr_db=20.0)
    small = sc.phy_for(64)
    assert sc.phy_for(64) is small and sc.phy_for(256) is sc.phy and sc.phy_for(4) is None
    calls_small, calls_big = _spy_mapper(small), _spy_mapper(sc.phy)
    ch_small, ch_big = spy(small), spy(sc.phy)
    rx = sc(texts, channel_uses=ks)
    # one PHY call per budget, each item on its own number of channel uses
    assert calls_small == [((2, 128), (2, 64))] and calls_big == [((1, 512), (1, 256))]
    assert ch_small.shapes == [(2, 64)] and ch_big.shapes == [(1, 256)]
    assert rx.meta["channel_uses_per_item"] == ks and rx.channel_uses == round(sum(ks) / 4)
    assert rx.meta["budget_bits"] == [small.info_bits, sc.phy.info_bits, small.info_bits, 0]
    assert all(used <= budget for used, budget in zip(rx.meta["bits_used"], rx.meta["budget_bits"]))
    assert rx.ok.tolist() == [True, True, True, False] and rx.meta["transmitted"] == 3
    assert rx.content[1] == texts[1] and rx.content[3] == ""
    assert all(t.startswith(out) for t, out in zip(texts, rx.content))
    assert sc(texts).meta["channel_uses_per_item"] == [256] * 4


def test_ideal_digital_with_the_lm_codec_delivers_a_text_iff_its_code_fits(lm_codec):
    ideal = IdealDigital(k_symbols=64, text_codec=lm_codec)
    need = [8 * math.ceil(lm_codec.n_bits(t) / 8) for t in LM_TEXTS]  # the payload is whole bytes
    ks = need + [n - 1 for n in need]
    rx = ideal(LM_TEXTS * 2, 0.0, channel_uses=ks)  # 0 dB: capacity 1 bit per channel use, budget = k
    assert rx.meta["budget_bits"] == ks == rx.meta["channel_uses_per_item"]
    assert rx.content[:3] == LM_TEXTS and rx.ok[:3].all()
    for text, out in zip(LM_TEXTS, rx.content[3:]):  # one bit short: whole words dropped, or nothing
        assert out != text and text.startswith(out)


def test_ideal_budgets_per_item():
    ideal = IdealDigital(k_symbols=100)
    assert ideal.budgets(3, 10.0, [10, 100, 1000]) == [math.floor(k * math.log2(11)) for k in (10, 100, 1000)]
    for fading in ("fast", "block"):  # the same budgets as before when every item has k_symbols
        a = IdealDigital(k_symbols=50, channel="rayleigh", fading=fading, seed=3).budgets(5, 10.0)
        b = IdealDigital(k_symbols=50, channel="rayleigh", fading=fading, seed=3).budgets(5, 10.0, [50] * 5)
        assert a == b
    rx = ideal(gaussian_features(3, 256, seed=48), 10.0, channel_uses=[8, 64, 256])
    assert rx.meta["channel_uses_per_item"] == [8, 64, 256] and rx.channel_uses == 109
    err = ((rx.features - rx.sent) ** 2).mean(dim=1)
    assert err[0] > err[1] > err[2]


@pytest.mark.parametrize("bad", [[64], [64, 0], [64, -1], [64, True], [64, 2.5], "ab", 64])
def test_bad_channel_uses_are_an_input_error_and_draw_nothing(bad):
    ideal = IdealDigital(k_symbols=64, channel="rayleigh", seed=1)
    state = ideal.channel.generator.get_state()
    with pytest.raises(InputError, match="channel_uses"):
        SeparateCoding(k_symbols=64)(["a", "b"], channel_uses=bad)
    with pytest.raises(InputError, match="channel_uses"):
        ideal(["a", "b"], 10.0, channel_uses=bad)
    with pytest.raises(InputError, match="channel_uses"):
        ideal(gaussian_features(2, 64, seed=49), 10.0, channel_uses=bad)
    assert torch.equal(ideal.channel.generator.get_state(), state)


# ----------------------------------------------------------------------------- bad input

PATHS = [DigitalLink, SeparateCoding, IdealDigital]


@pytest.mark.parametrize("modulation", [8, 2, 32, 0, 1, 3, 12, -4, 128])
@pytest.mark.parametrize("path", PATHS)
def test_modulation_must_be_a_power_of_4(path, modulation):
    with pytest.raises(ConfigError, match="power of 4"):
        path(modulation=modulation, k_symbols=192)


@pytest.mark.parametrize("modulation", [4, 16, 64, 256])
def test_powers_of_4_are_accepted(modulation):
    assert CodingConfig(modulation=modulation).bits_per_symbol == int(math.log2(modulation))


@pytest.mark.parametrize(
    "kwargs",
    [dict(snr_db=float("nan")), dict(snr_db=float("inf")), dict(snr_db=float("-inf")), dict(snr_db=61.0),
     dict(snr_db=-31.0), dict(k_symbols=0), dict(k_symbols=-8), dict(channel="wifi"), dict(rician_k=-1.0),
     dict(code_rate=0.0), dict(code_rate=1.0), dict(quant_bits=0), dict(quant_bits=17), dict(csi="estimated"),
     dict(fading="slow"), dict(snr=10.0)],
)
@pytest.mark.parametrize("path", PATHS)
def test_bad_config_is_a_config_error(path, kwargs):
    with pytest.raises(ConfigError):
        path(**kwargs)


def test_a_budget_no_transport_block_fits_is_a_config_error():
    with pytest.raises(ConfigError, match="transport block"):
        DigitalLink(k_symbols=1)
    with pytest.raises(ConfigError):
        # 16 bits: not even the scale fits
        DigitalLink(k_symbols=8, coded=False)(gaussian_features(2, 64, seed=46))


@pytest.mark.parametrize("snr_db", [float("nan"), float("inf"), 60.5, -30.5])
def test_bad_call_snr_is_an_input_error_and_draws_nothing(snr_db):
    z = gaussian_features(4, 64, seed=47)
    link = DigitalLink(k_symbols=192, channel="rayleigh", seed=9)
    state = link.phy.channel.generator.get_state()
    with pytest.raises(InputError):
        link(z, snr_db=snr_db)
    assert torch.equal(link.phy.channel.generator.get_state(), state)
    with pytest.raises(InputError):
        SeparateCoding(k_symbols=192)(["text"], snr_db=snr_db)
    with pytest.raises(InputError):
        IdealDigital(k_symbols=192)(["text"], snr_db=snr_db)


@pytest.mark.parametrize(
    "bad",
    [torch.ones(4, 64, dtype=torch.int64), torch.ones(64), torch.ones(2, 4, 64),
     torch.ones(4, 64, dtype=torch.complex64),
     [[0.1] * 64] * 2, torch.full((2, 64), float("nan"))],
    ids=["int", "1d", "3d", "complex", "list", "nan"],
)
def test_bad_tokens_are_an_input_error(bad):
    with pytest.raises(InputError):
        DigitalLink(k_symbols=192)(bad)
    with pytest.raises(InputError):
        IdealDigital(k_symbols=192)(bad)


def test_all_zero_tokens_give_finite_output():
    z = torch.zeros(3, 64)
    for rx in (DigitalLink(k_symbols=192, snr_db=20.0)(z), IdealDigital(k_symbols=192)(z, 20.0)):
        assert torch.isfinite(rx.features).all() and torch.isfinite(rx.tokens.embeddings).all()
        assert (rx.features.abs() <= 1e-6).all()


@pytest.mark.parametrize("items", [[], ["text", Image.new("RGB", (4, 4))], [1, 2], [b"bytes"]],
                         ids=["empty", "mix", "int", "bytes"])
def test_bad_content_is_an_input_error(items):
    with pytest.raises(InputError):
        SeparateCoding(k_symbols=192)(items)
    with pytest.raises(InputError):
        IdealDigital(k_symbols=192)(items)


def test_bad_image_format_is_a_config_error():
    with pytest.raises(ConfigError):
        SeparateCoding(k_symbols=192, image_format="png")([Image.new("RGB", (8, 8))])


def test_phy_rejects_bits_of_the_wrong_shape():
    phy = CodedPHY(ChannelConfig(k_symbols=192), CodingConfig())
    for bad in (torch.zeros(2, phy.info_bits + 1), torch.zeros(phy.info_bits)):
        with pytest.raises(InputError):
            phy(bad, 10.0)


def test_the_phy_reads_the_configured_equalizer(monkeypatch):
    """channel.equalizer reaches the detector (it was hard-coded 'zf'); both give the same decisions."""
    from ragsc.channel import digital

    seen = []
    real = digital.equalize_for_detection
    monkeypatch.setattr(digital, "equalize_for_detection",
                        lambda y, h, no, csi, method: seen.append(method) or real(y, h, no, csi, method))
    out = {}
    for eq in ("mmse", "zf"):
        phy = CodedPHY(ChannelConfig(channel="rayleigh", k_symbols=96, seed=3, equalizer=eq),
                       CodingConfig(coded=False, modulation=16))
        torch.manual_seed(0)
        out[eq] = phy(_bits(8, phy.info_bits), 5.0).bits
    assert seen == ["mmse", "zf"]
    assert torch.equal(out["mmse"], out["zf"])
