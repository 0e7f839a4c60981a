"""The `ragsc` console entry: thin, and user mistakes are one `error:` line with exit status 2."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ragsc(*args):
    return subprocess.run([sys.executable, "-m", "ragsc.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_spec_validate_ok_and_bad(tmp_path):
    ok = ragsc("spec", "validate", "pipelines/vqa.yaml")
    assert ok.returncode == 0 and '"task": "vqa"' in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: text\nchannel:\n  snr_db: .nan\n")
    out = ragsc("spec", "validate", str(bad))
    assert out.returncode == 2 and out.stderr.startswith("error:") and "channel.snr_db" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_encoder_spec_is_a_clean_error():
    out = ragsc("encoders", "eval", "--spec", "nonsense:abc", "--limit", "1")
    assert out.returncode == 2 and "unknown encoder spec 'nonsense:abc'" in out.stderr
    assert "Traceback" not in out.stderr


def test_encoders_list_shows_scores():
    out = ragsc("encoders", "list")
    assert out.returncode == 0 and "embedded" in out.stdout and "easy_vqa_test" in out.stdout
