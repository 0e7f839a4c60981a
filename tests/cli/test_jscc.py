"""``ragsc jscc train | eval`` (ragsc/cli/jscc.py): a codec of the default widths trained for 2 steps on a
folder of 3 tiny PNG photos, evaluated, and the refusals (a used --out, bad --data, a ratio it cannot
send)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ragsc.channel.jscc import JSCCCodec

TRAIN = ["--steps", "2", "--patch", "32", "--batch-size", "2", "--ratio", "1/48", "--no-progress"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(64, 72), (80, 64), (64, 64)]):
        y, x = np.mgrid[0:h, 0:w]
        px = np.stack([x / w, y / h, np.full((h, w), i / 3)], -1) * 200 + rng.normal(0, 8, (h, w, 3)) + 20
        sub = root / ("nested" if i == 2 else "")
        sub.mkdir(exist_ok=True)
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(sub / f"p{i}.png")
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture(scope="module")
def trained(photo_folder, tmp_path_factory):
    """(folder, stdout, stderr) of one short training run."""
    from ragsc.cli import main

    out = tmp_path_factory.mktemp("runs") / "jscc"
    try:
        main(["jscc", "train", "--data", str(photo_folder), "--out", str(out), *TRAIN])
    except SystemExit as e:
        assert e.code == 0
    return out


def test_train_writes_a_codec_folder(trained, photo_folder):
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["config.json", "model.safetensors", "trainer.json"]
    codec = JSCCCodec.load(trained)
    assert codec.config.levels == (8,) and codec.config.max_channels == 8
    assert codec.config.widths == (32, 64, 128) and codec.config.channels == ("awgn", "rayleigh", "rician")
    info = json.loads((trained / "config.json").read_text())["info"]
    assert info["command"].startswith(f"ragsc jscc train --data {photo_folder} --out {trained} ")
    assert info["steps"] == 2 and info["train_photos"] + len(info["validation_photos"]) == 3
    trainer = json.loads((trained / "trainer.json").read_text())
    assert trainer["done"] and trainer["config"]["patch"] == 32 and trainer["config"]["batch_size"] == 2


def test_train_prints_what_it_wrote(photo_folder, tmp_path, cli):
    out = tmp_path / "jscc"
    code, text, err = cli("jscc", "train", "--data", photo_folder, "--out", out, *TRAIN, "--steps", "1",
                          "--ratio", "1/192,1/48", "--snr-range", "0:20", "--channel", "awgn")
    assert code == 0, err
    assert f"wrote {out}: " in text and "validation PSNR" in text and "after 1 steps" in text
    c = JSCCCodec.load(out).config
    assert c.levels == (2, 8) and c.snr_range_db == (0.0, 20.0) and c.channels == ("awgn",)


def test_eval_prints_a_table(trained, photo_folder, tmp_path, cli):
    rows_file = tmp_path / "rows.json"
    code, text, err = cli("jscc", "eval", trained, "--data", photo_folder, "--snr", "0,20",
                          "--channel", "awgn", "--out", rows_file)
    assert code == 0, err
    lines = text.strip().splitlines()
    assert lines[0] == f"3 photos from {photo_folder}"
    assert lines[1].split() == ["channel", "snr_db", "ratio", "psnr_db", "ms_ssim", "channel_uses",
                                "seconds_per_photo"]
    assert [line.split()[:3] for line in lines[2:]] == [["awgn", "0.000", "1/48"], ["awgn", "20.000", "1/48"]]
    saved = json.loads(rows_file.read_text())
    assert saved["codec"] == str(trained) and len(saved["rows"]) == 2
    assert saved["rows"][0]["channel_uses"] == float(lines[2].split()[5])
    code, _, err = cli("jscc", "eval", trained, "--data", photo_folder, "--out", tmp_path)
    assert code == 2 and "is a folder, not a file" in err  # refused before the evaluation


def test_eval_refuses_a_ratio_the_codec_does_not_send(trained, photo_folder, cli):
    code, _, err = cli("jscc", "eval", trained, "--data", photo_folder, "--ratio", "1/12")
    assert code == 2 and "sends bandwidth ratios 1/48, not 1/12" in err and "Traceback" not in err


def test_a_second_train_into_the_same_out_is_refused(trained, photo_folder, cli):
    before = (trained / "model.safetensors").read_bytes()
    code, _, err = cli("jscc", "train", "--data", photo_folder, "--out", trained, *TRAIN)
    assert code == 2 and err.startswith("error:") and "already holds a saved model" in err
    assert "--out" in err and "Traceback" not in err
    code, _, err = cli("jscc", "train", "--data", photo_folder, "--out", trained, *TRAIN, "--resume")
    assert code == 2 and "that run finished" in err
    assert (trained / "model.safetensors").read_bytes() == before


@pytest.mark.parametrize(("data", "message"), [
    ("missing", r"not a folder of photos (it does not exist)"),
    ("a_file.png", r"not a folder of photos (it is a file)"),
    ("empty", "holds no photos"),
    ("one", "training needs at least 2 photos (one to validate on), found 1"),
])
def test_bad_data_is_a_clear_error(tmp_path, cli, data, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no photos here")
    Image.new("RGB", (64, 64)).save(tmp_path / "a_file.png")
    (tmp_path / "one").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "one" / "x.png")
    out = tmp_path / "out"
    code, _, err = cli("jscc", "train", "--data", tmp_path / data, "--out", out, *TRAIN)
    assert code == 2 and err.startswith("error:") and message in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (("--ratio", "1/100"), "each ratio must be an even number of 384ths"),
    (("--ratio", "1/384"), "even number of 384ths"),
    (("--ratio", "abc"), "bandwidth ratio must be a fraction"),
    (("--snr-range", "5"), "--snr-range must be lo:hi"),
    (("--snr-range", "20:0"), "snr_range_db must be"),
    (("--channel", "fading"), "fading"),
    (("--patch", "36"), "patch"),
])
def test_bad_settings_are_error_lines_that_write_nothing(photo_folder, tmp_path, cli, args, message):
    out = tmp_path / "out"
    code, _, err = cli("jscc", "train", "--data", photo_folder, "--out", out, *TRAIN, *args)
    assert code == 2 and err.startswith("error:") and message in err and "Traceback" not in err, err
    assert not out.exists()
