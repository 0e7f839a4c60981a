"""``ragsc encoders`` (ragsc/cli/encoders.py)."""

from __future__ import annotations

from tests.cli._process import ragsc


def test_unknown_encoder_spec_is_a_clean_error():
    out = ragsc("encoders", "eval", "--spec", "nonsense:abc", "--limit", "1")
    assert out.returncode == 2 and "unknown encoder spec 'nonsense:abc'" in out.stderr
    assert "Traceback" not in out.stderr


def test_encoders_list_shows_scores():
    out = ragsc("encoders", "list")
    assert out.returncode == 0 and "embedded" in out.stdout and "easy_vqa_test" in out.stdout


def test_train_embedded_out_is_checked_before_training(cli, tmp_path, forbid):
    """A folder of other files, heads already there (replaced only when --out is left to its default), a
    path under a file: refused before any training."""
    import json

    import ragsc.encoders.train_embedded as train

    forbid(train, "train_embedded", "train_heads")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "config.json").write_text(json.dumps({"kind": "embedded-heads",
                                                                 "format_version": 1}))
    (tmp_path / "file").write_text("keep")
    cases = {tmp_path / "mine": "holds other files, not a saved model",
             tmp_path / "heads": "already holds a saved model; name a new or empty folder",
             tmp_path / "file" / "heads": "lies under"}
    for out, problem in cases.items():
        code, _, err = cli("encoders", "train-embedded", "--out", str(out))
        assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
        assert "Traceback" not in err
