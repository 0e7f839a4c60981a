"""``ragsc decoders train`` (ragsc/cli/decoders.py)."""

from __future__ import annotations

import json


def test_decoders_train_rejects_zero_steps(cli, tmp_path):
    target = tmp_path / "dec"
    code, _, stderr = cli("decoders", "train", "--text-steps", "0", "--out", str(target))
    assert code == 2 and "--text-steps" in stderr and "Traceback" not in stderr
    assert not target.exists()


def _decoders_folder(folder, kind="decoders"):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"kind": kind, "format_version": 1}))


def test_decoders_train_only_some_into_a_new_folder_keeps_the_shipped_others(cli, tmp_path, monkeypatch):
    """``--only image,vqa --out NEW``: the text decoder and PCA basis come from the shipped bundle (there is
    no NEW to keep them from); with decoders in --out, from them."""
    import ragsc.decoders.train as train
    from ragsc.decoders.bundle import default_path

    calls = []
    monkeypatch.setattr(train, "train_decoders",
                        lambda out, cfg, parts, base, **_: calls.append((parts, base)) or {})
    target = tmp_path / "dec"
    code, _, stderr = cli("decoders", "train", "--only", "image,vqa", "--encoder", "embedded", "--out",
                          str(target))
    assert code == 0, stderr
    _decoders_folder(target)
    code, _, stderr = cli("decoders", "train", "--only", "image,vqa", "--encoder", "embedded", "--out",
                          str(target))
    assert code == 0, stderr
    assert calls == [(("image", "vqa"), default_path()), (("image", "vqa"), target)]


def test_decoders_train_out_is_checked_before_training(cli, tmp_path, forbid):
    """A file, a folder of other files, a saved model of another kind: refused before any training."""
    import ragsc.decoders.train as train

    forbid(train, "train_decoders")
    (tmp_path / "dec.safetensors").write_text("keep")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    _decoders_folder(tmp_path / "student", kind="student")
    cases = {tmp_path / "dec.safetensors": "is a file, not a folder",
             tmp_path / "mine": "holds other files, not a saved model",
             tmp_path / "student": "holds a 'student', not a 'decoders'"}
    for out, problem in cases.items():
        code, _, err = cli("decoders", "train", "--out", str(out))
        assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
        assert "Traceback" not in err
    assert (tmp_path / "dec.safetensors").read_text() == "keep"


def _own_photos(folder, n=8):
    """``n`` small photos with same-name captions, and a text file of sentences."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text(f"a noisy photo number {i}")
    return folder


def test_decoders_train_on_your_own_data(cli, tmp_path):
    """``--data FOLDER``: the text and image decoders train on the folder's photos and captions; the VQA
    head and the PCA basis are kept from the shipped decoders."""
    from ragsc.decoders import load_decoders

    data = _own_photos(tmp_path / "photos")
    out = tmp_path / "dec"
    code, stdout, stderr = cli("decoders", "train", "--data", str(data), "--text-steps", "2", "--image-steps",
                               "2", "--out", str(out))
    assert code == 0, stderr
    info = json.loads(stdout.split("\n", 1)[1])
    assert info["train_images"] == 8 and info["train_sentences"] == 8 and "seconds_text+image" in info
    mine, shipped = load_decoders(out), load_decoders()
    assert mine.vocab is not None and "noisy" in mine.vocab.words
    assert mine.vqa.config == shipped.vqa.config
    assert torch_equal(mine.pca.mean, shipped.pca.mean)


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_decoders_train_data_is_checked_first(cli, tmp_path):
    data = _own_photos(tmp_path / "photos", n=2)
    cases = [(["--data", str(tmp_path / "nowhere")], "no such file or folder"),
             (["--format", "coco"], "give --data too"),
             (["--data", str(data), "--format", "pdf"], "--format must be one of"),
             (["--data", str(data), "--only", "vqa"], "trained on easy-VQA's questions only"),
             (["--data", str(data), "--only", "image"], "needs more than 4 images")]
    for args, problem in cases:
        code, _, err = cli("decoders", "train", *args, "--out", str(tmp_path / "dec"))
        assert code == 2 and problem in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "dec").exists()
