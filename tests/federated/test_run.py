"""ragsc.federated.run: the in-process engine's inputs, a run that learns, the centralised reference."""

from __future__ import annotations

import pytest
import torch

from ragsc.errors import InputError
from ragsc.federated.run import centralised_spec, inprocess, run_federated

pytestmark = pytest.mark.usefixtures("one_thread")


def test_explicit_client_data_with_an_empty_client_is_refused(tiny_spec):
    x = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    data = {0: (x, torch.arange(4)), 1: (x[:0], torch.zeros(0, dtype=torch.int64))}
    with pytest.raises(InputError, match="client 1 has no data"):
        inprocess(tiny_spec(), client_data=data)


def test_a_tiny_run_learns(tiny_spec):
    spec = tiny_spec(data={"n_train": 600}, clients={"n": 3, "alpha": 0.5},
                     train={"rounds": 3, "local_epochs": 2, "batch_size": 32, "lr": 1e-2, "server_lr": 3e-3})
    result = run_federated(spec)
    assert result.initial_accuracy < 0.2
    assert result.accuracy > 0.3  # 10 classes: chance is 0.1
    assert result.rounds[-1].train_loss < result.rounds[0].train_loss


def test_centralised_reference_is_one_client_with_everything(tiny_spec):
    spec = tiny_spec(clients={"n": 5, "fraction": 0.4, "dropout": 0.2},
                     train={"rounds": 7, "local_epochs": 2})
    c = centralised_spec(spec)
    assert (c.clients.n, c.clients.fraction, c.clients.dropout, c.engine) == (1, 1.0, 0.0, "inprocess")
    assert c.train.rounds == 7 and c.train.local_epochs == 1  # a round of the one client: one epoch
    assert c.lora == spec.lora and c.channel == spec.channel
    assert centralised_spec(spec, 3).train.rounds == 3
    assert centralised_spec(tiny_spec(train={"central_epochs": 4})).train.rounds == 4
