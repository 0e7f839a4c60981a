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


def test_channel_sweep_out_is_checked_before_the_sweep(cli, tmp_path, forbid, monkeypatch):
    """A new or empty folder, or one holding only a previous sweep's files; a file, a FIFO, a folder of other
    files are refused before the sweep runs (once: after it, a traceback)."""
    import os

    import ragsc.channel.sweep as sweep
    from ragsc.errors import ConfigError

    forbid(sweep, "run_sweep")
    (tmp_path / "file").write_text("keep")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "channel_sweep.csv").write_text("keep")
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    cases = {tmp_path / "file": "is a file, not a folder", tmp_path / "fifo": "is a FIFO",
             tmp_path / "mine": "holds notes.txt (a file): only a previous sweep's"}
    for out, problem in cases.items():
        code, _, err = cli("channel", "sweep", "--out", str(out))
        assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
        assert "Traceback" not in err
    (tmp_path / "mine" / "notes.txt").unlink()

    def reached(*args, **kwargs):
        raise ConfigError("the sweep runs")

    monkeypatch.setattr(sweep, "run_sweep", reached)
    code, _, err = cli("channel", "sweep", "--out", str(tmp_path / "mine"))
    assert code == 2 and "the sweep runs" in err, err
