"""Where the declarative assets (top-level ``encoders/``, ``pipelines/``, ...) and built artefacts live.

In a source checkout the assets are the repository's top-level folders; a wheel carries them under
``ragsc/_assets/``. Built artefacts (feature caches, KB indexes, plots) go to ``RAGSC_HOME``
(default ``~/.cache/ragsc``), never into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def asset_dir(kind: str) -> Path:
    """Folder of the declarative assets of one kind (``"encoders"``, ``"pipelines"``, ``"kb"``)."""
    for candidate in (_PACKAGE_DIR / "_assets" / kind, _PACKAGE_DIR.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"ragsc asset folder '{kind}/' not found next to the package or inside it; "
        "reinstall ragsc or run from a source checkout"
    )


def home_dir() -> Path:
    """The data directory for built artefacts (``RAGSC_HOME``, default ``~/.cache/ragsc``)."""
    path = Path(os.environ.get("RAGSC_HOME", Path.home() / ".cache" / "ragsc")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
