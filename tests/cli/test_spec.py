"""``ragsc spec`` (ragsc/cli/spec.py)."""

from __future__ import annotations

from tests.cli._process import ragsc


def test_spec_validate_ok_and_bad(tmp_path):
    ok = ragsc("spec", "validate", "pipelines/vqa.yaml")
    assert ok.returncode == 0 and '"task": "vqa"' in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: text\nchannel:\n  snr_db: .nan\n")
    out = ragsc("spec", "validate", str(bad))
    assert out.returncode == 2 and out.stderr.startswith("error:") and "channel.snr_db" in out.stderr
    assert "Traceback" not in out.stderr
