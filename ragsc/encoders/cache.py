"""Embeddings cached on disk under ``RAGSC_HOME/cache``, keyed by the encoder's fingerprint and a name."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import torch


def corpus_key(texts: Sequence[str]) -> str:
    """A short content hash of a list of texts (cache names change when the corpus does)."""
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]


def cached_embeddings(encoder, name: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()`` once per (encoder fingerprint, name); later calls read the safetensors file."""
    from safetensors.torch import load_file, save_file

    from ragsc._assets import home_dir

    path = home_dir() / "cache" / f"embeddings-{encoder.fingerprint[:16]}-{name}.safetensors"
    if path.is_file():
        return load_file(str(path))["x"]
    x = compute().float().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"x": x}, str(tmp))
    tmp.replace(path)  # a killed run leaves no half-written cache
    return x
