"""The CAT codec (ragsc/channel/cat.py) untrained: shapes, power, ordering, the channel it trains through,
the rate policy's table look-up, CATLink's accounting, save / load and errors. Training: tests/distill."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from ragsc.channel import CATCalibration, CATCodec, CATConfig, CATLink, Channel, ChannelConfig, equalize
from ragsc.channel.models import snr_db_to_no
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.types import SemanticTokens

from ._util import unit_symbols

TINY = dict(token_dim=8, target_dim=8, model_dim=16, layers=1, heads=2, max_symbols=8, levels=(2, 4, 8))
# quality per level (2, 4, 8) at 0 / 10 / 20 dB
TABLE = CATCalibration(snrs_db=(0.0, 10.0, 20.0), n_items=100,
                       quality={"awgn": ((0.5, 0.6, 0.7), (0.7, 0.85, 0.9), (0.9, 0.95, 0.97))})


def tokens(n: int, t: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, 8) if t is None else (n, t, 8)
    return F.normalize(torch.randn(*shape, generator=g), dim=-1)


@pytest.fixture(scope="module")
def codec() -> CATCodec:
    return CATCodec(CATConfig(**TINY)).eval()


@pytest.fixture(scope="module")
def calibrated() -> CATCodec:
    return CATCodec(CATConfig(**TINY, channels=("awgn", "rayleigh"), calibration=TABLE)).eval()


# ----------------------------------------------------------------------------- config


def test_config_json_round_trip():
    cfg = CATConfig(**TINY, calibration=TABLE)
    assert CATConfig(**json.loads(cfg.model_dump_json())) == cfg
    assert CATConfig(token_dim=384, target_dim=384).levels == (8, 16, 32, 48, 64)  # the paper-sized default


@pytest.mark.parametrize(
    ("bad", "names"),
    [(dict(heads=3), "divisible by heads"), (dict(levels=(4, 2, 8)), "strictly increasing"),
     (dict(levels=(2, 4)), "end at max_symbols"), (dict(channels=("awgn", "fog")), "channels"),
     (dict(channels=("awgn", "awgn")), "distinct"), (dict(snr_range_db=(20.0, -5.0)), "snr_range_db"),
     (dict(snr_range_db=(-40.0, 0.0)), "snr_range_db"), (dict(token_dim=0), "token_dim"),
     (dict(token_dim=8.0), "token_dim"), (dict(extra=1), "extra"), (dict(rician_k=-1.0), "rician_k"),
     (dict(calibration=dict(snrs_db=(0.0, 10.0), quality={"awgn": ((0.1, 0.2, 0.3),)}, n_items=3)), "rows"),
     (dict(calibration=dict(snrs_db=(10.0, 0.0), quality={}, n_items=3)), "increasing"),
     (dict(channels=("awgn",), calibration={**TABLE.model_dump(), "quality": {"rician": ((0.5,) * 3,) * 3}}),
      "not trained on"),
     (dict(calibration={**TABLE.model_dump(), "quality": {"awgn": ((0.5, 0.6),) * 3}}), "quality per level")],
)
def test_config_rejects_bad_fields_naming_them(bad, names):
    with pytest.raises(ConfigError, match=names):
        CATConfig(**{**TINY, **bad})
    with pytest.raises(ConfigError, match=names):
        CATCodec({**TINY, **bad})


# ----------------------------------------------------------------------------- encode / decode


@pytest.mark.parametrize("t", [None, 3])
def test_encode_shapes_and_unit_power_per_prefix(codec, t):
    x = tokens(16, t)
    for n in (2, 4, 8):
        s = codec.encode(x, 5.0, "rayleigh", n)
        assert s.shape == (16, n) and s.dtype == torch.complex64
        torch.testing.assert_close(s.abs().square().mean(1), torch.ones(16), atol=1e-5, rtol=0)
    per_item = codec.encode(x, torch.linspace(-5, 20, 16), "awgn", 4)
    torch.testing.assert_close(per_item.abs().square().mean(1), torch.ones(16), atol=1e-5, rtol=0)


def test_shorter_codes_are_prefixes_of_one_codeword(codec):
    x = tokens(12)
    full = codec.encode(x, 3.0, "awgn", 8)
    for n in (2, 4):
        ratio = codec.encode(x, 3.0, "awgn", n) / full[:, :n]  # one positive real gain per item
        torch.testing.assert_close(ratio.imag, torch.zeros_like(ratio.imag), atol=1e-5, rtol=0)
        assert (ratio.real > 0).all()
        torch.testing.assert_close(ratio.real, ratio.real[:, :1].expand(-1, n), atol=1e-5, rtol=1e-5)


def test_both_ends_are_conditioned_on_snr_and_channel(codec):
    x = tokens(6)
    assert not torch.allclose(codec.encode(x, 0.0, "awgn", 4), codec.encode(x, 15.0, "awgn", 4))
    assert not torch.allclose(codec.encode(x, 5.0, "awgn", 4), codec.encode(x, 5.0, "rician", 4))
    # beyond the trained range (-5..20 dB) the codec is told the nearest edge
    torch.testing.assert_close(codec.encode(x, 20.0, "awgn", 4), codec.encode(x, 45.0, "awgn", 4))
    y = unit_symbols(6, 4, seed=1)
    assert not torch.allclose(codec.decode(y, 0.1, 10.0, "awgn"), codec.decode(y, 0.1, 0.0, "awgn"))
    assert not torch.allclose(codec.decode(y, 0.1, 10.0, "awgn"), codec.decode(y, 0.1, 10.0, "rayleigh"))


def test_padding_tokens_are_ignored(codec):
    x = tokens(4, 3)
    mask = torch.tensor([[True, True, False]] * 4)
    padded = codec.encode(torch.cat([x[:, :2], 100 * torch.ones(4, 1, 8)], 1), 5.0, "awgn", 8, mask=mask)
    torch.testing.assert_close(padded, codec.encode(x[:, :2], 5.0, "awgn", 8), atol=1e-5, rtol=1e-5)


def test_decode_shapes_and_noise_variance_forms(codec):
    y = unit_symbols(5, 4, seed=2)
    out = codec.decode(y, 0.1, 10.0, "awgn")
    assert out.shape == (5, 8)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    for no in (torch.full((5,), 0.1), torch.full((5, 1), 0.1), torch.full((5, 4), 0.1)):
        torch.testing.assert_close(codec.decode(y, no, 10.0, "awgn"), out)


# ----------------------------------------------------------------------------- the training-time channel


def test_training_channel_is_the_projects_channel():
    """``transmit`` (what ``forward`` and training use) is exactly Channel + equalize on the same draws."""
    codec = CATCodec(CATConfig(**TINY, equalizer="zf"))
    x = unit_symbols(64, 8, seed=3)
    for name in ("awgn", "rayleigh", "rician"):
        y_eq, no_eff = codec.transmit(x, 5.0, name, sim=Channel(name, seed=4))
        y, h = Channel(name, seed=4)(x, snr_db_to_no(5.0))
        ref, ref_no = equalize(y, h, snr_db_to_no(5.0), "perfect", "zf")
        assert torch.equal(y_eq, ref) and torch.equal(no_eff, ref_no)


@pytest.mark.parametrize("name", ["awgn", "rayleigh", "rician"])
@pytest.mark.parametrize("equalizer", ["zf", "mmse"])
def test_training_channel_noise_variance_and_gradient(name, equalizer):
    """Through the codec's channel at 5 dB the noise left after equalisation has the variance the receiver is
    told (N0 / |h|^2 per symbol, de-biased for MMSE), and d y_eq / d x is what the channel says (1 for ZF)."""
    codec = CATCodec(CATConfig(**TINY, equalizer=equalizer))
    x = unit_symbols(20_000, 8, seed=5).requires_grad_(True)
    y_eq, no_eff = codec.transmit(x, 5.0, name)
    bias = 1.0 if equalizer == "zf" else 1 / (1 + no_eff)  # MMSE shrinks towards 0 by 1 / (1 + N0_eff)
    err = (y_eq / bias - x).detach() / no_eff.sqrt()
    assert float(err.abs().square().mean()) == pytest.approx(1.0, rel=0.02)
    if name == "awgn":
        torch.testing.assert_close(no_eff, torch.full_like(no_eff, snr_db_to_no(5.0)))
    (grad,) = torch.autograd.grad(torch.view_as_real(y_eq).sum(), x)
    expected = torch.full_like(grad, 1 + 1j) * (bias if equalizer == "mmse" else 1.0)
    torch.testing.assert_close(grad, expected, atol=1e-4, rtol=1e-4)


def test_forward_is_differentiable_end_to_end(codec):
    out = codec(tokens(8), torch.linspace(-5, 20, 8), "rician", 4)
    (1 - out[:, 0]).sum().backward()
    grads = {k: p.grad for k, p in codec.named_parameters()}
    # indexed parameters (positions, per-slot projections, kind embeddings) get gradients only where used
    indexed = ("tx_pos", "rx_read", "tx_out", "rx_in", "rx_pos", "tx_cond.kind", "rx_cond.kind")
    used = [k for k in grads if not k.startswith(indexed)]
    assert all(grads[k] is not None and torch.isfinite(grads[k]).all() for k in used)
    assert float(grads["tx_slots"][:4].abs().sum()) > 0 and float(grads["tx_out"][:4].abs().sum()) > 0
    assert float(grads["tx_out"][4:].abs().sum()) == 0  # symbols 5..8 were not sent
    codec.zero_grad(set_to_none=True)


def test_forward_rejects_a_simulator_of_another_kind(codec):
    with pytest.raises(ConfigError, match="rayleigh"):
        codec(tokens(2), 5.0, "awgn", 2, sim=Channel("rayleigh"))


# ----------------------------------------------------------------------------- the rate policy


@pytest.mark.parametrize(
    ("snr_db", "quality", "n"),
    [(20.0, 0.9, 2), (10.0, 0.9, 8), (10.0, 0.8, 4),
     (15.0, 0.89, 4), (15.0, 0.8, 2),  # interpolated: level 2 at 0.80, level 4 at 0.90
     (30.0, 0.9, 2), (-5.0, 0.1, 8),  # above the table: its last row; below: nothing vouches, the longest
     (0.0, 0.99, 8), (0.0, 0.5, 2)],
)
def test_choose_length_reads_the_table(calibrated, snr_db, quality, n):
    assert calibrated.choose_length(snr_db, "awgn", quality) == n


def test_choose_length_errors(codec, calibrated):
    with pytest.raises(ConfigError, match="calibrate"):
        codec.choose_length(10.0, "awgn")
    with pytest.raises(ConfigError, match="rayleigh"):
        calibrated.choose_length(10.0, "rayleigh")  # trained on, not calibrated
    with pytest.raises(ConfigError, match="trained on"):
        calibrated.choose_length(10.0, "rician")
    for q in (0.0, 1.5, True, "high"):
        with pytest.raises(ConfigError, match="quality"):
            calibrated.choose_length(10.0, "awgn", q)
    with pytest.raises(InputError, match="snr_db"):
        calibrated.choose_length(float("nan"), "awgn")


# ----------------------------------------------------------------------------- CATLink


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


# ----------------------------------------------------------------------------- encode / decode errors


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [(lambda c: c.encode(tokens(2), 5.0, "fog", 2), ConfigError, "unknown channel"),
     (lambda c: c.encode(tokens(2), 5.0, "awgn", 3), ConfigError, r"levels \[2, 4, 8\]"),
     (lambda c: c.encode(tokens(2), 5.0, "awgn", True), ConfigError, "levels"),
     (lambda c: c.encode(tokens(2), float("nan"), "awgn", 2), InputError, "snr_db"),
     (lambda c: c.encode(tokens(2), 75.0, "awgn", 2), InputError, "snr_db"),
     (lambda c: c.encode(tokens(2), torch.tensor([0.0, -40.0]), "awgn", 2), InputError, "snr_db"),
     (lambda c: c.encode(tokens(2), torch.zeros(3), "awgn", 2), InputError, "snr_db"),
     (lambda c: c.encode(torch.ones(2, 6), 5.0, "awgn", 2), InputError, "token_dim=8"),
     (lambda c: c.encode(torch.ones(0, 8), 5.0, "awgn", 2), InputError, "empty"),
     (lambda c: c.encode(torch.ones(2, 300, 8), 5.0, "awgn", 2), InputError, "at most 256"),
     (lambda c: c.encode(torch.ones(8), 5.0, "awgn", 2), InputError, "float tensor"),
     (lambda c: c.encode([[0.0] * 8], 5.0, "awgn", 2), InputError, "float tensor"),
     (lambda c: c.encode(tokens(2, 3), 5.0, "awgn", 2, mask=torch.zeros(2, 3, dtype=torch.bool)), InputError,
      "at least one"),
     (lambda c: c.decode(unit_symbols(2, 3), 0.1, 5.0, "awgn"), ConfigError, "levels"),
     (lambda c: c.decode(torch.ones(2, 4), 0.1, 5.0, "awgn"), InputError, "complex"),
     (lambda c: c.decode(unit_symbols(0, 4), 0.1, 5.0, "awgn"), InputError, "empty"),
     (lambda c: c.decode(unit_symbols(2, 4), torch.ones(3), 5.0, "awgn"), InputError, "no_eff"),
     (lambda c: c.decode(unit_symbols(2, 4), -1.0, 5.0, "awgn"), InputError, "no_eff")],
)
def test_bad_input_raises_a_clear_error(codec, call, error, match):
    with pytest.raises(error, match=match):
        call(codec)


# ----------------------------------------------------------------------------- save / load


def test_save_load_round_trip(calibrated, tmp_path):
    calibrated.save(tmp_path / "cat")
    assert sorted(p.name for p in (tmp_path / "cat").iterdir()) == ["config.json", "weights.safetensors"]
    back = CATCodec.load(tmp_path / "cat")
    assert back.config == calibrated.config and back.config.calibration == TABLE and not back.training
    x, y = tokens(7), unit_symbols(7, 4, seed=9)
    assert torch.equal(back.encode(x, 3.0, "rayleigh", 8), calibrated.encode(x, 3.0, "rayleigh", 8))
    assert torch.equal(back.decode(y, 0.2, 3.0, "awgn"), calibrated.decode(y, 0.2, 3.0, "awgn"))
    with torch.no_grad():
        a = back(x, 3.0, "rayleigh", 4, sim=Channel("rayleigh", seed=1))
        b = calibrated(x, 3.0, "rayleigh", 4, sim=Channel("rayleigh", seed=1))
    assert torch.equal(a, b)
    assert back.choose_length(15.0, "awgn", 0.89) == calibrated.choose_length(15.0, "awgn", 0.89) == 4


def test_load_errors_name_the_file(codec, tmp_path):
    folder = codec.save(tmp_path / "cat")
    cfg, weights = folder / "config.json", folder / "weights.safetensors"
    good_cfg, good_weights = cfg.read_text(), weights.read_bytes()

    def fails(match: str) -> None:
        with pytest.raises(ModelLoadError, match=match):
            CATCodec.load(folder)
        cfg.write_text(good_cfg)
        weights.write_bytes(good_weights)

    with pytest.raises(ModelLoadError, match="not found"):
        CATCodec.load(tmp_path / "nowhere")
    weights.unlink()
    fails("weights.safetensors not found")
    cfg.unlink()
    fails("config.json not found")
    cfg.write_text("{not json")
    fails("config.json")
    cfg.write_text(json.dumps({**json.loads(good_cfg), "heads": 3}))
    fails("config.json.*divisible")
    cfg.write_text(json.dumps({**json.loads(good_cfg), "model_dim": 32}))
    fails("weights.safetensors does not match")
    weights.write_bytes(b"garbage")
    fails("weights.safetensors")
    assert torch.equal(CATCodec.load(folder).tx_slots, codec.tx_slots)  # restored: loads again
