"""ragsc.federated.coordinator: rounds, byte accounting, FedAvg in the loop, dropouts, seeded sampling,
calibration."""

from __future__ import annotations

import math

import pytest
import torch

from ragsc.federated.client import Client
from ragsc.federated.protocol import Begin, ReceivedBatch, Update
from ragsc.federated.run import inprocess
from ragsc.federated.server import fedavg

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bytes_per_round_are_the_tensor_sizes(tiny_spec):
    spec = tiny_spec(clients={"n": 3, "fraction": 1.0}, train={"local_epochs": 2, "batch_size": 32})
    co = inprocess(spec)
    rep = co.run_round(1)
    sizes = {c: client.n_examples for c, client in co.transport.clients.items()}
    k, adapters = spec.channel.k_symbols, (co.model.num_trainable() + co.model.center.numel()) * 4
    items = 2 * sum(sizes.values())  # every item twice (two local epochs)
    assert rep.participants == [0, 1, 2] and rep.completed == [0, 1, 2] and not rep.dropped
    assert rep.uplink == {"symbols": items * k * 8, "labels": items * 8, "csi": 0, "adapters": 3 * adapters}
    assert rep.downlink == {"gradients": items * k * 8, "adapters": 3 * adapters}
    assert rep.full_fedavg_uplink == 3 * co.model.num_parameters() * 4
    assert rep.uplink_ratio == pytest.approx(rep.uplink_bytes / rep.full_fedavg_uplink)


def test_fading_channels_count_the_csi(tiny_spec):
    spec = tiny_spec(channel={"channel": "rayleigh", "k_symbols": 4})
    co = inprocess(spec)
    rep = co.run_round(1)
    items = sum(c.n_examples for c in co.transport.clients.values())
    assert rep.uplink["csi"] == items * 8  # block fading: one complex coefficient per item


def test_the_server_only_ever_receives_symbols(tiny_spec, monkeypatch):
    spec = tiny_spec(clients={"dropout": 0.3}, train={"rounds": 2})
    co = inprocess(spec)
    seen = []
    for name in ("step", "predict"):
        original = getattr(co.server, name)

        def spy(received, _original=original):
            seen.append(received)
            return _original(received)

        monkeypatch.setattr(co.server, name, spy)
    co.run()
    assert seen and all(isinstance(r, ReceivedBatch) for r in seen)
    assert all(r.y.is_complex() and r.y.ndim == 2 and r.y.shape[1] == spec.channel.k_symbols for r in seen)
    assert all(r.labels.ndim == 1 and (r.h is None or r.h.is_complex()) for r in seen)


def _record_updates(co) -> dict:
    """The clients' Update replies of ``co``'s rounds, by client id (filled as rounds run)."""
    updates = {}
    original = co.transport.exchange

    def spy(messages):
        replies = original(messages)
        updates.update({c: r for c, r in replies.items() if isinstance(r, Update)})
        return replies

    co.transport.exchange = spy
    return updates


def test_global_adapters_are_the_size_weighted_average(tiny_spec):
    spec = tiny_spec(clients={"n": 3, "alpha": 0.3})
    co = inprocess(spec)
    updates = _record_updates(co)
    co.run_round(1)
    sizes = [updates[c].n_examples for c in sorted(updates)]
    assert len(set(sizes)) > 1  # unequal clients, so the weighting matters
    expected = fedavg([(updates[c].weights, updates[c].n_examples) for c in sorted(updates)])
    plain = {k: sum(u.weights[k] for u in updates.values()) / len(updates) for k in expected}
    for k, v in co.weights.items():
        assert torch.allclose(v, expected[k])
    assert any(not torch.allclose(co.weights[k], plain[k]) for k in expected)


def test_server_momentum_is_fedavgm(tiny_spec):
    co = inprocess(tiny_spec(train={"server_momentum": 0.5}))
    co.calibrate()
    updates = _record_updates(co)
    w0 = {k: v.clone() for k, v in co.weights.items()}
    deltas = []
    for r in (1, 2):
        start = {k: v.clone() for k, v in co.weights.items()}
        updates.clear()
        co.run_round(r)
        avg = fedavg([(u.weights, u.n_examples) for _, u in sorted(updates.items())])
        deltas.append({k: avg[k] - start[k] for k in avg})
    for k in w0:
        expected = w0[k] + deltas[0][k] + (0.5 * deltas[0][k] + deltas[1][k])
        assert torch.allclose(co.weights[k], expected, atol=1e-6), k
    assert any(d.abs().sum() > 0 for d in deltas[1].values())


def test_learning_rates_decay_per_round(tiny_spec):
    co = inprocess(tiny_spec(train={"lr": 0.01, "server_lr": 0.002, "lr_decay": 0.5}))
    co.run_round(3)
    assert co.server.optimizer.param_groups[0]["lr"] == pytest.approx(0.002 * 0.25)
    client = co.transport.clients[0]
    client.handle(Begin(3, co.weights))
    assert client.optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.25)


class _DropsMidRound(Client):
    def drop_at(self, round_):
        return 2 if self.cid == 1 else None


class _Raises(Client):
    def _gradient(self, msg):
        if self.cid == 2:
            raise RuntimeError("disk full")
        return super()._gradient(msg)


def test_a_client_that_drops_mid_round_does_not_spoil_it(tiny_spec):
    spec = tiny_spec(clients={"n": 3}, train={"batch_size": 16})
    co = inprocess(spec, client_factory=_DropsMidRound)
    rep = co.run_round(1)
    assert rep.completed == [0, 2] and list(rep.dropped) == [1]
    assert "after sending 2 of" in rep.dropped[1]
    assert rep.skipped is None and rep.uplink["adapters"] == 2 * (co.model.num_trainable() + 12) * 4
    full_items = sum(co.transport.clients[c].n_examples for c in (0, 2)) + 2 * 16
    assert rep.uplink["symbols"] == full_items * spec.channel.k_symbols * 8  # its 2 batches were sent


class _OtherBase(Client):
    def _gradient(self, msg):
        reply = super()._gradient(msg)
        if isinstance(reply, Update) and self.cid == 0:
            reply.fingerprint = "feedfacefeedface"
        return reply


def test_an_update_from_another_base_is_refused_naming_both(tiny_spec):
    co = inprocess(tiny_spec(clients={"n": 3}), client_factory=_OtherBase)
    rep = co.run_round(1)
    assert rep.completed == [1, 2] and "update refused" in rep.dropped[0]
    assert "feedfacefeedface" in rep.dropped[0] and co.model.base_fingerprint in rep.dropped[0]


def test_a_client_that_raises_is_dropped(tiny_spec):
    co = inprocess(tiny_spec(clients={"n": 3}), client_factory=_Raises)
    rep = co.run_round(1)
    assert rep.completed == [0, 1] and "RuntimeError: disk full" in rep.dropped[2]


def test_a_round_where_every_client_drops_is_skipped_and_reported(tiny_spec):
    spec = tiny_spec(clients={"dropout": 1.0}, train={"rounds": 2})
    co = inprocess(spec)
    before = {k: v.clone() for k, v in co.weights.items()}
    result = co.run()
    assert [r.skipped is not None for r in result.rounds] == [True, True]
    assert "all 3 participating clients dropped" in result.rounds[0].skipped
    # every adapter as it was (the centre is set by the calibration before round 1)
    assert all(torch.equal(before[k], v) for k, v in co.weights.items() if k != "center")
    assert result.summary()["skipped_rounds"] == 2 and not math.isnan(result.accuracy)


def test_partial_participation_is_seeded(tiny_spec):
    co = inprocess(tiny_spec(clients={"n": 6, "fraction": 0.5}, data={"n_train": 300}))
    draws = [co.sample(r) for r in range(1, 6)]
    assert all(len(d) == 3 for d in draws) and len({tuple(d) for d in draws}) > 1
    assert draws == [co.sample(r) for r in range(1, 6)]


def test_calibration_centres_the_transmitter_input(tiny_spec):
    co = inprocess(tiny_spec())
    sent = co.calibrate()
    feats = torch.cat([c.features for c in co.transport.clients.values()])
    with torch.no_grad():
        mean = co.model.embed(feats).mean(0)
    assert torch.allclose(co.weights["center"], mean, atol=1e-5) and mean.abs().sum() > 0
    assert sent == 3 * 12 * 8  # one float64 sum per client
    off = inprocess(tiny_spec(train={"center": False})).run()
    assert off.calibration_bytes == 0 and torch.equal(off.model.center, torch.zeros(12))
