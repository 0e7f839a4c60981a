"""Scoring photos through the image JSCC link: PSNR and MS-SSIM per channel, SNR and ratio.

:func:`evaluate_jscc` is what ``ragsc jscc eval`` prints and what the image benchmark's JSCC rows are:
every photo through :class:`~ragsc.channel.jscc.JSCCLink` at each (channel, SNR, ratio), scored against
itself at full resolution.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ragsc.eval.metrics import ms_ssim, psnr

PSNR_CAP_DB = 100.0  # an exact reconstruction (inf) counts as this in means


def score(decoded: Sequence[Image.Image], originals: Sequence[Image.Image]) -> dict[str, np.ndarray]:
    """``{"psnr": [N], "ms_ssim": [N]}`` of decoded photos against the originals (PSNR capped at
    :data:`PSNR_CAP_DB` for exact copies)."""
    return {"psnr": np.minimum(psnr(decoded, originals), PSNR_CAP_DB), "ms_ssim": ms_ssim(decoded, originals)}


def evaluate_jscc(
    codec,
    photos: Sequence[Image.Image],
    snrs: Sequence[float],
    channels: Sequence[str],
    ratios: Sequence[str],
    *,
    seed: int = 0,
    tile: int = 1024,
    side=None,
    known=None,
    progress: bool = False,
) -> list[dict]:
    """One row per (channel, SNR, ratio): mean PSNR (dB) and MS-SSIM over ``photos``, channel uses per photo,
    bandwidth ratio spent, seconds per photo. ``side`` / ``known`` as
    :class:`~ragsc.channel.jscc.link.JSCCLink`'s."""
    from tqdm.auto import tqdm

    from ragsc.channel.jscc import JSCCCodec
    from ragsc.channel.jscc.link import JSCCLink

    codec = codec if isinstance(codec, JSCCCodec) else JSCCCodec.load(codec)
    rows = []
    grid = [(ch, r, s) for ch in channels for r in ratios for s in snrs]
    for ch, ratio, snr in tqdm(grid, desc="jscc eval", disable=not progress):
        link = JSCCLink(codec, channel=ch, ratio=ratio, seed=seed, tile=tile)
        t0 = time.perf_counter()
        rx = link(list(photos), snr, side=side, known=known)
        seconds = (time.perf_counter() - t0) / len(photos)
        sc = score(rx.content, photos)
        dims = sum(3 * p.width * p.height for p in photos)
        rows.append(
            {
                "channel": ch,
                "snr_db": float(snr),
                "ratio": ratio,
                "psnr_db": float(np.mean(sc["psnr"])),
                "ms_ssim": float(np.nanmean(sc["ms_ssim"])),
                "channel_uses": float(rx.channel_uses),
                "spent_ratio": sum(rx.meta["channel_uses_per_item"]) / dims,
                "recognised": sum(r is not None for r in rx.meta["recognised"]),
                "seconds_per_photo": seconds,
            }
        )
    return rows
