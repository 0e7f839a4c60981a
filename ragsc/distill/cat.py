"""Training the CAT codec (:mod:`ragsc.channel.cat`) and calibrating its rate policy.

* :func:`train_cat` — one model for every SNR and channel: each batch draws a prefix length from the codec's
  ``levels`` (the variable-length output), a channel kind uniformly from ``config.channels`` and one SNR per
  item uniformly in ``config.snr_range_db``, and crosses the project's :class:`~ragsc.channel.Channel`
  (differentiable w.r.t. its input). Loss: ``1 - cosine(reconstruction, target)`` (+ ``mse_weight`` times the
  MSE of the normalised vectors).
* :func:`calibrate` — the rate table: mean cosine to the target per channel, SNR and level on a validation
  split, through the real channel; stored in the codec's config, so :meth:`CATCodec.save` keeps it.

The codec's architecture, config and rate policy live in the runtime package (:mod:`ragsc.channel.cat`,
which pipelines may use); import them from there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ragsc.channel.cat import CATCalibration, CATCodec, CATConfig
from ragsc.channel.models import Channel
from ragsc.config import check_snr_db
from ragsc.errors import ConfigError, InputError

__all__ = ["calibrate", "train_cat"]


def train_cat(codec: CATCodec, tokens: torch.Tensor, targets: torch.Tensor, *, epochs: int = 10,
              batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
              val: tuple[torch.Tensor, torch.Tensor] | None = None, mse_weight: float = 0.0,
              progress: bool = False) -> dict[str, list[float]]:
    """Train ``codec`` in place to reconstruct ``targets`` from ``tokens`` across its channels and SNRs.

    Parameters
    ----------
    codec
        The :class:`CATCodec` (its config says the levels, channels and SNR range to train on).
    tokens
        ``[N, token_dim]`` or ``[N, T, token_dim]`` input tokens.
    targets
        ``[N, target_dim]`` embeddings to reconstruct (normalised here).
    epochs, batch_size, lr
        Passes over the data, items per step, AdamW's learning rate (cosine-decayed to 0).
    seed
        Seeds the shuffling, the draws of level / channel / SNR and the training channels: two runs with the
        same seed on the same codec give the same weights.
    val
        ``(tokens_val, targets_val)``: after each epoch, the loss on them with the same draws every epoch.
    mse_weight
        Weight of the MSE term (0: cosine only).

    Returns
    -------
    dict
        ``loss`` (mean training loss per epoch), and with ``val``: ``val_loss`` and ``val_cosine`` per epoch.
    """
    tokens, targets = _check_data(codec, tokens, targets, "training")
    if val is not None:
        val = _check_data(codec, *val, "validation")
    def number(v) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

    for name, value, ok in (("epochs", epochs, isinstance(epochs, int) and epochs >= 1),
                            ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1),
                            ("lr", lr, number(lr) and lr > 0),
                            ("mse_weight", mse_weight, number(mse_weight) and mse_weight >= 0)):
        if isinstance(value, bool) or not ok:
            raise ConfigError(f"train_cat: {name} must be a positive number (an integer for epochs and "
                              f"batch_size; mse_weight may be 0), got {value!r}")
    c = codec.config
    device = next(codec.parameters()).device
    g = torch.Generator().manual_seed(seed)
    sims = {k: Channel(k, c.fading, c.rician_k, seed + 1 + i, str(device)) for i, k in enumerate(c.channels)}
    opt = torch.optim.AdamW(codec.parameters(), lr=lr, weight_decay=0.01)
    n = tokens.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    history: dict[str, list[float]] = {"loss": []} | ({"val_loss": [], "val_cosine": []} if val else {})
    codec.train()
    for _ in tqdm(range(epochs), desc="train CAT", disable=not progress):
        total = 0.0
        for idx in torch.randperm(n, generator=g).split(batch_size):
            level, kind, snr = _draw(c, len(idx), g)
            out = codec(tokens[idx].to(device), snr.to(device), kind, level, sim=sims[kind])
            loss = _loss(out, targets[idx].to(device), mse_weight).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(codec.parameters(), 1.0)
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history["loss"].append(total / n)
        if val is not None:
            v_loss, v_cos = _validate(codec, *val, batch_size, seed, mse_weight)
            history["val_loss"].append(v_loss)
            history["val_cosine"].append(v_cos)
    codec.eval()
    return history


@torch.no_grad()
def calibrate(codec: CATCodec, tokens_val: torch.Tensor, targets_val: torch.Tensor,
              snrs: tuple[float, ...] | list[float] = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0),
              channels: tuple[str, ...] | list[str] | None = None, *, seed: int = 0,
              batch_size: int = 256) -> CATCalibration:
    """Measure the codec's rate table on a validation split and store it in ``codec.config``.

    For each channel (default: every one the codec was trained on), each SNR and each level, the mean cosine
    of the reconstruction to the target through the project's :class:`~ragsc.channel.Channel` (the codec's
    fading, Rician K and equaliser, perfect CSI). Each (channel, SNR, level) restarts the channel's generator
    from ``seed``, so the levels are compared on the same fades.

    Returns
    -------
    CATCalibration
        Also set as ``codec.config.calibration`` (saved with the codec), which
        :meth:`~ragsc.channel.cat.CATCodec.choose_length` reads.
    """
    tokens_val, targets_val = _check_data(codec, tokens_val, targets_val, "validation")
    c = codec.config
    names = tuple(c.channels if channels is None else channels)
    for name in names:
        codec._check_channel(name)
    if not names:
        raise ConfigError("calibrate: no channels to calibrate")
    snrs = tuple(sorted({check_snr_db(s) for s in snrs}))
    if not snrs:
        raise ConfigError("calibrate: no SNRs to calibrate at")
    device = next(codec.parameters()).device
    codec.eval()
    quality = {}
    for name in names:
        sim = Channel(name, c.fading, c.rician_k, seed, str(device))
        rows = []
        for snr in snrs:
            row = []
            for level in c.levels:
                sim.generator.manual_seed(seed)
                cos = torch.cat([
                    F.cosine_similarity(codec(x.to(device), snr, name, level, sim=sim), t.to(device), dim=-1)
                    for x, t in zip(tokens_val.split(batch_size), targets_val.split(batch_size))])
                row.append(float(cos.mean()))
            rows.append(tuple(row))
        quality[name] = tuple(rows)
    try:  # validates the SNRs (finite, in range, distinct)
        table = CATCalibration(snrs_db=snrs, quality=quality, n_items=tokens_val.shape[0], seed=seed)
    except ConfigError as exc:
        raise ConfigError(f"calibrate: {exc}") from None
    codec.config = CATConfig(**{**c.model_dump(), "calibration": table.model_dump()})
    return table


# --------------------------------------------------------------------------- helpers
def _draw(c: CATConfig, b: int, g: torch.Generator) -> tuple[int, str, torch.Tensor]:
    """A level and a channel kind for the batch, one SNR per item, all uniform."""
    level = c.levels[int(torch.randint(len(c.levels), (1,), generator=g))]
    kind = c.channels[int(torch.randint(len(c.channels), (1,), generator=g))]
    lo, hi = c.snr_range_db
    return level, kind, lo + (hi - lo) * torch.rand(b, generator=g)


def _loss(out: torch.Tensor, target: torch.Tensor, mse_weight: float) -> torch.Tensor:
    """Per item: ``1 - cos`` (+ ``mse_weight`` * MSE of the unit vectors); ``out`` is already normalised."""
    t = F.normalize(target, dim=-1)
    loss = 1 - (out * t).sum(-1)
    return loss + mse_weight * (out - t).square().mean(-1) if mse_weight else loss


@torch.no_grad()
def _validate(codec: CATCodec, tokens: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int,
              mse_weight: float) -> tuple[float, float]:
    """Mean loss and cosine on the validation split, with the same draws (and channel noise) every call."""
    c = codec.config
    device = next(codec.parameters()).device
    g = torch.Generator().manual_seed(seed + 10_000)
    sims = {k: Channel(k, c.fading, c.rician_k, seed + 10_001 + i, str(device))
            for i, k in enumerate(c.channels)}
    codec.eval()
    losses, cosines = [], []
    for x, t in zip(tokens.split(batch_size), targets.split(batch_size)):
        level, kind, snr = _draw(c, x.shape[0], g)
        out = codec(x.to(device), snr.to(device), kind, level, sim=sims[kind])
        t = t.to(device)
        losses.append(_loss(out, t, mse_weight))
        cosines.append(F.cosine_similarity(out, t, dim=-1))
    codec.train()
    return float(torch.cat(losses).mean()), float(torch.cat(cosines).mean())


def _check_data(codec: CATCodec, tokens, targets, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    c = codec.config
    if not isinstance(tokens, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise InputError(f"{what} data: tokens and targets must be tensors")
    if tokens.ndim not in (2, 3) or tokens.shape[-1] != c.token_dim or not tokens.is_floating_point():
        raise InputError(f"{what} tokens must be float [N, {c.token_dim}] or [N, T, {c.token_dim}], got "
                         f"{tokens.dtype} {tuple(tokens.shape)}")
    if targets.ndim != 2 or targets.shape[1] != c.target_dim or not targets.is_floating_point():
        raise InputError(f"{what} targets must be float [N, {c.target_dim}], got {targets.dtype} "
                         f"{tuple(targets.shape)}")
    if tokens.shape[0] != targets.shape[0]:
        raise InputError(f"{what} data: {tokens.shape[0]} token rows but {targets.shape[0]} targets")
    if tokens.shape[0] == 0:
        raise InputError(f"{what} data: empty")
    if not (torch.isfinite(tokens).all() and torch.isfinite(targets).all()):
        raise InputError(f"{what} data contain NaN or inf")
    return tokens.float(), targets.float()

