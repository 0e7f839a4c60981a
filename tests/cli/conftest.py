"""Fixtures of the CLI tests: the commands over compression and federated learning run on the tiny models
their packages' tests build (imported from there, so that each is defined once); ``forbid`` shows that a
command refuses its ``--out`` before any work."""

from __future__ import annotations

import pytest

from tests.compress.conftest import student_dir  # noqa: F401
from tests.federated.conftest import one_thread, tiny_base  # noqa: F401


class _Forbidden:
    """Stands for a function or class a command must not reach: calling it, or any attribute of it, fails
    the test (``pytest.fail`` is no ``Exception``: the CLI's error handling does not swallow it)."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args, **kwargs):
        pytest.fail(f"{self._name} was reached: the --out check must come before any work")

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Forbidden(f"{self._name}.{attr}")


@pytest.fixture
def forbid(monkeypatch):
    """``forbid(module, "name", ...)``: ``module.name`` fails the test if it is called or used."""

    def set_(module, *names: str) -> None:
        for name in names:
            monkeypatch.setattr(module, name, _Forbidden(f"{module.__name__}.{name}"))

    return set_
