"""ragsc.distill.darts.checkpoint: the derived network's save / load; the search's checkpoint and resume.

Tiny sizes throughout (see ``_util.py``): each search takes seconds.
"""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.distill.darts import (
    ArchitectureConfig,
    DerivedNetwork,
    Genotype,
    SearchNetwork,
    SearchSpaceConfig,
    SkipGuard,
    derive,
    retrain,
    search,
    searching,
)
from ragsc.errors import ConfigError, ModelLoadError

from ._util import ALL_POOL, POOL_SPACE, TINY, splits, whole_cost

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


def test_derive_save_load_round_trips_exactly(data, tmp_path):
    x_train, t_train, _, _ = splits(data)
    cfg = SearchSpaceConfig(**TINY)
    genotype = derive(SearchNetwork(cfg))
    net = DerivedNetwork(ArchitectureConfig.from_search(cfg, genotype, channels=6, layers=3))
    losses = retrain(net, x_train, t_train, epochs=1, batch_size=16)  # moves the BN statistics too
    assert len(losses) == 1
    net.save(tmp_path / "student")
    header = json.loads((tmp_path / "student" / "config.json").read_text())
    assert header["kind"] == "darts-network" and header["format_version"] == 1
    stored = header["config"]
    assert stored["channels"] == 6 and stored["layers"] == 3
    assert Genotype.from_json(json.dumps(stored["genotype"])) == genotype
    loaded = DerivedNetwork.load(tmp_path / "student")
    assert loaded.config == net.config and not loaded.training
    assert loaded.num_parameters() == net.num_parameters()
    assert torch.equal(loaded(x_train), net.eval()(x_train))


def _saved(tmp_path):
    cfg = SearchSpaceConfig(**TINY)
    path = tmp_path / "student"
    DerivedNetwork(ArchitectureConfig.from_search(cfg, derive(SearchNetwork(cfg)))).save(path)
    return path


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="config.json"):
        DerivedNetwork.load(tmp_path / "nowhere")
    path = _saved(tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        DerivedNetwork.load(path)


def test_load_names_a_corrupt_file(tmp_path):
    path = _saved(tmp_path)
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="model.safetensors"):
        DerivedNetwork.load(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        DerivedNetwork.load(path)


def test_load_refuses_a_config_that_does_not_match_the_weights(tmp_path):
    path = _saved(tmp_path)
    stored = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**stored, "config": {**stored["config"], "channels": 6}}))
    with pytest.raises(ModelLoadError, match="has shape"):
        DerivedNetwork.load(path)
    (path / "config.json").write_text(json.dumps({**stored, "config": {**stored["config"], "width": 6}}))
    with pytest.raises(ModelLoadError, match="unknown fields"):
        DerivedNetwork.load(path)


@pytest.mark.parametrize(("changes", "match"), [
    ({"channels": 2 ** 20}, "channels must be at most 1024"),
    ({"layers": 65}, "layers must be at most 64"),
    ({"out_dim": -8}, "out_dim must be an integer >= 1"),
    ({"channels": 1024, "reductions": 4, "layers": 5, "image_size": 16}, "at most 8192"),
])
def test_load_refuses_sizes_beyond_the_bounds_by_name(tmp_path, changes, match):
    """A saved network's config asking for sizes of 2^20 (or 65 cells) is refused before it is built."""
    path = _saved(tmp_path)
    stored = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**stored, "config": {**stored["config"], **changes}}))
    with pytest.raises(ModelLoadError, match="invalid architecture config: .*" + match):
        DerivedNetwork.load(path)


def _search(cfg, data, **kw):
    x, t, labels = data
    net = SearchNetwork(cfg)
    result = search(net, x[:48], t[:48], x[48:], t[48:], y_train=labels[:48], y_val=labels[48:],
                    batch_size=16, lr_alpha=0.05, **{"epochs": 2, **kw})
    return net, result


def _interrupt_after(monkeypatch, epoch: int) -> list[int]:
    """Make the checkpoint writer die right after writing ``epoch`` (like a kill); returns the epochs
    written."""
    saved, original = [], searching.save_checkpoint

    def save(folder, manifest, tensors):
        original(folder, manifest, tensors)
        saved.append(manifest["epoch"])
        if manifest["epoch"] == epoch:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(searching, "save_checkpoint", save)
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
    budget = whole_cost(cfg, ALL_POOL)
    _, again = _search(cfg, data, epochs=1, checkpoint=tmp_path / "ck", budget=budget,
                       skip_guard=SkipGuard(max_skip=0))
    assert saved == [] and again.resumed_from == 1 and again.history == first.history
    # only parameter-free cells fit the floor: pools on every edge (on whichever inputs alpha prefers)
    assert {op for op, _ in again.genotype.normal + again.genotype.reduce} == {"max_pool_3x3"}
    assert whole_cost(cfg, again.genotype) == budget


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
