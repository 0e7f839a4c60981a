"""Helpers of the pipeline tests: the shipped specs, a spec variant, a stand-in encoder, files on disk."""

from pathlib import Path
from types import SimpleNamespace

import yaml

from ragsc._assets import asset_dir

SPECS = asset_dir("pipelines")


def embedding_spec(task: str) -> dict:
    """``pipelines/<task>.yaml`` with sentences sent as embeddings (the semantic-embedding path)."""
    return {**yaml.safe_load((SPECS / f"{task}.yaml").read_text()), "text": {"link": "embedding"}}


def files_under(*roots):
    return {p for r in roots if Path(r).exists() for p in Path(r).rglob("*")}


def other_encoder(dim=384):
    """A stand-in for an encoder with another fingerprint (what KnowledgeBase.create reads)."""
    return SimpleNamespace(spec="fake:other", dim=dim, fingerprint="fake-other-fingerprint")
