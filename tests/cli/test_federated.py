"""``ragsc federated run`` (ragsc/cli/federated.py): the happy path (a table, files in --out) and user
mistakes as one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli._process import ragsc

pytestmark = pytest.mark.usefixtures("one_thread")


def _spec_file(tmp_path, tiny_base, **extra) -> Path:
    spec = {"base": tiny_base, "data": {"dataset": "fashion-mnist", "n_train": 200, "n_test": 100},
            "clients": {"n": 2, "alpha": 1.0}, "train": {"rounds": 2}, "channel": {"k_symbols": 4}, **extra}
    f = tmp_path / "fed.yaml"
    f.write_text(yaml.safe_dump(spec))
    return f


def test_run_prints_rounds_and_writes_adapters(cli, tmp_path, tiny_base):
    from ragsc.federated.model import load_adapters, load_base
    from ragsc.federated.setup import build_model

    out = tmp_path / "out"
    spec_file = _spec_file(tmp_path, tiny_base)
    code, stdout, err = cli("federated", "run", str(spec_file), "--out", str(out), "--centralised")
    assert code == 0, err
    assert "uplink / full FedAvg" in stdout and "federated / centralised" in stdout
    assert len([ln for ln in stdout.splitlines() if ln.lstrip("| ").startswith(("1 ", "2 "))]) >= 2
    for name in ("model/config.json", "model/model.safetensors", "history.json", "history.csv",
                 "accuracy.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "history.json").read_text())
    assert len(history["rounds"]) == 2 and history["summary"]["clients"] == 2
    from ragsc.federated.config import load_spec

    spec = load_spec(tmp_path / "fed.yaml")
    meta = load_adapters(out / "model", build_model(spec, load_base(spec.base)))
    assert meta["info"]["command"].startswith("ragsc federated run")


def test_run_says_what_the_accuracy_is_measured_on(cli, tmp_path, tiny_base):
    spec = _spec_file(tmp_path, tiny_base, data={"dataset": "fashion-mnist", "n_train": 200, "n_test": 100,
                                                 "n_val": 50, "evaluate_on": "validation"})
    code, stdout, err = cli("federated", "run", str(spec), "--rounds", "1")
    assert code == 0, err
    assert "accuracy on the 50 validation items held back from the clients" in stdout
    code, stdout, err = cli("federated", "run", str(_spec_file(tmp_path, tiny_base)), "--rounds", "1")
    assert code == 0, err
    assert "accuracy on the 100 test items" in stdout


def test_bad_spec_is_one_error_line(cli, tmp_path, tiny_base):
    f = _spec_file(tmp_path, tiny_base, clients={"n": 2, "alpha": -1})
    code, _, err = cli("federated", "run", str(f))
    assert code == 2 and err.startswith("error:") and "clients.alpha" in err
    code, _, err = cli("federated", "run", str(_spec_file(tmp_path, tiny_base)), "--engine", "spark")
    assert code == 2 and "engine" in err and "flower-sim" in err
    code, _, err = cli("federated", "run", str(tmp_path / "missing.yaml"))
    assert code == 2 and "federated spec not found" in err


def test_run_error_in_a_fresh_process(tmp_path):
    """The console entry: a base that is not a student is one error line, no traceback."""
    f = tmp_path / "fed.yaml"
    f.write_text("base: embedded\n")
    out = ragsc("federated", "run", f)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "student:embedded" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", ["run", "server"])
def test_out_is_refused_before_any_training(cli, tmp_path, forbid, monkeypatch, command):
    """A folder that holds something (once overwritten silently, after the training), a file, a path under
    a file: one error line before the spec is read, Flower imported or a round run."""
    import sys
    import types

    import ragsc.federated
    import ragsc.federated.config

    forbid(ragsc.federated, "run_federated")
    forbid(ragsc.federated.config, "load_spec")
    flower = types.ModuleType("ragsc.federated.flower")  # Flower itself is never imported
    flower.serve = None
    forbid(flower, "serve")
    monkeypatch.setitem(sys.modules, "ragsc.federated.flower", flower)
    spec = tmp_path / "fed.yaml"
    spec.write_text("base: embedded\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "history.json").write_text("{}")
    (tmp_path / "file").write_text("keep")
    cases = {tmp_path / "old": "is not empty; name a new or empty folder",
             tmp_path / "file": "is a file, not a folder", tmp_path / "file" / "run": "lies under"}
    for out, problem in cases.items():
        code, _, err = cli("federated", command, str(spec), "--out", str(out))
        assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
        assert "Traceback" not in err and err.count("\n") == 1
    assert (tmp_path / "old" / "history.json").read_text() == "{}"
    assert (tmp_path / "file").read_text() == "keep"
