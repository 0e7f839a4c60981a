"""Fixtures of the CLI tests: the commands over compression and federated learning run on the tiny models
their packages' tests build (imported from there, so that each is defined once)."""

from tests.compress.conftest import student_dir  # noqa: F401
from tests.federated.conftest import one_thread, tiny_base  # noqa: F401
