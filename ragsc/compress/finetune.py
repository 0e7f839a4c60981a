"""The short KD fine-tune after pruning: the pruned unit learns its targets' embeddings again.

Targets are the unpruned unit's own embeddings of the fine-tune images (self-distillation: put the
outputs back where the KBs and decoders expect them) or, from a teacher store, the teacher's stored
embeddings of the store's images (the encoder must serve that teacher). The loss is ``1 - cos`` in the
shared space, through the encoder's own (frozen) heads.

BatchNorm statistics are first recomputed over the fine-tune images (pruned input channels shift every
output channel's statistics), then held fixed while the weights learn: batch statistics of a few small
batches would otherwise replace the running ones, and eval-mode outputs would drift from what was trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ragsc.compress.config import FinetuneConfig
from ragsc.compress.towers import Tower
from ragsc.errors import InputError


@torch.no_grad()
def embeddings(tower: Tower, unit: nn.Module, images: Sequence, batch_size: int = 64) -> torch.Tensor:
    """``[N, dim]`` embeddings of ``images`` by ``unit`` in the shared space (eval mode)."""
    unit.eval()
    return torch.cat([tower.embed(unit, tower.prepare(images[b:b + batch_size])).float()
                      for b in range(0, len(images), batch_size)])


def store_data(path: str, encoder) -> tuple[list, torch.Tensor]:
    """The images of a teacher store and the teacher's embeddings of them.

    Raises :class:`InputError` when the store holds no images or another teacher's outputs than one the
    encoder serves.
    """
    from ragsc.distill.store import TeacherStore
    from ragsc.encoders.base import serves

    store = TeacherStore(path)
    if not serves(encoder, store.teacher["fingerprint"]):
        raise InputError(f"{path} holds the outputs of {store.teacher['spec']} "
                         f"({store.teacher['fingerprint']}), a teacher {encoder.spec} does not serve")
    t = store.tensors()
    if not bool(t["has_image"].any()):
        raise InputError(f"{path}: the store holds no images to fine-tune an image tower on")
    rows = t["has_image"].nonzero().flatten().tolist()
    items = store.inputs()
    return [items[i].image for i in rows], t["image"][rows]


def _norms(unit: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in unit.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _freeze_batchnorm(unit: nn.Module) -> None:
    for m in _norms(unit):
        m.eval()  # statistics fixed; the affine weights still learn


@torch.no_grad()
def recalibrate_batchnorm(tower: Tower, unit: nn.Module, images: Sequence, batch_size: int = 32) -> None:
    """Recompute every BatchNorm's running statistics over ``images`` (a plain average over batches):
    pruning an input channel shifts the statistics of every output channel that summed over it."""
    norms = _norms(unit)
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    unit.eval()
    for m in norms:
        m.train()
    for b in range(0, len(images), batch_size):
        tower.prepare(list(images[b:b + batch_size])).call(unit)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    unit.eval()


def finetune(tower: Tower, unit: nn.Module, images: Sequence, targets: torch.Tensor, config: FinetuneConfig,
             progress: bool = False) -> list[dict]:
    """Train ``unit`` (in place) so that its embeddings of ``images`` meet ``targets`` ``[N, dim]``.

    Returns the per-epoch history (``epoch``, ``loss``, ``cosine``: the mean training cosine).
    """
    if len(images) != len(targets):
        raise InputError(f"{len(images)} fine-tune images but {len(targets)} targets")
    if config.epochs == 0 or not len(images):
        return []
    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    recalibrate_batchnorm(tower, unit, images, config.batch_size)
    unit.train().requires_grad_(True)
    _freeze_batchnorm(unit)
    params = [p for p in unit.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=1e-4)
    steps = config.epochs * math.ceil(len(images) / config.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    targets = F.normalize(targets.float(), dim=-1)
    history = []
    bar = tqdm(total=steps, desc="fine-tune", disable=not progress)
    for epoch in range(config.epochs):
        order = torch.randperm(len(images), generator=g)
        total = 0.0
        for idx in order.split(config.batch_size):
            emb = tower.embed(unit, tower.prepare([images[i] for i in idx.tolist()]))
            loss = 1 - F.cosine_similarity(emb, targets[idx], dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            bar.update(1)
        unit.eval()
        history.append({"epoch": epoch + 1, "loss": total / len(images), "cosine": 1 - total / len(images)})
    bar.close()
    unit.eval().requires_grad_(False)
    return history
