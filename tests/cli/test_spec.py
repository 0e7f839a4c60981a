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


def test_a_spec_that_is_not_utf8_is_one_error_line_in_every_command_that_reads_one(cli, tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: café\ntask: text\n".encode("latin-1"))  # was a UnicodeDecodeError traceback
    for args in (("spec", "validate"), ("eval",), ("federated", "run")):
        code, _, err = cli(*args, bad)
        assert code == 2 and err.startswith("error:"), (args, err)
        assert "not UTF-8 text (byte 0xe9 at offset 9)" in err and "Traceback" not in err
