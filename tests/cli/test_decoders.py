"""``ragsc decoders train`` (ragsc/cli/decoders.py)."""

from __future__ import annotations


def test_decoders_train_rejects_zero_steps(cli, tmp_path):
    target = tmp_path / "dec.safetensors"
    code, _, stderr = cli("decoders", "train", "--text-steps", "0", "--out", str(target))
    assert code == 2 and "--text-steps" in stderr and "Traceback" not in stderr
    assert not target.exists()


def test_decoders_train_only_some_into_a_new_file_keeps_the_shipped_others(cli, tmp_path, monkeypatch):
    """``--only image,vqa --out NEW``: the text decoder and PCA basis come from the shipped bundle (there is
    no NEW to keep them from); with an existing --out, from it."""
    import ragsc.decoders.train as train
    from ragsc.decoders.bundle import default_path

    calls = []
    monkeypatch.setattr(train, "train_decoders", lambda out, cfg, parts, base: calls.append((parts, base))
                        or {})
    target = tmp_path / "dec.safetensors"
    for _ in range(2):
        code, _, stderr = cli("decoders", "train", "--only", "image,vqa", "--encoder",
                              "embedded", "--out", str(target))
        assert code == 0, stderr
        target.touch()
    assert calls == [(("image", "vqa"), default_path()), (("image", "vqa"), target)]
