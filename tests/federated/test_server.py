"""ragsc.federated.server: the receiver's step, its gradient at the cut, FedAvg."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ragsc.channel.models import Channel, equalize
from ragsc.errors import InputError
from ragsc.federated.model import ClientModel, load_base
from ragsc.federated.protocol import ReceivedBatch
from ragsc.federated.server import SplitServer, fedavg

pytestmark = pytest.mark.usefixtures("one_thread")


def test_fedavg_is_weighted_by_data_size():
    a = {"w": torch.tensor([0.0, 2.0]), "b": torch.tensor(1.0)}
    b = {"w": torch.tensor([4.0, 6.0]), "b": torch.tensor(5.0)}
    out = fedavg([(a, 1), (b, 3)])
    assert torch.allclose(out["w"], torch.tensor([3.0, 5.0])) and torch.allclose(out["b"], torch.tensor(4.0))
    plain = fedavg([(a, 2), (b, 2)])  # equal sizes: the plain mean
    assert torch.allclose(plain["w"], torch.tensor([2.0, 4.0]))


def test_fedavg_refuses_mismatched_updates():
    with pytest.raises(InputError, match="different adapters"):
        fedavg([({"w": torch.zeros(2)}, 1), ({"v": torch.zeros(2)}, 1)])
    with pytest.raises(InputError, match="shapes"):
        fedavg([({"w": torch.zeros(2)}, 1), ({"w": torch.zeros(3)}, 1)])
    with pytest.raises(InputError, match="0 items"):
        fedavg([({"w": torch.zeros(2)}, 0)])
    with pytest.raises(InputError, match="at least one"):
        fedavg([])


@pytest.mark.parametrize("kind", ["awgn", "rayleigh"])
def test_the_gradient_at_the_cut_is_the_end_to_end_gradient(tiny_base, kind):
    """Split (client: y.backward(server's grad)) and joint autograd give the adapters the same gradient."""
    model = ClientModel(load_base(tiny_base), 2, 4.0, None, 4, seed=0)
    with torch.no_grad():
        for p in model.trainable().values():
            p.add_(0.1 * torch.randn_like(p))
    server = SplitServer(4, 16, 10, seed=0)
    joint_receiver = copy.deepcopy(server.receiver)
    feats = model.features(torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8))
    labels = torch.arange(8) % 10
    no = 0.3

    def channel_out():
        sim = Channel(kind, "block", 4.0, seed=7)
        return sim(model(feats), no)

    y, h = channel_out()
    grad, _ = server.step(ReceivedBatch(y.detach(), labels, no, None if h is None else h.detach()))
    model.zero_grad()
    y.backward(grad)
    split = {k: p.grad.clone() for k, p in model.trainable().items()}

    model.zero_grad()
    y, h = channel_out()
    x_hat, _ = equalize(y, h, no, "perfect", "mmse")
    F.cross_entropy(joint_receiver(x_hat), labels).backward()
    for k, p in model.trainable().items():
        assert torch.allclose(split[k], p.grad, atol=1e-6, rtol=1e-4), k
    assert any(g.abs().sum() > 0 for g in split.values())


def test_server_step_trains_and_refuses_images():
    server = SplitServer(4, 16, 3, lr=1e-2)
    y = torch.randn(30, 4, dtype=torch.complex64)
    labels = (y.real[:, 0] > 0).long()
    first = server.step(ReceivedBatch(y, labels, 0.1))[1]
    for _ in range(50):
        last = server.step(ReceivedBatch(y, labels, 0.1))[1]
    assert last < first
    assert server.accuracy(ReceivedBatch(y, labels, 0.1)) > 0.8
    with pytest.raises(InputError, match="received symbols"):
        server.step(ReceivedBatch(torch.zeros(30, 3, 16, 16), labels, 0.1))
