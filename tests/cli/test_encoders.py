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
