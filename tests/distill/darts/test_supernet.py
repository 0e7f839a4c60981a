"""ragsc.distill.darts.supernet: shapes, alpha vs. the weights, the expected complexity, the skip dropout.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import pytest
import torch

from ragsc.distill.darts import (
    PRIMITIVES,
    SearchNetwork,
    SearchSpaceConfig,
)

from ._util import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


def test_supernet_maps_images_to_the_teacher_space_and_separates_alpha_from_weights(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    assert net(data[0][:5]).shape == (5, 8)
    edges = 2 + 3  # node 0 reads the two cell inputs, node 1 those and node 0
    assert net.alpha_normal.shape == net.alpha_reduce.shape == (edges, len(PRIMITIVES))
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert {id(p) for p in arch} == {id(net.alpha_normal), id(net.alpha_reduce)}
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    assert len(arch) + len(weights) == len(list(net.parameters()))


@pytest.mark.parametrize("complexity", ["params", "macs"])
def test_expected_complexity_is_differentiable_and_follows_alpha(complexity):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    value = net.expected_complexity(complexity, normalize=True)
    value.backward()
    for alpha in net.arch_parameters():
        assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0
    # softmax nearly one-hot on one op everywhere: conv_5x5 is every edge's costliest op, none costs 0
    with torch.no_grad():
        for favoured, expected in (("none", 0.0), ("conv_5x5", 1.0)):
            for alpha in net.arch_parameters():
                alpha.zero_()
                alpha[:, PRIMITIVES.index(favoured)] = 30.0
            value = net.expected_complexity(complexity, normalize=True).item()
            assert value == pytest.approx(expected, abs=1e-6)
        for alpha in net.arch_parameters():
            alpha.zero_()
        uniform = net.expected_complexity(complexity).item()
        for alpha in net.arch_parameters():
            alpha[:, PRIMITIVES.index("sep_conv_5x5")] = 3.0
        assert net.expected_complexity(complexity).item() > uniform
        for alpha in net.arch_parameters():
            alpha.zero_()
            alpha[:, PRIMITIVES.index("max_pool_3x3")] = 3.0
        assert net.expected_complexity(complexity).item() < uniform


def test_skip_dropout_acts_on_the_skip_only_in_training(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with torch.no_grad():
        net.alpha_normal[:, PRIMITIVES.index("skip_connect")] = 10.0
    x = data[0][:4]
    net.train()
    assert torch.equal(net(x), net(x))  # no dropout: train-mode BN alone is deterministic
    net.set_skip_dropout(0.9)
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))
