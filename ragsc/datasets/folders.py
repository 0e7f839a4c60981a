"""Folders of your own photos: what counts as a photo, and a stable training / validation split.

A folder is searched recursively for files with a photo extension (:data:`EXTENSIONS`, case-insensitive;
hidden files and folders skipped, symbolic links not followed), in sorted order. The split puts a photo in
the validation set by a hash of its path inside the folder, so adding photos never moves old ones between
the splits.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ragsc.errors import InputError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif")


def list_photos(folder: str | Path) -> list[Path]:
    """Every photo file under ``folder``; :class:`InputError` when it is not a folder or holds none."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(
            f"--data {folder}: not a folder of photos"
            + (" (it is a file)" if root.exists() else " (it does not exist)")
        )
    out = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [
            Path(here) / f
            for f in sorted(files)
            if not f.startswith(".") and f.lower().endswith(EXTENSIONS) and not (Path(here) / f).is_symlink()
        ]
    if not out:
        raise InputError(f"--data {folder}: holds no photos (files ending {', '.join(EXTENSIONS)})")
    return out


def split_photos(
    paths: list[Path], root: str | Path, val_fraction: float = 0.1
) -> tuple[list[Path], list[Path]]:
    """``(train, validation)``: a photo is validation when the hash of its path under ``root`` falls in the
    first ``val_fraction`` of the range; at least one photo is in each (:class:`InputError` with fewer than
    2)."""
    if len(paths) < 2:
        raise InputError(f"training needs at least 2 photos (one to validate on), found {len(paths)}")
    if not 0 < val_fraction < 1:
        raise InputError(f"the validation fraction must be in (0, 1), got {val_fraction}")

    def key(p: Path) -> float:
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else p.as_posix()
        return int.from_bytes(hashlib.blake2b(rel.encode(), digest_size=8).digest(), "big") / 2**64

    keys = {p: key(p) for p in paths}
    val = [p for p in paths if keys[p] < val_fraction] or [min(paths, key=keys.get)]
    train = [p for p in paths if p not in val] or [val.pop()]
    return train, val
