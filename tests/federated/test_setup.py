"""ragsc.federated.setup: the items every party derives from the spec (clients' shares, validation, held-out
set)."""

from __future__ import annotations

import pytest
import torch

from ragsc.errors import InputError
from ragsc.federated.data import load_images
from ragsc.federated.model import load_base
from ragsc.federated.protocol import EVALUATOR
from ragsc.federated.run import inprocess
from ragsc.federated.setup import client_items, image_size, partition, train_items

pytestmark = pytest.mark.usefixtures("one_thread")


def test_validation_items_are_held_back_from_the_clients(tiny_spec):
    spec = tiny_spec(data={"n_val": 50, "evaluate_on": "validation"})
    co = inprocess(spec)
    base = load_base(spec.base)
    images, labels, parts = partition(spec, base)
    assert len(labels) == 300 and sum(len(p) for p in parts) == 300
    val_x, val_y = client_items(spec, base, EVALUATOR)
    every_x, _ = load_images("fashion-mnist", "train", 350, image_size(spec, base))
    assert torch.equal(val_x, every_x[300:]) and torch.equal(images, every_x[:300])  # disjoint, in order
    assert co.transport.evaluator.n_examples == 50
    # evaluate_on test: the same clients' items (validation still held back), the test split evaluated
    test_spec = tiny_spec(data={"n_val": 50})
    assert torch.equal(partition(test_spec, base)[0], images)
    assert len(client_items(test_spec, base, EVALUATOR)[1]) == 200
    with pytest.raises(InputError, match="data.n_val"):
        train_items(tiny_spec(), base, "validation")


def test_validation_without_n_train_takes_the_last_items(tiny_spec):
    spec = tiny_spec(data={"dataset": "easy-vqa", "n_train": None, "n_test": 50, "n_val": 100,
                           "evaluate_on": "validation"})

    base = load_base(spec.base)
    every, _ = load_images("easy-vqa", "train", None, image_size(spec, base))
    images, _, parts = partition(spec, base)
    assert torch.equal(client_items(spec, base, EVALUATOR)[0], every[-100:])  # the last 100
    assert torch.equal(images, every[:-100]) and sum(len(p) for p in parts) == len(every) - 100


def test_more_items_than_the_split_holds_names_the_fields(tiny_spec):
    spec = tiny_spec(data={"dataset": "easy-vqa", "n_train": 3500, "n_test": 50, "n_val": 500})
    with pytest.raises(InputError, match=r"data.n_train \+ data.n_val = 3500 \+ 500"):
        train_items(spec, load_base(spec.base))
    with pytest.raises(InputError, match="'clients' or 'validation'"):
        train_items(spec, load_base(spec.base), "bogus")


def test_validating_without_held_back_items_is_a_config_error(tiny_spec):
    from ragsc.errors import ConfigError

    with pytest.raises(ConfigError, match="n_val"):
        tiny_spec(data={"evaluate_on": "validation"})
