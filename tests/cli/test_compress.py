"""``ragsc compress encoder | lm`` (ragsc/cli/compress.py): the front table, the pick, a loadable folder;
bad input is one error line and writes nothing. In process, on the tiny student of tests/compress."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.encoders import load_encoder

pytestmark = pytest.mark.usefixtures("one_thread")


FAST = ("--sentences", "4", "--images", "4", "--repeats", "1", "--threads", "1")


def test_compress_prints_the_front_and_writes_the_pick(cli, student_dir, tmp_path):
    out = tmp_path / "c"
    # the float text tower is about 2 MB, int8 under 1 MB: a 1 MB budget picks int8
    code, stdout, stderr = cli("compress", "encoder", "--encoder", f"student:{student_dir}", "--tower",
                                    "text", "--methods", "none,int8-dynamic", "--budget-mb", "1", "--out",
                                    str(out), *FAST)
    assert code == 0, stderr
    assert "* int8-dynamic" in stdout and "no: size" in stdout and "ms @64" in stdout
    assert "picked: int8-dynamic:" in stdout and f"compressed:{out}" in stdout
    header = json.loads((out / "config.json").read_text())
    record, info = header["config"], header["info"]
    assert header["kind"] == "compressed-encoder"
    assert record["config"]["methods"] == ["int8-dynamic"] and len(info["front"]) == 2
    assert info["command"].startswith(f"ragsc compress encoder --encoder student:{student_dir} "
                                      f"--out {out} --tower text --methods none,int8-dynamic ")
    assert info["figures"]["size_bytes"] < 1e6
    enc = load_encoder(f"compressed:{out}")
    assert enc.encode_texts(["a red circle"]).embeddings.shape == (1, 16)


def test_bad_input_is_one_error_line_and_writes_nothing(cli, student_dir, tmp_path):
    out = tmp_path / "c"
    spec = f"student:{student_dir}"
    cases = {("--encoder", spec, "--methods", "none,int4"): "unknown compression method 'int4'",
             ("--encoder", spec, "--methods", "prune+fp16+bf16"): "methods",
             ("--encoder", spec, "--tower", "audio"): "--tower must be text or image",
             ("--encoder", spec, "--budget-mb", "-3"): "max_mb",
             ("--encoder", "nonsense:abc"): "unknown encoder spec 'nonsense:abc'",
             ("--encoder", spec, "--methods", "prune"): "prune applies to image towers",
             # measured, then refused: the constraint that fails and the closest point's figures
             ("--encoder", spec, "--methods", "none,int8-dynamic", "--budget-mb", "0.01"):
                 "impossible budget: no compression meets size <= 0.01 MB (the smallest point, int8-dynamic"}
    for args, message in cases.items():
        code, _, stderr = cli("compress", "encoder", *args, "--out", str(out), *FAST)
        assert code == 2, args
        last = stderr.strip().splitlines()[-1]  # after the progress bars of a measured front
        assert last.startswith("error:") and message in last, (args, stderr)
        assert "Traceback" not in stderr and stderr.count("error:") == 1
        assert not out.exists()
    # an LM's option is not one of the encoder command's
    code, _, stderr = cli("compress", "encoder", "--encoder", spec, "--keep-float", "lm_head",
                               "--out", str(out), *FAST)
    assert code == 2 and "No such option" in stderr and "--keep-float" in stderr and "Traceback" not in stderr
    assert not out.exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    code, _, stderr = cli("compress", "encoder", "--encoder", spec, "--out", str(busy), *FAST)
    assert code == 2 and "not empty" in stderr and sorted(p.name for p in busy.iterdir()) == ["x"]


@pytest.mark.parametrize("command", ["encoder", "lm"])
def test_out_is_checked_before_anything_is_loaded_or_measured(cli, tmp_path, forbid, command):
    """Under a file (once: the whole front measured, then a traceback), a symbolic link, a FIFO, a folder
    of other files: one error line before the model is loaded."""
    import os

    import ragsc.compress
    import ragsc.encoders

    forbid(ragsc.encoders, "load_encoder")
    forbid(ragsc.compress, "LinkData", "lm_front", "front")
    (tmp_path / "file").write_text("keep")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep")
    cases = {tmp_path / "file" / "c": "lies under", tmp_path / "link": "is a symbolic link",
             tmp_path / "fifo": "is a FIFO", tmp_path / "busy": "is not empty"}
    for out, problem in cases.items():
        code, _, err = cli("compress", command, "--out", str(out), *(FAST if command == "encoder" else ()))
        assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
        assert "Traceback" not in err and err.count("\n") == 1
    assert (tmp_path / "file").read_text() == "keep" and not list((tmp_path / "empty").iterdir())


def test_the_shipped_student_image_tower_prunes_to_half_its_macs(cli, tmp_path):
    out = tmp_path / "c"
    code, stdout, stderr = cli("compress", "encoder", "--encoder", "student:embedded", "--tower", "image",
                                    "--methods", "none,prune", "--budget-params", "400000",
                                    "--finetune-images", "32", "--finetune-epochs", "1", "--out", str(out),
                                    *FAST)
    assert code == 0, stderr
    assert "* prune50%" in stdout
    pruning = json.loads((out / "config.json").read_text())["info"]["pruning"]
    assert pruning["macs_after"] <= 0.5 * pruning["macs_before"]
    enc = load_encoder(f"compressed:{out}")
    assert enc.num_parameters()["image"] <= 400_000 and enc.serves(enc.base.fingerprint)
    assert enc.encode_images([torch.zeros(64, 64, 3, dtype=torch.uint8).numpy()]).embeddings.shape == (1, 384)


def test_compress_lm_writes_what_a_pipeline_loads(cli, tmp_path):
    """``ragsc compress lm``: the LM front (BLEU-1 over the token link), the pick, a folder that
    ``load_lm("compressed:<dir>")`` reloads; a method that only encoders have is refused before any work."""
    from ragsc.decoders.lm import load_lm
    from tests.decoders._tiny_lm import tiny_lm

    lm = tiny_lm(tie=True)
    lm.model.save_pretrained(tmp_path / "lm")
    lm.tokenizer.save_pretrained(tmp_path / "lm")
    spec, out = f"hf:{tmp_path / 'lm'}", tmp_path / "c"
    code, stdout, stderr = cli("compress", "lm", "--lm", spec, "--methods", "none,int8-dynamic",
                                    "--keep-float", "lm_head", "--sentences", "3", "--snr", "10", "--repeats",
                                    "1", "--threads", "1", "--budget-ms", "1000", "--out", str(out))
    assert code == 0, stderr
    assert "BLEU-1 10 dB" in stdout and "picked:" in stdout and f"compressed:{out}" in stdout
    header = json.loads((out / "config.json").read_text())
    record, info = header["config"], header["info"]
    assert header["kind"] == "compressed-lm"
    assert record["config"]["lm"] == spec and len(info["front"]) == 2
    assert info["command"].startswith(f"ragsc compress lm --lm {spec} --out {out} ")
    assert {r["method"] for r in info["front"]} == {"none", "int8-dynamic[float:lm_head]"}
    assert load_lm(f"compressed:{out}")(["the cat"], max_new_tokens=2)
    code, _, stderr = cli("compress", "lm", "--lm", spec, "--methods", "prune", "--out",
                               str(tmp_path / "d"))
    assert code == 2 and "unknown LM compression method 'prune'" in stderr.strip().splitlines()[-1]
    code, _, stderr = cli("compress", "lm", "--lm", spec, "--methods", "none,bf16", "--keep-float",
                               "lm_head", "--out", str(tmp_path / "d"))
    assert code == 2 and "--keep-float applies to int8-dynamic" in stderr.strip().splitlines()[-1]
    assert not (tmp_path / "d").exists()
