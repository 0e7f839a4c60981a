"""What every party of a federation builds identically from the spec and its seed: the device model and
the items (the clients' Dirichlet shares of the train split, the validation items held back from them, the
held-out set of :data:`~ragsc.federated.protocol.EVALUATOR`).

A client process (:mod:`ragsc.federated.flower`) rebuilds its own share from the spec alone, so nothing
but the spec has to be sent to it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ragsc.errors import InputError
from ragsc.federated.config import FederatedSpec
from ragsc.federated.data import dirichlet_partition, load_images
from ragsc.federated.model import Base, ClientModel
from ragsc.federated.protocol import EVALUATOR


def build_model(spec: FederatedSpec, base: Base) -> ClientModel:
    """The device half every party builds identically from the spec and the seed."""
    return ClientModel(base, spec.lora.rank, spec.lora.alpha, spec.lora.targets, spec.channel.k_symbols,
                       spec.seed, spec.train.train_transmitter)


def image_size(spec: FederatedSpec, base: Base) -> int:
    return spec.data.image_size or base.image_size


def train_items(spec: FederatedSpec, base: Base,
                part: Literal["clients", "validation"] = "clients") -> tuple[torch.Tensor, torch.Tensor]:
    """The train split's items the clients share (``part="clients"``) or the validation items held back
    from them (``part="validation"``; :class:`InputError` when the spec holds none back)."""
    if part not in ("clients", "validation"):
        raise InputError(f"part must be 'clients' or 'validation', got {part!r}")
    d = spec.data
    size = image_size(spec, base)
    if d.n_val is None:
        if part == "validation":
            raise InputError("the spec holds back no validation items: set data.n_val")
        return load_images(d.dataset, "train", d.n_train, size)
    if d.n_train is not None:
        try:
            images, labels = load_images(d.dataset, "train", d.n_train + d.n_val, size)
        except InputError as err:  # the split is smaller than asked
            raise InputError(f"data.n_train + data.n_val = {d.n_train} + {d.n_val} is more than "
                             f"{d.dataset}'s train split holds ({err}): lower one of them") from err
        cut = d.n_train
    else:
        images, labels = load_images(d.dataset, "train", None, size)
        cut = len(labels) - d.n_val
        if cut < 1:
            raise InputError(f"data.n_val = {d.n_val} leaves none of the {len(labels)} items of "
                             f"{d.dataset}'s train split to the clients")
    keep = slice(cut, None) if part == "validation" else slice(None, cut)
    return images[keep], labels[keep]


def partition(spec: FederatedSpec, base: Base) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """The clients' share of the train split, its labels and each client's indices (seeded Dirichlet
    split); validation items (``data.n_val``) are never dealt."""
    images, labels = train_items(spec, base)
    c = spec.clients
    parts = dirichlet_partition(labels, c.n, c.alpha, spec.seed, c.min_examples)
    return images, labels, parts


def client_items(spec: FederatedSpec, base: Base, cid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Client ``cid``'s own images and labels (EVALUATOR: the held-out set, ``data.evaluate_on``)."""
    if cid == EVALUATOR:
        if spec.data.evaluate_on == "validation":
            return train_items(spec, base, "validation")
        return load_images(spec.data.dataset, "test", spec.data.n_test, image_size(spec, base))
    if not 0 <= cid < spec.clients.n:
        raise InputError(f"client {cid} is not one of the spec's {spec.clients.n} clients "
                         f"(0..{spec.clients.n - 1})")
    images, labels, parts = partition(spec, base)
    return images[parts[cid]], labels[parts[cid]]
