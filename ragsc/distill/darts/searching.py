"""The KDL-DARTS search: first-order bilevel DARTS with a KD loss and a complexity penalty.

The weights step on the train split, alpha (Adam) on the validation split, both with the KD loss
``1 - cos(student, teacher)``; alpha's loss adds ``lam * expected_complexity / max_complexity``, where
``max_complexity`` is the expected complexity of the supernet with every edge on its costliest operation.
The normalised term lies in [0, 1], so ``lam`` is dimensionless and weighs "the whole net at its largest"
against "one minus cosine" (also in [0, 2]). The search ends with
:func:`~ragsc.distill.darts.derivation.derive`. With ``checkpoint=FOLDER`` the search writes its whole
state after every epoch (:mod:`~ragsc.distill.darts.checkpoint`); a rerun with the same settings resumes
after the last complete epoch and ends exactly as an uninterrupted run, one with other settings is
refused naming the fields that differ.

The skip guard (:class:`SkipGuard`). DARTS is known to collapse onto parameter-free skip connections: they
make the supernet's optimisation easy early on, so their alphas win without the derived net being any
good (Chen et al., P-DARTS; Liang et al., DARTS+). A complexity penalty makes this worse, skip being
free. Two guards, both on by default:

* a cap on the derived normal cell: at most ``max_skip`` (2) skip connections. The weakest extra skip is
  banned on its edge and the cell re-derived, until the cap holds (the P-DARTS / DARTS+ rule). Only the
  normal cell is capped: a reduction cell's input skips are parametric factorized reductions, not
  shortcuts.
* dropout on the identity skip's output during the search (P-DARTS), rate ``dropout`` decayed linearly
  to 0 over the epochs, so skip cannot win by being the easy path early, yet is judged without the
  handicap at the end.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.distill.darts.checkpoint import (
    CHECKPOINT_FORMAT,
    EpochStats,
    check_same_search,
    data_digest,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    search_settings,
    state_tensors,
)
from ragsc.distill.darts.config import Genotype
from ragsc.distill.darts.derivation import check_budget, derive
from ragsc.distill.darts.supernet import SearchNetwork
from ragsc.distill.darts.train import batches, check_split, check_training, endless_batches, kd_loss
from ragsc.errors import ConfigError, InputError


@dataclass(frozen=True)
class SkipGuard:
    """The guard against the collapse onto skip connections (see the module docstring).

    Parameters
    ----------
    max_skip
        At most this many ``skip_connect`` in the derived normal cell; ``None``: no cap.
    dropout
        Dropout rate on the identity skip's output during the search; 0 turns it off.
    decay
        Decay the dropout rate linearly to 0 over the epochs (P-DARTS); otherwise keep it constant.
    """

    max_skip: int | None = 2
    dropout: float = 0.3
    decay: bool = True

    def __post_init__(self) -> None:
        cap = self.max_skip
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise ConfigError(f"SkipGuard.max_skip must be None or an integer >= 0, got {self.max_skip!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"SkipGuard.dropout must be a rate in [0, 1), got {self.dropout!r}")


@dataclass
class SearchResult:
    """What :func:`search` returns: the derived genotype, the per-epoch history (the resumed epochs'
    too) and the epoch the run resumed from (0: a fresh run)."""

    genotype: Genotype
    history: list[EpochStats] = field(default_factory=list)
    resumed_from: int = 0


def _check_labels(y_train, y_val, n_train: int, n_val: int) -> int:
    """The number of classes of the optional labels (0: none given)."""
    if y_train is None and y_val is None:
        return 0
    if y_train is None or y_val is None:
        raise InputError("give labels for both splits (y_train and y_val) or for neither")
    for name, y, n in (("y_train", y_train, n_train), ("y_val", y_val, n_val)):
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (n,):
            raise InputError(f"{name} must be class indices, a long tensor [{n}], got "
                             + (f"shape {list(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor)
                                else type(y).__name__))
        if len(y) and y.min() < 0:
            raise InputError(f"{name} holds a negative class index")
    return int(max(y_train.max(), y_val.max())) + 1


def search(network: SearchNetwork, x_train: torch.Tensor, t_train: torch.Tensor, x_val: torch.Tensor,
           t_val: torch.Tensor, *, epochs: int = 50, lam: float = 0.0, batch_size: int = 64,
           lr_w: float = 0.025, lr_alpha: float = 3e-4, seed: int = 0, complexity: str = "params",
           skip_guard: SkipGuard = SkipGuard(), y_train: torch.Tensor | None = None,
           y_val: torch.Tensor | None = None, task_weight: float = 1.0, budget: float | None = None,
           checkpoint: str | Path | None = None, progress: bool = False) -> SearchResult:
    """First-order bilevel DARTS with a KD loss and a complexity penalty; trains ``network`` in place.

    Each step: alpha takes an Adam step on a validation batch with ``KD + lam * expected_complexity /
    max_complexity``; then the weights take an SGD step (momentum 0.9, cosine schedule, gradient norm
    clipped at 5) on a train batch with the KD loss. KD loss = ``1 - cosine(student, teacher)``.

    Parameters
    ----------
    network
        The supernet; left in eval mode with the skip dropout off.
    x_train, x_val
        Images ``[N, in_channels, image_size, image_size]`` (float).
    t_train, t_val
        The teacher's stored embeddings of those images, ``[N, out_dim]``.
    epochs
        Passes over the train split; a validation batch is drawn (cycling) for each train batch.
    lam
        Weight of the normalised complexity (dimensionless, >= 0): at ``lam = 1`` going from the
        all-cheapest to the all-costliest supernet costs as much as a cosine of 1.
    batch_size, lr_w, lr_alpha
        Batch size, the weights' SGD learning rate, alpha's Adam learning rate (DARTS's defaults).
    seed
        Seeds the batch order and the dropout masks.
    complexity
        ``"params"`` or ``"macs"``, see :meth:`SearchNetwork.expected_complexity`; also what ``budget``
        counts.
    skip_guard
        The skip dropout during the search and the cap at derivation.
    y_train, y_val
        Optional class labels ``[N]`` (long): adds ``task_weight`` times the cross-entropy of a linear head
        on the student's output (the head is trained with the weights and then dropped).
    budget
        The most parameters or MACs (``complexity``) the derived network may have (see :func:`derive`);
        checked before any training: when no derivable architecture fits, nothing is trained.
    checkpoint
        A folder (created) where the search's state is written after every epoch (safetensors and a JSON
        manifest, no pickle). A rerun with the same settings and data resumes after the last complete
        epoch and ends exactly as an uninterrupted run would (on CPU); a finished checkpoint is
        re-derived without training, e.g. under another ``budget`` or skip cap, which act only at
        derivation. ``network`` takes the checkpoint's weights.
    progress
        Show a tqdm bar over the epochs.

    Returns
    -------
    SearchResult
        The genotype derived with ``skip_guard.max_skip`` (and ``budget``), the per-epoch losses and
        complexity, the epoch resumed from.

    Raises
    ------
    InputError
        The data do not fit the network's config, lengths differ, a split is empty, labels are bad.
    ConfigError
        A training setting is invalid; no architecture of the space fits ``budget``; ``checkpoint`` holds
        another search's state (the differing settings are named).
    ModelLoadError
        The checkpoint is corrupt.
    """
    if not isinstance(network, SearchNetwork):
        raise InputError(f"search needs a SearchNetwork, got {type(network).__name__}")
    if not isinstance(skip_guard, SkipGuard):
        raise ConfigError(f"skip_guard must be a SkipGuard, got {type(skip_guard).__name__}")
    check_training(epochs, batch_size, lam=lam, lr_w=lr_w, lr_alpha=lr_alpha, task_weight=task_weight)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    network._cost(complexity)  # an unknown complexity fails before any training
    cfg = network.config
    check_split(x_train, t_train, cfg, "train")
    check_split(x_val, t_val, cfg, "val")
    n_classes = _check_labels(y_train, y_val, len(x_train), len(x_val))
    if budget is not None:
        check_budget(cfg, budget, complexity, skip_guard.max_skip)
    folder = manifest = settings = None
    if checkpoint is not None:
        folder = Path(checkpoint)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"checkpoint {folder} is a file; give a folder (created when missing)")
        settings = search_settings(
            cfg, data_digest(x_train, t_train, x_val, t_val, y_train, y_val), n_classes, epochs=epochs,
            lam=float(lam), batch_size=batch_size, lr_w=float(lr_w), lr_alpha=float(lr_alpha), seed=seed,
            complexity=complexity, task_weight=float(task_weight),
            **{"skip_guard.dropout": float(skip_guard.dropout), "skip_guard.decay": bool(skip_guard.decay)})
        manifest = read_checkpoint(folder)
        if manifest is not None:
            check_same_search(folder, manifest.get("settings"), settings)
    device = network.alpha_normal.device
    history: list[EpochStats] = []
    start = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the task head's initialisation and the dropout masks
        head = nn.Linear(cfg.out_dim, n_classes).to(device) if n_classes else None
        weights = network.weight_parameters() + (list(head.parameters()) if head else [])
        w_opt = torch.optim.SGD(weights, lr=lr_w, momentum=0.9, weight_decay=3e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, epochs, eta_min=0.01 * lr_w)
        a_opt = torch.optim.Adam(network.arch_parameters(), lr=lr_alpha, betas=(0.5, 0.999),
                                 weight_decay=1e-3)
        optimizers = {"w_opt": w_opt, "a_opt": a_opt}
        generator = torch.Generator().manual_seed(seed)
        if manifest is not None:
            start, history = restore_checkpoint(folder, manifest, network, head, optimizers, schedule,
                                                generator, device)

        def loss_on(x, t, y, idx):
            out = network(x[idx].to(device))
            kd = kd_loss(out, t[idx].to(device))
            task = F.cross_entropy(head(out), y[idx].to(device)) if head is not None else 0.0
            return kd, kd + task_weight * task

        network.train()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, initial=start, desc="KDL-DARTS search", unit="epoch")
        for epoch in range(start, epochs):
            rate = skip_guard.dropout * (1.0 - epoch / epochs) if skip_guard.decay else skip_guard.dropout
            network.set_skip_dropout(rate)
            val_batches = endless_batches(len(x_val), batch_size, generator)
            train_sum = val_sum = 0.0
            steps = 0
            for idx in batches(len(x_train), batch_size, generator):
                val_kd, val_loss = loss_on(x_val, t_val, y_val, next(val_batches))
                a_opt.zero_grad()
                (val_loss + lam * network.expected_complexity(complexity, normalize=True)).backward()
                a_opt.step()
                train_kd, train_loss = loss_on(x_train, t_train, y_train, idx)
                w_opt.zero_grad()
                train_loss.backward()
                nn.utils.clip_grad_norm_(weights, 5.0)
                w_opt.step()
                train_sum, val_sum, steps = train_sum + train_kd.item(), val_sum + val_kd.item(), steps + 1
            schedule.step()
            with torch.no_grad():
                cplx = float(network.expected_complexity(complexity, normalize=True))
            history.append(EpochStats(epoch, train_sum / steps, val_sum / steps, cplx))
            if folder is not None:
                tensors, extra = state_tensors(network, head, optimizers, generator, device)
                save_checkpoint(folder, {
                    "format": CHECKPOINT_FORMAT, "settings": settings, "epoch": epoch + 1,
                    "complete": epoch + 1 == epochs, "state": f"state-{epoch + 1:04d}.safetensors",
                    "history": [dataclasses.asdict(h) for h in history],
                    "optimizers": {name: {"groups": [{k: g[k] for k in ("lr", "initial_lr") if k in g}
                                                     for g in opt.param_groups], "extra": extra[name]}
                                   for name, opt in optimizers.items()},
                    "schedule": schedule.state_dict()}, tensors)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    network.set_skip_dropout(0.0)
    network.eval()
    genotype = derive(network, skip_guard.max_skip, budget=budget, complexity=complexity)
    return SearchResult(genotype, history, resumed_from=start)
