"""The clients' local data: a labelled image dataset split over clients by a Dirichlet draw over labels.

:func:`load_images` gives a split of Fashion-MNIST or easy-VQA as uint8 images ``[N, 3, S, S]`` and
labels ``[N]``; :func:`dirichlet_partition` deals the items to clients the usual non-IID way (Hsu et al.,
2019): for each class, a share per client drawn from ``Dirichlet(alpha)``. In a simulation every client
reads the same files and keeps only its own share: nothing else of the data set is used by it, and
nothing of it is sent.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ragsc.errors import InputError


def num_classes(dataset: str) -> int:
    from ragsc.datasets import COLORS, SHAPES
    from ragsc.datasets.fashion_mnist import CLASSES

    return {"fashion-mnist": len(CLASSES), "easy-vqa": len(SHAPES), "easy-vqa:color": len(COLORS)}[dataset]


@lru_cache(maxsize=4)
def load_images(dataset: str, split: str, n: int | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images uint8 [N, 3, size, size], labels int64 [N])``: the first ``n`` items of a split.

    Fashion-MNIST's grey 28x28 images are resized (bilinear) and repeated over three channels; easy-VQA's
    64x64 images are labelled by shape (``easy-vqa``) or colour (``easy-vqa:color``). Cached per process:
    treat the tensors as read-only.
    """
    if split not in ("train", "test"):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    if dataset == "fashion-mnist":
        from ragsc.datasets.fashion_mnist import load_fashion_mnist

        x, y = load_fashion_mnist(split, n=n)  # type: ignore[arg-type]
        images = torch.from_numpy(np.array(x))[:, None].expand(-1, 3, -1, -1)
        labels = torch.from_numpy(y)
    elif dataset in ("easy-vqa", "easy-vqa:color"):
        from PIL import Image

        from ragsc.datasets import COLORS, SHAPES, load_easy_vqa

        items = load_easy_vqa(split)  # type: ignore[arg-type]
        if n is not None:
            if n > len(items):
                raise InputError(f"asked for {n} easy-VQA images, the {split} split has {len(items)}")
            items = items[:n]
        arrays = []
        for it in items:
            with Image.open(it.path) as im:
                arrays.append(np.asarray(im.convert("RGB")))
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        names = COLORS if dataset == "easy-vqa:color" else SHAPES
        labels = torch.tensor([names.index(it.color if dataset == "easy-vqa:color" else it.shape)
                               for it in items], dtype=torch.int64)
    else:
        from ragsc.federated.config import DATASETS

        raise InputError(f"unknown dataset {dataset!r}; one of {', '.join(DATASETS)}")
    if images.shape[-1] != size:
        images = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                               align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return images.contiguous(), labels


def dirichlet_partition(labels: torch.Tensor | np.ndarray, n_clients: int, alpha: float, seed: int,
                        min_examples: int = 1, attempts: int = 100) -> list[np.ndarray]:
    """Indices of each client's items: per class, shares drawn from ``Dirichlet(alpha, ..., alpha)``.

    The draw is repeated (same generator, so still seeded) until every client holds at least
    ``min_examples`` items; if ``attempts`` draws fail, :class:`InputError` says what to change. Every
    item goes to exactly one client; each client's indices are sorted.

    Parameters
    ----------
    labels
        ``[N]`` integer labels (``>= 0``).
    n_clients, alpha, seed
        Number of clients, Dirichlet concentration (> 0; small: few classes per client), seed.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or (len(y) and y.min() < 0):
        raise InputError("labels must be a 1-d array of class indices >= 0")
    if n_clients < 1 or not alpha > 0 or min_examples < 0:
        raise InputError(f"need n_clients >= 1, alpha > 0, min_examples >= 0; got {n_clients}, {alpha}, "
                         f"{min_examples}")
    if len(y) < n_clients * min_examples:
        raise InputError(f"{len(y)} items cannot give each of {n_clients} clients {min_examples}: use more "
                         "data or fewer clients")
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    for _ in range(attempts):
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for k in classes:
            idx = rng.permutation(np.flatnonzero(y == k))
            shares = rng.dirichlet(np.full(n_clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for c, chunk in enumerate(np.split(idx, cuts)):
                parts[c].append(chunk)
        out = [np.sort(np.concatenate(p)) for p in parts]
        if min(len(p) for p in out) >= min_examples:
            return out
    raise InputError(f"{attempts} Dirichlet draws (alpha={alpha}) left some of the {n_clients} clients with "
                     f"fewer than {min_examples} items: raise alpha, lower min_examples or use fewer clients")
