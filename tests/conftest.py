"""Shared test set-up: never reach a model hub, keep artefacts in a temporary RAGSC_HOME."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _ragsc_home(tmp_path_factory):
    os.environ["RAGSC_HOME"] = str(tmp_path_factory.mktemp("ragsc_home"))


@pytest.fixture(scope="session")
def embedded():
    """The embedded default encoder, loaded once per session (about 5 s)."""
    from ragsc import load_encoder

    return load_encoder("embedded")
