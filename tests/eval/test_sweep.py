"""ragsc.eval.sweep: the SNR sweep of a pipeline against the baselines (rows)."""

import math

import pytest

from ragsc.errors import ConfigError
from ragsc.eval.scoring import TASK_METRICS
from ragsc.eval.sweep import COLUMNS, SWEEP_METHODS, TEXT_ONLY, run_eval


@pytest.fixture(scope="module")
def rows(sweep_rows):
    return sweep_rows


def expected_points(methods, snrs):
    """(task, metric, method, snr) of every row a multitask sweep over one channel gives."""
    every = [(t, m) for t, ms in TASK_METRICS.items() for m in ms]
    image_only = [("image", "psnr"), ("image", "ssim")]  # retrieval alone reconstructs images only
    text_only = [("text", m) for m in TASK_METRICS["text"]]  # the text paths' own baselines
    return {(t, m, meth, s) for meth in methods for s in snrs
            for t, m in (image_only if meth == "retrieval" else text_only if meth in TEXT_ONLY else every)}


def test_run_eval_rows(rows, sweep_pipe, sweep_snrs):
    assert all(list(r) == list(COLUMNS) for r in rows)  # the keys, in the CSV's order
    points = [(r["task"], r["metric"], r["method"], r["snr_db"]) for r in rows]
    assert len(points) == len(set(points))  # one row per point
    assert set(points) == expected_points(SWEEP_METHODS, sweep_snrs)
    assert {r["channel"] for r in rows} == {"awgn"}
    k = sweep_pipe.spec.channel.k_symbols
    as_embedding = [r for r in rows if r["task"] != "text" or r["method"] == "semantic-embedding"]
    # an image costs its embedding's k symbols and its 64x64 pixels' on the image JSCC (1/12 + a header),
    # in every path (the baselines get the same budget)
    assert as_embedding and all(r["channel_uses"] == (k if r["task"] == "text" else k + 1024 + 16)
                                for r in as_embedding)
    # sentences on the token link cost their tokens, and every other path sends them in as many symbols
    text_uses = {r["channel_uses"] for r in rows if r not in as_embedding}
    assert len(text_uses) == 1 and text_uses != {k}
    assert all(r["n"] == 4 and r["subset"] == "all" for r in rows)
    assert all(isinstance(r["value"], float) and not math.isnan(r["value"]) for r in rows)
    bounded = [r["value"] for r in rows if r["metric"] in ("bleu1", "bleu4", "class_accuracy", "accuracy")]
    assert all(0.0 <= v <= 1.0 for v in bounded)


def test_noiseless_bound_covers_every_point_and_bounds_the_text(rows, sweep_snrs):
    val = {(r["task"], r["metric"], r["snr_db"], r["method"]): r["value"] for r in rows}
    points = {(t, m, s) for t, m, s, method in val if method == "semantic+rag"}
    assert points and all((t, m, s, "noiseless") in val for t, m, s in points)
    # the same symbols without noise: no SNR of the sweep decodes the sentences better
    for snr in sweep_snrs:
        assert (val[("text", "similarity", snr, "noiseless")]
                >= val[("text", "similarity", snr, "semantic+rag")] - 0.02)
    # the token link without noise gets every sentence back exactly, KB-held or novel
    assert val[("text", "bleu1", sweep_snrs[0], "noiseless")] == 1.0


def test_rag_beats_no_rag_on_text(rows, sweep_snrs):
    v = {(r["method"], r["snr_db"]): r["value"] for r in rows if r["metric"] == "similarity"}
    for snr in sweep_snrs:
        assert v[("semantic+rag", snr)] >= v[("semantic", snr)]


def test_digital_baselines_deliver_text_at_high_snr(rows):
    # the text codec keeps the leading words that fit the bit budget; over AWGN the ideal bound's budget
    # (capacity) is never below separate coding's payload, and 20 dB carries more than 0 dB
    v = {(r["method"], r["snr_db"]): r["value"] for r in rows if r["metric"] == "bleu1"}
    assert 0 < v[("digital", 20)] <= v[("ideal", 20)]
    assert v[("digital", 0)] < v[("digital", 20)] and v[("ideal", 0)] < v[("ideal", 20)]
    # at equal channel uses the LM's code fits more of each sentence than deflate's
    assert v[("digital-lm", 20)] >= v[("digital", 20)] and v[("digital-lm", 20)] > 0.5


def test_run_eval_is_reproducible(sweep_pipe):
    kw = {"channels": ["awgn"], "snrs": [5], "n": 2, "seed": 1, "progress": False,
          "methods": tuple(m for m in SWEEP_METHODS if m != "noiseless")}
    a, b = run_eval(sweep_pipe, **kw), run_eval(sweep_pipe, **kw)
    assert a == b and len(a) > 0


def test_run_eval_unknown_method(multitask):
    with pytest.raises(ConfigError, match=r"unknown method\(s\) \['magic'\]"):
        run_eval(multitask, ["awgn"], [0], n=1, methods=("semantic", "magic"), progress=False)


def test_run_eval_on_cat_compares_at_each_items_channel_uses(embedded, decoders, tmp_path, monkeypatch):
    # a CAT pipeline spends what its rate policy picks per item (8 symbols at 0 dB, 2 at 20 dB here): the
    # rows say so, and the digital baselines send each image in as many channel uses
    from ragsc.eval.digital import DigitalReceiver
    from ragsc.pipelines import Pipeline
    from tests.pipelines._cat import save_tiny_cat

    spec = {"name": "cat", "task": "image", "decoder": {"rag": False},
            "channel": {"path": "cat", "cat": str(save_tiny_cat(tmp_path / "cat"))}}
    pipe = Pipeline.from_config(spec, encoder=embedded, decoders=decoders)
    budgets = []
    send = DigitalReceiver._send

    def spy(self, contents, channel, snr, channel_uses=None):
        budgets.append((snr, channel_uses))
        return send(self, contents, channel, snr, channel_uses)

    monkeypatch.setattr(DigitalReceiver, "_send", spy)
    methods = ("semantic", "digital", "noiseless")
    rows = run_eval(pipe, ["awgn"], [0, 20], n=2, methods=methods, progress=False)
    assert {(r["method"], r["snr_db"]) for r in rows} == {(m, s) for m in methods for s in (0, 20)}
    by_snr = {0: 8, 20: 2}
    for r in rows:
        expected = 2 if r["method"] == "noiseless" else by_snr[r["snr_db"]]
        assert r["task"] in ("image", "vqa") and r["channel_uses"] == expected, r
    assert budgets and all(u == [by_snr[snr]] * 2 for snr, u in budgets)
