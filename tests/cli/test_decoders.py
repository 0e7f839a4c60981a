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
    monkeypatch.setattr(train, "train_decoders", lambda out, cfg, parts, base: calls.append((parts, base))
                        or {})
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
