"""ragsc.federated.data: the Dirichlet split and the image loaders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ragsc.errors import InputError
from ragsc.federated.data import dirichlet_partition, load_images, num_classes


def _labels(n_per_class=200, classes=10):
    return np.repeat(np.arange(classes), n_per_class)


def test_every_item_goes_to_exactly_one_client():
    y = _labels()
    parts = dirichlet_partition(y, 8, 0.5, seed=0)
    assert len(parts) == 8
    together = np.concatenate(parts)
    assert len(together) == len(y) and len(np.unique(together)) == len(y)
    assert all((np.diff(p) > 0).all() for p in parts)  # sorted, no repeats


def test_seeded():
    y = _labels()
    a, b = dirichlet_partition(y, 8, 0.5, seed=3), dirichlet_partition(y, 8, 0.5, seed=3)
    c = dirichlet_partition(y, 8, 0.5, seed=4)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(len(p) == len(q) and np.array_equal(p, q) for p, q in zip(a, c))


def _skew(parts, y):
    """Mean over clients of the share of the client's largest class."""
    return float(np.mean([np.bincount(y[p], minlength=10).max() / len(p) for p in parts]))


def test_small_alpha_is_less_iid_than_large_alpha():
    y = _labels()
    small = np.mean([_skew(dirichlet_partition(y, 8, 0.1, seed=s), y) for s in range(5)])
    large = np.mean([_skew(dirichlet_partition(y, 8, 100.0, seed=s), y) for s in range(5)])
    assert small > 0.5 and large < 0.2  # IID: about 1/10 per class


def test_min_examples_is_guaranteed():
    y = _labels(20)
    parts = dirichlet_partition(y, 10, 0.05, seed=0, min_examples=5)
    assert min(len(p) for p in parts) >= 5


def test_impossible_split_is_a_clear_error():
    with pytest.raises(InputError, match="cannot give each of 10 clients"):
        dirichlet_partition(np.zeros(5, dtype=int), 10, 0.5, seed=0)
    with pytest.raises(InputError, match="raise alpha"):
        dirichlet_partition(_labels(3), 25, 0.01, seed=0, min_examples=1, attempts=3)


def test_load_images_shapes_and_labels():
    x, y = load_images("fashion-mnist", "test", 50, 16)
    assert x.dtype == torch.uint8 and x.shape == (50, 3, 16, 16) and y.shape == (50,)
    assert int(y.max()) < num_classes("fashion-mnist")
    x, y = load_images("easy-vqa", "test", 20, 32)
    assert x.shape == (20, 3, 32, 32) and set(y.tolist()) <= {0, 1, 2}
    _, yc = load_images("easy-vqa:color", "test", 20, 32)
    assert int(yc.max()) < 8 and not torch.equal(y, yc)
    with pytest.raises(InputError, match="unknown dataset"):
        load_images("mnist", "test", 10, 16)
