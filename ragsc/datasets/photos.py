"""Real photographs that ship with scikit-image and scikit-learn, with captions written by us.

They are the open-vocabulary check of an encoder trained without natural photos: none of them is
used for training. Captions describe what a person sees; they were written before any model was run
and are not tuned to a model's class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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


# The image benchmark's held-out photos: the real photographs that ship as files inside scikit-image,
# scikit-learn and matplotlib, and one of Debian's plasma-workspace-wallpapers, at their own resolution
# (name, source, file). None is a training photo of the image codec (those are other Debian background
# packages: ragsc.datasets.debian_photos).
HELDOUT: tuple[tuple[str, str, str], ...] = tuple(
    (n, "skimage", f) for n, f in (
        ("astronaut", "astronaut.png"), ("brick", "brick.png"), ("camera", "camera.png"),
        ("cell", "cell.png"), ("chelsea", "chelsea.png"), ("clock", "clock_motion.png"),
        ("coffee", "coffee.png"), ("coins", "coins.png"), ("grass", "grass.png"), ("gravel", "gravel.png"),
        ("hubble_deep_field", "hubble_deep_field.jpg"), ("immunohistochemistry", "ihc.png"),
        ("microaneurysms", "microaneurysms.png"), ("moon", "moon.png"),
        ("motorcycle_left", "motorcycle_left.png"), ("motorcycle_right", "motorcycle_right.png"),
        ("page", "page.png"), ("retina", "retina.jpg"), ("rocket", "rocket.jpg"), ("text", "text.png"))
) + (("china", "sklearn", "china.jpg"), ("flower", "sklearn", "flower.jpg"),
     ("grace_hopper", "matplotlib", "grace_hopper.jpg"),
     ("forest_path", "plasma", "Path/contents/images/1280x800.jpg"))

LICENCES = {
    "skimage": "scikit-image data: public domain / CC0 / CC-BY (per file: skimage/data/README.txt)",
    "sklearn": "scikit-learn sample images: CC-BY 2.0 (sklearn/datasets/images/README.txt)",
    "matplotlib": "matplotlib sample data: grace_hopper.jpg, public domain",
    "plasma": "Debian's plasma-workspace-wallpapers (Path by Risto Saukonpää: LGPL-3)",
}

# held-out photos showing the same scene from another view (the image benchmark's "related" KB case)
RELATED_VIEWS = {"motorcycle_left": "motorcycle_right", "motorcycle_right": "motorcycle_left"}


def heldout_photo_paths() -> list[tuple[str, Path]]:
    """``(name, path)`` of the 24 held-out photos (:data:`HELDOUT`): files inside the installed Python
    packages, and one from ``apt-get install plasma-workspace-wallpapers`` (:class:`InputError` if
    missing)."""
    import matplotlib
    import skimage.data
    import sklearn.datasets

    from ragsc.errors import InputError

    roots = {"skimage": Path(skimage.data.__file__).parent,
             "sklearn": Path(sklearn.datasets.__file__).parent / "images",
             "matplotlib": Path(matplotlib.get_data_path()) / "sample_data",
             "plasma": Path("/usr/share/wallpapers")}
    out = [(name, roots[src] / f) for name, src, f in HELDOUT]
    missing = [str(p) for _, p in out if not p.is_file()]
    if missing:
        raise InputError(f"held-out photo missing: {missing[0]} (the plasma one: apt-get install "
                         "plasma-workspace-wallpapers)")
    return out
