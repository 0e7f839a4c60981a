"""ragsc.eval.results: a sweep's eval.csv, one PNG per task and the summary table."""

import csv

import pytest

from ragsc.errors import InputError
from ragsc.eval.results import plot, save, summary_table, write_csv
from ragsc.eval.scoring import TASK_METRICS
from ragsc.eval.sweep import COLUMNS, SWEEP_METHODS

PNG = b"\x89PNG\r\n\x1a\n"
TASK_POINTS = [(task, metric) for task, metrics in TASK_METRICS.items() for metric in metrics]


def _row(method="semantic", snr=0, value=0.5, **kw):
    return {"task": "text", "metric": "bleu1", "method": method, "channel": "awgn", "snr_db": snr,
            "value": value, "channel_uses": 48, "n": 1, "subset": "all", **kw}


def test_csv_plot_and_table(tmp_path):
    # a sweep's shape (every method, task, metric and SNR; tests/eval/test_sweep.py runs a real one)
    rows = [_row(method, snr, round((i % 20) / 20, 6), task=task, metric=metric)
            for i, (method, (task, metric), snr) in enumerate(
                (m, tm, s) for m in SWEEP_METHODS for tm in TASK_POINTS for s in (0, 20))]
    path = tmp_path / "eval.csv"
    write_csv(rows, path)
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rows) and set(back[0]) == set(COLUMNS)
    assert [(r["method"], float(r["value"])) for r in back] == [(r["method"], r["value"]) for r in rows]
    pngs = plot(rows, tmp_path)
    assert sorted(p.name for p in pngs) == ["eval_image.png", "eval_text.png", "eval_vqa.png"]
    for p in pngs:
        assert p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == PNG
    text = summary_table(rows)
    assert all(m in text for m in SWEEP_METHODS)
    lines = text.splitlines()
    points = {(r["task"], r["metric"], r["snr_db"]) for r in rows}
    assert len(lines) == 2 + len(points)  # header, rule, one per point


def test_csv_is_the_sweeps_columns_in_order(tmp_path):
    # the file's exact text: header in COLUMNS' order, values as Python writes them, CRLF rows (csv's default)
    write_csv([_row(), _row("digital", 5.0, 1.0, subset="novel")], tmp_path / "eval.csv")
    assert (tmp_path / "eval.csv").read_bytes() == (
        b"task,metric,method,channel,snr_db,value,channel_uses,n,subset\r\n"
        b"text,bleu1,semantic,awgn,0,0.5,48,1,all\r\n"
        b"text,bleu1,digital,awgn,5.0,1.0,48,1,novel\r\n")


def test_csv_refuses_rows_of_another_shape(tmp_path):
    bad = _row()
    del bad["subset"]
    with pytest.raises(InputError, match=r"row 1 .*missing \['subset'\]"):
        write_csv([_row(), bad], tmp_path / "eval.csv")
    with pytest.raises(InputError, match=r"unexpected \['extra'\]"):
        write_csv([_row(extra=1)], tmp_path / "eval.csv")
    assert not (tmp_path / "eval.csv").exists()  # checked before anything is written


def test_save_creates_the_folder(tmp_path):
    rows = [_row(m, s, v) for m in ("semantic", "digital") for s, v in ((0, 0.25), (10, 0.75))]
    csv_path, pngs = save(rows, tmp_path / "a" / "b")
    assert csv_path == tmp_path / "a" / "b" / "eval.csv" and csv_path.is_file()
    assert pngs == [tmp_path / "a" / "b" / "eval_text.png"] and pngs[0].read_bytes()[:8] == PNG


def test_summary_table_marks_missing_points():
    rows = [{"task": "text", "metric": "bleu1", "method": "semantic", "channel": "awgn", "snr_db": 0,
             "value": 0.5, "channel_uses": 48, "n": 1},
            {"task": "text", "metric": "bleu1", "method": "digital", "channel": "awgn", "snr_db": 5,
             "value": 1.0, "channel_uses": 48, "n": 1}]
    lines = summary_table(rows).splitlines()
    assert lines[0].split() == ["task", "metric", "channel", "SNR", "dB", "semantic", "digital"]
    assert lines[2].split() == ["text", "bleu1", "awgn", "0", "0.500", "-"]
    assert lines[3].split() == ["text", "bleu1", "awgn", "5", "-", "1.000"]


def test_plot_title_says_the_channel_uses_per_method(tmp_path, monkeypatch):
    from ragsc import report

    titles = []
    monkeypatch.setattr(report, "plot_grid", lambda grid, path, *, title, **kw: titles.append(title) or path)
    same = [_row(m, s) for m in ("semantic", "digital") for s in (0, 10)]
    token = [_row("semantic-embedding", s, channel_uses=60) for s in (0, 10)]
    plot(same + token, tmp_path)
    assert titles[-1] == "text: 48 complex symbols per item in every path; semantic-embedding: 60 (1 items)"
    # a path whose length follows the SNR (CAT's rate policy): the range of the per-SNR means
    cat = [_row(m, s, channel_uses=u) for m in ("semantic", "digital") for s, u in ((0, 8), (10, 2))]
    plot(cat, tmp_path)
    assert titles[-1] == "text: 2-8 complex symbols per item in every path (1 items)"
