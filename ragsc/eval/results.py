"""An evaluation sweep's results on disk and on screen: ``eval.csv``, one PNG per task, a summary table.

The writing and drawing are :mod:`ragsc.report`'s; this module says which columns (the sweep's
:data:`~ragsc.eval.sweep.COLUMNS`), which panels (metrics down, channels across) and how each method is
drawn (:data:`STYLE`).
"""

from __future__ import annotations

from pathlib import Path

from ragsc import report
from ragsc.eval.sweep import COLUMNS

# colour, marker, line style of each method, the same in every plot
STYLE = {"semantic+rag": ("C0", "o", "-"), "semantic": ("C1", "s", "--"), "retrieval": ("C4", "x", ":"),
         "semantic-embedding": ("C5", "D", ":"), "digital": ("C3", "^", "-"), "digital-lm": ("C6", "P", "-"),
         "ideal": ("C2", "v", ":"), "noiseless": ("k", "", "-.")}
# how a plot's title names the images of a subset (see ragsc.eval.sets.evaluation_set)
SUBSET_TITLES = {"held": ", held by the KBs", "novel": ", novel: in no KB"}


def save(rows: list[dict], out: Path) -> tuple[Path, list[Path]]:
    """Write a sweep's ``out/eval.csv`` and one PNG per task (``out`` is created).

    Returns
    -------
    csv_path, pngs
        The CSV's path and the PNGs' paths (:func:`plot`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "eval.csv")
    return out / "eval.csv", plot(rows, out)


def write_csv(rows: list[dict], path: Path) -> None:
    """Write :func:`~ragsc.eval.sweep.run_eval`'s rows to ``path`` as CSV with the columns ``COLUMNS``."""
    report.write_csv(rows, path, COLUMNS)


def plot(rows: list[dict], out: Path) -> list[Path]:
    """One PNG per task, ``out/eval_<task>.png``: metrics down, channels across, one line per method.

    Returns
    -------
    list of Path
        The PNGs written, in the order the tasks first appear in ``rows``.
    """
    paths = []
    for task in dict.fromkeys(r["task"] for r in rows):
        tr = [r for r in rows if r["task"] == task]
        metrics = list(dict.fromkeys(r["metric"] for r in tr))
        channels = list(dict.fromkeys(r["channel"] for r in tr))
        methods = list(dict.fromkeys(r["method"] for r in tr))
        grid = [[_panel(tr, task, metric, ch, methods) for ch in channels] for metric in metrics]
        grid[0][0].legend = 8  # one legend: every panel has the same methods
        n, subset = tr[0]["n"], tr[0].get("subset", "all")
        images = SUBSET_TITLES.get(subset, "")
        # sentences on the token link cost their own, items on CAT what its rate policy chose (which varies
        # with the SNR): the rows say the mean per item, per method; a range where it varies
        uses: dict[str, set] = {}
        for r in tr:
            uses.setdefault(r["method"], set()).add(r["channel_uses"])
        span = {m: f"{min(u)}" if len(u) == 1 else f"{min(u)}-{max(u)}" for m, u in uses.items()}
        k = span[tr[0]["method"]]
        others = {m: s for m, s in span.items() if s != k}
        except_ = "".join(f"; {m}: {u}" for m, u in others.items())
        title = f"{task}: {k} complex symbols per item in every path{except_} ({n} items{images})"
        path = report.plot_grid(grid, Path(out) / f"eval_{task}.png", title=title, panel_size=(4.6, 3.2))
        paths.append(path)
    return paths


def _panel(rows: list[dict], task: str, metric: str, channel: str, methods: list[str]) -> report.Panel:
    """One metric on one channel: a line per method over SNR."""
    lines = []
    for method in methods:
        pts = sorted((r["snr_db"], r["value"]) for r in rows
                     if r["metric"] == metric and r["channel"] == channel and r["method"] == method)
        if pts:
            color, marker, ls = STYLE[method]
            lines.append(report.Line([x for x, _ in pts], [y for _, y in pts], method,
                                     {"color": color, "marker": marker, "ls": ls}))
    return report.Panel(f"{task} / {channel}", lines, ylabel=metric)


def summary_table(rows: list[dict]) -> str:
    """The sweep as a table: one line per task, metric, channel and SNR, one column per method
    (``-`` where a method has no value)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    keys = list(dict.fromkeys((r["task"], r["metric"], r["channel"], r["snr_db"]) for r in rows))
    val = {(r["task"], r["metric"], r["channel"], r["snr_db"], r["method"]): r["value"] for r in rows}
    body = [[t, m, c, f"{s:g}"] + [f"{val[(t, m, c, s, meth)]:.3f}" if (t, m, c, s, meth) in val else "-"
                                   for meth in methods]
            for t, m, c, s in keys]
    return report.table(body, ["task", "metric", "channel", "SNR dB"] + methods)
