"""The KD training pieces of KDL-DARTS: the loss, the batches, the data checks, the retraining and the score.

The KD loss is ``1 - cosine(student, teacher)`` against the teacher's stored embeddings. The search
(:mod:`~ragsc.distill.darts.searching`) and :func:`retrain` (a derived network's weights, before it is
scored or used as a student) draw their batches the same way; :func:`kd_score` is the mean cosine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.distill.darts.layout import check_images
from ragsc.distill.darts.network import DerivedNetwork
from ragsc.distill.darts.supernet import SearchNetwork
from ragsc.errors import ConfigError, InputError


def check_split(x, t, cfg, split: str) -> None:
    """Images and their stored teacher embeddings: same length, non-empty, the config's shapes."""
    check_images(x, cfg, f"x_{split}")
    is_tensor = isinstance(t, torch.Tensor)
    if not is_tensor or not t.is_floating_point() or t.dim() != 2 or t.shape[1] != cfg.out_dim:
        got = f"shape {list(t.shape)} {t.dtype}" if is_tensor else type(t).__name__
        raise InputError(f"t_{split} must be the teacher's embeddings, a float tensor [N, {cfg.out_dim}] "
                         f"(out_dim), got {got}")
    if len(x) != len(t):
        raise InputError(f"x_{split} holds {len(x)} images but t_{split} {len(t)} teacher embeddings; "
                         f"they must pair up")
    if len(x) == 0:
        raise InputError(f"the {split} split is empty: give at least one image and its teacher embedding")


def kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``1 - cosine(student, teacher)``, averaged over the batch."""
    return 1.0 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1).mean()


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One pass over ``n`` items in an order drawn from ``generator``, as index tensors of ``batch_size``."""
    yield from torch.randperm(n, generator=generator).split(batch_size)


def endless_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """:func:`batches`, one pass after another (the search's validation batches)."""
    while True:
        yield from batches(n, batch_size, generator)


def check_training(epochs, batch_size, **rates) -> None:
    """``epochs`` and ``batch_size`` are integers >= 1, each of ``rates`` a finite number >= 0, or a
    :class:`~ragsc.errors.ConfigError` names it."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in rates.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def retrain(network: DerivedNetwork, x: torch.Tensor, t: torch.Tensor, *, epochs: int = 10,
            batch_size: int = 64, lr: float = 0.025, seed: int = 0, progress: bool = False) -> list[float]:
    """Train a derived network's weights on ``(x, t)`` with the KD loss; SGD (momentum 0.9, cosine schedule).

    Parameters
    ----------
    network
        Trained in place and left in eval mode.
    x, t
        Images ``[N, in_channels, image_size, image_size]`` and teacher embeddings ``[N, out_dim]``.
    epochs, batch_size, lr, seed
        Passes over the data, batch size, learning rate, seed of the batch order.
    progress
        Show a tqdm bar over the epochs.

    Returns
    -------
    list of float
        The mean KD loss (``1 - cosine``) of each epoch.
    """
    if not isinstance(network, DerivedNetwork):
        raise InputError(f"retrain needs a DerivedNetwork, got {type(network).__name__}")
    check_training(epochs, batch_size, lr=lr)
    check_split(x, t, network.config, "train")
    device = next(network.parameters()).device
    opt = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=0.01 * lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    network.train()
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="retrain", unit="epoch")
    for _ in epochs_iter:
        total, steps = 0.0, 0
        for idx in batches(len(x), batch_size, generator):
            loss = kd_loss(network(x[idx].to(device)), t[idx].to(device))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            opt.step()
            total, steps = total + loss.item(), steps + 1
        schedule.step()
        losses.append(total / steps)
    network.eval()
    return losses


def kd_score(network: SearchNetwork | DerivedNetwork, x: torch.Tensor, t: torch.Tensor,
             batch_size: int = 256) -> float:
    """Mean cosine between the network's outputs (eval mode) and the teacher's embeddings ``t``."""
    if not isinstance(network, (SearchNetwork, DerivedNetwork)):
        raise InputError(f"kd_score needs a SearchNetwork or DerivedNetwork, got {type(network).__name__}")
    check_split(x, t, network.config, "eval")
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = network(x[start:start + batch_size].to(device))
            total += float(F.cosine_similarity(out, t[start:start + batch_size].to(device), dim=-1).sum())
    network.train(was_training)
    return total / len(x)
