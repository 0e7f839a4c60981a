"""The `ragsc` console entry, every command in one place: thin, and user mistakes are one `error:` line
with exit status 2, never a traceback.

Every CLI call in a subprocess is a fresh interpreter (1.5 s of imports, +5 s when it loads the encoder);
fast error paths call ``ragsc.cli.main`` in-process with a fake encoder instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragsc.kb import KnowledgeBase, NewItem

ROOT = Path(__file__).resolve().parents[1]


def ragsc(*args):
    return subprocess.run([sys.executable, "-m", "ragsc.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


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
    from ragsc.eval.sweep import TEXT_ONLY

    every = sum(len(v) for v in TASK_METRICS.values())
    per_method = {m: 2 if m == "retrieval" else 3 if m in TEXT_ONLY else every for m in METHODS}
    assert len(rows) == sum(per_method.values())  # retrieval: image PSNR / SSIM; text baselines: text
    assert {r["method"] for r in rows} == set(METHODS)
    assert {r["snr_db"] for r in rows} == {"10.0"}
    # images (and sentences as embeddings) in 48 symbols; sentences on the token link in what they cost
    embedded = [r for r in rows if r["task"] != "text" or r["method"] == "semantic-embedding"]
    assert {r["channel_uses"] for r in embedded} == {"48"}
    assert len({r["channel_uses"] for r in rows if r["task"] == "text"}) == 2
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
        k24 = list(csv.DictReader(f))
    assert {(r["channel_uses"], r["subset"]) for r in k24 if r["task"] != "text"} == {("24", "novel")}
    assert {r["subset"] for r in k24} == {"novel"}
    k1000 = tmp_path / "k1000"
    code, _, stderr = run_main(capsys, "eval", str(path), "--k-symbols", "1000", "--out", str(k1000))
    assert code == 2 and "k_symbols=1000" in stderr and "at most" in stderr and not k1000.exists()


def test_decoders_train_rejects_zero_steps(capsys, tmp_path):
    target = tmp_path / "dec.safetensors"
    code, _, stderr = run_main(capsys, "decoders", "train", "--text-steps", "0", "--out", str(target))
    assert code == 2 and "--text-steps" in stderr and "Traceback" not in stderr
    assert not target.exists()


def test_decoders_train_only_some_into_a_new_file_keeps_the_shipped_others(capsys, tmp_path, monkeypatch):
    """``--only image,vqa --out NEW``: the text decoder and PCA basis come from the shipped bundle (there is
    no NEW to keep them from); with an existing --out, from it."""
    import ragsc.decoders.train as train
    from ragsc.decoders.bundle import default_path

    calls = []
    monkeypatch.setattr(train, "train_decoders", lambda out, cfg, parts, base: calls.append((parts, base))
                        or {})
    target = tmp_path / "dec.safetensors"
    for _ in range(2):
        code, _, stderr = run_main(capsys, "decoders", "train", "--only", "image,vqa", "--encoder",
                                   "embedded", "--out", str(target))
        assert code == 0, stderr
        target.touch()
    assert calls == [(("image", "vqa"), default_path()), (("image", "vqa"), target)]


# ----------------------------------------------------------------------------- channel


def test_channel_sweep(tmp_path):
    run = lambda *a: ragsc("channel", "sweep", *a)  # noqa: E731
    out = run("--channel", "awgn", "--snr", "0,10", "--codewords", "10", "--out", str(tmp_path / "o"))
    assert out.returncode == 0, out.stderr
    o = tmp_path / "o"
    assert (o / "channel_sweep.csv").is_file() and (o / "channel_sweep.png").is_file()
    bad = run("--channel", "awgn,nope", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "unknown channel" in bad.stderr and not (tmp_path / "bad").exists()


# ----------------------------------------------------------------------------- kb


def start(home: Path, *args, cwd: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "RAGSC_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "ragsc.cli", "kb", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd or ROOT, env=env)


def finish(p: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def ok(home: Path, *args) -> str:
    p = finish(start(home, *args))
    assert p.returncode == 0, f"{args}: exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p.stdout


def user_error(p: subprocess.CompletedProcess, text: str) -> None:
    assert p.returncode == 2, f"{p.args}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert p.stderr.startswith("error:") and text in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_kb_cli_end_to_end_and_user_errors(tmp_path):
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    src = tmp_path / "facts.txt"
    facts = ["a red circle on a white background", "a cup of hot coffee", "a rocket on the launch pad",
             "a cat sleeping on a sofa", "a blue triangle", "snow on the mountains", "a bowl of ramen",
             "a yellow school bus", "a sailing boat at sea", "a green square"]
    src.write_text("\n".join(facts + ["a cup of hot coffee", ""]) + "\n")

    early = {  # user errors that need no KB: started now, checked at the end
        "dotdot": start(home, "create", "../x", cwd=work),
        "dotdot_inner": start(home, "create", "a/../../x", cwd=work),
        "missing_kb": start(home, "stats", "nope"),
    }

    out = ok(home, "create", "facts")
    kb_dir = home / "kb" / "facts"
    assert str(kb_dir) in out and (kb_dir / "manifest.json").is_file()

    late = {  # ingest errors caught before the encoder is loaded or anything is written
        "missing_source": start(home, "ingest", "facts", str(tmp_path / "missing.txt")),
        "bad_format": start(home, "ingest", "facts", str(src), "--format", "csv"),
    }

    out = ok(home, "ingest", "facts", str(src), "--checkpoint-every", "3", "--batch-size", "4")
    row = {line.split("  ")[0].strip(): line.split()[-1] for line in out.splitlines() if "  " in line}
    assert row["records seen"] == "11" and row["added"] == "10" and row["duplicates"] == "1"

    searching = start(home, "search", "facts", "a cup of hot coffee", "-k", "3")  # read-only: beside stats
    stats = json.loads(ok(home, "stats", "facts", "--verify"))
    assert stats["items"] == 10 and stats["factory"] == "Flat" and stats["by_modality"] == {"text": 10}
    assert stats["encoder"]["spec"] == "embedded" and stats["dim"] == 384 and stats["path"] == str(kb_dir)

    found = finish(searching)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.strip().splitlines()
    assert len(lines) == 5 and lines[0].split()[:3] == ["id", "score", "modality"]  # header, rule, 3 hits
    assert "a cup of hot coffee" in lines[2] and "1.000" in lines[2] and f"{src}:2" in lines[2]

    assert "deleted 2 of 3 ids" in ok(home, "delete", "facts", "1", "2", "999")

    exported = tmp_path / "facts.jsonl"
    assert "exported 8 items" in ok(home, "export", "facts", "--out", str(exported))
    rows = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(3, 11)) and rows[0]["text"] == facts[2]
    vecs = np.load(str(exported) + ".npy", allow_pickle=False)
    assert vecs.shape == (8, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-4)

    manifest = json.loads((kb_dir / "manifest.json").read_text())
    assert manifest["counts"]["items"] == 8
    # only the delete committed since
    assert int(manifest["generation"][4:]) == int(stats["generation"][4:]) + 1

    res = {k: finish(p) for k, p in {**early, **late}.items()}
    user_error(res["dotdot"], "must not contain '..'")
    user_error(res["dotdot_inner"], "must not contain '..'")
    assert not (tmp_path / "x").exists() and not (home / "x").exists() and not (home / "kb" / "x").exists()
    user_error(res["missing_kb"], "no knowledge base")
    user_error(res["missing_source"], "source not found")
    user_error(res["bad_format"], "unknown source format 'csv'")


# ---------------------------------------------------------------------------------------- in process
def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``ragsc kb ARGS`` in this process: (exit status, stdout, stderr)."""
    from ragsc.cli import main

    try:
        main(["kb", *args])
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def encoder_loads(monkeypatch):
    """Every ``load_encoder`` call, answered by the fake encoder (the CLI never loads a real model here)."""
    import ragsc.encoders
    from tests.kb._fakes import FakeEncoder

    loads = []
    monkeypatch.setattr(ragsc.encoders, "load_encoder", lambda spec: loads.append(spec) or FakeEncoder())
    return loads


def test_create_on_a_file_is_an_error_line_before_the_encoder_loads(tmp_path, capsys, encoder_loads):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    code, _, err = run_cli(capsys, "create", str(f))
    assert code == 2 and err.startswith("error:") and "is a file, not a folder" in err
    assert "Traceback" not in err
    assert f.read_text() == "keep me" and encoder_loads == []


def test_export_to_a_folder_is_an_error_line(tmp_path, capsys, new_kb):
    kb = new_kb()
    kb.add(np.eye(8, dtype=np.float32)[:2], [NewItem("text", "a"), NewItem("text", "b")])
    (tmp_path / "out").mkdir()
    code, _, err = run_cli(capsys, "export", str(kb.path), "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error:") and "is a folder" in err
    assert not list((tmp_path / "out").iterdir())
    code, out, _ = run_cli(capsys, "export", str(kb.path), "--out", str(tmp_path / "out" / "items.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    assert code == 0 and "exported 2 items" in out and [r["text"] for r in rows] == ["a", "b"]


def locked(path: Path, release_after_s: float | None = None, released=None):
    """Hold ``path``'s writer lock as another process would; optionally release it after a delay (and
    set the ``released`` event then)."""
    import fcntl
    import threading

    held = open(path / "writer.lock", "w")
    held.write("pid 424242 since noon")
    held.flush()
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release():
        fcntl.flock(held, fcntl.LOCK_UN)
        if released is not None:
            released.set()

    if release_after_s is not None:
        threading.Timer(release_after_s, release).start()
    return held


def test_ingest_into_a_busy_kb_fails_at_once_before_loading_the_encoder(tmp_path, capsys, new_kb,
                                                                        encoder_loads):
    from tests.kb._fakes import FakeEncoder

    kb = new_kb(encoder=FakeEncoder())
    src = tmp_path / "lines.txt"
    src.write_text("one\ntwo\n")
    held = locked(kb.path)
    try:
        code, _, err = run_cli(capsys, "ingest", str(kb.path), str(src))
    finally:
        held.close()
    assert code == 2 and err.startswith("error:") and "being written by another process (pid 424242" in err
    assert "waiting" not in err and encoder_loads == []


def test_ingest_waits_for_the_lock_says_so_then_loads_the_encoder(tmp_path, capsys, new_kb, monkeypatch):
    import threading

    import ragsc.encoders
    from tests.kb._fakes import FakeEncoder

    kb = new_kb(encoder=FakeEncoder())
    src = tmp_path / "lines.txt"
    src.write_text("one\ntwo\n")
    released = threading.Event()
    held = locked(kb.path, release_after_s=0.5, released=released)
    loads = []  # (the other writer had released the lock, someone holds it now) at each load

    def load(spec):
        import fcntl

        probe = open(kb.path / "writer.lock")  # flock conflicts between open files, even in one process
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            loads.append((released.is_set(), False))
        except BlockingIOError:
            loads.append((released.is_set(), True))
        finally:
            probe.close()
        return FakeEncoder()

    monkeypatch.setattr(ragsc.encoders, "load_encoder", load)
    try:
        code, out, err = run_cli(capsys, "ingest", str(kb.path), str(src), "--wait", "30")
    finally:
        held.close()
    assert code == 0, err
    assert f"waiting up to 30 s for the writer lock of knowledge base {kb.path} (held by pid 424242" in err
    assert loads == [(True, True)]  # loaded once: after the other writer let go, while the CLI held the lock
    assert sorted(it.text for it in KnowledgeBase.open(kb.path).items()) == ["one", "two"]


def test_kb_commands_report_a_bad_manifest_as_an_error_line(new_kb, capsys):
    from ragsc.cli import main

    mine = new_kb("mine")
    mine.add(np.eye(8, dtype=np.float32)[:3], [NewItem("text", t) for t in "abc"])
    m = json.loads((mine.path / "manifest.json").read_text())
    (mine.path / "manifest.json").write_text(json.dumps({**m, "generation": 7}))
    out = mine.path.parent / "x"
    for command in (["kb", "stats", str(mine.path)], ["kb", "export", str(mine.path), "--out", str(out)]):
        with pytest.raises(SystemExit) as e:
            main(command)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error:")
        assert "generation: Input should be a valid string" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- ragsc distill


def test_distill_cache_then_train_a_student_that_loads(capsys, tmp_path):
    from ragsc.encoders import load_encoder

    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                           ["a red circle", "a blue square", "please send the map", "the harbour at noon"]))
    store, out = tmp_path / "store", tmp_path / "student"
    code, text, err = run_main(capsys, "distill", "cache", "--data", str(src), "--out", str(store))
    assert code == 0, err
    assert "4 items of embedded" in text
    code, text, err = run_main(capsys, "distill", "cache", "--data", str(src), "--out", str(store),
                               "--n", "2")
    assert code == 2 and "another data recipe" in err  # refused: same folder, another recipe
    code, text, err = run_main(capsys, "distill", "train", "--store", str(store), "--out", str(out),
                               "--modality", "text", "--width", "16", "--layers", "1", "--epochs", "1")
    assert code == 0, err
    enc = load_encoder(f"student:{out}")
    assert enc.dim == 384 and enc.num_parameters()["text"] > 0
    assert json.loads((out / "student.json").read_text())["info"]["text"]["command"].startswith(
        "ragsc distill train")
    code, _, err = run_main(capsys, "distill", "train", "--store", str(store), "--out", str(out),
                            "--modality", "audio")
    assert code == 2 and "--modality" in err
    code, _, err = run_main(capsys, "distill", "train", "--store", str(tmp_path / "none"), "--out", str(out))
    assert code == 2 and "no teacher store" in err


# ----------------------------------------------------------------------------- ragsc distill search / eval
# Tiny search spaces on a fake teacher's stores of easy-VQA images: each search takes about a second.

TINY_SEARCH = ["--epochs", "2", "--retrain-epochs", "1", "--image-size", "16", "--channels", "2",
               "--layers", "2", "--nodes", "1", "--reductions", "1", "--ops", "none,max_pool_3x3,conv_3x3",
               "--batch-size", "4"]


def search_cli(capsys, store, out, *args):
    return run_main(capsys, "distill", "search", "--store", str(store), "--out", str(out), *args)


def eval_cli(capsys, student, store, *args):
    return run_main(capsys, "distill", "eval", "--student", str(student), "--store", str(store), *args)


@pytest.fixture(scope="module")
def fake_stores(tmp_path_factory):
    """(train store of 12 images, held-out store of 8 images, store of 8 images of another teacher, store of
    texts), all computed by the fake encoder (16-d)."""
    from ragsc.distill.store import DataRecipe, build_store
    from tests.kb._fakes import FakeEncoder

    root = tmp_path_factory.mktemp("fake_stores")
    texts = root / "t.jsonl"
    texts.write_text("".join(json.dumps({"text": f"sentence {i}"}) + "\n" for i in range(6)))
    return (build_store(root / "train", FakeEncoder(), DataRecipe(source="train", n=12)).path,
            build_store(root / "test", FakeEncoder(), DataRecipe(source="test", n=8)).path,
            build_store(root / "other", FakeEncoder(fingerprint="fp-2"), DataRecipe(source="test", n=8)).path,
            build_store(root / "texts", FakeEncoder(), DataRecipe(source=str(texts))).path)


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_distill_search_saves_a_student_that_loads_resumes_and_scores(capsys, tmp_path, fake_stores,
                                                                      monkeypatch):
    from ragsc.distill.darts import ArchitectureConfig, architecture_cost
    from ragsc.encoders import load_encoder

    train, test, other, _ = fake_stores
    out = tmp_path / "student"
    code, text, err = search_cli(capsys, train, out, "--lam", "0.5", *TINY_SEARCH)
    assert code == 0, err
    assert "KDL-DARTS search" in err and "retrain" in err  # the progress bars
    header, _, row = text.splitlines()[:3]
    assert header.split() == ["lambda", "parameters", "MACs", "val", "cosine", "val", "KD", "loss", "search",
                              "s", "student"]
    lam, params, macs, cosine, kd, seconds, folder = row.split()
    card = json.loads((out / "student.json").read_text())
    arch = ArchitectureConfig.from_json(json.dumps(card["image"]["architecture"]))
    assert card["image"]["kind"] == "darts" and card["teacher"]["fingerprint"] == "fake-fp-1"
    assert (int(params.replace(",", "")), int(macs.replace(",", ""))) == architecture_cost(arch)
    info = card["info"]["image"]
    assert info["command"].startswith("ragsc distill search") and info["genotype"] == card["image"][
        "architecture"]["genotype"]
    assert float(cosine) == pytest.approx(info["val_cosine"], abs=1e-4) and float(seconds) >= 0
    assert info["train_items"] + info["val_items"] == 12 and folder == str(out)
    enc = load_encoder(f"student:{out}")
    assert enc.num_parameters()["image"] == int(params.replace(",", ""))  # the net itself, no extra head
    from ragsc.distill.store import TeacherStore

    images = [x.image for x in TeacherStore(test).inputs()[:2]]
    assert enc.encode_images(images).embeddings.shape == (2, 16)
    assert json.loads((out / "checkpoint" / "lam-0.5" / "search.json").read_text())["complete"]

    # the same command again: the finished checkpoint is reused and the retrained student comes out the same
    before = _files(out)
    code, again, err = search_cli(capsys, train, out, "--lam", "0.5", *TINY_SEARCH)
    assert code == 0, err
    assert again.splitlines()[2].split()[:5] == row.split()[:5]
    now = _files(out)
    assert now.keys() == before.keys() and now["image.safetensors"] == before["image.safetensors"]
    # other settings on the same checkpoint: refused, naming the field, nothing changed
    code, _, err = search_cli(capsys, train, out, "--lam", "0.5", *TINY_SEARCH, "--lr-alpha", "0.001")
    error = err.splitlines()[-1]  # after the progress bar the check stopped
    assert code == 2 and error.startswith("error:") and "lr_alpha was 0.0003, now 0.001" in error, err
    assert "Traceback" not in err and _files(out) == now

    # eval on the held-out store: a table, or JSON; the teacher's size when its spec loads
    code, text, err = eval_cli(capsys, out, test)
    assert code == 0, err
    line = next(x for x in text.splitlines() if x.startswith("image"))
    assert line.split()[1] == "8" and line.split()[5] == params and "unknown" in line
    code, text, err = eval_cli(capsys, out, test, "--json")
    figures = json.loads(text)["towers"]["image"]
    assert figures["items"] == 8 and -1 <= figures["cosine"] <= 1 and 0 <= figures["r@1"] <= 1
    assert 0 <= figures["caption_r@1"] <= 1 and "teacher_params" not in figures
    import ragsc.encoders

    class Teacher:
        fingerprint = "fake-fp-1"

        def num_parameters(self):
            return {"image": 100_000, "text": 50_000}

    monkeypatch.setattr(ragsc.encoders, "load_encoder", lambda spec: Teacher())
    code, text, err = eval_cli(capsys, out, test, "--json")
    figures = json.loads(text)["towers"]["image"]
    assert figures["teacher_params"] == 100_000
    assert figures["param_ratio"] == pytest.approx(figures["student_params"] / 100_000)
    # a store of another teacher: both fingerprints named
    code, _, err = eval_cli(capsys, out, other)
    assert code == 2 and "fp-2" in err and "fake-fp-1" in err and "Traceback" not in err
    code, _, err = eval_cli(capsys, tmp_path / "none", test)
    assert code == 2 and "no student" in err


def test_distill_search_traces_a_lambda_front(capsys, tmp_path, fake_stores):
    from ragsc.encoders import load_encoder

    out = tmp_path / "front"
    code, text, err = search_cli(capsys, fake_stores[0], out, "--lam", "0,1000", *TINY_SEARCH)
    assert code == 0, err
    assert "lambda front" in err and "front.png" in text
    assert (out / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    points = json.loads((out / "front.json").read_text())
    assert [p["lam"] for p in points] == [0.0, 1000.0]
    assert [p["folder"] for p in points] == [str(out / "lam-0.0"), str(out / "lam-1000.0")]
    csv_lines = (out / "front.csv").read_text().splitlines()
    assert csv_lines[0].startswith("lam,params,macs,val_cosine") and len(csv_lines) == 3
    for p in points:
        assert load_encoder(f"student:{p['folder']}").num_parameters()["image"] == p["params"]
        assert (out / "checkpoint" / f"lam-{p['lam']!r}" / "search.json").is_file()
    assert not (out / "student.json").exists()


def test_distill_search_bad_input_is_an_error_line_that_writes_nothing(capsys, tmp_path, fake_stores,
                                                                      monkeypatch):
    import ragsc.distill.train

    train, _, other, texts = fake_stores
    out = tmp_path / "out"
    cases = {("--budget", "10"): "no architecture of this search space fits a budget of 10 parameters: the "
                                 "cheapest one derive can build has",
             ("--complexity", "macs", "--budget", "1000"): "budget of 1,000 MACs: the cheapest",
             ("--budget", "0"): "budget must be a positive number",
             ("--complexity", "flops"): "complexity must be one of params, macs",
             ("--lam", "abc"): "--lam must be a number or a comma list",
             ("--lam", "0,-1"): "finite number >= 0",
             ("--lam", "0.5,0.5"): "list a value twice",
             ("--image-size", "8"): "image_size",
             ("--ops", "none,conv_9x9"): "unknown op(s) ['conv_9x9']",
             ("--val-fraction", "0"): "val_fraction must be in (0, 1)",
             ("--channels", "1"): "channels must be an integer >= 2"}
    real = ragsc.distill.train.image_inputs
    for args, message in cases.items():
        # every one of these fails before the store's images are read
        monkeypatch.setattr(ragsc.distill.train, "image_inputs", lambda *a, **k: pytest.fail("images read"))
        code, _, err = search_cli(capsys, train, out, *TINY_SEARCH, *args)
        assert code == 2 and err.startswith("error:") and message in err, (args, err)
        assert "Traceback" not in err and not out.exists(), args
    monkeypatch.setattr(ragsc.distill.train, "image_inputs", real)
    code, _, err = search_cli(capsys, texts, out, *TINY_SEARCH)
    assert code == 2 and "needs a store of images" in err and not out.exists()
    code, _, err = search_cli(capsys, tmp_path / "none", out)
    assert code == 2 and "no teacher store" in err and not out.exists()
    # a folder that holds a student of another teacher, or a file: refused, left as it was
    taken = tmp_path / "taken"
    code, _, err = search_cli(capsys, other, taken, *TINY_SEARCH)
    assert code == 0, err
    before = _files(taken)
    code, _, err = search_cli(capsys, train, taken, *TINY_SEARCH)
    assert code == 2 and "another teacher" in err and "fp-2" in err and _files(taken) == before
    (tmp_path / "file").write_text("x")
    code, _, err = search_cli(capsys, train, tmp_path / "file", *TINY_SEARCH)
    assert code == 2 and "is a file" in err and (tmp_path / "file").read_text() == "x"
