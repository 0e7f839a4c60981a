"""ragsc.federated.flower: the same run over Flower's simulation engine (Ray) and over gRPC on localhost.

Each engine is checked against the in-process run of the same spec: same seeds, so the same clients
are drawn, drop at the same step and the accuracy agrees (up to float rounding across processes).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("flwr")

from ragsc.errors import ConfigError  # noqa: E402
from ragsc.federated import flower  # noqa: E402
from ragsc.federated.engine import run_federated  # noqa: E402
from ragsc.federated.protocol import (  # noqa: E402
    Begin,
    Calibrate,
    Dropped,
    Evaluate,
    Gradient,
    Received,
    Stats,
    Update,
    Upload,
)


def _same_run(a, b):
    assert abs(a.initial_accuracy - b.initial_accuracy) <= 0.02
    assert len(a.rounds) == len(b.rounds)
    for ra, rb in zip(a.rounds, b.rounds):
        assert (ra.participants, ra.completed, ra.dropped) == (rb.participants, rb.completed, rb.dropped)
        assert ra.uplink == rb.uplink and ra.downlink == rb.downlink
        assert abs(ra.accuracy - rb.accuracy) <= 0.02
    assert a.calibration_bytes == b.calibration_bytes


def test_messages_survive_flower_encoding():
    keys = ["b", "a", "center"]
    w = {k: torch.randn(3, 2) for k in keys}
    g = torch.randn(5, 4, dtype=torch.complex64)
    for msg in (Begin(2, w), Evaluate(3, w)):
        back = flower.decode_message(flower.encode_message(msg), keys)
        assert type(back) is type(msg) and back.round == msg.round
        assert all(torch.equal(back.weights[k], w[k]) for k in keys)
    back = flower.decode_message(flower.encode_message(Gradient(2, 7, g)), keys)
    assert back.step == 7 and torch.equal(back.grad, g)
    assert isinstance(flower.decode_message(flower.encode_message(Calibrate()), keys), Calibrate)
    r = Received(g, torch.arange(5), 0.25, torch.randn(5, 1, dtype=torch.complex64))
    up = flower.decode_reply(flower.encode_reply(Upload(3, r)), keys)
    assert up.step == 3 and torch.equal(up.received.y, r.y) and torch.equal(up.received.h, r.h)
    assert torch.equal(up.received.labels, r.labels) and up.received.no == 0.25
    upd = flower.decode_reply(flower.encode_reply(Update(w, 9, "fp")), keys)
    assert upd.n_examples == 9 and upd.fingerprint == "fp"
    assert all(torch.equal(upd.weights[k], w[k]) for k in keys)
    st = flower.decode_reply(flower.encode_reply(Stats(torch.arange(4.0, dtype=torch.float64), 4)), keys)
    assert st.count == 4 and torch.equal(st.total, torch.arange(4.0, dtype=torch.float64))
    assert flower.decode_reply(flower.encode_reply(Dropped("gone")), keys).reason == "gone"


class _Proxy:
    def __init__(self, partition, digest, fail=False):
        self.partition, self.digest, self.fail = partition, digest, fail

    def get_properties(self, ins, timeout, group_id):
        from flwr.common import Code, GetPropertiesRes, Status

        return GetPropertiesRes(Status(Code.OK, ""), {"partition": self.partition, "digest": self.digest})

    def fit(self, ins, timeout, group_id):
        raise ConnectionError("socket closed")


class _Manager:
    def __init__(self, proxies):
        self.proxies = proxies

    def wait_for(self, n, timeout):
        return len(self.proxies) >= n

    def num_available(self):
        return len(self.proxies)

    def all(self):
        return {str(i): p for i, p in enumerate(self.proxies)}


def test_a_client_with_another_spec_is_refused(tiny_spec):
    spec = tiny_spec(clients={"n": 2})
    server = flower.SplitServer(spec)
    server._client_manager = _Manager([_Proxy(0, spec.digest()), _Proxy(1, "0123456789abcdef")])
    with pytest.raises(ConfigError, match="client 1 runs another spec"):
        server._run()


def test_a_lost_connection_is_a_dropped_client():
    transport = flower.FlowerTransport({0: _Proxy(0, "x")}, ["w"], timeout=5)
    reply = transport.exchange({0: Calibrate()})[0]
    assert isinstance(reply, Dropped) and "ConnectionError: socket closed" in reply.reason


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
