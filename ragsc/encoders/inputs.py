"""Turning what users hand an encoder into clean RGB images and non-empty strings.

Documented handling of awkward inputs (every backend shares it):

* paths (``str`` / ``os.PathLike``) are opened with Pillow; a missing or unreadable file raises
  :class:`~ragsc.errors.InputError` naming the path and the batch index;
* grayscale, palette, CMYK and 16/32-bit images are converted to 8-bit RGB (16-bit values are scaled
  by 1/257, float images by their own range); transparent pixels are composited onto white;
* tiny images (even 1x1) are accepted and upsampled by the backend's resize;
* numpy arrays ``HxW`` / ``HxWxC`` (uint8, uint16 or float in [0, 1]) are accepted like images;
* texts must be non-empty strings; texts longer than the model's context are truncated by the
  backend, which records their indices in ``SemanticTokens.meta["truncated"]``;
* an empty batch returns an empty :class:`~ragsc.types.SemanticTokens` (shape ``[0, dim]``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ragsc.errors import InputError

ImageLike = Image.Image | str | os.PathLike | np.ndarray


def as_batch(items: Any, what: str) -> list:
    """A list of items from a single item or an iterable of them (strings count as single items)."""
    if isinstance(items, (str, os.PathLike, Image.Image)) or (
        isinstance(items, np.ndarray) and what == "image" and items.ndim in (2, 3) and items.dtype != object
    ):
        return [items]
    if isinstance(items, Iterable):
        return list(items)
    raise InputError(f"expected a {what} or a sequence of {what}s, got {type(items).__name__}")


def load_image(item: ImageLike, index: int = 0) -> Image.Image:
    """Open / convert one image to 8-bit RGB, raising :class:`InputError` on anything unusable."""
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        if not os.path.exists(path):
            raise InputError(f"image {index}: file not found: {path}")
        if os.path.isdir(path):
            raise InputError(f"image {index}: is a directory, not an image file: {path}")
        try:
            with Image.open(path) as im:
                im.load()
                return to_rgb(im)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"image {index}: cannot read image file {path}: {exc}") from exc
    if isinstance(item, Image.Image):
        if item.width < 1 or item.height < 1:
            raise InputError(f"image {index}: has zero size {item.size}")
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        return to_rgb(_array_to_image(item, index))
    raise InputError(
        f"image {index}: expected a PIL image, a path or a numpy array, got {type(item).__name__}"
        + (" (a text was given where an image was expected)" if isinstance(item, bytes) else "")
    )


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB version of any Pillow image (see the module docstring for the rules)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        elif im.mode.startswith("I;16") or arr.max() > 255:
            arr = arr / 257.0
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _array_to_image(arr: np.ndarray, index: int) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape:
        raise InputError(f"image {index}: array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        data = arr
    elif arr.dtype == np.uint16:
        data = np.rint(arr / 257.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"image {index}: array contains NaN or inf")
        data = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    else:
        raise InputError(f"image {index}: unsupported array dtype {arr.dtype} (use uint8, uint16 or float)")
    mode = "L" if data.ndim == 2 else ("RGB" if data.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(data), mode)


def check_texts(texts: Sequence[Any]) -> list[str]:
    """Validate a batch of texts: every item a non-empty, non-blank string."""
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(
                f"text {i}: expected a string, got {type(t).__name__}"
                + (" (an image was given where a text was expected)" if _looks_like_image(t) else "")
            )
        if not t.strip():
            raise InputError(f"text {i}: is empty; an encoder needs at least one non-blank character")
        out.append(t)
    return out


def _looks_like_image(x: Any) -> bool:
    return isinstance(x, (Image.Image, np.ndarray, os.PathLike))
