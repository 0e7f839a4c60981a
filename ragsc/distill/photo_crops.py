"""Training crops of photos for the image JSCC: decoded once at a few scales, cropped at random.

Photos are decoded once (EXIF orientation applied, converted to RGB by
:func:`~ragsc.encoders.inputs.load_image`) at a few scales, their long side ``scales`` pixels, and at their
own size (a fully convolutional codec meets photos of every size, so it sees their statistics at several
scales), and kept as uint8; batches are random crops, flipped at random (:func:`random_crops`), or crops
with a *neighbour* for side-information training (:func:`crops_with_neighbours`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ragsc.encoders.inputs import load_image
from ragsc.errors import InputError


def _scaled(im: Image.Image, long_side: int) -> torch.Tensor:
    scale = min(1.0, long_side / max(im.size))
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)


def load_scaled(paths: list[Path], scales: tuple[int, ...], patch: int) -> list[torch.Tensor]:
    """Each photo (decoded once, EXIF orientation applied) at each scale, as uint8 ``[3, H, W]``; versions
    smaller than ``patch`` are dropped (a photo with none left is an :class:`InputError`)."""
    out = []
    for i, p in enumerate(paths):
        im = load_image(p, i)
        versions = [t for s in sorted(set(scales)) if min((t := _scaled(im, s)).shape[1:]) >= patch]
        if min(im.size) >= patch and not any(t.shape[1:] == (im.height, im.width) for t in versions):
            versions.append(_scaled(im, max(im.size)))  # and the photo at its own size
        if not versions:
            raise InputError(f"{p}: {im.width}x{im.height} is smaller than the {patch}-pixel training patch")
        out.extend(versions)
    return out


def random_crops(images: list[torch.Tensor], n: int, patch: int, g: torch.Generator) -> torch.Tensor:
    """``n`` random ``patch`` crops (half of them flipped) as float ``[n, 3, patch, patch]`` in [0, 1]."""
    out = []
    for i in torch.randint(len(images), (n,), generator=g).tolist():
        im = images[i]
        top = int(torch.randint(im.shape[1] - patch + 1, (1,), generator=g))
        left = int(torch.randint(im.shape[2] - patch + 1, (1,), generator=g))
        crop = im[:, top : top + patch, left : left + patch]
        out.append(crop.flip(2) if bool(torch.rand(1, generator=g) < 0.5) else crop)
    return torch.stack(out).float() / 255.0


def crops_with_neighbours(
    images: list[torch.Tensor], n: int, patch: int, g: torch.Generator, unrelated: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random crops and, for each, a *neighbour* the receiver might retrieve: another crop of the same
    photo (shifted by up to a quarter of the patch, scaled by 0.8..1.25, resized to the patch) or, with
    probability ``unrelated``, a crop of another photo. Both float ``[n, 3, patch, patch]``."""
    xs, nbs = [], []
    for _ in range(n):
        i = int(torch.randint(len(images), (1,), generator=g))
        im = images[i]
        big = min(im.shape[1], im.shape[2])
        size = min(big, int(patch * (0.8 + 0.45 * float(torch.rand(1, generator=g)))))
        top = int(torch.randint(im.shape[1] - patch + 1, (1,), generator=g))
        left = int(torch.randint(im.shape[2] - patch + 1, (1,), generator=g))
        xs.append(im[:, top : top + patch, left : left + patch])
        if len(images) > 1 and float(torch.rand(1, generator=g)) < unrelated:
            j = (i + 1 + int(torch.randint(len(images) - 1, (1,), generator=g))) % len(images)
            im, size = images[j], min(patch, images[j].shape[1], images[j].shape[2])
            t2 = int(torch.randint(im.shape[1] - size + 1, (1,), generator=g))
            l2 = int(torch.randint(im.shape[2] - size + 1, (1,), generator=g))
        else:
            shift = patch // 4
            t2 = min(
                max(0, top + int(torch.randint(-shift, shift + 1, (1,), generator=g))), im.shape[1] - size
            )
            l2 = min(
                max(0, left + int(torch.randint(-shift, shift + 1, (1,), generator=g))), im.shape[2] - size
            )
        nb = im[:, t2 : t2 + size, l2 : l2 + size].float()
        nbs.append(
            F.interpolate(
                nb[None], size=(patch, patch), mode="bilinear", align_corners=False, antialias=True
            )[0]
            if size != patch
            else nb
        )
    return torch.stack(xs).float() / 255.0, torch.stack(nbs).clamp(0, 255) / 255.0
