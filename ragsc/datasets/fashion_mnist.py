"""Fashion-MNIST (Debian's ``dataset-fashion-mnist``): 70,000 28x28 grey images of 10 clothing classes.

Read from the package's IDX files (``/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz``, or
``RAGSC_FASHION_MNIST_DIR``), parsed with numpy (magic number, dimensions and size checked; nothing
is unpickled). ``make test`` / ``make demo`` install the package with apt when they can. Used by the
distillation benchmarks as data nobody here trained the teacher on.
"""

from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from ragsc.errors import InputError

FASHION_MNIST_DIR = Path(os.environ.get("RAGSC_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes with ``ndim`` dimensions (magic ``0x00 0x00 0x08 ndim``)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{path}: not a readable IDX file: {exc}") from None
    if len(raw) < 4 + 4 * ndim or raw[:4] != bytes([0, 0, 8, ndim]):
        raise InputError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (bad magic number)")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise InputError(f"{path}: {body.size} bytes of data, the header says {dims}")
    return body.reshape(dims)


@lru_cache(maxsize=4)
def _load(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    root = Path(folder)
    images, labels = (root / name for name in _FILES[split])
    if not images.is_file() or not labels.is_file():
        raise InputError(f"Fashion-MNIST is not in {root}; install Debian's dataset-fashion-mnist "
                         "(apt-get install dataset-fashion-mnist) or set RAGSC_FASHION_MNIST_DIR")
    x, y = _read_idx(images, 3), _read_idx(labels, 1)
    if len(x) != len(y) or int(y.max(initial=0)) >= len(CLASSES):
        raise InputError(f"{root}: {len(x)} images but {len(y)} labels (or labels outside 0..9)")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_fashion_mnist(split: Literal["train", "test"] = "train", n: int | None = None,
                       folder: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 28, 28], labels int64 [N])`` of a split, the first ``n`` when given.

    Raises :class:`InputError` when the package is not installed, a file is corrupt, or ``split`` is
    neither ``train`` nor ``test``.
    """
    if split not in _FILES:
        raise InputError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")
    x, y = _load(str(folder or FASHION_MNIST_DIR), split)
    if n is not None:
        if not 0 < n <= len(x):
            raise InputError(f"asked for {n} Fashion-MNIST images, the {split} split has {len(x)}")
        x, y = x[:n], y[:n]
    return x, y.astype(np.int64)
