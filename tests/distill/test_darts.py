"""ragsc.distill.darts: the KDL-DARTS supernet, its complexity, the search, the skip guard, derive, save/load.

Tiny sizes throughout (64 images 1x16x16, out_dim 8, C=4, 2 cells, 2 nodes): each search takes seconds.
The images are four noisy stripe patterns and the "teacher" maps each pattern to its own 8-d prototype, so
there is something to learn through a global pool.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ragsc.distill import darts
from ragsc.distill.darts import (
    PRIMITIVES,
    ArchitectureConfig,
    DerivedNetwork,
    FrontPoint,
    Genotype,
    SearchNetwork,
    SearchSpaceConfig,
    SkipGuard,
    architecture_cost,
    cheapest_architecture,
    check_budget,
    derive,
    kd_score,
    lambda_front,
    op_cost,
    plot_front,
    retrain,
    search,
)
from ragsc.errors import ConfigError, InputError, ModelLoadError

TINY = dict(in_channels=1, image_size=16, channels=4, layers=2, nodes=2, out_dim=8, reductions=1)
PARAM_FREE = {"max_pool_3x3", "avg_pool_3x3", "skip_connect"}  # skip_connect at stride 1 only


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


@pytest.fixture(scope="module")
def data():
    """``(x [64, 1, 16, 16], t [64, 8], labels [64])``."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 4
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    freqs = ((1, 0), (0, 1), (2, 2), (3, 1))
    patterns = torch.stack([torch.sin(xx * f / 3) * torch.cos(yy * h / 3) for f, h in freqs])
    x = (patterns[labels] + 0.3 * torch.randn(64, 16, 16, generator=g)).unsqueeze(1)
    t = torch.randn(4, 8, generator=g)[labels] + 0.1 * torch.randn(64, 8, generator=g)
    return x, t, labels


def splits(data):
    x, t, _ = data
    return x[:48], t[:48], x[48:], t[48:]


def n_skips(cell) -> int:
    return sum(op == "skip_connect" for op, _ in cell)


def test_supernet_maps_images_to_the_teacher_space_and_separates_alpha_from_weights(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    assert net(data[0][:5]).shape == (5, 8)
    edges = 2 + 3  # node 0 reads the two cell inputs, node 1 those and node 0
    assert net.alpha_normal.shape == net.alpha_reduce.shape == (edges, len(PRIMITIVES))
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert {id(p) for p in arch} == {id(net.alpha_normal), id(net.alpha_reduce)}
    assert not {id(p) for p in arch} & {id(p) for p in weights}
    assert len(arch) + len(weights) == len(list(net.parameters()))


@pytest.mark.parametrize("size,reductions", [(15, 2), (28, 2), (7, 1)])
def test_odd_image_sizes_build_and_run(size, reductions):
    cfg = SearchSpaceConfig(**{**TINY, "image_size": size, "reductions": reductions, "layers": 3})
    x = torch.randn(2, 1, size, size)
    assert SearchNetwork(cfg)(x).shape == (2, 8)
    genotype = derive(SearchNetwork(cfg))
    assert DerivedNetwork(ArchitectureConfig.from_search(cfg, genotype))(x).shape == (2, 8)


def test_op_cost_matches_hand_counts():
    c, s = 4, 8
    assert op_cost("conv_3x3", c, 1, s) == (c * c * 9 + 2 * c, s * s * c * c * 9)
    # two (depthwise 3x3 + pointwise 1x1 + BN) blocks
    assert op_cost("sep_conv_3x3", c, 1, s) == (2 * (c * 9 + c * c + 2 * c),
                                                 2 * (s * s * c * 9 + s * s * c * c))
    # stride 2 halves the output grid; the factorized reduce is two 1x1 convs onto c/2 channels each
    assert op_cost("conv_5x5", c, 2, s)[1] == 4 * 4 * c * c * 25
    assert op_cost("skip_connect", c, 2, s) == (c * c + 2 * c, 4 * 4 * c * c)
    assert op_cost("max_pool_3x3", c, 1, s) == (0, s * s * c * 9)
    assert op_cost("skip_connect", c, 1, s) == op_cost("none", c, 1, s) == (0, 0)


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


def test_search_lowers_the_kd_loss_on_the_training_data(data):
    x_train, t_train, x_val, t_val = splits(data)
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    before = 1.0 - kd_score(net, x_train, t_train)
    result = search(net, x_train, t_train, x_val, t_val, epochs=4, lam=0.0, batch_size=16, lr_alpha=0.05)
    after = 1.0 - kd_score(net, x_train, t_train)
    assert after < before - 0.2, (before, after)
    assert len(result.history) == 4
    assert result.history[-1].train_kd < result.history[0].train_kd - 0.3


def test_a_huge_lambda_derives_the_cheapest_net_a_zero_lambda_a_bigger_one(data):
    # max_pool is the only parameter-free op besides none (which derive never picks): a complexity penalty
    # that works must put it on every derived edge, the smallest net these sizes allow
    cfg = SearchSpaceConfig(**{**TINY, "ops": ("none", "max_pool_3x3", "sep_conv_3x3", "conv_5x5")})
    params = {}
    for lam in (0.0, 1e3):
        result = search(SearchNetwork(cfg), *splits(data), epochs=3, lam=lam, batch_size=16, lr_alpha=0.05)
        params[lam] = DerivedNetwork(ArchitectureConfig.from_search(cfg, result.genotype)).num_parameters()
        if lam:
            assert {op for op, _ in result.genotype.normal + result.genotype.reduce} == {"max_pool_3x3"}
    floor = Genotype(normal=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2,
                     reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2)
    assert params[1e3] == DerivedNetwork(ArchitectureConfig.from_search(cfg, floor)).num_parameters()
    assert params[1e3] < params[0.0]


def test_a_huge_lambda_lowers_the_expected_complexity_over_all_ops(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    start = net.expected_complexity(normalize=True).item()
    result = search(net, *splits(data), epochs=3, lam=1e3, batch_size=16, lr_alpha=0.05)
    assert result.history[-1].complexity < start - 0.05
    assert all(op in PARAM_FREE for op, _ in result.genotype.normal)


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_the_skip_cap_holds_when_alpha_favours_skip(cap):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with torch.no_grad():
        net.alpha_normal[:, PRIMITIVES.index("skip_connect")] = 10.0
    assert n_skips(derive(net, max_skip=None).normal) == 4  # uncapped: every chosen edge is a skip
    genotype = derive(net, max_skip=cap)
    assert n_skips(genotype.normal) == cap
    assert len(genotype.normal) == 4 and "none" not in {op for op, _ in genotype.normal}


def test_search_applies_the_skip_guards_cap(data):
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with torch.no_grad():
        net.alpha_normal[:, PRIMITIVES.index("skip_connect")] = 10.0
    result = search(net, *splits(data), epochs=1, lam=0.0, batch_size=16, lr_alpha=1e-4,
                    skip_guard=SkipGuard(max_skip=1))
    assert n_skips(result.genotype.normal) == 1
    drops = [m.skip_drop.p for m in net.modules() if hasattr(m, "skip_drop")]
    assert drops and all(p == 0.0 for p in drops)  # the search's skip dropout is switched off after it


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


def test_derive_save_load_round_trips_exactly(data, tmp_path):
    x_train, t_train, _, _ = splits(data)
    cfg = SearchSpaceConfig(**TINY)
    genotype = derive(SearchNetwork(cfg))
    net = DerivedNetwork(ArchitectureConfig.from_search(cfg, genotype, channels=6, layers=3))
    losses = retrain(net, x_train, t_train, epochs=1, batch_size=16)  # moves the BN statistics too
    assert len(losses) == 1
    net.save(tmp_path / "student")
    stored = json.loads((tmp_path / "student" / "config.json").read_text())
    assert stored["channels"] == 6 and stored["layers"] == 3
    assert Genotype.from_json(json.dumps(stored["genotype"])) == genotype
    loaded = DerivedNetwork.load(tmp_path / "student")
    assert loaded.config == net.config and not loaded.training
    assert loaded.num_parameters() == net.num_parameters()
    assert torch.equal(loaded(x_train), net.eval()(x_train))


def test_genotype_json_round_trip():
    genotype = Genotype(
        normal=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2), ("conv_3x3", 0)],
        reduce=[["max_pool_3x3", 0], ["avg_pool_3x3", 1], ["skip_connect", 2], ["conv_5x5", 1]])
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert genotype.nodes == 2


def _saved(tmp_path):
    cfg = SearchSpaceConfig(**TINY)
    path = tmp_path / "student"
    DerivedNetwork(ArchitectureConfig.from_search(cfg, derive(SearchNetwork(cfg)))).save(path)
    return path


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        DerivedNetwork.load(tmp_path / "nowhere")
    path = _saved(tmp_path)
    (path / "weights.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="weights.safetensors"):
        DerivedNetwork.load(path)


def test_load_names_a_corrupt_file(tmp_path):
    path = _saved(tmp_path)
    (path / "weights.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="weights.safetensors"):
        DerivedNetwork.load(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        DerivedNetwork.load(path)


def test_load_refuses_a_config_that_does_not_match_the_weights(tmp_path):
    path = _saved(tmp_path)
    stored = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**stored, "channels": 6}))
    with pytest.raises(ModelLoadError, match="does not match the weights"):
        DerivedNetwork.load(path)
    (path / "config.json").write_text(json.dumps({**stored, "width": 6}))
    with pytest.raises(ModelLoadError, match="unknown fields"):
        DerivedNetwork.load(path)


def test_search_with_labels_adds_a_task_term(data):
    x, t, labels = data
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    result = search(net, x[:48], t[:48], x[48:], t[48:], epochs=1, batch_size=16, y_train=labels[:48],
                    y_val=labels[48:])
    assert len(result.history) == 1
    with pytest.raises(InputError, match="both splits"):
        search(net, x[:48], t[:48], x[48:], t[48:], epochs=1, y_train=labels[:48])


def test_lambda_front_and_its_plot(data, tmp_path):
    cfg = SearchSpaceConfig(**TINY)
    points = lambda_front(*splits(data), [0.0, 10.0], cfg, epochs=1, retrain_epochs=1, batch_size=16,
                          checkpoint=tmp_path / "ck")
    assert [p.lam for p in points] == [0.0, 10.0]
    for p in points:
        assert isinstance(p, FrontPoint) and isinstance(p.params, int) and p.params > 0
        assert -1.0 <= p.score <= 1.0
        assert p.params == DerivedNetwork(ArchitectureConfig.from_search(cfg, p.genotype)).num_parameters()
        assert (p.params, p.macs) == architecture_cost(p.network.config) and p.seconds > 0
        assert p.score == pytest.approx(kd_score(p.network, *splits(data)[2:]))  # the retrained net itself
        manifest = json.loads((tmp_path / "ck" / f"lam-{p.lam!r}" / "search.json").read_text())
        assert manifest["complete"] and manifest["settings"]["lam"] == p.lam  # one checkpoint per lambda
    png = plot_front(points, tmp_path / "plots" / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="at least one"):
        plot_front([], tmp_path / "empty.png")


@pytest.mark.parametrize("change,match", [
    ({"ops": ("none", "conv_7x7")}, "unknown op.*conv_7x7"),
    ({"ops": ("none",)}, "other than 'none'"),
    ({"ops": ("conv_3x3", "conv_3x3")}, "twice"),
    ({"nodes": 0}, "nodes must be an integer >= 1"),
    ({"image_size": 2, "reductions": 2, "layers": 3}, "image_size 2 is too small for 2 reductions"),
    ({"layers": 1, "reductions": 2}, "1 layers cannot hold 2 reduction"),
    ({"channels": 1}, "channels must be an integer >= 2"),
    ({"out_dim": 8.0}, "out_dim must be an integer"),
])
def test_bad_configs_raise_config_error(change, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpaceConfig(**{**TINY, **change})


@pytest.mark.parametrize("normal,match", [
    ((("none", 0), ("conv_3x3", 1)), "op 'none'"),
    ((("conv_9x9", 0), ("conv_3x3", 1)), "op 'conv_9x9'"),
    ((("conv_3x3", 0), ("conv_3x3", 2)), "reads input 2"),
    ((("conv_3x3", 0),), "two \\[op, input\\] pairs per node"),
])
def test_bad_genotypes_raise_config_error(normal, match):
    with pytest.raises(ConfigError, match=match):
        Genotype(normal=normal, reduce=(("conv_3x3", 0), ("conv_3x3", 1)))


def test_bad_data_raise_input_error(data):
    x, t, _ = data
    net = SearchNetwork(SearchSpaceConfig(**TINY))
    with pytest.raises(InputError, match="x_train holds 48 images but t_train 47"):
        search(net, x[:48], t[:47], x[48:], t[48:], epochs=1)
    with pytest.raises(InputError, match="the train split is empty"):
        search(net, x[:0], t[:0], x[48:], t[48:], epochs=1)
    with pytest.raises(InputError, match=r"t_val must be .*\[N, 8\]"):
        search(net, x[:48], t[:48], x[48:], t[48:, :4], epochs=1)
    with pytest.raises(InputError, match=r"\[N, 1, 16, 16\]"):
        net(torch.randn(2, 3, 16, 16))
    with pytest.raises(ConfigError, match="complexity must be one of params, macs"):
        search(net, x[:48], t[:48], x[48:], t[48:], epochs=1, complexity="flops")
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        search(net, x[:48], t[:48], x[48:], t[48:], epochs=0)
    with pytest.raises(ConfigError, match="max_skip"):
        SkipGuard(max_skip=-1)


# ----------------------------------------------------------------------------- the complexity budget

POOL_SPACE = {**TINY, "ops": ("none", "max_pool_3x3", "sep_conv_3x3", "conv_5x5")}
ALL_POOL = Genotype(normal=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2,
                    reduce=(("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2)


def _cost(cfg, genotype, complexity="params") -> int:
    arch = ArchitectureConfig.from_search(cfg, genotype)
    return architecture_cost(arch)[("params", "macs").index(complexity)]


def test_architecture_cost_counts_the_whole_network():
    cfg = SearchSpaceConfig(**TINY)
    arch = ArchitectureConfig.from_search(cfg, ALL_POOL)
    params, macs = architecture_cost(arch)
    assert params == DerivedNetwork(arch).num_parameters()
    # one op swapped in the normal cell (layers=2, reductions=1: cell 0 is normal, 16x16, C=4): the cost
    # moves by exactly that op's cost
    conv = Genotype(normal=(("conv_3x3", 0),) + ALL_POOL.normal[1:], reduce=ALL_POOL.reduce)
    delta = [a - b for a, b in zip(op_cost("conv_3x3", 4, 1, 16), op_cost("max_pool_3x3", 4, 1, 16))]
    assert [a - b for a, b in zip(architecture_cost(ArchitectureConfig.from_search(cfg, conv)),
                                  (params, macs))] == delta
    # the head counts too: one more output dimension adds its 16 inputs (2 nodes x 8 channels) as MACs
    wider = architecture_cost(dataclasses.replace(arch, out_dim=9))
    assert (wider[0] - params, wider[1] - macs) == (16 + 1, 16)


@pytest.mark.parametrize("complexity", ["params", "macs"])
def test_the_budget_tables_add_up_to_the_whole_network(complexity):
    cfg = SearchSpaceConfig(**{**TINY, "layers": 3})
    costs = darts._Costs(cfg, complexity, max_skip=None)
    g = torch.Generator().manual_seed(1)
    for _ in range(4):  # random architectures: the per-edge tables plus the fixed part are the whole cost
        net = SearchNetwork(cfg)
        with torch.no_grad():
            for alpha in net.arch_parameters():
                alpha.copy_(torch.randn(alpha.shape, generator=g))
        genotype = derive(net, max_skip=None)
        assert costs.total(genotype) == _cost(cfg, genotype, complexity)


def test_the_cheapest_architecture_is_the_floor_derive_can_reach():
    cfg = SearchSpaceConfig(**POOL_SPACE)
    arch, floor = cheapest_architecture(cfg, "params")
    assert arch.genotype == ALL_POOL and floor == _cost(cfg, ALL_POOL) == check_budget(cfg, floor)
    # MACs: skip (identity) is free in the normal cell, so the cap decides how many it may hold
    skips = SearchSpaceConfig(**{**TINY, "ops": ("none", "skip_connect", "conv_3x3")})
    capped, capped_floor = cheapest_architecture(skips, "macs", max_skip=1)
    free, free_floor = cheapest_architecture(skips, "macs", max_skip=None)
    assert n_skips(capped.genotype.normal) == 1 and n_skips(free.genotype.normal) == 4
    assert free_floor < capped_floor == _cost(skips, capped.genotype, "macs")


def test_a_hopeless_budget_fails_before_any_training_and_names_the_cheapest(data, tmp_path):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    floor = _cost(cfg, ALL_POOL)
    net = SearchNetwork(cfg)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    message = f"fits a budget of {floor - 1:,} parameters: the cheapest one derive can build has {floor:,}"
    with pytest.raises(ConfigError, match=message):
        search(net, *splits(data), epochs=1, batch_size=16, budget=floor - 1, checkpoint=tmp_path / "ck")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # not one step taken
    assert not (tmp_path / "ck").exists()
    with pytest.raises(ConfigError, match=message):
        derive(net, budget=floor - 1)
    with pytest.raises(ConfigError, match="cheapest one derive can build"):
        lambda_front(*splits(data), [0.0], cfg, epochs=1, budget=floor - 1, checkpoint=tmp_path / "ck")
    assert not (tmp_path / "ck").exists()
    macs_floor = _cost(cfg, cheapest_architecture(cfg, "macs")[0].genotype, "macs")
    with pytest.raises(ConfigError, match=f"cheapest one derive can build has {macs_floor:,} MACs"):
        check_budget(cfg, macs_floor - 1, "macs")
    for bad in (0, -5, float("nan"), True, "1e4"):
        with pytest.raises(ConfigError, match="budget must be a positive number"):
            search(net, *splits(data), epochs=1, budget=bad)


@pytest.mark.parametrize("complexity", ["params", "macs"])
def test_derive_picks_within_a_budget_the_plain_derivation_exceeds(complexity):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    net = SearchNetwork(cfg)
    with torch.no_grad():  # the costliest op strongest everywhere, sep_conv next
        for alpha in net.arch_parameters():
            alpha[:, cfg.ops.index("conv_5x5")] = 3.0
            alpha[:, cfg.ops.index("sep_conv_3x3")] = 2.0
    plain = derive(net)
    top, floor = _cost(cfg, plain, complexity), _cost(cfg, ALL_POOL, complexity)
    assert {op for op, _ in plain.normal + plain.reduce} == {"conv_5x5"}
    assert derive(net, budget=top, complexity=complexity) == plain  # within budget: untouched
    middle = (top + floor) // 2
    picked = derive(net, budget=middle, complexity=complexity)
    assert floor <= _cost(cfg, picked, complexity) <= middle and picked != plain
    assert "conv_5x5" in {op for op, _ in picked.normal + picked.reduce}  # keeps what it can afford
    assert _cost(cfg, derive(net, budget=floor, complexity=complexity), complexity) == floor


def test_search_with_a_budget_derives_within_it(data):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    plain = search(SearchNetwork(cfg), *splits(data), epochs=1, batch_size=16)
    budget = _cost(cfg, plain.genotype) - 1
    if budget < _cost(cfg, ALL_POOL):  # the plain search already found the floor: nothing to cut
        pytest.skip("plain derivation at the floor")
    result = search(SearchNetwork(cfg), *splits(data), epochs=1, batch_size=16, budget=budget)
    assert result.history == plain.history  # the budget acts only at derivation
    assert _cost(cfg, result.genotype) <= budget


# ----------------------------------------------------------------------------- checkpoint and resume

def _search(cfg, data, **kw):
    x, t, labels = data
    net = SearchNetwork(cfg)
    result = search(net, x[:48], t[:48], x[48:], t[48:], y_train=labels[:48], y_val=labels[48:],
                    batch_size=16, lr_alpha=0.05, **{"epochs": 2, **kw})
    return net, result


def _interrupt_after(monkeypatch, epoch: int) -> list[int]:
    """Make the checkpoint writer die right after writing ``epoch`` (like a kill); returns the epochs
    written."""
    saved, original = [], darts._save_checkpoint

    def save(folder, manifest, tensors):
        original(folder, manifest, tensors)
        saved.append(manifest["epoch"])
        if manifest["epoch"] == epoch:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(darts, "_save_checkpoint", save)
    return saved


def test_an_interrupted_search_resumes_to_the_uninterrupted_result(data, tmp_path, monkeypatch):
    # three epochs, killed after the first: the resumed run must also carry the schedule past its step
    cfg = SearchSpaceConfig(**TINY)
    whole, expected = _search(cfg, data, epochs=3)  # no checkpoint at all
    saved = _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _search(cfg, data, epochs=3, checkpoint=tmp_path / "ck")
    files = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert saved == [1] and files == ["search.json", "state-0001.safetensors"]
    manifest = json.loads((tmp_path / "ck" / "search.json").read_text())
    assert manifest["epoch"] == 1 and not manifest["complete"] and len(manifest["history"]) == 1
    saved.clear()
    resumed, result = _search(cfg, data, epochs=3, checkpoint=tmp_path / "ck")
    assert saved == [2, 3] and result.resumed_from == 1  # the first epoch did not run again
    assert torch.equal(resumed.alpha_normal, whole.alpha_normal)
    assert torch.equal(resumed.alpha_reduce, whole.alpha_reduce)
    state, other = resumed.state_dict(), whole.state_dict()
    assert all(torch.equal(state[k], other[k]) for k in other)  # weights and BN statistics too
    assert result.history == expected.history and result.genotype == expected.genotype
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["search.json", "state-0003.safetensors"]


def test_a_finished_checkpoint_is_rederived_without_training(data, tmp_path, monkeypatch):
    cfg = SearchSpaceConfig(**POOL_SPACE)
    _, first = _search(cfg, data, epochs=1, checkpoint=tmp_path / "ck")
    saved = _interrupt_after(monkeypatch, -1)
    budget = _cost(cfg, ALL_POOL)
    _, again = _search(cfg, data, epochs=1, checkpoint=tmp_path / "ck", budget=budget,
                       skip_guard=SkipGuard(max_skip=0))
    assert saved == [] and again.resumed_from == 1 and again.history == first.history
    # only parameter-free cells fit the floor: pools on every edge (on whichever inputs alpha prefers)
    assert {op for op, _ in again.genotype.normal + again.genotype.reduce} == {"max_pool_3x3"}
    assert _cost(cfg, again.genotype) == budget


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("change,message", [
    ({"lam": 0.5}, "lam was 0.0, now 0.5"),
    ({"epochs": 3}, "epochs was 2, now 3"),
    ({"seed": 1}, "seed was 0, now 1"),
    ({"skip_guard": SkipGuard(dropout=0.1)}, "skip_guard.dropout was 0.3, now 0.1"),
    ({"space": {"channels": 6}}, "space.channels was 4, now 6"),
    ({"data": True}, "data was [0-9a-f]{12}[.][.][.], now [0-9a-f]{12}[.][.][.] \\(the images"),
])
def test_a_checkpoint_of_other_settings_is_refused_and_left_as_is(data, tmp_path, change, message):
    cfg = SearchSpaceConfig(**TINY)
    _search(cfg, data, checkpoint=tmp_path / "ck")
    before = _snapshot(tmp_path / "ck")
    change = dict(change)
    other_cfg = SearchSpaceConfig(**{**TINY, **change.pop("space", {})})
    x, t, labels = data
    if change.pop("data", False):
        x = x.flip(0)
    net = SearchNetwork(other_cfg)
    alphas = [a.clone() for a in net.arch_parameters()]
    with pytest.raises(ConfigError, match=message):
        search(net, x[:48], t[:48], x[48:], t[48:], y_train=labels[:48], y_val=labels[48:], batch_size=16,
               lr_alpha=0.05, checkpoint=tmp_path / "ck", **{"epochs": 2, **change})
    assert _snapshot(tmp_path / "ck") == before
    assert all(torch.equal(a, b) for a, b in zip(net.arch_parameters(), alphas))


def test_a_broken_checkpoint_is_named(data, tmp_path):
    cfg = SearchSpaceConfig(**TINY)
    folder = tmp_path / "ck"
    _search(cfg, data, epochs=1, checkpoint=folder)
    (folder / "state-0001.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="state file state-0001.safetensors is missing"):
        _search(cfg, data, epochs=1, checkpoint=folder)
    (folder / "state-0001.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="cannot resume from the checkpoint"):
        _search(cfg, data, epochs=1, checkpoint=folder)
    (folder / "search.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not a readable search checkpoint"):
        _search(cfg, data, epochs=1, checkpoint=folder)
    (folder / "search.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ModelLoadError, match="not a KDL-DARTS search checkpoint"):
        _search(cfg, data, epochs=1, checkpoint=folder)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        _search(cfg, data, epochs=1, checkpoint=tmp_path / "file")
