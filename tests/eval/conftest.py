"""A small multitask sweep, run once and shared by the sweep tests (tests/eval/test_sweep.py)."""

import pytest


@pytest.fixture(scope="session")
def sweep_snrs():
    return [0, 20]


@pytest.fixture(scope="session")
def sweep_rows(multitask, sweep_snrs):
    """Every method over AWGN at ``sweep_snrs``, 4 items per kind."""
    from ragsc.eval.sweep import SWEEP_METHODS, run_eval

    return run_eval(multitask, ["awgn"], sweep_snrs, n=4, seed=0, methods=SWEEP_METHODS, progress=False)
