"""Tiny deterministic stand-ins for a MultimodalEncoder, shared by the KB tests and their subprocesses.

Importable without pytest (the kill -9 test runs it in a child ``python -c``).
"""

from __future__ import annotations

import hashlib
import time
from types import SimpleNamespace

import numpy as np
import torch

from ragsc.encoders.inputs import load_image


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def rand_unit(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    """``n`` random L2-normalised float32 rows."""
    return unit(np.random.default_rng(seed).standard_normal((n, dim)))


def _seed(data: bytes) -> int:
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


class FakeEncoder:
    """Deterministic encoder: texts -> hash-seeded unit vectors; images -> mean-colour based unit vectors.

    ``delay_s`` sleeps once per encode call (to make a child ingestion slow enough to kill).
    ``calls`` counts encode calls per modality.
    """

    def __init__(self, dim: int = 16, spec: str = "fake:test", fingerprint: str = "fake-fp-1",
                 delay_s: float = 0.0) -> None:
        self.dim, self.spec, self.fingerprint, self.delay_s = dim, spec, fingerprint, delay_s
        self.calls = {"text": 0, "image": 0}

    def text_vector(self, text: str) -> np.ndarray:
        return unit(np.random.default_rng(_seed(text.encode())).standard_normal(self.dim))

    def image_vector(self, image) -> np.ndarray:
        im = load_image(image)
        arr = np.asarray(im, dtype=np.float32) / 255.0
        v = np.random.default_rng(_seed(arr.tobytes())).standard_normal(self.dim) * 0.05
        v[:3] += arr.reshape(-1, 3).mean(0) - 0.5  # dominated by the mean colour
        v[3] += 1.0
        return unit(v)

    def encode_texts(self, texts, **_):
        texts = [texts] if isinstance(texts, str) else list(texts)
        self.calls["text"] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        vecs = (np.stack([self.text_vector(t) for t in texts]) if texts
                else np.zeros((0, self.dim), np.float32))
        return SimpleNamespace(embeddings=torch.from_numpy(vecs))

    def encode_images(self, images, **_):
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        self.calls["image"] += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        vecs = (np.stack([self.image_vector(i) for i in images]) if images
                else np.zeros((0, self.dim), np.float32))
        return SimpleNamespace(embeddings=torch.from_numpy(vecs))


# the encoder record of a KB made by new_kb() without an encoder (the fake's spec, fingerprint, dimension)
FAKE = {"spec": "fake", "fingerprint": "f1", "dim": 8}
