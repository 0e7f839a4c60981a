"""Fixtures of the knowledge-base tests: a fake encoder (fast, deterministic) and KB factories."""

from __future__ import annotations

import pytest

from ragsc.kb import KnowledgeBase

from ._fakes import FakeEncoder

FAKE = {"spec": "fake", "fingerprint": "f1", "dim": 8}


@pytest.fixture
def fake_encoder():
    return FakeEncoder()


@pytest.fixture
def new_kb(tmp_path):
    """``new_kb(name="kb", encoder=FAKE, **create_kwargs)`` -> a fresh KnowledgeBase under tmp_path."""

    def make(name: str = "kb", encoder=None, **kw) -> KnowledgeBase:
        return KnowledgeBase.create(tmp_path / name, encoder if encoder is not None else dict(FAKE), **kw)

    return make
