"""Importance ordering (ragsc/channel/adaptive.py): PCAOrdering fit, round trip, variance order, files.

(Pilot SNR estimation is tested in test_models.py; the trained adaptive path, CAT, in tests/channel/cat/.)"""

from __future__ import annotations

import pytest
import torch

from ragsc.channel import PCAOrdering
from ragsc.errors import InputError


def _decaying(n: int, d: int, seed: int) -> torch.Tensor:
    """Gaussian features with a decaying spectrum in a fixed random basis (so PCA has something to find)."""
    basis, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(1000 + d)))
    g = torch.Generator().manual_seed(seed)
    std = 0.8 ** torch.arange(d, dtype=torch.float32)
    return 0.3 + (torch.randn(n, d, generator=g) * std) @ basis.T


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
