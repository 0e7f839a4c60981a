"""The `ragsc` console entry: thin, and user mistakes are one `error:` line with exit status 2."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ragsc(*args):
    return subprocess.run([sys.executable, "-m", "ragsc.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_spec_validate_ok_and_bad(tmp_path):
    ok = ragsc("spec", "validate", "pipelines/vqa.yaml")
    assert ok.returncode == 0 and '"task": "vqa"' in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: text\nchannel:\n  snr_db: .nan\n")
    out = ragsc("spec", "validate", str(bad))
    assert out.returncode == 2 and out.stderr.startswith("error:") and "channel.snr_db" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_encoder_spec_is_a_clean_error():
    out = ragsc("encoders", "eval", "--spec", "nonsense:abc", "--limit", "1")
    assert out.returncode == 2 and "unknown encoder spec 'nonsense:abc'" in out.stderr
    assert "Traceback" not in out.stderr


def test_encoders_list_shows_scores():
    out = ragsc("encoders", "list")
    assert out.returncode == 0 and "embedded" in out.stdout and "easy_vqa_test" in out.stdout


# ----------------------------------------------------------------------------- ragsc eval / decoders train
# In-process through ragsc.cli.main (the console entry): faster than a subprocess per case.


def run_main(capsys, *argv):
    """(exit status, stdout, stderr) of ``ragsc ARGV`` run in this process."""
    import pytest

    from ragsc.cli import main

    with pytest.raises(SystemExit) as exc:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_eval_bad_options_are_clean_errors(capsys, tmp_path):
    spec = str(ROOT / "pipelines" / "multitask.yaml")
    out = tmp_path / "out"
    cases = {("--snr", "bad"): "SNR range", ("--snr", "0:100:50"): "within",
             ("--channel", "bad"): "unknown channel",
             ("--methods", "bad"): "--methods", ("--methods", "semantic,,magic"): "--methods",
             ("--subset", "recent"): "--subset"}
    for args, message in cases.items():
        code, _, stderr = run_main(capsys, "eval", spec, *args, "--out", str(out))
        assert code == 2, args
        assert stderr.startswith("error:") and message in stderr, (args, stderr)
        assert "Traceback" not in stderr
        assert not out.exists()
    code, _, stderr = run_main(capsys, "eval", str(tmp_path / "missing.yaml"), "--out", str(out))
    assert code == 2 and "pipeline spec not found" in stderr and not out.exists()
    code, _, stderr = run_main(capsys, "eval", spec, "--n", "0", "--out", str(out))
    assert code == 2 and not out.exists()
    code, _, stderr = run_main(capsys, "eval", spec, "--k-symbols", "0", "--out", str(out))
    assert code == 2 and "--k-symbols" in stderr and not out.exists()
    # in a spec, k is the number of neighbours: the bandwidth option is --k-symbols, and --k is not an option
    code, _, stderr = run_main(capsys, "eval", spec, "--k", "24", "--out", str(out))
    assert code == 2 and "No such option" in stderr and not out.exists()


def test_eval_small_run_writes_csv_and_plots(capsys, tmp_path, default_kbs):
    import csv

    import yaml

    local, global_ = default_kbs
    spec = yaml.safe_load((ROOT / "pipelines" / "multitask.yaml").read_text())
    spec["name"] = "multitask-small"
    spec["knowledge_bases"] = [{"path": str(local.path), "scope": "local", "build": None},
                               {"path": str(global_.path), "scope": "global", "build": None}]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    code, stdout, stderr = run_main(capsys, "eval", str(path), "--n", "3", "--snr", "10", "--channel", "awgn",
                                    "--out", str(out))
    assert code == 0, stderr
    with open(out / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    from ragsc.eval import METHODS, TASK_METRICS

    per_method = {m: 2 if m == "retrieval" else sum(len(v) for v in TASK_METRICS.values()) for m in METHODS}
    assert len(rows) == sum(per_method.values())  # retrieval alone scores image PSNR / SSIM only
    assert {r["method"] for r in rows} == set(METHODS)
    assert {r["snr_db"] for r in rows} == {"10.0"} and {r["channel_uses"] for r in rows} == {"48"}
    assert {r["n"] for r in rows} == {"3"} and {r["subset"] for r in rows} == {"all"}
    for task in ("text", "image", "vqa"):
        png = out / f"eval_{task}.png"
        assert png.is_file() and png.stat().st_size > 1000
    assert "semantic+rag" in stdout and "wrote" in stdout and "eval.csv" in stdout

    # --k-symbols: every method at another bandwidth; beyond the PCA basis it is refused before any work
    code, _, stderr = run_main(capsys, "eval", str(path), "--n", "2", "--snr", "10", "--channel", "awgn",
                               "--methods", "semantic+rag,digital", "--k-symbols", "24", "--subset", "novel",
                               "--out", str(tmp_path / "k24"))
    assert code == 0, stderr
    with open(tmp_path / "k24" / "eval.csv", newline="") as f:
        assert {(r["channel_uses"], r["subset"]) for r in csv.DictReader(f)} == {("24", "novel")}
    k1000 = tmp_path / "k1000"
    code, _, stderr = run_main(capsys, "eval", str(path), "--k-symbols", "1000", "--out", str(k1000))
    assert code == 2 and "k_symbols=1000" in stderr and "at most" in stderr and not k1000.exists()


def test_decoders_train_rejects_zero_steps(capsys, tmp_path):
    target = tmp_path / "dec.safetensors"
    code, _, stderr = run_main(capsys, "decoders", "train", "--text-steps", "0", "--out", str(target))
    assert code == 2 and "--text-steps" in stderr and "Traceback" not in stderr
    assert not target.exists()
