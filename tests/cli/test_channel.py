"""``ragsc channel sweep`` (ragsc/cli/channel.py)."""

from __future__ import annotations

from tests.cli._process import ragsc


def test_channel_sweep(tmp_path):
    run = lambda *a: ragsc("channel", "sweep", *a)  # noqa: E731
    out = run("--channel", "awgn", "--snr", "0,10", "--codewords", "10", "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    o = tmp_path / "o"
    assert (o / "channel_sweep.csv").is_file() and (o / "channel_sweep.png").is_file()
    bad = run("--channel", "awgn,nope", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "unknown channel" in bad.stderr and not (tmp_path / "bad").exists()
