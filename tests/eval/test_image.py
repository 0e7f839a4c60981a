"""Scoring photos through the image JSCC link (ragsc.eval.image): score() and evaluate_jscc's rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.channel.jscc import JSCCCodec, JSCCConfig, JSCCLink
from ragsc.eval.image import PSNR_CAP_DB, evaluate_jscc, score

ROW_KEYS = {"channel", "snr_db", "ratio", "psnr_db", "ms_ssim", "channel_uses", "spent_ratio", "recognised",
            "seconds_per_photo"}


def _photo(h: int, w: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    px = np.stack([x / w, y / h, np.full((h, w), 0.3 + 0.2 * seed)], -1) * 220 + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(np.clip(px + 16, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def codec() -> JSCCCodec:
    torch.manual_seed(0)
    return JSCCCodec(JSCCConfig(widths=(8, 8, 8), blocks=(0, 1), max_channels=8, levels=(2, 8))).eval()


def test_score_caps_exact_copies_and_gives_ms_ssim():
    a, b = _photo(40, 48), _photo(40, 48, seed=1)
    sc = score([a, b, Image.new("RGB", (48, 40), (128, 128, 128))], [a, a, a])
    assert set(sc) == {"psnr", "ms_ssim"}
    assert sc["psnr"][0] == PSNR_CAP_DB == 100.0 and sc["ms_ssim"][0] == pytest.approx(1.0)
    assert sc["psnr"][1] < PSNR_CAP_DB and sc["ms_ssim"][1] < 1 and sc["ms_ssim"][2] < sc["ms_ssim"][1]


def test_evaluate_jscc_gives_one_row_per_channel_snr_and_ratio(codec, tmp_path):
    photos = [_photo(40, 56), _photo(24, 32, seed=1)]
    rows = evaluate_jscc(codec, photos, [0.0, 20.0], ["awgn", "rayleigh"], ["1/192", "1/48"], seed=0)
    assert len(rows) == 8 and all(set(r) == ROW_KEYS for r in rows)
    assert [(r["channel"], r["ratio"], r["snr_db"]) for r in rows[:4]] == [
        ("awgn", "1/192", 0.0), ("awgn", "1/192", 20.0), ("awgn", "1/48", 0.0), ("awgn", "1/48", 20.0)]
    for r in rows:
        link = JSCCLink(codec, ratio=r["ratio"])
        uses = [link.channel_uses(p.height, p.width) for p in photos]
        assert r["channel_uses"] == round(sum(uses) / 2)
        assert r["spent_ratio"] == pytest.approx(sum(uses) / sum(3 * p.width * p.height for p in photos))
        assert math.isfinite(r["psnr_db"]) and 0 < r["psnr_db"] < 100 and -1 <= r["ms_ssim"] <= 1
        assert r["recognised"] == 0 and r["seconds_per_photo"] >= 0
    # the same rows from the codec's folder and the same seed
    again = evaluate_jscc(codec.save(tmp_path / "jscc"), photos, [0.0, 20.0], ["awgn", "rayleigh"],
                          ["1/192", "1/48"], seed=0)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds_per_photo"} for r in rs]  # noqa: E731
    assert strip(again) == strip(rows)


def test_evaluate_jscc_with_known_photos_scores_exact_copies(codec):
    photos = [_photo(40, 56), _photo(32, 32, seed=1)]
    rows = evaluate_jscc(codec, photos, [20.0], ["awgn"], ["1/48"], known=[[p] for p in photos])
    (row,) = rows
    assert row["recognised"] == 2 and row["psnr_db"] == PSNR_CAP_DB and row["ms_ssim"] == pytest.approx(1.0)
