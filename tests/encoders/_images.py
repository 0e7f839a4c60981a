"""Test helpers shared by the encoder backend tests."""

import numpy as np
from PIL import Image


def rand_image(size, seed, mode="RGB"):
    """A seeded random image of ``size`` (w, h) in mode RGB, RGBA or L."""
    rng = np.random.RandomState(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (h, w) if channels is None else (h, w, channels)
    return Image.fromarray(rng.randint(0, 256, shape, dtype=np.uint8), mode if channels else "L")
