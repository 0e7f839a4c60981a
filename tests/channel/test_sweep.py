"""The SNR sweep: range parsing, rows against theory, CSV + PNG, and the CLI around it."""

import csv

import pytest
from PIL import Image

from ragsc.channel.sweep import (
    COLUMNS,
    PANELS,
    SweepSettings,
    parse_channels,
    parse_snr_range,
    plot,
    run_sweep,
    write_csv,
)
from ragsc.errors import ConfigError, InputError


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


def _row(path, metric, value, theory, channel="awgn", snr=0.0):
    return {"channel": channel, "snr_db": snr, "path": path, "metric": metric, "value": value,
            "theory": theory}


def test_csv_columns_and_format(tmp_path):
    rows = [_row("uncoded_qam4", "ber", 0.078, 0.0786), _row("capacity", "bits_per_use", 1.0, "")]
    write_csv(rows, tmp_path / "s.csv")
    assert (tmp_path / "s.csv").read_bytes() == (
        b"channel,snr_db,path,metric,value,theory\r\n"
        b"awgn,0.0,uncoded_qam4,ber,0.078,0.0786\r\n"
        b"awgn,0.0,capacity,bits_per_use,1.0,\r\n")
    assert list(COLUMNS) == ["channel", "snr_db", "path", "metric", "value", "theory"]
    del rows[1]["theory"]
    with pytest.raises(InputError, match=r"missing \['theory'\]"):
        write_csv(rows, tmp_path / "bad.csv")


def test_plot_one_row_of_panels_per_channel(tmp_path):
    rows = [_row("uncoded_qam4", "ber", v, t, ch, snr) for ch in ("awgn", "rayleigh", "rician")
            for snr, v, t in ((0.0, 0.08, 0.079), (10.0, 0.0, 4e-6))]
    rows += [_row("analog_mmse", "cosine", 0.9, "", ch) for ch in ("awgn", "rayleigh", "rician")]
    plot(rows, tmp_path / "s.png")
    with Image.open(tmp_path / "s.png") as im:  # 4.2 x 3.4 inches per panel at 120 dpi
        assert im.format == "PNG" and im.size == (round(4.2 * len(PANELS) * 120), round(3.4 * 3 * 120))
