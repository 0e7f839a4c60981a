"""Turning what users hand an encoder into clean RGB images and non-empty strings.

Documented handling of awkward inputs (every backend shares it):

* paths (``str`` / ``os.PathLike``) are opened with Pillow, their EXIF orientation applied (a camera's
  rotated photo comes out as it is shown); a missing or unreadable file raises
  :class:`~ragsc.errors.InputError` naming the path and the batch index;
* grayscale, palette, CMYK and 16/32-bit images are converted to 8-bit RGB (16-bit values are scaled
  by 1/257, float images by their own range); transparent pixels are composited onto white;
* tiny images (even 1x1) are accepted and upsampled by the backend's resize;
* numpy arrays ``HxW`` / ``HxWxC`` (uint8, uint16 or float in [0, 1]) are accepted like images;
* texts must be non-empty strings; texts longer than the model's context are truncated by the
  backend, which records their indices in ``SemanticTokens.meta["truncated"]``;
* an empty batch returns an empty :class:`~ragsc.types.SemanticTokens` (shape ``[0, dim]``);
* sizes are bounded by :class:`~ragsc.config.Limits` (:mod:`ragsc.checks`): an image of more than
  ``image_pixels`` pixels is refused from its file's header, before it is decoded (Pillow's own
  decompression-bomb error becomes the same :class:`~ragsc.errors.InputError`), a text of more than
  ``text_chars`` characters before it is tokenised.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ragsc import checks
from ragsc.config import LIMITS, Limits
from ragsc.errors import InputError

ImageLike = Image.Image | str | os.PathLike | np.ndarray
EXIF_ORIENTATION = 0x0112  # the EXIF tag a file's display rotation / mirroring is in


def as_batch(items: Any, what: str) -> list:
    """A list of items from a single item or an iterable of them (strings count as single items)."""
    if isinstance(items, (str, os.PathLike, Image.Image)) or (
        isinstance(items, np.ndarray) and what == "image" and items.ndim in (2, 3) and items.dtype != object
    ):
        return [items]
    if isinstance(items, Iterable):
        return list(items)
    raise InputError(f"expected a {what} or a sequence of {what}s, got {type(items).__name__}")


def open_image(path: str | os.PathLike, index: int = 0, limits: Limits = LIMITS,
               label: str = "image") -> Image.Image:
    """The image file at ``path`` opened lazily (Pillow reads the header only) and its size checked
    against ``limits.image_pixels``; :class:`InputError` naming ``label`` ``index`` ("image 3") when it
    is missing, unreadable or too large. Close it (or use it in a ``with``) when done."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{label} {index}: file not found: {path}")
    if os.path.isdir(path):
        raise InputError(f"{label} {index}: is a directory, not an image file: {path}")
    try:
        with warnings.catch_warnings():  # between Pillow's warning and error sizes: the limit decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:  # over twice Pillow's MAX_IMAGE_PIXELS: it read the size
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else "more pixels than Pillow opens"
        raise InputError(f"{label} {index}: {path}: {size}, more than Pillow opens (it refuses a possible "
                         f"decompression bomb); the limit is {limits.image_pixels:,} pixels "
                         "(limits.image_pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label} {index}: cannot read image file {path}: {exc}") from exc
    try:
        checks.image_pixels(im.size, index, limits, f"{path}: ", label)
    except InputError:
        im.close()
        raise
    return im


def check_image(item: Any, index: int = 0, limits: Limits = LIMITS, label: str = "image") -> None:
    """Check an image item's size against ``limits.image_pixels`` without decoding it (a path's header is
    read; ``label`` ``index`` names it in errors); anything else :func:`load_image` would refuse is left
    to it."""
    if isinstance(item, (str, os.PathLike)):
        open_image(item, index, limits, label).close()
    elif isinstance(item, Image.Image):
        checks.image_pixels(item.size, index, limits, label=label)
    elif isinstance(item, np.ndarray) and item.ndim in (2, 3):
        checks.image_pixels((item.shape[1], item.shape[0]), index, limits, label=label)


def load_image(item: ImageLike, index: int = 0, limits: Limits = LIMITS) -> Image.Image:
    """Open / convert one image to 8-bit RGB, raising :class:`InputError` on anything unusable or larger
    than ``limits.image_pixels`` (checked before decoding)."""
    if isinstance(item, (str, os.PathLike)):
        path = os.fspath(item)
        with open_image(path, index, limits) as im:
            try:
                im.load()
                if im.getexif().get(EXIF_ORIENTATION, 1) != 1:  # a camera's rotated photo: as it is shown
                    im = ImageOps.exif_transpose(im)
                return to_rgb(im)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise InputError(f"image {index}: cannot read image file {path}: {exc}") from exc
    check_image(item, index, limits)
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


def check_texts(texts: Sequence[Any], limits: Limits = LIMITS) -> list[str]:
    """Validate a batch of texts: every item a non-empty, non-blank string of at most
    ``limits.text_chars`` characters."""
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(
                f"text {i}: expected a string, got {type(t).__name__}"
                + (" (an image was given where a text was expected)" if _looks_like_image(t) else "")
            )
        if not t.strip():
            raise InputError(f"text {i}: is empty; an encoder needs at least one non-blank character")
        checks.text_chars(t, i, limits, "text")
        out.append(t)
    return out


def _looks_like_image(x: Any) -> bool:
    return isinstance(x, (Image.Image, np.ndarray, os.PathLike))
