"""Helpers shared by the benchmark scripts: timing and a description of the machine."""

from __future__ import annotations

import math
import os
import platform
import statistics
import time


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


def machine() -> str:
    """CPU model, cores, torch version and threads."""
    import torch

    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"


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
