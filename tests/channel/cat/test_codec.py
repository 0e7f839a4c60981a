"""The CAT codec (ragsc/channel/cat/codec.py) untrained: shapes, power, ordering, conditioning, the channel it
trains through, and clear errors for bad input. Training: tests/distill/test_cat.py."""

from __future__ import annotations

import pytest
import torch

from ragsc.channel import CATCodec, CATConfig, Channel, equalize
from ragsc.channel.models import snr_db_to_no
from ragsc.errors import ConfigError, InputError

from .._util import unit_symbols
from ._util import TINY, tokens

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
