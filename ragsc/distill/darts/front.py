"""The λ front of KDL-DARTS: one search, derivation and retraining per complexity weight ``lam``.

:func:`lambda_front` traces the size / imitation trade-off (each point's parameters, MACs and validation
cosine to the teacher); :func:`plot_front` draws parameters against score.
:mod:`ragsc.distill.runs` runs it on a teacher store and saves the result as a student
(``ragsc distill search``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ragsc.distill.darts.config import ArchitectureConfig, Genotype, SearchSpaceConfig
from ragsc.distill.darts.derivation import architecture_cost, check_budget
from ragsc.distill.darts.network import DerivedNetwork
from ragsc.distill.darts.searching import SkipGuard, search
from ragsc.distill.darts.supernet import SearchNetwork
from ragsc.distill.darts.train import check_training, kd_score, retrain
from ragsc.errors import ConfigError, InputError


@dataclass(frozen=True)
class LambdaPoint:
    """One searched architecture: its ``lam``, parameter count, validation score (mean cosine to the
    teacher after retraining) and genotype; its MACs per image, the search's seconds (this run's) and
    the retrained network."""

    lam: float
    params: int
    score: float
    genotype: Genotype
    macs: int = 0
    seconds: float = 0.0
    network: DerivedNetwork | None = field(default=None, compare=False, repr=False)


def lambda_front(x_train: torch.Tensor, t_train: torch.Tensor, x_val: torch.Tensor, t_val: torch.Tensor,
                 lambdas: Sequence[float], config: SearchSpaceConfig, *, epochs: int = 20,
                 retrain_epochs: int = 10, batch_size: int = 64, lr_w: float = 0.025, lr_alpha: float = 3e-4,
                 seed: int = 0, complexity: str = "params", skip_guard: SkipGuard = SkipGuard(),
                 channels: int | None = None, layers: int | None = None, budget: float | None = None,
                 checkpoint: str | Path | None = None, progress: bool = False) -> list[LambdaPoint]:
    """Search, derive and retrain once per ``lam``: the size / imitation trade-off.

    Parameters
    ----------
    x_train, t_train, x_val, t_val
        As in :func:`search`; the derived net is retrained on the train split and scored on the validation
        split.
    lambdas
        The complexity weights to search with (each >= 0).
    config
        The search space; a fresh supernet is built from it for each ``lam``.
    epochs, batch_size, lr_w, lr_alpha, seed, complexity, skip_guard
        Passed to :func:`search`.
    retrain_epochs
        Epochs of :func:`retrain` for each derived net (learning rate ``lr_w``).
    channels, layers
        Sizes of the retrained nets (default: the search's).
    budget
        Passed to :func:`search` (the most parameters or MACs of the derived net at the search's sizes);
        checked once before any search.
    checkpoint
        A folder: each ``lam``'s search checkpoints into ``<checkpoint>/lam-<lam>`` (see :func:`search`),
        so an interrupted front resumes where it stopped.
    progress
        tqdm bars over the lambdas, and over each search's and retraining's epochs.

    Returns
    -------
    list of LambdaPoint
        In the order of ``lambdas``.
    """
    if not isinstance(config, SearchSpaceConfig):
        raise ConfigError(f"lambda_front needs a SearchSpaceConfig, got {type(config).__name__}")
    lambdas = list(lambdas)
    if not lambdas:
        raise InputError("lambdas is empty: give at least one complexity weight")
    check_training(epochs, batch_size, **{f"lambdas[{k}]": lam for k, lam in enumerate(lambdas)})
    check_training(retrain_epochs, batch_size)
    if not isinstance(skip_guard, SkipGuard):
        raise ConfigError(f"skip_guard must be a SkipGuard, got {type(skip_guard).__name__}")
    if budget is not None:
        check_budget(config, budget, complexity, skip_guard.max_skip)
    points = []
    lam_iter = lambdas
    if progress:
        from tqdm.auto import tqdm

        lam_iter = tqdm(lambdas, desc="lambda front", unit="lambda")
    for lam in lam_iter:
        start = time.perf_counter()
        result = search(SearchNetwork(config), x_train, t_train, x_val, t_val, epochs=epochs, lam=lam,
                        batch_size=batch_size, lr_w=lr_w, lr_alpha=lr_alpha, seed=seed, complexity=complexity,
                        skip_guard=skip_guard, budget=budget, progress=progress,
                        checkpoint=None if checkpoint is None else Path(checkpoint) / f"lam-{float(lam)!r}")
        seconds = time.perf_counter() - start
        net = DerivedNetwork(ArchitectureConfig.from_search(config, result.genotype, channels=channels,
                                                            layers=layers))
        retrain(net, x_train, t_train, epochs=retrain_epochs, batch_size=batch_size, lr=lr_w, seed=seed,
                progress=progress)
        score = kd_score(net, x_val, t_val)
        params, macs = architecture_cost(net.config)
        points.append(LambdaPoint(float(lam), params, score, result.genotype, macs, seconds, net))
    return points


def plot_front(points: Sequence[LambdaPoint], path: str | Path) -> Path:
    """Save a PNG of parameters (x) against validation score (y), each point labelled with its ``lam``.

    Returns
    -------
    Path
        ``path``, its folder created.
    """
    from matplotlib.figure import Figure

    points = list(points)
    if not points:
        raise InputError("plot_front needs at least one LambdaPoint")
    fig = Figure(figsize=(5.0, 3.6), dpi=120)
    ax = fig.subplots()
    ordered = sorted(points, key=lambda p: p.params)
    ax.plot([p.params for p in ordered], [p.score for p in ordered], "o-", color="tab:blue")
    for p in points:
        ax.annotate(f"λ={p.lam:g}", (p.params, p.score), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("parameters of the derived student")
    ax.set_ylabel("validation cosine to the teacher")
    ax.set_title("KDL-DARTS: size vs. imitation")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
