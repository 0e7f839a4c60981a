"""Optional dependencies, imported where they are needed through one helper (lerobot's pattern)."""

from __future__ import annotations

import importlib
from types import ModuleType

from ragsc.errors import MissingDependencyError


def require_package(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an error that names the ragsc extra providing it.

    Parameters
    ----------
    module
        Importable module name, e.g. ``"ray"``.
    extra
        The ``ragsc[...]`` extra that installs it, e.g. ``"ray"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this feature needs the optional package '{module}': pip install 'ragsc[{extra}]'"
        ) from exc
