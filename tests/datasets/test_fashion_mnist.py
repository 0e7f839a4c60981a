"""ragsc.datasets.fashion_mnist: the IDX reader and the installed package."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from ragsc.datasets.fashion_mnist import CLASSES, FASHION_MNIST_DIR, load_fashion_mnist
from ragsc.errors import InputError


def _write(folder, prefix, images, labels):
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(
        bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape) + images.tobytes()))
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(
        bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + labels.tobytes()))


def test_reads_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    _write(tmp_path, "t10k", images, labels)
    x, y = load_fashion_mnist("test", folder=tmp_path)
    assert np.array_equal(x, images) and y.tolist() == labels.tolist() and y.dtype == np.int64
    x2, y2 = load_fashion_mnist("test", n=2, folder=tmp_path)
    assert x2.shape == (2, 28, 28) and y2.tolist() == [0, 9]


def test_bad_files_and_arguments_are_named(tmp_path):
    with pytest.raises(InputError, match="dataset-fashion-mnist"):
        load_fashion_mnist("train", folder=tmp_path)
    with pytest.raises(InputError, match="split"):
        load_fashion_mnist("valid", folder=tmp_path)
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", "train", np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8))
    (tmp_path / "sub" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03junk"))
    with pytest.raises(InputError, match="magic"):
        load_fashion_mnist("train", folder=tmp_path / "sub")
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="IDX"):
        load_fashion_mnist("test", folder=tmp_path)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_the_installed_package():
    x, y = load_fashion_mnist("test")
    assert x.shape == (10_000, 28, 28) and len(y) == 10_000
    assert sorted(set(y.tolist())) == list(range(len(CLASSES)))
    with pytest.raises(InputError, match="asked for"):
        load_fashion_mnist("test", n=10_001)
