"""easy-VQA (the ``easy-vqa`` package): 64x64 images of one coloured shape, with questions.

easy-VQA has no captions; each image's colour and shape are recovered from its questions
("what color is the triangle?" -> red, triangle; "is no circle present?" yes -> not a circle) and turned
into a caption ("a red triangle"). Images whose questions leave an attribute open are left out
(about 11 % of each split: 3,578 of 4,000 train and 888 of 1,000 test images remain).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from ragsc.errors import InputError

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "yellow", "teal", "brown", "gray", "black")

CAPTION_TEMPLATES = (
    "a {color} {shape}",
    "a {color} {shape} on a white background",
    "a picture of a {color} {shape}",
    "a simple drawing of a {color} {shape}",
    "a {shape} that is {color}",
    "{color} {shape}",
)


@dataclass(frozen=True)
class EasyVQAImage:
    """One easy-VQA image with its derived attributes and its questions."""

    image_id: int
    path: Path
    color: str
    shape: str
    questions: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def caption(self) -> str:
        return caption_for(self.color, self.shape)


def caption_for(color: str, shape: str, template: str = CAPTION_TEMPLATES[0]) -> str:
    """The caption of an easy-VQA image (``template`` picks one of :data:`CAPTION_TEMPLATES`)."""
    return template.format(color=color, shape=shape)


def _package_dir() -> Path:
    import easy_vqa  # the package has no API for its data folder; its module file sits beside it

    return Path(easy_vqa.__file__).resolve().parent / "data"


def _attributes(questions: list[tuple[str, str]]) -> tuple[str | None, str | None]:
    """Colour and shape implied by an image's questions (direct answers, then elimination)."""
    color = shape = None
    ruled_out: set[str] = set()
    for q, a in questions:
        words = q.rstrip("?").split()
        mentioned_shape = next((w for w in words if w in SHAPES), None)
        mentioned_color = next((w for w in words if w in COLORS), None)
        if a in SHAPES:
            shape, color = a, color or mentioned_color
        elif a in COLORS:
            color, shape = a, shape or mentioned_shape
        elif a in ("yes", "no"):
            if (a == "yes") != bool({"not", "no"} & set(words)):  # "is there not / is no X ..."
                shape, color = shape or mentioned_shape, color or mentioned_color
            else:
                ruled_out.update(w for w in (mentioned_shape, mentioned_color) if w)
    if shape is None and len(left := [s for s in SHAPES if s not in ruled_out]) == 1:
        shape = left[0]
    if color is None and len(left := [c for c in COLORS if c not in ruled_out]) == 1:
        color = left[0]
    return color, shape


@lru_cache(maxsize=2)
def load_easy_vqa(split: Literal["train", "test"] = "train") -> tuple[EasyVQAImage, ...]:
    """All images of one split, sorted by id, each with colour, shape, caption and questions."""
    if split not in ("train", "test"):
        raise InputError(f"easy-VQA split must be 'train' or 'test', got {split!r}")
    root = _package_dir() / split
    rows = json.loads((root / "questions.json").read_text())
    by_image: dict[int, list[tuple[str, str]]] = {}
    for question, answer, image_id in rows:
        by_image.setdefault(int(image_id), []).append((question, answer))
    out = []
    for image_id in sorted(by_image):
        color, shape = _attributes(by_image[image_id])
        if color is None or shape is None:  # the questions do not pin this image down
            continue
        out.append(
            EasyVQAImage(image_id, root / "images" / f"{image_id}.png", color, shape,
                         tuple(by_image[image_id]))
        )
    return tuple(out)
