"""What a pipeline sends: items as users pass them, parsed into :class:`Message` objects.

Items: a ``str`` is a sentence (text and multitask pipelines); an image is a path, ``PIL.Image`` or
array (image and VQA pipelines; in multitask pass a ``Path``, PIL image or array); a dict
``{"image": ..., "questions": [...]}`` adds questions the receiver asks about the image (they
are the receiver's, not sent over the channel), ``{"text": ...}`` is a sentence. One item is a
batch of one.

Sizes are checked here against the pipeline's :class:`~ragsc.config.Limits` (the spec's ``limits:``),
before anything is encoded: a text's characters, an image's pixels (a file's from its header, before it
is decoded); :class:`~ragsc.errors.InputError` names the item, its size and the limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ragsc import checks
from ragsc.config import LIMITS, Limits
from ragsc.encoders.inputs import check_image
from ragsc.errors import InputError

# the modalities each task's transmitter sends
TASK_KINDS = {"text": ("text",), "image": ("image",), "vqa": ("image",), "multitask": ("text", "image")}


@dataclass
class Message:
    """One item to send: its kind, its content, and the questions the receiver will ask (images)."""

    kind: str  # "text" | "image"
    content: Any
    questions: list[str] = field(default_factory=list)


def _is_image(x: Any) -> bool:
    return isinstance(x, (Image.Image, np.ndarray, Path))


def parse_items(items, task: str, limits: Limits = LIMITS, batch: bool = False) -> list[Message]:
    """Validate ``items`` for a ``task`` pipeline (see the module docstring); :class:`InputError` names
    the item (sizes against ``limits``: ``text_chars``, ``image_pixels``, and with ``batch`` the number
    of items, ``batch_items``, checked first)."""
    if isinstance(items, (str, dict, Image.Image, np.ndarray, Path)) or items is None:
        items = [items]  # one item is a batch of one
    if not isinstance(items, Iterable) or isinstance(items, bytes):
        raise InputError(f"expected an item (a sentence, an image or a dict) or a list of items, "
                         f"got {type(items).__name__}")
    items = list(items)
    if not items:
        raise InputError("empty batch: nothing to send")
    if batch:
        checks.batch_items(len(items), limits)
    kinds = TASK_KINDS[task]
    out = []
    for i, x in enumerate(items):
        if isinstance(x, dict):
            extra = set(x) - {"image", "questions", "text"}
            if extra:
                raise InputError(f"item {i}: unknown keys {sorted(extra)} (allowed: image, questions, text)")
            questions = x.get("questions") or []
            if isinstance(questions, str):
                questions = [questions]
            if not isinstance(questions, (list, tuple)):
                raise InputError(f"item {i}: 'questions' must be a list of strings, "
                                 f"got {type(questions).__name__}")
            if x.get("image") is None:
                if questions:
                    raise InputError(f"item {i}: VQA questions with no image")
                if x.get("text") is None:
                    raise InputError(f"item {i}: a dict item needs 'image' (and 'questions') or 'text'")
                msg = Message("text", x["text"])
            else:
                if not all(isinstance(q, str) and q.strip() for q in questions):
                    raise InputError(f"item {i}: questions must be non-empty strings")
                checks.questions(questions, i, limits)
                msg = Message("image", x["image"], list(questions))
        elif isinstance(x, str) and "text" in kinds:
            msg = Message("text", x)
        elif _is_image(x):
            msg = Message("image", x)
        elif isinstance(x, str):  # an image pipeline reads a str as a path
            if not Path(x).is_file():
                raise InputError(f"item {i}: the {task!r} pipeline expected an image (path, PIL image or "
                                 f"array); {x[:60]!r} is not an image file")
            msg = Message("image", x)
        else:
            raise InputError(f"item {i}: expected a sentence or an image, got {type(x).__name__}")
        if msg.kind not in kinds:
            want = "a sentence (str)" if kinds == ("text",) else "an image (path, PIL image or array)"
            raise InputError(f"item {i}: the {task!r} pipeline expected {want}, got {msg.kind} "
                             f"({type(msg.content).__name__})")
        if msg.kind == "text" and (not isinstance(msg.content, str) or not msg.content.strip()):
            raise InputError(f"item {i}: empty or non-string text")
        if msg.kind == "text":
            checks.text_chars(msg.content, i, limits)
        else:
            check_image(msg.content, i, limits, "item")
        if task == "vqa" and not msg.questions:
            raise InputError(f"item {i}: the vqa pipeline needs questions: "
                             f"pass {{'image': ..., 'questions': [...]}}")
        out.append(msg)
    return out

