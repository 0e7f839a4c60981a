"""ragsc.federated.flower.runners: the same run over Flower's simulation engine (Ray) and over gRPC on
localhost.

Each engine is checked against the in-process run of the same spec: same seeds, so the same clients
are drawn, drop at the same step and the accuracy agrees (up to float rounding across processes).
"""

from __future__ import annotations

import pytest

pytest.importorskip("flwr")

from ragsc.federated import flower  # noqa: E402
from ragsc.federated.run import run_federated  # noqa: E402


def _same_run(a, b):
    assert abs(a.initial_accuracy - b.initial_accuracy) <= 0.02
    assert len(a.rounds) == len(b.rounds)
    for ra, rb in zip(a.rounds, b.rounds):
        assert (ra.participants, ra.completed, ra.dropped) == (rb.participants, rb.completed, rb.dropped)
        assert ra.uplink == rb.uplink and ra.downlink == rb.downlink
        assert abs(ra.accuracy - rb.accuracy) <= 0.02
    assert a.calibration_bytes == b.calibration_bytes


def test_simulation_engine_matches_in_process(tiny_spec):
    spec = tiny_spec(clients={"n": 3, "dropout": 0.3}, train={"rounds": 1})
    local = run_federated(spec, "inprocess")
    assert any(r.dropped for r in local.rounds)  # the comparison covers a dropout
    sim = flower.run_simulation(spec, num_cpus=2)
    assert sim.engine == "flower-sim"
    _same_run(local, sim)


def test_grpc_engine_matches_in_process(tiny_spec, tmp_path):
    spec = tiny_spec(clients={"n": 2}, train={"rounds": 1})
    local = run_federated(spec, "inprocess")
    remote = flower.run_grpc(spec, log_dir=tmp_path)
    assert remote.engine == "flower-grpc"
    _same_run(local, remote)
    assert sorted(p.name for p in tmp_path.glob("client-*.log")) == ["client-0.log", "client-1.log"]
