"""ragsc.eval.sweep: evaluation sets, scoring, the digital baselines and the SNR sweep (CSV + PNG)."""

import csv
import math

import numpy as np
import pytest
from PIL import Image

from ragsc.errors import ConfigError
from ragsc.eval.sweep import (
    METHODS,
    PSNR_CAP_DB,
    TASK_METRICS,
    DigitalReceiver,
    EvalSet,
    evaluation_set,
    plot,
    run_eval,
    score,
    summary_table,
    write_csv,
)
from ragsc.pipelines import Output

SNRS = [0, 20]
KEYS = {"task", "metric", "method", "channel", "snr_db", "value", "channel_uses", "n", "subset"}


@pytest.fixture(scope="module")
def rows(multitask):
    return run_eval(multitask, ["awgn"], SNRS, n=4, seed=0, methods=METHODS, progress=False)


# ----------------------------------------------------------------------------- evaluation sets


@pytest.mark.parametrize("task, n_items", [("text", 3), ("image", 3), ("vqa", 3), ("multitask", 6)])
def test_evaluation_set_sizes(task, n_items):
    ev = evaluation_set(task, 3, seed=0)
    assert len(ev.items) == len(ev.texts) == len(ev.images) == len(ev.labels) == len(ev.answers) == n_items
    for item, text, image, label, answers in zip(ev.items, ev.texts, ev.images, ev.labels, ev.answers):
        if isinstance(item, str):
            assert text == item and image is None and label is None and answers == []
        else:
            assert text is None and isinstance(image, Image.Image) and image.mode == "RGB"
            assert item["image"] is image and len(item["questions"]) == len(answers) == 3
            assert all(isinstance(q, str) and q for q in item["questions"])
            assert len(label) == 2
    kinds = [isinstance(i, str) for i in ev.items]
    assert sum(kinds) == (3 if task in ("text", "multitask") else 0)
    again = evaluation_set(task, 3, seed=0)
    assert [t for t in again.texts] == ev.texts and again.answers == ev.answers
    with pytest.raises(ConfigError, match="n=0"):
        evaluation_set(task, 0)
    with pytest.raises(ConfigError, match="subset"):
        evaluation_set(task, 3, subset="some")


def test_evaluation_set_subsets_split_re_sent_from_novel_images():
    from ragsc.datasets import load_easy_vqa
    from ragsc.pipelines.default_kb import LOCAL_TEST_IMAGES

    test = load_easy_vqa("test")
    local = {f"easy-vqa:test/{x.image_id}" for x in test[:LOCAL_TEST_IMAGES]}
    by_uri = {f"easy-vqa:test/{x.image_id}": x for x in test}
    held, novel, both = (evaluation_set("image", 6, seed=2, subset=s) for s in ("held", "novel", "all"))
    assert all(u in local for u in held.sources) and not any(u in local for u in novel.sources)
    assert sum(u in local for u in both.sources) == 3 and len(set(both.sources)) == 6
    for uri, image in zip(both.sources, both.images):  # each source is the image that was sent
        with Image.open(by_uri[uri].path) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(image))
    assert evaluation_set("text", 2).sources == [None, None]


def test_evaluation_set_questions_per_image():
    ev = evaluation_set("vqa", 2, seed=1, questions_per_image=1)
    assert [len(a) for a in ev.answers] == [1, 1]


# ----------------------------------------------------------------------------- score


def _img(color):
    return Image.new("RGB", (64, 64), color)


def test_score_exact_values(embedded):
    red = _img((255, 0, 0))
    ev = EvalSet(items=["a red circle", {"image": red, "questions": ["q1", "q2"]}],
                 texts=["a red circle", None], images=[None, red], labels=[None, ("red", "circle")],
                 answers=[[], ["circle", "red"]])
    perfect = [Output("text", text="a red circle"),
               Output("image", image=red.copy(), caption="A red circle.", answers=["circle", "red"])]
    s = score(perfect, ev)
    assert set(s) == {f"{t}/{m}" for t, ms in TASK_METRICS.items() for m in ms}
    assert s["text/bleu1"] == pytest.approx(1.0) and s["text/bleu4"] == pytest.approx(1.0)
    assert s["text/similarity"] == pytest.approx(1.0, abs=1e-4)
    assert s["image/psnr"] == PSNR_CAP_DB and s["image/ssim"] == pytest.approx(1.0)  # an exact copy: the cap
    assert s["image/class_accuracy"] == 1.0 and s["vqa/accuracy"] == 1.0

    wrong = [Output("text", text=""),
             Output("image", image=_img((0, 0, 255)), caption="a blue square", answers=["circle", "blue"])]
    s = score(wrong, ev)
    assert s["text/bleu1"] == 0.0 and s["text/similarity"] == 0.0
    assert s["image/class_accuracy"] == 0.0 and s["vqa/accuracy"] == 0.5
    assert s["image/psnr"] < 10 and s["image/ssim"] < 0.5

    # right colour, wrong shape is still a wrong class; no caption at all -> no class metric
    s = score([perfect[0], Output("image", image=red, caption="a red triangle")], ev)
    assert s["image/class_accuracy"] == 0.0 and "vqa/accuracy" not in s
    s = score([perfect[0], Output("image", image=red)], ev)
    assert "image/class_accuracy" not in s and "image/ssim" in s


def test_score_only_reports_tasks_present():
    ev = EvalSet(items=["a"], texts=["a teal square"], images=[None], labels=[None], answers=[[]])
    s = score([Output("text", text="a teal square")], ev)
    assert set(s) == {"text/bleu1", "text/bleu4", "text/similarity"}


# ----------------------------------------------------------------------------- digital baselines


def test_digital_receiver_text(multitask):
    msgs = multitask.messages(["a red circle", "a blue square"])
    dr = DigitalReceiver(multitask)
    high, meta = dr(msgs, "awgn", 30)
    assert [o.text for o in high] == ["a red circle", "a blue square"]
    assert meta["text_mcs"] is not None and "image_mcs" not in meta
    low, _ = dr(msgs, "awgn", -10)
    assert [o.text for o in low] == ["", ""]  # failed CRC: the empty-string fallback
    again, _ = DigitalReceiver(multitask)(msgs, "awgn", 30)
    assert [o.text for o in again] == [o.text for o in high]


# ----------------------------------------------------------------------------- the sweep


def expected_points(methods, snrs):
    """(task, metric, method, snr) of every row a multitask sweep over one channel gives."""
    every = [(t, m) for t, ms in TASK_METRICS.items() for m in ms]
    image_only = [("image", "psnr"), ("image", "ssim")]  # retrieval alone reconstructs images only
    return {(t, m, meth, s) for meth in methods for s in snrs for t, m in (image_only if meth == "retrieval" else every)}


def test_run_eval_rows(rows, multitask):
    assert all(set(r) == KEYS for r in rows)
    points = [(r["task"], r["metric"], r["method"], r["snr_db"]) for r in rows]
    assert len(points) == len(set(points))  # one row per point
    assert set(points) == expected_points(METHODS, SNRS)
    assert {r["channel"] for r in rows} == {"awgn"}
    assert all(r["channel_uses"] == multitask.spec.channel.k_symbols for r in rows)
    assert all(r["n"] == 4 and r["subset"] == "all" for r in rows)
    assert all(isinstance(r["value"], float) and not math.isnan(r["value"]) for r in rows)
    bounded = [r["value"] for r in rows if r["metric"] in ("bleu1", "bleu4", "class_accuracy", "accuracy")]
    assert all(0.0 <= v <= 1.0 for v in bounded)


def test_noiseless_rows_identical_across_snr(rows):
    val = {(r["task"], r["metric"], r["snr_db"]): r["value"] for r in rows if r["method"] == "noiseless"}
    for (task, metric, snr), v in val.items():
        assert v == val[(task, metric, SNRS[0])]
    # with the KB, the noiseless bound gets (nearly) every text back
    assert val[("text", "similarity", 0)] >= 0.75


def test_rag_beats_no_rag_on_text(rows):
    v = {(r["method"], r["snr_db"]): r["value"] for r in rows if r["metric"] == "similarity"}
    for snr in SNRS:
        assert v[("semantic+rag", snr)] >= v[("semantic", snr)]


def test_run_eval_is_reproducible(multitask):
    kw = {"channels": ["awgn"], "snrs": [5], "n": 2, "seed": 1, "progress": False,
          "methods": tuple(m for m in METHODS if m != "noiseless")}
    a, b = run_eval(multitask, **kw), run_eval(multitask, **kw)
    assert a == b and len(a) > 0


def test_run_eval_unknown_method(multitask):
    with pytest.raises(ConfigError, match=r"unknown method\(s\) \['magic'\]"):
        run_eval(multitask, ["awgn"], [0], n=1, methods=("semantic", "magic"), progress=False)


def test_csv_plot_and_table(rows, tmp_path):
    path = tmp_path / "eval.csv"
    write_csv(rows, path)
    with open(path, newline="") as f:
        back = list(csv.DictReader(f))
    assert len(back) == len(rows) and set(back[0]) == KEYS
    assert [(r["method"], float(r["value"])) for r in back] == [(r["method"], r["value"]) for r in rows]
    pngs = plot(rows, tmp_path)
    assert sorted(p.name for p in pngs) == ["eval_image.png", "eval_text.png", "eval_vqa.png"]
    for p in pngs:
        assert p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = summary_table(rows)
    assert all(m in text for m in METHODS)
    lines = text.splitlines()
    assert len(lines) == 2 + len({(r["task"], r["metric"], r["snr_db"]) for r in rows})  # header, rule, one per point


def test_summary_table_marks_missing_points():
    rows = [{"task": "text", "metric": "bleu1", "method": "semantic", "channel": "awgn", "snr_db": 0, "value": 0.5,
             "channel_uses": 48, "n": 1},
            {"task": "text", "metric": "bleu1", "method": "digital", "channel": "awgn", "snr_db": 5, "value": 1.0,
             "channel_uses": 48, "n": 1}]
    lines = summary_table(rows).splitlines()
    assert lines[0].split() == ["task", "metric", "channel", "SNR", "dB", "semantic", "digital"]
    assert lines[2].split() == ["text", "bleu1", "awgn", "0", "0.500", "-"]
    assert lines[3].split() == ["text", "bleu1", "awgn", "5", "-", "1.000"]
