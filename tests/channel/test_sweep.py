"""The SNR sweep: range parsing, rows against theory, CSV + PNG, and the CLI around it."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from ragsc.channel.sweep import SweepSettings, parse_channels, parse_snr_range, plot, run_sweep, write_csv
from ragsc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_parse_ranges():
    assert parse_snr_range("-5:20:5") == [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
    assert parse_snr_range("0,2.5") == [0.0, 2.5]
    assert parse_channels("awgn, rician") == ["awgn", "rician"]
    for bad in ("5:0:1", "0:10:0", "a:b:c", "nan", "0,100", ""):
        with pytest.raises(ConfigError):
            parse_snr_range(bad)
    with pytest.raises(ConfigError, match="unknown channel"):
        parse_channels("awgn,foo")


def test_small_sweep_matches_theory_and_writes_files(tmp_path):
    settings = SweepSettings(uncoded_symbols=64_000, codewords=20, k_symbols=128, analog_items=500)
    rows = run_sweep(["awgn", "rayleigh"], [0.0, 10.0], settings, progress=False)
    by = {(r["channel"], r["snr_db"], r["path"], r["metric"]): r for r in rows}
    qpsk = by[("awgn", 0.0, "uncoded_qam4", "ber")]
    assert abs(qpsk["value"] - qpsk["theory"]) / qpsk["theory"] < 0.05
    cos = by[("rayleigh", 10.0, "analog_mmse", "cosine")]
    assert abs(cos["value"] - cos["theory"]) < 0.02
    assert by[("awgn", 10.0, "ldpc_qam4_r0.5", "bler")]["value"] == 0.0
    assert by[("awgn", 0.0, "ldpc_qam4_r0.5", "bler")]["value"] > 0.5
    write_csv(rows, tmp_path / "s.csv")
    plot(rows, tmp_path / "s.png")
    with open(tmp_path / "s.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_sweep(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "ragsc.cli", "channel", "sweep", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=ROOT, timeout=300)
    out = run("--channel", "awgn", "--snr", "0,10", "--codewords", "10", "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "o" / "channel_sweep.csv").is_file() and (tmp_path / "o" / "channel_sweep.png").is_file()
    bad = run("--channel", "awgn,nope", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "unknown channel" in bad.stderr and not (tmp_path / "bad").exists()
