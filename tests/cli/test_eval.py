"""``ragsc eval SPEC`` (ragsc/cli/eval.py): bad options are one error line before any work; a small run
writes the CSV and the plots."""

from __future__ import annotations

from tests.cli._process import ROOT


def test_eval_bad_options_are_clean_errors(cli, tmp_path):
    spec = str(ROOT / "pipelines" / "multitask.yaml")
    out = tmp_path / "out"
    cases = {("--snr", "bad"): "SNR range", ("--snr", "0:100:50"): "within",
             ("--channel", "bad"): "unknown channel",
             ("--methods", "bad"): "--methods", ("--methods", "semantic,,magic"): "--methods",
             ("--subset", "recent"): "--subset"}
    for args, message in cases.items():
        code, _, stderr = cli("eval", spec, *args, "--out", str(out))
        assert code == 2, args
        assert stderr.startswith("error:") and message in stderr, (args, stderr)
        assert "Traceback" not in stderr
        assert not out.exists()
    code, _, stderr = cli("eval", str(tmp_path / "missing.yaml"), "--out", str(out))
    assert code == 2 and "pipeline spec not found" in stderr and not out.exists()
    code, _, stderr = cli("eval", spec, "--n", "0", "--out", str(out))
    assert code == 2 and not out.exists()
    code, _, stderr = cli("eval", spec, "--k-symbols", "0", "--out", str(out))
    assert code == 2 and "--k-symbols" in stderr and not out.exists()
    # in a spec, k is the number of neighbours: the bandwidth option is --k-symbols, and --k is not an option
    code, _, stderr = cli("eval", spec, "--k", "24", "--out", str(out))
    assert code == 2 and "No such option" in stderr and not out.exists()


def test_eval_small_run_writes_csv_and_plots(cli, tmp_path, default_kbs):
    import csv

    import yaml

    local, global_ = default_kbs
    spec = yaml.safe_load((ROOT / "pipelines" / "multitask.yaml").read_text())
    spec["name"] = "multitask-small"
    spec["decoder"] = {"caption": "retrieved", "vqa": "head"}  # the CLI's run, not SmolLM2's answers
    spec["knowledge_bases"] = [{"path": str(local.path), "scope": "local", "build": None},
                               {"path": str(global_.path), "scope": "global", "build": None}]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    # one method of each shape (every task; images only; sentences only): tests/eval runs every method
    methods = ("semantic+rag", "retrieval", "semantic-embedding")
    code, stdout, stderr = cli("eval", str(path), "--n", "3", "--snr", "10", "--channel", "awgn",
                               "--methods", ",".join(methods), "--out", str(out))
    assert code == 0, stderr
    with open(out / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    from ragsc.eval import TASK_METRICS
    from ragsc.eval.sweep import TEXT_ONLY

    every = sum(len(v) for v in TASK_METRICS.values())
    per_method = {m: 2 if m == "retrieval" else 3 if m in TEXT_ONLY else every for m in methods}
    assert len(rows) == sum(per_method.values())  # retrieval: image PSNR / SSIM; text baselines: text
    assert {r["method"] for r in rows} == set(methods)
    assert {r["snr_db"] for r in rows} == {"10.0"}
    # sentences as embeddings in 48 symbols, 64x64 images in 48 + their pixels on the image JSCC at 1/12
    # (1,024 + a 16-symbol header); sentences on the token link in what they cost
    assert {r["channel_uses"] for r in rows if r["method"] == "semantic-embedding" and r["task"] == "text"} \
        == {"48"}
    assert {r["channel_uses"] for r in rows if r["task"] != "text"} == {"1088"}
    assert len({r["channel_uses"] for r in rows if r["task"] == "text"}) == 2
    assert {r["n"] for r in rows} == {"3"} and {r["subset"] for r in rows} == {"all"}
    for task in ("text", "image", "vqa"):
        png = out / f"eval_{task}.png"
        assert png.is_file() and png.stat().st_size > 1000
    assert "semantic+rag" in stdout and "wrote" in stdout and "eval.csv" in stdout

    # --k-symbols: every method at another bandwidth; beyond the PCA basis it is refused before any work
    code, _, stderr = cli("eval", str(path), "--n", "2", "--snr", "10", "--channel", "awgn",
                          "--methods", "semantic+rag,digital", "--k-symbols", "24", "--subset", "novel",
                          "--out", str(tmp_path / "k24"))
    assert code == 0, stderr
    with open(tmp_path / "k24" / "eval.csv", newline="") as f:
        k24 = list(csv.DictReader(f))
    # the embedding in 24 symbols, the 64x64 pixels on the image JSCC as before (1,024 + 16)
    assert {(r["channel_uses"], r["subset"]) for r in k24 if r["task"] != "text"} == {("1064", "novel")}
    assert {r["subset"] for r in k24} == {"novel"}
    k1000 = tmp_path / "k1000"
    code, _, stderr = cli("eval", str(path), "--k-symbols", "1000", "--out", str(k1000))
    assert code == 2 and "k_symbols=1000" in stderr and "at most" in stderr and not k1000.exists()


def test_eval_out_is_checked_before_the_pipeline_is_built(cli, tmp_path, forbid, monkeypatch):
    """--out is a new or empty folder, or one holding only a previous eval's eval.csv and eval_*.png (which
    are replaced); a file, a folder of other files, a path under a file are refused before the pipeline is
    built (once: after the whole sweep, a traceback)."""
    import ragsc.eval
    import ragsc.pipelines
    from ragsc.errors import ConfigError

    spec = str(ROOT / "pipelines" / "multitask.yaml")
    forbid(ragsc.pipelines, "Pipeline")
    forbid(ragsc.eval, "run_eval")
    (tmp_path / "file").write_text("keep")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "eval.csv").write_text("keep")
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    cases = {tmp_path / "file": "is a file, not a folder", tmp_path / "file" / "e": "lies under",
             tmp_path / "mine": "holds notes.txt (a file): only a previous eval's eval.csv and eval_*.png "
                                "may be replaced there; name a new or empty folder"}
    for out, problem in cases.items():
        code, _, err = cli("eval", spec, "--out", str(out))
        assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
        assert "Traceback" not in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"

    class Reached:
        @classmethod
        def from_config(cls, config):
            raise ConfigError("the pipeline is built")

    monkeypatch.setattr(ragsc.pipelines, "Pipeline", Reached)
    (tmp_path / "mine" / "notes.txt").unlink()
    (tmp_path / "mine" / "eval_text.png").write_text("old")
    code, _, err = cli("eval", spec, "--out", str(tmp_path / "mine"))  # a previous eval's folder
    assert code == 2 and "the pipeline is built" in err, err
