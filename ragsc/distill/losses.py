"""Distillation losses: plain KD to the teacher's embedding, and the information-bottleneck variant.

* :func:`kd_loss`: ``1 - cos(student, teacher)`` (the student lives in the teacher's embedding space,
  so the KB and the decoders built for the teacher serve it), optionally plus the MSE of the
  normalised vectors; :func:`soft_kd_loss`: Hinton's temperature-scaled KL between class logits.
* :class:`BottleneckHead` + :func:`ib_kd_loss`: LAI's information-bottleneck distillation. The student's
  features become a *stochastic* code ``z ~ N(mu, sigma^2)`` (the variational information bottleneck of
  Alemi et al.); the loss is the distillation term on what ``z`` decodes to, plus ``beta`` times the
  rate ``KL(N(mu, sigma^2) || N(0, I))`` (an upper bound on I(X; Z)), plus the task's cross-entropy
  on ``z`` where labels exist. ``beta`` trades what the code keeps about the input against what the
  teacher and the task need: a small rate is a code that is cheap to send and robust to noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.checks import size
from ragsc.config import MAX_CLASSES, MAX_DIM
from ragsc.errors import ConfigError, InputError


def _check_pair(student: torch.Tensor, teacher: torch.Tensor) -> None:
    if student.shape != teacher.shape or student.ndim != 2:
        raise InputError(f"student and teacher outputs must both be [N, D], got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, mse_weight: float = 0.0) -> torch.Tensor:
    """Mean ``1 - cos(student, teacher)`` over the batch (+ ``mse_weight`` x MSE of the unit vectors)."""
    _check_pair(student, teacher)
    s, t = F.normalize(student, dim=-1), F.normalize(teacher, dim=-1)
    loss = 1 - (s * t).sum(-1).mean()
    if mse_weight:
        loss = loss + mse_weight * (s - t).square().sum(-1).mean()
    return loss


def soft_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                 temperature: float = 4.0) -> torch.Tensor:
    """Hinton's KD: ``T^2 KL(softmax(t / T) || softmax(s / T))``, batch mean."""
    _check_pair(student_logits, teacher_logits)
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    t = F.log_softmax(teacher_logits / temperature, dim=-1)
    s = F.log_softmax(student_logits / temperature, dim=-1)
    return F.kl_div(s, t, log_target=True, reduction="batchmean") * temperature ** 2


@dataclass(frozen=True)
class BottleneckConfig:
    """A stochastic code of ``code_dim`` between the student's ``in_dim`` features and the teacher's
    ``target_dim`` space; ``num_classes`` > 0 adds a task head on the code."""

    in_dim: int
    code_dim: int
    target_dim: int
    num_classes: int = 0

    def __post_init__(self) -> None:
        for name in ("in_dim", "code_dim", "target_dim"):
            size(self, name, 1, MAX_DIM)
        size(self, "num_classes", 0, MAX_CLASSES)


class BottleneckHead(nn.Module):
    """``features -> (mu, logvar)`` of the code, a decoder ``z -> teacher space``, a task head on ``z``.

    ``forward(h)`` returns :class:`BottleneckOut`; in ``eval()`` mode the code is ``mu`` (deterministic).
    """

    def __init__(self, config: BottleneckConfig) -> None:
        super().__init__()
        self.config = config
        self.stats = nn.Linear(config.in_dim, 2 * config.code_dim)
        self.decode = nn.Sequential(nn.Linear(config.code_dim, config.target_dim), nn.GELU(),
                                    nn.Linear(config.target_dim, config.target_dim))
        self.task = nn.Linear(config.code_dim, config.num_classes) if config.num_classes else None

    def forward(self, h: torch.Tensor) -> BottleneckOut:
        mu, logvar = self.stats(h).chunk(2, dim=-1)
        logvar = logvar.clamp(-10, 6)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        logits = self.task(z) if self.task is not None else None
        return BottleneckOut(z, mu, logvar, self.decode(z), logits)


@dataclass
class BottleneckOut:
    z: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    embedding: torch.Tensor  # the code decoded into the teacher's space
    logits: torch.Tensor | None

    def rate(self) -> torch.Tensor:
        """``KL(N(mu, sigma^2) || N(0, I))`` in nats, batch mean: the code's rate bound."""
        return 0.5 * (self.mu.square() + self.logvar.exp() - 1 - self.logvar).sum(-1).mean()


def ib_kd_loss(out: BottleneckOut, teacher: torch.Tensor, beta: float, labels: torch.Tensor | None = None,
               task_weight: float = 1.0) -> dict[str, torch.Tensor]:
    """The information-bottleneck distillation loss and its terms: ``{"loss", "kd", "rate", "task"}``.

    ``labels`` may hold -1 for unlabelled items (they get no task term); ``beta`` >= 0.
    """
    if beta < 0:
        raise ConfigError(f"beta must be >= 0, got {beta}")
    kd = kd_loss(out.embedding, teacher)
    rate = out.rate()
    task = torch.zeros((), device=kd.device)
    if labels is not None and out.logits is not None:
        known = labels >= 0
        if bool(known.any()):
            task = F.cross_entropy(out.logits[known], labels[known])
    return {"loss": kd + beta * rate + task_weight * task, "kd": kd, "rate": rate, "task": task}
