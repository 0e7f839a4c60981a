"""ragsc.federated.protocol: what the server accepts, and byte counts."""

from __future__ import annotations

import pytest
import torch

from ragsc.errors import InputError
from ragsc.federated.protocol import Begin, Gradient, ReceivedBatch, Update, check_received


def _received(b=5, k=4):
    y = torch.randn(b, k, dtype=torch.complex64)
    return ReceivedBatch(y, torch.arange(b) % 3, 0.3)


def test_accepts_received_symbols():
    r = _received()
    assert check_received(r, 4, 3) is r


@pytest.mark.parametrize("y, what", [
    (torch.zeros(5, 3, 16, 16, dtype=torch.uint8), "uint8"),   # an image batch
    (torch.zeros(5, 3, 16, 16), "float32"),                   # normalised pixels
    (torch.zeros(5, 4), "float32"),                           # real-valued features
    (torch.zeros(5, 6, dtype=torch.complex64), r"\[B, 4\]"),  # another number of symbols
])
def test_refuses_anything_but_symbols(y, what):
    with pytest.raises(InputError, match=what):
        check_received(ReceivedBatch(y, torch.arange(5) % 3, 0.3), 4, 3)
    with pytest.raises(InputError, match="takes ReceivedBatch"):
        check_received(torch.zeros(5, 3, 16, 16), 4, 3)


def test_refuses_bad_labels_noise_and_csi():
    r = _received()
    with pytest.raises(InputError, match="labels must be int64"):
        check_received(ReceivedBatch(r.y, r.labels[:3], 0.3), 4, 3)
    with pytest.raises(InputError, match=r"lie in \[0, 3\)"):
        check_received(ReceivedBatch(r.y, r.labels + 5, 0.3), 4, 3)
    with pytest.raises(InputError, match="noise variance"):
        check_received(ReceivedBatch(r.y, r.labels, float("nan")), 4, 3)
    with pytest.raises(InputError, match="h must be"):
        check_received(ReceivedBatch(r.y, r.labels, 0.3, torch.ones(5, 2, dtype=torch.complex64)), 4, 3)


def test_byte_counts_are_the_tensor_sizes():
    r = ReceivedBatch(torch.zeros(7, 4, dtype=torch.complex64), torch.zeros(7, dtype=torch.int64), 0.1,
                 torch.ones(7, 1, dtype=torch.complex64))
    assert r.nbytes() == {"symbols": 7 * 4 * 8, "labels": 7 * 8, "csi": 7 * 8}
    w = {"a": torch.zeros(3, 5), "b": torch.zeros(2)}
    assert Begin(1, w).nbytes() == Update(w, 3, "f").nbytes() == 17 * 4
    assert Gradient(1, 0, torch.zeros(7, 4, dtype=torch.complex64)).nbytes() == 7 * 4 * 8
