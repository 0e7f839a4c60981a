"""Lattice constellations: the ``n`` lowest-energy points of a dense lattice, as a token codebook.

A token codebook of random Gaussian codewords wastes two things: its nearest neighbours fall close
together at random, and every token costs the same energy however often it is sent. The points of a
dense lattice nearest the origin fix both: neighbours are never closer than the lattice's minimum
distance, and giving the inner (cheap) shells to the frequent tokens is *shaping*, the same idea as
probabilistic shaping in digital links. With tokens in id order (a BPE vocabulary's ids follow its
merge order, roughly frequency), per-token ML decoding of held-out English at 4 complex symbols per
token and AWGN 10 dB errs on 21 % of tokens against 55 % for Gaussian codewords, each frame scaled to
unit power. :func:`ragsc.channel.token_link.lattice_codewords` builds the token codebook from these
points.

The lattice in ``d`` real dimensions is a direct sum of the densest small lattices: E8 blocks, then a
D4, then an A2 (hexagonal) block for what is left (``d`` is even: two real dimensions per complex
symbol). Every block is scaled to minimum squared norm 2 and enumerated with integer norms, so the
points and their order (by norm, then by enumeration) are exact and identical on every machine: both
ends rebuild the same codebook from ``(n, d)``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np


def _box(dim: int, bound: int) -> np.ndarray:
    """All integer vectors of ``dim`` coordinates in ``[-bound, bound]``, in lexicographic order."""
    r = np.arange(-bound, bound + 1, dtype=np.int16)
    return np.stack(np.meshgrid(*([r] * dim), indexing="ij"), axis=-1).reshape(-1, dim)


def _block(dim: int, max_norm4: int) -> tuple[np.ndarray, np.ndarray]:
    """Points of the ``dim``-dimensional block lattice (A2, D4 or E8, minimum squared norm 2) with
    4 x squared norm <= ``max_norm4``: their real coordinates ``[m, dim]`` and exact ``norm4`` ``[m]``."""
    radius = (max_norm4 / 4) ** 0.5
    if dim == 2:  # A2: a*(sqrt2, 0) + b*(sqrt2/2, sqrt6/2), squared norm 2(a^2 + ab + b^2)
        ab = _box(2, int(np.ceil(radius * 2 / 3 ** 0.5 / 2 ** 0.5)) + 1)
        a, b = ab[:, 0].astype(np.int64), ab[:, 1].astype(np.int64)
        norm4 = 8 * (a * a + a * b + b * b)
        pts = np.stack([2 ** 0.5 * a + b / 2 ** 0.5, b * 1.5 ** 0.5], axis=1)
    elif dim == 4:  # D4: integer vectors with an even sum
        p = _box(4, int(radius))
        p = p[p.sum(1) % 2 == 0]
        norm4, pts = 4 * (p.astype(np.int64) ** 2).sum(1), p.astype(np.float64)
    elif dim == 8:  # E8: D8 and D8 + 1/2, coordinates doubled to stay integer
        whole = 2 * _box(8, int(radius))
        whole = whole[(whole.sum(1) // 2) % 2 == 0]
        half = 2 * _box(8, int(radius + 0.5)) + 1
        half = half[half.max(1) <= 2 * radius + 1]
        half = half[(half.sum(1) // 2) % 2 == 0]
        p = np.concatenate([whole, half])
        norm4 = (p.astype(np.int32) ** 2).sum(1)
        keep = norm4 <= max_norm4
        return p[keep] / 2.0, norm4[keep].astype(np.int64)
    else:
        raise ValueError(f"no block lattice of dimension {dim}")
    keep = norm4 <= max_norm4
    return pts[keep], norm4[keep]


def _blocks(dim: int) -> list[int]:
    if dim < 2 or dim % 2:
        raise ValueError(f"a lattice constellation needs an even number of real dimensions, got {dim}")
    out = [8] * (dim // 8)
    rest = dim % 8
    out += [4] * (rest // 4) + [2] * (rest % 4 // 2)
    return out


@lru_cache(maxsize=8)
def lattice_points(n: int, dim: int) -> np.ndarray:
    """The ``n`` points nearest the origin of the ``dim``-dimensional lattice (blocks E8 / D4 / A2), in
    increasing norm (ties in enumeration order), ``[n, dim]`` float64, minimum distance sqrt(2)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    blocks = _blocks(dim)
    max_norm4 = 8
    while True:  # grow the radius until the direct sum holds n points
        parts = [_block(b, max_norm4) for b in blocks]
        pts, norm4 = parts[0]
        for p2, n2 in parts[1:]:
            ok = norm4[:, None] + n2[None, :] <= max_norm4
            i, j = ok.nonzero()
            pts, norm4 = np.concatenate([pts[i], p2[j]], axis=1), norm4[i] + n2[j]
        if len(pts) >= n:
            order = np.argsort(norm4, kind="stable")[:n]
            return pts[order]
        max_norm4 = max(max_norm4 + 8, int(max_norm4 * 1.25) // 8 * 8)  # exact steps: norms are even


def shell_sizes(points: np.ndarray) -> list[tuple[float, int]]:
    """``(squared norm, count)`` of each shell of ``points`` (for documentation and tests)."""
    norms = np.round((points * points).sum(1), 6)
    return [(float(k), len(list(g))) for k, g in itertools.groupby(norms)]
