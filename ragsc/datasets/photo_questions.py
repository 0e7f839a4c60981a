"""The development set for captions and answers on real photos: 53 photos, our captions, 108 questions.

Photos come from sources no ragsc model trains on and no default KB holds: the photos bundled in
scikit-image, scikit-learn and matplotlib (22; the stereo motorcycle's right view is left out as a
near-duplicate of the left), the photographs among Debian's ``plasma-workspace-wallpapers`` (11; the
package's renders are left out) and Debian's ``dataset-fashion-mnist`` (the first two test items of each of
the ten classes: real product photos at 28x28 grey levels, MIT licence). Captions and questions were
written by us while looking at each photo, before any model ran on it; each question lists the answers
accepted as right (lower case, matched after normalisation, see :func:`is_right`). Yes/no questions are
balanced so that always saying "no" or "yes" scores about half of them.

Split: every third photo (index 0, 3, 6, ...) is the validation split, on which decoder settings are
chosen; the rest is the test split, on which they are reported. Nothing is tuned on the test split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragsc.datasets.photo_questions_data import FASHION, NO, PHOTOS, POLAR, YES, Question, ask
from ragsc.errors import InputError


@dataclass(frozen=True)
class DevPhoto:
    """One photo: ``name``, its ``source`` (``skimage``, ``sklearn``, ``matplotlib``, ``plasma``,
    ``fashion-mnist``), the file or item inside it, our caption and questions."""

    name: str
    source: str
    file: str
    caption: str
    questions: tuple[Question, ...]


def _fashion_entries(labels: np.ndarray) -> list[DevPhoto]:
    out = []
    for c, (noun, answers, feet) in enumerate(FASHION):
        for j, i in enumerate(np.flatnonzero(labels == c)[:2].tolist()):
            second = (
                ask("can you wear this on your feet?", *(YES if feet else NO))
                if j == 0
                else ask(f"is this a {noun.removeprefix('pair of ')}?", *YES)
            )
            out.append(
                DevPhoto(
                    f"fashion_{answers[0]}_{j}",
                    "fashion-mnist",
                    f"test/{i}",
                    f"a small grey photo of a {noun}",
                    (ask("what is this?", *answers), second),
                )
            )
    return out


def dev_photos(split: str = "all") -> list[DevPhoto]:
    """The development set's photos (``split``: ``"validation"``, ``"test"`` or ``"all"``), in a fixed
    order. Needs ``plasma-workspace-wallpapers`` and ``dataset-fashion-mnist`` (InputError naming them)."""
    if split not in ("validation", "test", "all"):
        raise InputError(f"split must be 'validation', 'test' or 'all', got {split!r}")
    from ragsc.datasets.fashion_mnist import load_fashion_mnist

    _, labels = load_fashion_mnist("test", n=200)
    photos = [DevPhoto(*row) for row in PHOTOS] + _fashion_entries(labels)
    return [p for i, p in enumerate(photos) if split == "all" or (i % 3 == 0) == (split == "validation")]


def load_dev_image(photo: DevPhoto):
    """The photo's pixels as a PIL image (RGB), full resolution (plasma: the largest file)."""
    from PIL import Image

    if photo.source == "fashion-mnist":
        from ragsc.datasets.fashion_mnist import load_fashion_mnist

        x, _ = load_fashion_mnist("test", n=200)
        return Image.fromarray(x[int(photo.file.split("/")[1])]).convert("RGB")
    return _open_rgb(dev_photo_path(photo))


def dev_photo_path(photo: DevPhoto) -> Path:
    """The file of a photo that has one (not Fashion-MNIST items); InputError if it is not installed."""
    import matplotlib
    import skimage.data
    import sklearn.datasets

    if photo.source == "plasma":
        folder = Path("/usr/share/wallpapers") / photo.file / "contents" / "images"
        files = (
            sorted(folder.glob("*.jpg"), key=lambda p: int(p.stem.split("x")[0])) if folder.is_dir() else []
        )
        if not files:
            raise InputError(
                f"{folder} is missing: apt-get install plasma-workspace-wallpapers (make photos)"
            )
        return files[-1]
    roots = {
        "skimage": Path(skimage.data.__file__).parent,
        "sklearn": Path(sklearn.datasets.__file__).parent / "images",
        "matplotlib": Path(matplotlib.get_data_path()) / "sample_data",
    }
    if photo.source not in roots:
        raise InputError(f"{photo.name!r} ({photo.source}) has no file")
    return roots[photo.source] / photo.file


def _open_rgb(path: Path):
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def normalise(answer: str) -> str:
    """Lower case, no punctuation, no leading article: ``"A Cat."`` -> ``"cat"``."""
    a = re.sub(r"[^a-z0-9\- ]", " ", answer.lower())
    a = re.sub(r"\s+", " ", a).strip()
    return re.sub(r"^(a|an|the) ", "", a)


def is_right(answer: str, question: Question) -> bool:
    """Whether ``answer`` is one of the accepted answers (after :func:`normalise`; a plural 's' is
    ignored)."""
    a = normalise(answer)
    accepted = {normalise(x) for x in question.answers}
    # a plural "s" either way ("cat" / "cats", "coins" / "coin"), not where the "s" is the word's ("yes",
    # "glass")
    return any(a in (x, x + "s") or (a + "s" == x and x not in POLAR and not x.endswith("ss"))
               for x in accepted)
