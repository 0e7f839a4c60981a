"""A DeepJSCC-style baseline: an image classifier trained end to end through the channel, without a teacher.

Deep joint source-channel coding (Bourtsoulatze, Kurka & Gündüz, 2019) maps the input straight to
channel symbols with a CNN and learns the receiver through the simulated channel. Here, as in
task-oriented DeepJSCC, the receiver outputs class logits: a CNN encoder -> ``n_symbols`` complex
symbols at unit mean power per symbol -> the channel (AWGN, Rayleigh or Rician, perfect-CSI
equalisation, as every learned path here) -> an MLP on the equalised symbols -> logits. It is SNR-blind
(trained over an SNR range, told nothing at run time), like the original. Labels are all it learns
from: the teacher-free reference point of the distillation benchmark, at the same channel uses as the
students' CAT.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ragsc.channel.cat import normalize_power
from ragsc.channel.models import CHANNELS, Channel, equalize, snr_db_to_no
from ragsc.config import Config
from ragsc.distill.student_nets import cnn
from ragsc.distill.train import to_student_pixels
from ragsc.errors import ConfigError, InputError


class DeepJSCCConfig(Config):
    """What a :class:`DeepJSCC` is built from (its encoder: the students' plain CNN of these widths)."""

    image_size: int = Field(32, ge=8, le=512)
    widths: tuple[int, ...] = Field((24, 48, 96), min_length=1)
    n_symbols: int = Field(16, ge=1, description="complex channel symbols per image")
    num_classes: int = Field(..., ge=2)
    hidden: int = Field(256, ge=1, description="width of the receiver's MLP")
    channels: tuple[str, ...] = CHANNELS
    snr_range_db: tuple[float, float] = (-10.0, 20.0)
    rician_k: float = 4.0
    seed: int = 0


class DeepJSCC(nn.Module):
    """``x [B, 3, S, S]`` normalised pixels -> logits ``[B, num_classes]`` through the channel."""

    def __init__(self, config: DeepJSCCConfig) -> None:
        super().__init__()
        self.config = config
        bad = [c for c in config.channels if c not in CHANNELS]
        if bad:
            raise ConfigError(f"unknown channel {bad[0]!r}; one of {', '.join(CHANNELS)}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            h, n2 = config.hidden, 2 * config.n_symbols
            self.encoder = nn.Sequential(cnn(config.widths), nn.Linear(config.widths[-1], n2))
            self.decoder = nn.Sequential(nn.Linear(n2, h), nn.ReLU(inplace=True), nn.Linear(h, h),
                                         nn.ReLU(inplace=True), nn.Linear(h, config.num_classes))

    def symbols(self, x: torch.Tensor) -> torch.Tensor:
        """The transmitted symbols ``[B, n_symbols]`` (complex, unit mean power per symbol per row)."""
        z = self.encoder(x).view(len(x), self.config.n_symbols, 2)
        return normalize_power(torch.view_as_complex(z.contiguous()))

    def forward(self, x: torch.Tensor, snr_db: float | torch.Tensor, sim: Channel) -> torch.Tensor:
        s = self.symbols(x)
        snr = snr_db if isinstance(snr_db, torch.Tensor) else torch.full((len(x),), float(snr_db))
        no = snr_db_to_no(snr)
        y, h = sim(s, no)
        y_eq, _ = equalize(y, h, no, "perfect", "mmse")
        return self.decoder(torch.view_as_real(y_eq).flatten(1))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@dataclass
class DeepJSCCResult:
    model: DeepJSCC
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def train_deepjscc(model: DeepJSCC, images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 10,
                   batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                   progress: bool = False) -> DeepJSCCResult:
    """Train ``model`` in place on uint8 ``images [N, 3, S, S]`` and ``labels [N]`` (``-1``: unlabelled,
    skipped; the labelled items are cycled to ``N`` per epoch, so a small label share trains for as many
    steps), each batch through one channel kind drawn from the config's, one SNR per item drawn uniformly
    over its range."""
    c = model.config
    if images.ndim != 4 or images.shape[1:] != (3, c.image_size, c.image_size):
        raise InputError(f"images must be [N, 3, {c.image_size}, {c.image_size}], got {tuple(images.shape)}")
    keep = labels >= 0
    if not bool(keep.any()):
        raise InputError("DeepJSCC learns from labels only, and none of these items has one")
    from ragsc.distill.darts.train import check_training

    check_training(epochs, batch_size, lr=lr)
    # the labelled items cycled to the whole set's length: every label share trains for as many steps
    cycled = torch.from_numpy(np.resize(keep.nonzero().flatten().numpy(), len(keep)))
    images, labels = images[cycled], labels[cycled]
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    sims = {k: Channel(k, "block", c.rician_k, seed + 1 + i) for i, k in enumerate(c.channels)}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(images) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    result = DeepJSCCResult(model)
    model.train().requires_grad_(True)
    for epoch in range(epochs):
        total = 0.0
        for idx in torch.randperm(len(images), generator=g).split(batch_size):
            kind = c.channels[int(torch.randint(len(c.channels), (1,), generator=g))]
            lo, hi = c.snr_range_db
            snr = lo + (hi - lo) * torch.rand(len(idx), generator=g)
            loss = F.cross_entropy(model(to_student_pixels(images[idx]), snr, sims[kind]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        result.history.append({"epoch": epoch + 1, "train_loss": total / len(images)})
        if progress:
            print(f"DeepJSCC epoch {epoch + 1}/{epochs} loss={total / len(images):.4f}", flush=True)
    model.eval().requires_grad_(False)
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def evaluate_deepjscc(model: DeepJSCC, images: torch.Tensor, labels: torch.Tensor, *,
                      snrs=(-10.0, 0.0, 10.0, 20.0), channels: tuple[str, ...] | None = None,
                      seed: int = 0) -> list[dict]:
    """Accuracy per channel and SNR on uint8 ``images`` with ``labels`` (the unlabelled are skipped)."""
    keep = labels >= 0
    if not bool(keep.any()):
        raise InputError("no labelled items to evaluate")
    images, labels = images[keep], labels[keep]
    was = model.training
    model.eval()
    rows = []
    for kind in channels or model.config.channels:
        for snr in snrs:
            sim = Channel(kind, "block", model.config.rician_k, seed)
            pred = torch.cat([model(to_student_pixels(images[b:b + 256]), float(snr), sim).argmax(-1)
                              for b in range(0, len(images), 256)])
            rows.append({"channel": kind, "snr_db": float(snr), "n_symbols": model.config.n_symbols,
                         "accuracy": float((pred == labels).float().mean())})
    model.train(was)
    return rows
