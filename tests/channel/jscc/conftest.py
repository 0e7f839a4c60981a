"""Fixtures of the image JSCC tests: tiny untrained codecs (8 channels wide, levels 2 and 8: ratios 1/192 and
1/48), seeded, in eval mode, and small generated photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.channel.jscc import JSCCCodec, JSCCConfig

TINY = dict(widths=(8, 8, 8), blocks=(0, 1), max_channels=8, levels=(2, 8))


def tiny_codec(seed: int = 0, **fields) -> JSCCCodec:
    """A tiny codec with weights drawn from ``seed`` (eval mode)."""
    torch.manual_seed(seed)
    return JSCCCodec(JSCCConfig(**{**TINY, **fields})).eval()


def photo(height: int, width: int, seed: int = 0) -> Image.Image:
    """An RGB photo: a colour gradient with a little noise (not constant: every code differs)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / max(1, width - 1), y / max(1, height - 1), (x + y) / max(1, height + width - 2)], -1)
    base = np.roll(base, seed, axis=-1)
    px = base * 220 + rng.normal(0, 12, (height, width, 3)) + 16
    return Image.fromarray(np.clip(px, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def codec() -> JSCCCodec:
    return tiny_codec()


@pytest.fixture(scope="module")
def side_codec() -> JSCCCodec:
    return tiny_codec(side_info=True)
