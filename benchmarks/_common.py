"""Helpers shared by the benchmark scripts: timing, a description of the machine, and the results file.

Every benchmark prints its tables and, unless run with ``--no-results``, writes the same figures to
``docs/results/<bench>.json`` (:func:`write_results`), which the documentation's results pages render
(``docs/hooks/results.py``): nothing is pasted by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "docs" / "results"
FORMAT_VERSION = 1
# when this module was first imported (the benchmark's start): its wall time and load average count from here
_STARTED = {"perf": time.perf_counter(), "utc": datetime.datetime.now(datetime.UTC),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def best_time(fn, repeats: int = 5) -> float:
    """Best wall time of ``fn`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def best_times(a, b, repeats: int) -> tuple[float, float]:
    """Best times of two functions measured alternately, so machine noise (a shared VM) hits both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return min(ta), min(tb)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> str:
    """CPU model, cores, torch version and threads."""
    import torch

    threads = torch.get_num_threads()
    return f"{_cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads)"


def relative_gain(value: float, base: float) -> float:
    """``(value - base) / |base|``; a zero base gives a signed infinity (or 0 when nothing changed)."""
    if base:
        return (value - base) / abs(base)
    return math.copysign(math.inf, value - base) if value != base else 0.0


def mean_finite(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.mean(finite) if finite else math.nan


def pct(x: float) -> str:
    """A relative change as a signed percentage (``n/a`` for NaN, ``+inf`` / ``-inf``)."""
    if math.isnan(x):
        return "n/a"
    return ("+inf" if x > 0 else "-inf") if math.isinf(x) else f"{x:+.1%}"


def wordnet_validation(n: int, test_n: int = 200) -> list[str]:
    """``n`` WordNet example sentences for choosing settings: drawn with seed 1, minus the ``test_n``
    test sentences of ``bench_text.py`` (seed 0), so a choice never sees the reported set."""
    from ragsc.datasets.heldout import wordnet_examples

    test = set(wordnet_examples(test_n, seed=0))
    return [s for s in wordnet_examples(n + test_n, seed=1) if s not in test][:n]


# ----------------------------------------------------------------------------- the results file


@dataclass
class Table:
    """One table a benchmark printed: ``columns`` and ``rows`` of the cells as printed (strings or numbers).

    ``name`` is a short identifier (unique in one results file); ``title`` the sentence printed above it.
    """

    name: str
    columns: list[str]
    rows: list[list]
    title: str = ""
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """The table as the benchmarks print it (:func:`ragsc.report.table`)."""
        from ragsc.report import table

        return table(self.rows, self.columns)


def add_results_args(ap: argparse.ArgumentParser) -> None:
    """``--results-dir`` and ``--no-results``: where :func:`write_results` writes, or not at all."""
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                    help="folder of the results JSON (default: docs/results of this checkout)")
    ap.add_argument("--no-results", action="store_true", help="print only; write no results JSON")


def _git() -> dict:
    """The checkout's commit and whether its tracked or new files differ from it (results files aside)."""
    def run(*cmd: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *cmd], capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()
    try:
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--", ".", ":(exclude)docs/results")
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def machine_info() -> dict:
    """The machine as a dict: platform, CPU model, cores, library versions and thread counts, load average."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": _cpu_model(),
            "cores": os.cpu_count(), "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS")}
    if "torch" in sys.modules or _importable("torch"):
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    if "faiss" in sys.modules or _importable("faiss"):
        import faiss

        info.update(faiss=faiss.__version__, faiss_threads=faiss.omp_get_max_threads())
    return info


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _cell(x):
    """A cell as JSON holds it: strings and finite numbers as they are, anything else as its string."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    return str(x)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


# a JSON array of scalars on one line, so a table row reads as a row in the file and in a diff
_SCALARS = re.compile(r'\[\n((?:\s*(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+|null|true|false),?\n)+)\s*\]')


def _dumps(doc: dict) -> str:
    """``doc`` as indented JSON with each array of scalars (a row, the columns, the command) on one line."""
    text = json.dumps(doc, indent=1, ensure_ascii=False)
    def one_line(m: re.Match) -> str:
        return "[" + ", ".join(x.strip().rstrip(",") for x in m.group(1).splitlines()) + "]"

    return _SCALARS.sub(one_line, text)


def write_results(bench: str, tables: Sequence[Table], *, args: argparse.Namespace | None = None,
                  notes: Sequence[str] = (), figures: Sequence[str | Path] = (),
                  results_dir: str | Path | None = None) -> Path | None:
    """Write ``<results_dir>/<bench>.json``: the figures a benchmark printed and how they were made.

    Parameters
    ----------
    bench
        The benchmark's name, the script's stem (``"bench_channel"``).
    tables
        What the script printed, one :class:`Table` per printed table, cells exactly as printed.
    args
        The parsed arguments; ``args.no_results`` skips the write, ``args.results_dir`` is the folder.
    notes
        Lines the script printed beside its tables (a figure in a sentence, a goal met or not).
    figures
        PNG files the run made: copied next to the JSON as ``<bench>-<name>``; the JSON holds the copies'
        paths relative to it.
    results_dir
        The folder (overrides ``args.results_dir``; default ``docs/results``).

    Returns
    -------
    Path or None
        The file written (None with ``--no-results``). Written atomically: a temporary file in the same
        folder, then :func:`os.replace`, so a killed run leaves the previous results whole.

    The JSON also holds the exact command line (``sys.argv``), the machine (:func:`machine_info`; the
    1-minute load average when ``_common`` was imported and now, so a reader sees whether the machine was
    idle), the UTC start date, the git commit (and whether the tree was dirty, results files aside) and the
    wall time since ``_common`` was imported.
    """
    if args is not None and getattr(args, "no_results", False):
        return None
    folder = Path(results_dir or (getattr(args, "results_dir", None) if args is not None else None)
                  or RESULTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise ValueError(f"{bench}: table names must be unique, got {names}")
    for t in tables:
        bad = [i for i, r in enumerate(t.rows) if len(r) != len(t.columns)]
        if bad:
            raise ValueError(f"{bench}: table {t.name!r} rows {bad} do not have {len(t.columns)} cells")
    copied = []
    for fig in figures:
        src = Path(fig)
        dst = folder / f"{bench}-{src.name}"
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        copied.append(dst.name)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    doc = {
        "format_version": FORMAT_VERSION,
        "bench": bench,
        "command": list(sys.argv),
        "date_utc": _STARTED["utc"].isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - _STARTED["perf"], 1),
        "git": _git(),
        "machine": {**machine_info(), "load_1min_start": _round(_STARTED["load"]),
                    "load_1min_end": _round(load_end)},
        "tables": [{"name": t.name, "title": t.title, "columns": list(t.columns),
                    "rows": [[_cell(c) for c in r] for r in t.rows], "notes": list(t.notes)} for t in tables],
        "notes": list(notes),
        "figures": copied,
    }
    path = folder / f"{bench}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(_dumps(doc) + "\n")
    os.replace(tmp, path)
    print(f"results: wrote {path}", file=sys.stderr)
    return path
