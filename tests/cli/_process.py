"""``ragsc ARGS`` in a fresh interpreter (``python -m ragsc.cli``): for what only the console entry shows,
at 1.5 s of imports per call (+5 s when it loads the encoder); everything else runs in process (the ``cli``
fixture of tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ragsc(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``ragsc ARGS`` to the end: :func:`start`, then :func:`finish`."""
    return finish(start(*args, cwd=cwd, env=env))


def start(*args, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``ragsc ARGS`` in the repository (or ``cwd``), with ``env`` added to this environment."""
    return subprocess.Popen([sys.executable, "-m", "ragsc.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd or ROOT,
                            env={**os.environ, **(env or {})})


def finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    """Wait (at most 300 s) for a :func:`start`-ed command."""
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)
