"""The image benchmark's digital rows (ragsc.eval.image_digital) on a hand-made PHY abstraction: every MCS
delivers above its threshold (1 dB over Shannon's) and nothing below."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from ragsc.channel.phy_table import BlerTable
from ragsc.eval.digital import DIGITAL_MCS
from ragsc.eval.image import score
from ragsc.eval.image_digital import evaluate_digital, fading

KEYS = {"method", "channel", "snr_db", "psnr_db", "ms_ssim", "delivered", "mcs"}


def _threshold(m: int, r: float) -> float:
    return 10 * math.log10(2 ** (math.log2(m) * r) - 1) + 1.0


def _table() -> BlerTable:
    """BLER 1 below each MCS's threshold, 0 from it on."""
    grids = [[_threshold(m, r) - 1e-3, _threshold(m, r)] for m, r in DIGITAL_MCS]
    return BlerTable([tuple(x) for x in DIGITAL_MCS], grids, [[1.0, 0.0]] * len(grids), 8000, 8, 20)


def _photos() -> list[Image.Image]:
    out = []
    for seed, (h, w) in enumerate([(48, 64), (56, 40)]):
        y, x = np.mgrid[0:h, 0:w]
        px = np.stack([x / w, y / h, np.full((h, w), seed / 2)], -1) * 200 + 30
        px += np.random.default_rng(seed).normal(0, 6, px.shape)
        out.append(Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)))
    return out


@pytest.fixture(scope="module")
def awgn_rows():
    return evaluate_digital(_photos(), [1500, 1300], [-10.0, 5.0, 30.0], "awgn", ["webp", "jpeg"], _table())


def test_rows_and_their_fields(awgn_rows):
    assert len(awgn_rows) == 2 * 3 * 2 and all(set(r) == KEYS for r in awgn_rows)
    assert [r["method"] for r in awgn_rows[:2]] == ["webp+ldpc", "webp+capacity"]
    assert [(r["method"], r["snr_db"]) for r in awgn_rows[::2]] == [
        ("webp+ldpc", -10.0), ("webp+ldpc", 5.0), ("webp+ldpc", 30.0),
        ("jpeg+ldpc", -10.0), ("jpeg+ldpc", 5.0), ("jpeg+ldpc", 30.0)]
    assert {r["channel"] for r in awgn_rows} == {"awgn"}
    mcs_names = {f"{m}-QAM R={r:.2f}" for m, r in DIGITAL_MCS}
    for r in awgn_rows:
        assert 0 <= r["delivered"] <= 1
        if r["method"].endswith("capacity"):
            assert r["mcs"] == "capacity" and r["delivered"] == 1.0
        else:
            assert r["mcs"] in mcs_names


def test_below_every_threshold_the_ldpc_row_is_the_grey_fallback(awgn_rows):
    photos = _photos()
    grey = score([Image.new("RGB", p.size, (128, 128, 128)) for p in photos], photos)
    for r in awgn_rows:
        if r["snr_db"] == -10.0 and r["method"].endswith("ldpc"):
            assert r["delivered"] == 0.0
            assert r["psnr_db"] == pytest.approx(float(np.mean(grey["psnr"])))
            assert r["ms_ssim"] == pytest.approx(float(np.mean(grey["ms_ssim"])))
            assert r["mcs"] == "4-QAM R=0.33"  # every MCS ties: the first is kept


def test_above_the_thresholds_photos_arrive_at_the_mcs_with_the_best_psnr(awgn_rows):
    by = {(r["method"], r["snr_db"]): r for r in awgn_rows}
    for fmt in ("webp", "jpeg"):
        high = by[(f"{fmt}+ldpc", 30.0)]
        assert high["delivered"] == 1.0 and high["mcs"] == "64-QAM R=0.75"  # the most bits, all delivered
        assert high["psnr_db"] > by[(f"{fmt}+ldpc", -10.0)]["psnr_db"] + 3
        mid = by[(f"{fmt}+ldpc", 5.0)]  # 5 dB: only the QPSK rates pass (16-QAM 1/2 needs 5.8 dB)
        assert mid["mcs"] in ("4-QAM R=0.33", "4-QAM R=0.50")


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_capacity_rows_are_at_least_the_ldpc_rows(awgn_rows, channel):
    rows = awgn_rows if channel == "awgn" else evaluate_digital(_photos(), [1500, 1300], [0.0, 12.0, 25.0],
                                                                "rayleigh", ["webp"], _table(), seed=1)
    pairs = [(rows[i], rows[i + 1]) for i in range(0, len(rows), 2)]
    for ldpc, cap in pairs:
        assert ldpc["snr_db"] == cap["snr_db"] and ldpc["channel"] == cap["channel"] == channel
        assert cap["psnr_db"] >= ldpc["psnr_db"] - 1e-9, (ldpc, cap)


def test_fading_gains_are_seeded_and_unit_mean():
    assert fading("awgn", 3, 0).tolist() == [1.0, 1.0, 1.0]
    g = fading("rayleigh", 4000, 5)
    assert g.shape == (4000,) and abs(float(g.mean()) - 1) < 0.1 and float(g.min()) >= 0
    assert fading("rayleigh", 5, 5).tolist() == fading("rayleigh", 5, 5).tolist()
    assert fading("rayleigh", 5, 5).tolist() != fading("rayleigh", 5, 6).tolist()
