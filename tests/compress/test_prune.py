"""ragsc.compress.prune: structured pruning to a MACs / parameter target, rebuilt from its record."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ragsc.compress.prune import apply_architecture, architecture, count, prune
from ragsc.compress.towers import Inputs
from ragsc.errors import ConfigError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1),
                         nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, 8)).eval()


@pytest.mark.parametrize("by", ["macs", "params"])
def test_prune_reaches_its_target_and_keeps_fixed_layers(by):
    net = _net()
    example = Inputs(args=(torch.randn(1, 3, 16, 16),))
    macs0, params0 = count(net, example)
    figures = prune(net, example, keep=0.5, by=by, fixed=[net[-1]])
    macs, params = count(net, example)
    assert (macs if by == "macs" else params) <= 0.5 * (macs0 if by == "macs" else params0)
    assert (macs if by == "macs" else params) > 0.3 * (macs0 if by == "macs" else params0)  # small steps
    assert figures["macs_before"] == macs0 and figures["macs_after"] == macs
    assert figures["params_after"] == params
    assert net[-1].out_features == 8 and net[0].out_channels < 16
    assert net[4].num_features == net[3].out_channels
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 8)
    assert not any(p.requires_grad for p in net.parameters())


def test_a_pruned_architecture_is_rebuilt_from_its_record():
    net = _net()
    prune(net, Inputs(args=(torch.randn(1, 3, 16, 16),)), keep=0.4, fixed=[net[-1]])
    record = architecture(net)
    assert record["modules"]["0"]["out_channels"] == net[0].out_channels
    fresh = apply_architecture(_net(), record)
    fresh.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(fresh(x), net(x))
    with pytest.raises(ConfigError, match="does not fit"):
        apply_architecture(nn.Sequential(nn.Linear(2, 2)), record)


@pytest.mark.parametrize(("change", "match"), [
    (lambda r: r["tensors"].update({"0.weight": [2 ** 40, 3, 3, 3]}),
     r"asks tensor 0\.weight to be \(1099511627776, 3, 3, 3\); pruning keeps or shrinks it \(\(16, 3,"),
    (lambda r: r["tensors"].update({"0.weight": [8, 3, 3]}), r"asks tensor 0\.weight to be \(8, 3, 3\)"),
    (lambda r: r["tensors"].update({"0.weight": [-8, 3, 3, 3]}), r"asks tensor 0\.weight to be \(-8,"),
    (lambda r: r["modules"].update({"0": {"out_channels": 64}}), r"asks 0\.out_channels to be 64"),
    (lambda r: r["modules"].update({"0": {"forward": 3}}), r"0: 'forward' is not a size of a Conv2d \(its "
                                                           r"sizes: in_channels, out_channels, groups\)"),
])
def test_a_record_that_grows_the_network_is_refused(change, match):
    """Pruning only removes: a saved record asking for a larger (here: 2^40-row) tensor, or setting
    something other than a layer's size, is refused before anything is allocated or set."""
    record = architecture(_net())
    change(record)
    net = _net()
    with pytest.raises(ConfigError, match="the recorded architecture does not fit this network: .*" + match):
        apply_architecture(net, record)


def test_impossible_prune_targets_are_refused():
    net = _net()
    example = Inputs(args=(torch.randn(1, 3, 16, 16),))
    with pytest.raises(ConfigError, match="keep must be in"):
        prune(net, example, keep=1.5)
    with pytest.raises(ConfigError, match="cannot bring the macs below"):
        prune(net, example, keep=0.001, fixed=[net[-1]], steps=5)
