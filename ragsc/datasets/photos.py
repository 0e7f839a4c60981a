"""Real photographs that ship with scikit-image and scikit-learn, with captions written by us.

They are the open-vocabulary check of an encoder trained without natural photos: none of them is
used for training. Captions describe what a person sees; they were written before any model was run
and are not tuned to a model's class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Photo:
    """One sample photograph: a short name, our caption, and the pixels (``HxW`` or ``HxWx3`` uint8)."""

    name: str
    caption: str
    pixels: np.ndarray


# name -> caption; _pixels() loads each from files bundled inside the packages (no pooch fetches).
_CAPTIONS = {
    "astronaut": "an astronaut in a spacesuit",
    "brick": "a brick wall",
    "camera": "a man operating a camera on a tripod",
    "chelsea": "a cat",
    "checkerboard": "a black and white checkerboard",
    "clock": "a clock",
    "coffee": "a cup of coffee",
    "coins": "a collection of coins",
    "colorwheel": "a color wheel",
    "grass": "grass",
    "gravel": "gravel",
    "horse": "the silhouette of a horse",
    "hubble_deep_field": "galaxies in deep space",
    "immunohistochemistry": "a stained tissue sample under a microscope",
    "cell": "a cell under a microscope",
    "moon": "the surface of the moon",
    "motorcycle": "a motorcycle",
    "page": "a page of printed text",
    "retina": "a photograph of the retina of an eye",
    "rocket": "a rocket on a launch pad",
    "face": "the face of a person",
    "china": "a chinese temple",
    "flower": "a flower",
}


def _pixels(name: str) -> np.ndarray:
    from skimage import data

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name == "clock":
        return data.clock()
    if name == "motorcycle":
        return data.stereo_motorcycle()[0]
    if name == "face":
        return (data.lfw_subset()[0] * 255).round().astype(np.uint8)
    if name == "horse":
        return (~data.horse()).astype(np.uint8) * 255
    return getattr(data, name)()


@lru_cache(maxsize=1)
def load_photos() -> tuple[Photo, ...]:
    """The 23 captioned sample photos, in a fixed order."""
    out = []
    for name, caption in _CAPTIONS.items():
        px = np.asarray(_pixels(name))
        if px.dtype == bool:
            px = px.astype(np.uint8) * 255
        out.append(Photo(name, caption, px))
    return tuple(out)
