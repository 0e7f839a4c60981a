"""The size / latency / score front of candidate compressions, and the point a budget picks.

:func:`front` compresses one tower of an encoder once per candidate config and measures each result
(:mod:`ragsc.compress.measure`) on this machine; :func:`choose` returns the best-scoring point within a
:class:`~ragsc.compress.config.Budget` (ties: the closer to the float tower, the faster, the smaller).
A budget no point meets is a :class:`~ragsc.errors.ConfigError` that names each constraint no point
meets (with the best figure any point reaches) and the closest point with its figures.
:func:`front_table` prints the front.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from ragsc.compress.apply import Compressed, compress
from ragsc.compress.config import Budget, CompressionConfig
from ragsc.compress.data import EvalData
from ragsc.compress.layers import plain_convs
from ragsc.compress.measure import Measurement, measure, reference
from ragsc.compress.prune import count
from ragsc.compress.towers import tower_of
from ragsc.errors import ConfigError
from ragsc.report import table


@dataclass
class CompressionPoint:
    """One candidate: the compressed unit and its figures."""

    compressed: Compressed
    figures: Measurement

    @property
    def name(self) -> str:
        return self.compressed.config.name

    @property
    def config(self) -> CompressionConfig:
        return self.compressed.config

    def ms(self, batch: int) -> float:
        if batch not in self.figures.ms:
            raise ConfigError(f"latency was measured at batch {', '.join(map(str, self.figures.ms))}, "
                              f"not {batch}")
        return self.figures.ms[batch]

    def describe(self, batch: int | None = None) -> str:
        f = self.figures
        ms = ", ".join(f"{v:.1f} ms at batch {b}" for b, v in f.ms.items() if batch is None or b == batch)
        return f"{self.name}: {f.size_mb:.1f} MB, {ms}, {f.params:,} parameters, score {f.score:.3f}"


def front(encoder, configs: Sequence[CompressionConfig], *, data: EvalData | None = None,
          batches: Sequence[int] = (1, 64), repeats: int = 5, n_threads: int | None = None,
          images: Sequence | None = None, targets=None, calibration: Sequence | None = None,
          progress: bool = False) -> list[CompressionPoint]:
    """Compress and measure each candidate (the encoder is left as it was).

    Parameters
    ----------
    encoder
        The loaded base encoder; every config's ``encoder`` must be its spec and all configs one tower.
    configs
        The candidates (e.g. ``none``, ``int8-dynamic``, ``fp16``, ``prune+int8-static``).
    data
        What to score on (default: :meth:`EvalData.default`).
    batches, repeats, n_threads
        Latency at these batch sizes, median of ``repeats`` runs, with that many torch threads.
    images, targets, calibration
        Fine-tune and calibration data (see :func:`~ragsc.compress.apply.compress`).
    """
    if not configs:
        raise ConfigError("a front needs at least one candidate compression")
    towers = {c.tower for c in configs}
    if len(towers) != 1:
        raise ConfigError(f"a front compresses one tower, the candidates name {sorted(towers)}")
    if not batches or any(int(b) < 1 for b in batches):
        raise ConfigError(f"batch sizes must be >= 1, got {list(batches)}")
    tower = tower_of(encoder, towers.pop())
    encoder.fingerprint  # noqa: B018  (hashed now, while the float unit is in place)
    tower_params = encoder.num_parameters()[tower.modality]
    data = data or EvalData.default()
    ref = reference(encoder, tower, data)
    macs = None
    if tower.prunable:  # MACs are counted where pruning can change them: conv towers
        macs = count(plain_convs(copy.deepcopy(tower.unit)), tower.prepare(data.images[:1]))[0]
    cache: dict = {}
    points = []
    for config in tqdm(configs, desc="compressions", disable=not progress):
        c = compress(config, encoder, images=images, targets=targets, calibration=calibration, cache=cache,
                     progress=progress)
        figures = measure(encoder, c, data, ref, batches=batches, repeats=repeats, n_threads=n_threads,
                          tower_params=tower_params, macs=macs)
        points.append(CompressionPoint(c, figures))
    return points


def violations(point: CompressionPoint, budget: Budget) -> list[str]:
    """The budget's constraints ``point`` fails, each with its figure (``"size 22.7 MB > 10 MB"``)."""
    f, out = point.figures, []
    if budget.max_mb is not None and f.size_mb > budget.max_mb:
        out.append(f"size {f.size_mb:.1f} MB > {budget.max_mb:g} MB")
    if budget.max_ms is not None and point.ms(budget.batch) > budget.max_ms:
        out.append(f"latency {point.ms(budget.batch):.1f} ms > {budget.max_ms:g} ms at batch {budget.batch}")
    if budget.max_params is not None and f.params > budget.max_params:
        out.append(f"parameters {f.params:,} > {budget.max_params:,}")
    return out


def _excess(point: CompressionPoint, budget: Budget) -> float:
    """How far outside the budget a point is: its worst figure / limit ratio (<= 1: within)."""
    f = point.figures
    ratios = [f.size_mb / budget.max_mb if budget.max_mb is not None else 0.0,
              point.ms(budget.batch) / budget.max_ms if budget.max_ms is not None else 0.0,
              f.params / budget.max_params if budget.max_params is not None else 0.0]
    return max(ratios)


def choose(points: Sequence[CompressionPoint], budget: Budget) -> CompressionPoint:
    """The best-scoring point within ``budget`` (ties: the closer to float, then the lower latency at the
    budget's batch, then the smaller). Points of encoder towers and of LMs (:mod:`ragsc.compress.lm`) alike.

    Raises
    ------
    ConfigError
        No point meets the budget: the message names each constraint no point meets (with the best any
        point reaches), or says that no point meets them together, and gives the closest point's figures.
    """
    if not points:
        raise ConfigError("no compressions to choose from")
    if budget.max_ms is not None:
        points[0].ms(budget.batch)  # latency measured at the budget's batch, or a clear error
    within = [p for p in points if not violations(p, budget)]
    if within:
        # equal scores (tiny scoring data; an image tower's R@1 against float saturates): closeness to
        # float (a tower's cosine, an LM's share of identical decodes) breaks such ties
        return max(within, key=lambda p: (round(p.figures.score, 6), round(p.figures.fidelity, 4),
                                          -p.ms(budget.batch), -p.figures.size_bytes))
    failing = []
    if budget.max_mb is not None and all(p.figures.size_mb > budget.max_mb for p in points):
        best = min(points, key=lambda p: p.figures.size_bytes)
        failing.append(f"size <= {budget.max_mb:g} MB (the smallest point, {best.name}, is "
                       f"{best.figures.size_mb:.1f} MB)")
    if budget.max_ms is not None and all(p.ms(budget.batch) > budget.max_ms for p in points):
        best = min(points, key=lambda p: p.ms(budget.batch))
        failing.append(f"latency <= {budget.max_ms:g} ms at batch {budget.batch} (the fastest point, "
                       f"{best.name}, takes {best.ms(budget.batch):.1f} ms)")
    if budget.max_params is not None and all(p.figures.params > budget.max_params for p in points):
        best = min(points, key=lambda p: p.figures.params)
        failing.append(f"parameters <= {budget.max_params:,} (the fewest, {best.name}, has "
                       f"{best.figures.params:,})")
    closest = min(points, key=lambda p: _excess(p, budget))
    what = ("no compression meets " + "; nor ".join(failing)) if failing else (
        f"no compression meets {budget.describe()} at once")
    raise ConfigError(f"impossible budget: {what}. Closest point: {closest.describe()} "
                      f"(fails {', '.join(violations(closest, budget))})")


def within_cell(point, budget: Budget | None) -> str:
    """A front table's "within budget" cell: ``-`` (no budget), ``yes`` or ``no: size, latency``."""
    if budget is None:
        return "-"
    fails = violations(point, budget)
    return "yes" if not fails else "no: " + ", ".join(v.split(" ")[0] for v in fails)


def _count(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f}M" if n >= 1e7 else f"{n:,}"


def front_table(points: Sequence[CompressionPoint], budget: Budget | None = None,
                chosen: CompressionPoint | None = None) -> str:
    """The front as a table: methods, size, parameters, MACs, latency per batch, scores, within budget."""
    batches = sorted({b for p in points for b in p.figures.ms})
    rows = []
    for p in points:
        f = p.figures
        rows.append([("* " if p is chosen else "  ") + p.name, f"{f.size_mb:.1f}", f"{f.params:,}",
                     _count(f.macs),
                     *[f"{f.ms[b]:.1f}" for b in batches], f"{f.r1:.3f}",
                     f"{f.pair_r1:.3f}" if f.pair_r1 is not None else "-",
                     f"{f.caption_r1:.3f}" if f.caption_r1 is not None else "-", f"{f.cosine:.4f}",
                     f"{f.score:.3f}", within_cell(p, budget)])
    header = ["method", "size MB", "parameters", "MACs", *[f"ms @{b}" for b in batches], "R@1 vs float",
              "gloss R@1", "caption R@1", "cosine", "score", "within budget"]
    return table(rows, header)
