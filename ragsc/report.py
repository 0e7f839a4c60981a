"""What the CLI, the demo, the benchmarks and the sweeps print and write: tables, CSV files and plots.

* :func:`table` — a plain-text table (and :func:`score_rows` / :data:`SCORE_HEADER` for the encoder scores);
* :func:`write_csv` — a sweep's rows as a CSV file, the columns named once by the sweep;
* :func:`plot_grid` — a grid of panels (:class:`Panel`), one :class:`Line` per series, saved as a PNG.

Each sweep (:mod:`ragsc.channel.sweep`, :mod:`ragsc.eval.results`) keeps only its own columns and panel
definitions. This module sits at the top level because both use it and ``channel`` may not import ``eval``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragsc.errors import InputError

# ----------------------------------------------------------------------------- tables


def table(rows: list[list[str]], header: list[str]) -> str:
    """``rows`` under ``header`` as left-aligned columns, with a rule below the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def score_rows(scores: dict) -> list[list[str]]:
    """The encoder suite's retrieval scores as :func:`table` rows under :data:`SCORE_HEADER`."""
    return [
        [name, f"{s['image_to_caption_r1']:.3f}", f"{s['caption_to_image_r1']:.3f}", str(s["n_images"]),
         str(s["n_captions"]), f"{s['chance_i2t']:.3f}"]
        for name, s in scores.items()
    ]


SCORE_HEADER = ["set", "image->caption R@1", "caption->image R@1", "images", "captions", "chance"]

# ----------------------------------------------------------------------------- CSV


def write_csv(rows: Sequence[dict], path: Path, columns: Sequence[str]) -> None:
    """Write ``rows`` to ``path`` as CSV with a header, one column per name in ``columns``, in that order.

    Parameters
    ----------
    rows
        One dict per row; every row must have exactly the keys ``columns``.
    path
        The file to write (its folder must exist).
    columns
        The column names, as the sweep that made the rows declares them.

    Raises
    ------
    InputError
        A row lacks a column or has one ``columns`` does not name (checked before the file is opened, so
        no half-written file is left behind).
    """
    want = set(columns)
    for i, row in enumerate(rows):
        if set(row) != want:
            missing, extra = sorted(want - set(row)), sorted(set(row) - want)
            raise InputError(f"CSV row {i} does not match the columns {list(columns)}: "
                             f"missing {missing}, unexpected {extra}")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)


# ----------------------------------------------------------------------------- plots


@dataclass
class Line:
    """One series of a panel: points ``(x, y)`` drawn with matplotlib's ``Axes.plot`` keywords ``style``
    (``color``, ``marker``, ``ls``, ``ms``, ``lw``, ...)."""

    x: Sequence[float]
    y: Sequence[float]
    label: str
    style: dict = field(default_factory=dict)


@dataclass
class Panel:
    """One set of axes: its lines, titles and scales.

    ``log_y`` draws the y axis in log scale (values <= 0, which a log axis cannot show, are left out);
    ``legend`` is the legend's font size (``None``: no legend); ``title_size`` / ``label_size`` the
    title's and axis labels' font sizes (``None``: matplotlib's default).
    """

    title: str
    lines: list[Line]
    xlabel: str = "SNR (dB)"
    ylabel: str = ""
    log_y: bool = False
    legend: float | None = None
    title_size: float | None = None
    label_size: float | None = None


def plot_grid(grid: Sequence[Sequence[Panel]], path: Path, *, title: str, panel_size: tuple[float, float],
              title_size: float = 11, dpi: int = 110) -> Path:
    """Draw ``grid`` (rows of panels, all rows the same length) in one figure and save it as ``path`` (PNG).

    Parameters
    ----------
    grid
        ``grid[i][j]`` is the panel in row ``i``, column ``j``.
    path
        The PNG to write (its folder must exist).
    title
        The figure's title, above every panel; ``title_size`` its font size.
    panel_size
        ``(width, height)`` of one panel in inches: the figure grows with the grid.
    dpi
        Resolution of the PNG.

    Returns
    -------
    Path
        ``path``.
    """
    # not pyplot: never switches the caller's (e.g. a notebook's) backend, and nothing stays open
    from matplotlib.figure import Figure

    n_rows, n_cols = len(grid), len(grid[0]) if grid else 0
    if not n_rows or not n_cols or any(len(row) != n_cols for row in grid):
        sizes = [len(r) for r in grid]
        raise InputError(f"a plot needs a non-empty grid of panels in rows of equal length, got {sizes}")
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i, row in enumerate(grid):
        for j, panel in enumerate(row):
            draw(axes[i][j], panel)
    fig.suptitle(title, fontsize=title_size)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return Path(path)


def draw(ax, panel: Panel) -> None:
    """Draw ``panel`` on matplotlib axes ``ax`` (what :func:`plot_grid` does for each panel)."""
    for line in panel.lines:
        y = [float(v) for v in line.y]
        if len(line.x) != len(y):
            raise InputError(f"plot line {line.label!r}: {len(line.x)} x values but {len(y)} y values")
        if panel.log_y:
            y = [v if v > 0 else math.nan for v in y]  # a gap, not a point clipped to the axis floor
        ax.plot(list(line.x), y, label=line.label, **line.style)
    if panel.log_y:
        ax.set_yscale("log")
    # fontsize=None would mean the base font size, not the axes' own defaults (titles are larger)
    title = {} if panel.title_size is None else {"fontsize": panel.title_size}
    label = {} if panel.label_size is None else {"fontsize": panel.label_size}
    ax.set_title(panel.title, **title)
    ax.set_xlabel(panel.xlabel, **label)
    if panel.ylabel:
        ax.set_ylabel(panel.ylabel, **label)
    ax.grid(alpha=0.3, which="both")
    if panel.legend is not None and panel.lines:
        ax.legend(fontsize=panel.legend)
