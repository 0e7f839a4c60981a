"""ragsc.federated.client: refusing a client without data, the drop plan, state carried between messages."""

from __future__ import annotations

import pytest
import torch

from ragsc.errors import InputError
from ragsc.federated.client import Client
from ragsc.federated.model import load_base
from ragsc.federated.protocol import Begin, Dropped, Gradient, Update, Upload
from ragsc.federated.setup import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _client(spec, n=40, cid=0):
    model = build_model(spec, load_base(spec.base))
    g = torch.Generator().manual_seed(0)  # the same items for every client built here
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    return Client.from_images(cid, spec, model, images, torch.arange(n) % 10)


def test_a_client_without_data_is_refused(tiny_spec):
    spec = tiny_spec()
    with pytest.raises(InputError, match="client 4 has no data"):
        Client.from_images(4, spec, build_model(spec, load_base(spec.base)),
                           torch.zeros(0, 3, 16, 16, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))


def test_batches_cover_the_data_once_per_local_epoch(tiny_spec):
    c = _client(tiny_spec(train={"local_epochs": 2, "batch_size": 16}), n=40)
    batches = c.batches(1)
    assert len(batches) == c.n_batches() == 6
    assert sorted(torch.cat(batches[:3]).tolist()) == list(range(40))
    assert not torch.equal(torch.cat(c.batches(2)), torch.cat(batches))  # another round, another order


def test_drop_plan_is_seeded_and_follows_the_rate(tiny_spec):
    never, always = _client(tiny_spec(clients={"dropout": 0.0})), _client(tiny_spec(clients={"dropout": 1.0}))
    assert all(never.drop_at(r) is None for r in range(50))
    points = [always.drop_at(r) for r in range(50)]
    assert all(1 <= p <= always.n_batches() for p in points)
    assert points == [always.drop_at(r) for r in range(50)]
    half = _client(tiny_spec(clients={"dropout": 0.5}))
    share = sum(half.drop_at(r) is not None for r in range(400)) / 400
    assert 0.4 < share < 0.6


def _play(client, server_grad, restore=None):
    """Drive a client through one round with fixed fake gradients; ``restore`` rebuilds it from its exported
    state before every gradient (a Flower client on another worker)."""
    reply = client.handle(Begin(1, client.model.get_weights()))
    sent = []
    while isinstance(reply, Upload):
        sent.append(reply.received.y)
        if restore is not None:
            client = restore(client.export_state())
        reply = client.handle(Gradient(1, reply.step, server_grad(reply.received.y)))
    return reply, sent


def test_a_client_restored_from_its_state_continues_identically(tiny_spec):
    spec = tiny_spec(train={"batch_size": 16})

    def grad(y):
        return 0.1 * y.conj()

    plain, sent_a = _play(_client(spec), grad)

    def restore(state):
        fresh = _client(spec)  # new object: no pending graph, initial weights
        fresh.import_state(state)
        return fresh

    restored, sent_b = _play(_client(spec), grad, restore)
    assert isinstance(plain, Update) and isinstance(restored, Update)
    assert all(torch.equal(a, b) for a, b in zip(sent_a, sent_b))
    for k, v in plain.weights.items():
        assert torch.allclose(v, restored.weights[k], atol=1e-6), k
    initial = _client(spec).model.get_weights()
    assert any(not torch.equal(v, initial[k]) for k, v in plain.weights.items())  # it did train


def test_a_planned_dropout_answers_dropped(tiny_spec):
    spec = tiny_spec(clients={"dropout": 1.0}, train={"batch_size": 16})
    c = _client(spec)
    at = c.drop_at(1)
    reply, sent = _play(c, lambda y: torch.zeros_like(y))
    assert isinstance(reply, Dropped) and len(sent) == at
    assert ("before returning its update" in reply.reason) == (at == c.n_batches())


def test_out_of_order_gradient_is_refused(tiny_spec):
    c = _client(tiny_spec())
    up = c.handle(Begin(1, c.model.get_weights()))
    with pytest.raises(InputError, match="waits for round 1 step 0"):
        c.handle(Gradient(1, 3, torch.zeros_like(up.received.y)))
