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

from ragsc.errors import InputError


@dataclass(frozen=True)
class Question:
    """A question and the answers accepted as right (the first is the reference answer)."""

    text: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class DevPhoto:
    """One photo: ``name``, its ``source`` (``skimage``, ``sklearn``, ``matplotlib``, ``plasma``,
    ``fashion-mnist``), the file or item inside it, our caption and questions."""

    name: str
    source: str
    file: str
    caption: str
    questions: tuple[Question, ...]


def _q(text: str, *answers: str) -> Question:
    return Question(text, answers)


YES, NO = ("yes",), ("no",)

_PHOTOS: tuple[tuple[str, str, str, str, tuple[Question, ...]], ...] = (
    (
        "astronaut",
        "skimage",
        "astronaut.png",
        "an astronaut in an orange spacesuit in front of an american flag",
        (
            _q("what is this person's job?", "astronaut"),
            _q("is the person wearing a spacesuit?", *YES),
            _q("what colour is the suit?", "orange"),
        ),
    ),
    (
        "brick",
        "skimage",
        "brick.png",
        "a grey brick wall",
        (
            _q("what is this a picture of?", "brick wall", "wall", "bricks", "brick"),
            _q("is this a wall?", *YES),
        ),
    ),
    (
        "camera",
        "skimage",
        "camera.png",
        "a man with a camera on a tripod in a field",
        (_q("what is the man using?", "camera", "tripod"), _q("is this photo in colour?", *NO)),
    ),
    (
        "cell",
        "skimage",
        "cell.png",
        "a single cell under a microscope",
        (_q("what is shown?", "cell", "a cell"), _q("is there an animal in the picture?", *NO)),
    ),
    (
        "chelsea",
        "skimage",
        "chelsea.png",
        "a close-up of a tabby cat",
        (_q("what animal is this?", "cat", "tabby cat", "kitten", "tabby"), _q("is there a dog?", *NO)),
    ),
    (
        "clock",
        "skimage",
        "clock_motion.png",
        "a blurry wall clock",
        (_q("what object is this?", "clock", "wall clock"), _q("is this a clock?", *YES)),
    ),
    (
        "coffee",
        "skimage",
        "coffee.png",
        "a cup of coffee on a saucer with a spoon",
        (_q("what drink is in the cup?", "coffee", "espresso"), _q("is there a cup?", *YES)),
    ),
    (
        "coins",
        "skimage",
        "coins.png",
        "a collection of old coins",
        (_q("what objects are shown?", "coins", "coin", "money"), _q("is there a cat?", *NO)),
    ),
    (
        "grass",
        "skimage",
        "grass.png",
        "a close-up of grass",
        (_q("what is this?", "grass", "lawn"), _q("is this a photo of a city?", *NO)),
    ),
    (
        "gravel",
        "skimage",
        "gravel.png",
        "a close-up of gravel stones",
        (_q("what is this?", "gravel", "stones", "pebbles", "rocks"), _q("is there water?", *NO)),
    ),
    (
        "hubble_deep_field",
        "skimage",
        "hubble_deep_field.jpg",
        "galaxies in deep space",
        (_q("what is shown?", "galaxies", "stars", "space", "galaxy"), _q("is there a building?", *NO)),
    ),
    (
        "immunohistochemistry",
        "skimage",
        "ihc.png",
        "a stained tissue sample under a microscope",
        (_q("what is shown?", "tissue", "cells", "a tissue sample"), _q("is this a landscape?", *NO)),
    ),
    (
        "microaneurysms",
        "skimage",
        "microaneurysms.png",
        "a grey close-up of blood vessels in the retina",
        (_q("what is shown?", "blood vessels", "retina", "vessels"), _q("is there a person?", *NO)),
    ),
    (
        "moon",
        "skimage",
        "moon.png",
        "the cratered surface of the moon",
        (_q("what is shown?", "moon", "the moon", "moon surface", "craters"), _q("is this in colour?", *NO)),
    ),
    (
        "motorcycle",
        "skimage",
        "motorcycle_left.png",
        "a red motorcycle parked in a garage",
        (
            _q("what vehicle is this?", "motorcycle", "motorbike", "bike"),
            _q("what colour is the motorcycle?", "red"),
            _q("is it a car?", *NO),
        ),
    ),
    (
        "page",
        "skimage",
        "page.png",
        "a page of printed text about image segmentation",
        (_q("what is on the page?", "text", "writing", "words"), _q("is there text?", *YES)),
    ),
    (
        "retina",
        "skimage",
        "retina.jpg",
        "a photograph of the retina of an eye",
        (_q("what part of the body is this?", "eye", "retina"), _q("is the picture mostly orange?", *YES)),
    ),
    (
        "rocket",
        "skimage",
        "rocket.jpg",
        "a rocket on a launch pad at night",
        (_q("what is on the launch pad?", "rocket", "a rocket", "spacecraft"), _q("is it daytime?", *NO)),
    ),
    (
        "text",
        "skimage",
        "text.png",
        "handwritten numbers and symbols on paper",
        (
            _q("what is written on the paper?", "numbers", "math", "equations", "text", "writing"),
            _q("is there a tree?", *NO),
        ),
    ),
    (
        "china",
        "sklearn",
        "china.jpg",
        "a chinese pagoda on a hill among trees",
        (
            _q("what kind of building is this?", "pagoda", "temple", "tower", "palace"),
            _q("are there trees?", *YES),
        ),
    ),
    (
        "flower",
        "sklearn",
        "flower.jpg",
        "an orange dahlia flower",
        (_q("what is this?", "flower", "dahlia"), _q("what colour is the flower?", "orange")),
    ),
    (
        "grace_hopper",
        "matplotlib",
        "grace_hopper.jpg",
        "a portrait of an elderly woman in a navy uniform in front of a flag",
        (
            _q("who is in the picture?", "woman", "a woman", "an old woman", "officer", "grace hopper"),
            _q("is the person wearing a uniform?", *YES),
        ),
    ),
    (
        "by_the_water",
        "plasma",
        "BytheWater",
        "a wooden jetty by the water at sunset",
        (_q("what is the walkway made of?", "wood", "wooden planks", "planks"), _q("is there water?", *YES)),
    ),
    (
        "cold_ripple",
        "plasma",
        "ColdRipple",
        "a wooden pier on a foggy lake",
        (_q("what is in the middle of the picture?", "pier", "jetty", "dock"), _q("is it sunny?", *NO)),
    ),
    (
        "colorful_cups",
        "plasma",
        "ColorfulCups",
        "rows of colourful plastic cups seen from above",
        (_q("what objects are these?", "cups", "plastic cups", "cup"), _q("is there only one cup?", *NO)),
    ),
    (
        "darkest_hour",
        "plasma",
        "DarkestHour",
        "a misty blue lake at dusk",
        (_q("what time of day is it?", "dusk", "night", "evening", "twilight"), _q("is there water?", *YES)),
    ),
    (
        "evening_glow",
        "plasma",
        "EveningGlow",
        "wooden rowing boats on a lake shore at sunset",
        (_q("what is on the shore?", "boats", "rowing boats", "boat"), _q("is the sun setting?", *YES)),
    ),
    (
        "fallen_leaf",
        "plasma",
        "FallenLeaf",
        "a fallen maple leaf on the ground in autumn",
        (
            _q("what season is it?", "autumn", "fall"),
            _q("what is lying on the ground?", "leaf", "leaves", "a leaf", "maple leaf"),
        ),
    ),
    (
        "grey",
        "plasma",
        "Grey",
        "the wavy facade of a modern building in black and white",
        (
            _q("what is this a photo of?", "building", "architecture", "facade"),
            _q("is there an animal?", *NO),
        ),
    ),
    (
        "kite",
        "plasma",
        "Kite",
        "a colourful kite flying in a blue sky with clouds",
        (_q("what is flying in the sky?", "kite", "a kite"), _q("what colour is the sky?", "blue")),
    ),
    (
        "one_stands_out",
        "plasma",
        "OneStandsOut",
        "green plants seen from above with one orange plant",
        (_q("what colour are most of the plants?", "green"), _q("is there a car?", *NO)),
    ),
    (
        "forest_path",
        "plasma",
        "Path",
        "a path through a green forest",
        (_q("where was this photo taken?", "forest", "woods", "in a forest"), _q("are there trees?", *YES)),
    ),
    (
        "summer_night",
        "plasma",
        "summer_1am",
        "a calm lake under a pink and purple sky at dusk",
        (_q("what is below the sky?", "lake", "water", "sea"), _q("are there people?", *NO)),
    ),
)

# Fashion-MNIST classes -> (caption noun, accepted answers to "what is this?", worn on the feet)
_FASHION = (
    ("t-shirt", ("t-shirt", "shirt", "top", "tee", "tshirt"), False),
    ("pair of trousers", ("trousers", "pants", "jeans"), False),
    ("pullover", ("pullover", "sweater", "jumper"), False),
    ("dress", ("dress",), False),
    ("coat", ("coat", "jacket"), False),
    ("sandal", ("sandal", "sandals", "shoe"), True),
    ("shirt", ("shirt", "blouse"), False),
    ("sneaker", ("sneaker", "shoe", "trainer", "sneakers", "running shoe"), True),
    ("bag", ("bag", "handbag", "purse"), False),
    ("ankle boot", ("boot", "ankle boot", "boots", "shoe"), True),
)


def _fashion_entries(labels: np.ndarray) -> list[DevPhoto]:
    out = []
    for c, (noun, answers, feet) in enumerate(_FASHION):
        for j, i in enumerate(np.flatnonzero(labels == c)[:2].tolist()):
            second = (
                _q("can you wear this on your feet?", *(YES if feet else NO))
                if j == 0
                else _q(f"is this a {noun.removeprefix('pair of ')}?", *YES)
            )
            out.append(
                DevPhoto(
                    f"fashion_{answers[0]}_{j}",
                    "fashion-mnist",
                    f"test/{i}",
                    f"a small grey photo of a {noun}",
                    (_q("what is this?", *answers), second),
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
    photos = [DevPhoto(*row) for row in _PHOTOS] + _fashion_entries(labels)
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
    return a in accepted or a.rstrip("s") in {x.rstrip("s") for x in accepted}
