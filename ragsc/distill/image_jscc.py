"""Training the image JSCC codec on photos: random crops through the simulated channel, resumable.

Photos are decoded once, at a few scales (their long side ``scales`` pixels: photos of every size look alike
to a fully convolutional codec only if it has seen their statistics at several scales), and random
``patch`` x ``patch`` crops (flipped at random) make the batches. Each batch crosses one channel kind drawn
from the codec's ``channels``, each item at an SNR drawn uniformly over its ``snr_range_db`` and the batch at
one code level drawn from its ``levels`` (one model, several ratios); the loss is the pixels' mean squared
error.

The weights' exponential moving average (``ema``) is what is validated and kept: every ``eval_every`` steps
the validation photos' fixed crops are scored (mean PSNR over the levels at AWGN 0 and 10 dB), the best
average so far is what the run folder holds, and a run stops after ``patience`` evaluations without a gain of
``min_delta_db`` (a plateau), at ``steps``, or after ``max_minutes``. With side information
(``config.side_info``) each crop comes with a neighbour (:func:`crops_with_neighbours`) and
``side_only`` trains the side branch alone (the side encoder and the fusion convolutions): the codec's
plain path, transmitter and decoder, stays exactly as it was, so RAG off decodes as before.

The run folder is the codec's saved-model folder (:mod:`ragsc.saved`, the best weights) plus two extra files:
``trainer.json`` (the step, the history, the data's listing, the training config) and, until the run ends,
``checkpoint.safetensors`` (the latest weights, their average and the optimiser's state) — so
``resume=True`` continues a run that was killed or stopped by ``max_minutes`` (which may then be raised).
Nothing is pickled.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from ragsc.channel.jscc.codec import JSCCCodec, from_symbols, to_symbols
from ragsc.channel.jscc.config import DOWNSAMPLE
from ragsc.channel.models import Channel, equalize, snr_db_to_no
from ragsc.config import Config
from ragsc.distill.jscc_checkpoint import resume_state, write_run
from ragsc.distill.photo_crops import crops_with_neighbours, load_scaled, random_crops
from ragsc.errors import InputError
from ragsc.saved import check_target, load_optimizer_tensors


class JSCCTrainConfig(Config):
    """How the codec is trained (what it is trained *for* is its :class:`~ragsc.channel.jscc.JSCCConfig`)."""

    steps: int = Field(6000, ge=1, le=10_000_000)
    batch_size: int = Field(16, ge=1, le=1024)
    patch: int = Field(128, ge=16, le=1024, multiple_of=8)
    lr: float = Field(1e-3, gt=0, le=1.0)
    warmup: int = Field(200, ge=0)
    scales: tuple[int, ...] = (512, 768, 1024, 1536)
    eval_every: int = Field(250, ge=1)
    patience: int = Field(8, ge=1)
    min_delta_db: float = Field(0.05, ge=0)
    max_minutes: float | None = Field(None, gt=0)
    side_only: bool = Field(
        False,
        description="train the side-information branch only: a codec whose transmitter and plain decoder "
        "are deployed gains side information at the receiver, and decodes as before without it",
    )
    unrelated: float = Field(
        0.3,
        ge=0,
        le=1,
        description="side-information training: the share of items "
        "whose neighbour is a crop of another photo",
    )
    ema: float = Field(
        0.999,
        ge=0,
        lt=1,
        description="decay of the weights' moving average, which is what "
        "is validated and kept (0: the raw weights)",
    )
    seed: int = 0


def snr_after(snr_db: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
    """The effective SNR (dB) of each item after equalisation: ``SNR + 10 log10 |h|^2`` (block fading)."""
    if h is None:
        return snr_db
    return snr_db + 10 * torch.log10(h.abs().square().mean(dim=1).clamp_min(1e-6))


def through_channel(
    codec: JSCCCodec,
    x: torch.Tensor,
    snr_db: torch.Tensor,
    level: int,
    sim: Channel,
    side: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixels ``[B, 3, H, W]`` -> the reconstruction after ``sim`` at ``snr_db`` ``[B]`` (differentiable)."""
    z = codec.encode(x, snr_db, level)
    no = snr_db_to_no(snr_db)
    y, h = sim(to_symbols(z), no)
    y_eq, _ = equalize(y, h, no, "perfect", "mmse")
    return codec.decode(from_symbols(y_eq, tuple(z.shape)), snr_after(snr_db, h), side)


def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``[B]`` PSNR (dB, peak 1) of ``x`` against ``ref`` (both ``[B, 3, H, W]`` in [0, 1])."""
    mse = (x.clamp(0, 1) - ref).square().flatten(1).mean(dim=1)
    return -10 * torch.log10(mse.clamp_min(1e-10))


@torch.no_grad()
def validate(
    codec: JSCCCodec, crops: torch.Tensor, snrs=(0.0, 10.0), seed: int = 0, side: torch.Tensor | None = None
) -> float:
    """Mean PSNR of ``crops`` over the codec's levels and ``snrs`` on AWGN (fixed noise: comparable across
    evaluations), with the neighbours ``side`` (one per crop) where given."""
    was = codec.training
    codec.eval()
    scores = []
    for level in codec.config.levels:
        for snr in snrs:
            sim = Channel("awgn", seed=seed)
            nbs = side.split(8) if side is not None else [None] * len(crops.split(8))
            x_hat = torch.cat(
                [
                    through_channel(codec, b, torch.full((len(b),), snr), level, sim, nb)
                    for b, nb in zip(crops.split(8), nbs)
                ]
            )
            scores.append(float(psnr(x_hat, crops).mean()))
    codec.train(was)
    return float(np.mean(scores))


# ----------------------------------------------------------------------------- the run
@dataclass
class JSCCRun:
    """What a run did: the best codec (loaded), its validation PSNR, the history, and why it stopped."""

    codec: JSCCCodec
    best_db: float
    history: list[dict] = field(default_factory=list)
    stopped: str = ""
    seconds: float = 0.0
    step: int = 0


def train_jscc(codec: JSCCCodec, train: list[Path], val: list[Path], out: str | Path,
               config: JSCCTrainConfig | None = None, *, resume: bool = False, progress: bool = False,
               info: dict | None = None) -> JSCCRun:
    """Train ``codec`` on the photos ``train`` (choosing on ``val``) into the run folder ``out``.

    ``out`` must be new or empty, or (``resume=True``) an unfinished run of this codec and data. ``info`` is
    added to the saved codec's provenance. Returns the :class:`JSCCRun` with the best codec.
    """
    cfg = config or JSCCTrainConfig()
    out = Path(out)
    if not train or not val:
        raise InputError(
            f"training needs photos for both splits, got {len(train)} training and {len(val)} "
            "validation photos"
        )
    state = resume_state(out, codec, train, cfg) if resume else None
    if state is None:
        check_target(out, option="--out")
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(cfg.seed)
    images = load_scaled(train, cfg.scales, cfg.patch)
    side_info = codec.config.side_info
    val_images = load_scaled(val, (768,), cfg.patch)
    # fixed validation crops of 256 pixels, or of what the smallest validation photo holds (a multiple of 8)
    val_crop = min(256, *(min(t.shape[1:]) // DOWNSAMPLE * DOWNSAMPLE for t in val_images))
    if side_info:
        crops, val_side = crops_with_neighbours(
            val_images, 2 * len(val), val_crop, torch.Generator().manual_seed(1), cfg.unrelated
        )
    else:
        crops = random_crops(val_images, 2 * len(val), val_crop, torch.Generator().manual_seed(1))
        val_side = None
    if cfg.side_only:
        if not side_info:
            raise InputError("side_only trains the side-information branch: the codec has none (side_info)")
        codec.requires_grad_(False)
        for module in (codec.side, codec.fuse):
            module.requires_grad_(True)
    opt = torch.optim.AdamW([p for p in codec.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=1e-4)
    history, best_db, best, step, elapsed0 = [], -math.inf, None, 0, 0.0
    if state is not None:
        codec.load_state_dict({k[6:]: v for k, v in state["tensors"].items() if k.startswith("model.")})
        load_optimizer_tensors(opt, state["tensors"])
        best = {k: v.clone() for k, v in state["best"].items()}
        t = state["trainer"]
        history, best_db, step = t["history"], t["best_db"], t["step"]
        elapsed0 = state["trainer"]["seconds"]
        g.set_state(torch.tensor(state["trainer"]["generator"], dtype=torch.uint8))
    ema = {k: v.detach().clone() for k, v in codec.state_dict().items()}
    if state is not None:
        ema.update({k[4:]: v for k, v in state["tensors"].items() if k.startswith("ema.")})
    c = codec.config
    sims = {k: Channel(k, "block", c.rician_k, cfg.seed + 1 + i) for i, k in enumerate(c.channels)}
    for i, sim in enumerate(sims.values()):  # a resumed run's noise continues with fresh seeds
        sim.generator.manual_seed(cfg.seed + 1 + i + 1000 * step)
    bar = _bar(cfg.steps, step, progress)
    stopped, since_best = "", _since_best(history, best_db)
    codec.train()
    while True:
        minutes = (elapsed0 + time.perf_counter() - t0) / 60
        if step >= cfg.steps:
            stopped = f"reached {cfg.steps} steps"
        elif since_best >= cfg.patience:
            stopped = f"plateau: no gain of {cfg.min_delta_db} dB in {cfg.patience} evaluations"
        elif cfg.max_minutes is not None and minutes >= cfg.max_minutes:
            stopped = f"time limit of {cfg.max_minutes} minutes"
        if stopped:
            break
        warm = min(1.0, (step + 1) / max(1, cfg.warmup))
        lr = cfg.lr * warm * (0.55 + 0.45 * math.cos(math.pi * step / cfg.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        if side_info:
            x, nb = crops_with_neighbours(images, cfg.batch_size, cfg.patch, g, cfg.unrelated)
        else:
            x, nb = random_crops(images, cfg.batch_size, cfg.patch, g), None
        kind = c.channels[int(torch.randint(len(c.channels), (1,), generator=g))]
        level = c.levels[int(torch.randint(len(c.levels), (1,), generator=g))]
        lo, hi = c.snr_range_db
        snr = lo + (hi - lo) * torch.rand(len(x), generator=g)
        loss = F.mse_loss(through_channel(codec, x, snr, level, sims[kind], nb), x)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in codec.parameters() if p.requires_grad], 1.0)
        opt.step()
        step += 1
        _ema_update(ema, codec, cfg.ema, step)
        bar.update(1)
        if step % cfg.eval_every == 0 or step == cfg.steps:
            live = {k: v.detach().clone() for k, v in codec.state_dict().items()}
            codec.load_state_dict(ema)
            db = validate(codec, crops, side=val_side)
            codec.load_state_dict(live)
            history.append({"step": step, "loss": float(loss.detach()), "val_psnr_db": round(db, 3),
                            "minutes": round((elapsed0 + time.perf_counter() - t0) / 60, 2)})
            if db > best_db + cfg.min_delta_db or best is None:
                best_db, best, since_best = max(db, best_db), {k: v.clone() for k, v in ema.items()}, 0
            else:
                since_best += 1
            bar.set_postfix(val_psnr=f"{db:.2f}", best=f"{best_db:.2f}")
            write_run(out, codec, best, opt, history, best_db, step, g, cfg, train,
                      elapsed0 + time.perf_counter() - t0, info, done=False, ema=ema)
    bar.close()
    seconds = elapsed0 + time.perf_counter() - t0
    if best is None:  # stopped before the first evaluation: the averaged weights are the best known
        codec.load_state_dict(ema)
        best_db, best = validate(codec, crops, side=val_side), {k: v.clone() for k, v in ema.items()}
    # a run stopped by the clock is not done: it may be resumed
    write_run(out, codec, best, opt, history, best_db, step, g, cfg, train, seconds, info,
              done=not stopped.startswith("time limit"), ema=ema, stopped=stopped)
    codec.load_state_dict(best)
    codec.eval()
    return JSCCRun(codec, best_db, history, stopped, seconds, step)


def _ema_update(ema: dict, codec: JSCCCodec, decay: float, step: int) -> None:
    """``ema <- d ema + (1 - d) weights``, ``d`` warming up as ``(1 + step) / (10 + step)`` to ``decay``."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for k, v in codec.state_dict().items():
            if v.is_floating_point():
                ema[k].lerp_(v, 1 - d)
            else:
                ema[k].copy_(v)


def _since_best(history: list[dict], best_db: float) -> int:
    n = 0
    for h in reversed(history):
        if h["val_psnr_db"] >= best_db - 1e-9:
            break
        n += 1
    return n


def _bar(total: int, initial: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc="jscc train", unit="step", disable=not progress, mininterval=2.0
    )
