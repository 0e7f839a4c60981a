"""``ragsc distill cache | train | search | eval`` (ragsc/cli/distill.py).

Tiny search spaces on a fake teacher's stores of easy-VQA images: each search takes about a second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_distill_cache_then_train_a_student_that_loads(cli, tmp_path):
    from ragsc.encoders import load_encoder

    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                           ["a red circle", "a blue square", "please send the map", "the harbour at noon"]))
    store, out = tmp_path / "store", tmp_path / "student"
    code, text, err = cli("distill", "cache", "--data", str(src), "--out", str(store))
    assert code == 0, err
    assert "4 items of embedded" in text
    code, text, err = cli("distill", "cache", "--data", str(src), "--out", str(store),
                          "--n", "2")
    assert code == 2 and "another data recipe" in err  # refused: same folder, another recipe
    code, text, err = cli("distill", "train", "--store", str(store), "--out", str(out),
                          "--modality", "text", "--width", "16", "--layers", "1", "--epochs", "1")
    assert code == 0, err
    enc = load_encoder(f"student:{out}")
    assert enc.dim == 384 and enc.num_parameters()["text"] > 0
    command = json.loads((out / "config.json").read_text())["info"]["text"]["command"]
    assert command.startswith(f"ragsc distill train --store {store} --out {out} --modality text ")
    assert " --width 16 --layers 1 " in command and " --epochs 1 " in command
    code, _, err = cli("distill", "train", "--store", str(store), "--out", str(out),
                       "--modality", "audio")
    assert code == 2 and "--modality" in err
    code, _, err = cli("distill", "train", "--store", str(tmp_path / "none"), "--out", str(out))
    assert code == 2 and "no teacher store" in err

@pytest.mark.parametrize(("args", "message"), [
    (("--lr", "nan"), "lr must be a finite number >= 0, got nan"),
    (("--lr", "inf"), "lr must be a finite number >= 0, got inf"),
    (("--beta", "nan"), "beta must be a finite number >= 0, got nan"),
    (("--widths", "abc"), "--widths must be a comma list of integers, got 'abc'"),
    (("--widths=-4",), "widths.0: Input should be greater than or equal to 1 (got -4)"),
    (("--widths", "4,99999"), "widths.1: Input should be less than or equal to 8192 (got 99999)"),
    (("--modality", "text", "--width", "10"), "width (10) must be divisible by heads (4)"),
    (("--modality", "text", "--width", "100000"), "width: Input should be less than or equal to 8192"),
])
def test_distill_train_bad_numbers_are_an_error_line_that_writes_nothing(cli, tmp_path, fake_stores, args,
                                                                         message):
    train, _, _, texts = fake_stores
    out = tmp_path / "out"
    code, _, err = cli("distill", "train", "--store", texts if "text" in args else train, "--out", out,
                       "--epochs", "1", "--image-size", "16", *args)
    assert code == 2 and err.startswith("error:") and message in err, err
    assert "Traceback" not in err and not out.exists()


TINY_SEARCH = ["--epochs", "2", "--retrain-epochs", "1", "--image-size", "16", "--channels", "2",
               "--layers", "2", "--nodes", "1", "--reductions", "1", "--ops", "none,max_pool_3x3,conv_3x3",
               "--batch-size", "4"]


def search_cli(cli, store, out, *args):
    return cli("distill", "search", "--store", str(store), "--out", str(out), *args)


def eval_cli(cli, student, store, *args):
    return cli("distill", "eval", "--student", str(student), "--store", str(store), *args)


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


def test_distill_search_saves_a_student_that_loads_resumes_and_scores(cli, tmp_path, fake_stores,
                                                                      monkeypatch):
    import torch
    import torch.nn.functional as F

    from ragsc.distill.darts import ArchitectureConfig, architecture_cost
    from ragsc.distill.runs import score_student
    from ragsc.distill.store import TeacherStore
    from ragsc.encoders import load_encoder

    train, test, other, _ = fake_stores
    out = tmp_path / "student"
    code, text, err = search_cli(cli, train, out, "--lam", "0.5", *TINY_SEARCH)
    assert code == 0, err
    assert "KDL-DARTS search" in err and "retrain" in err  # the progress bars
    header, _, row = text.splitlines()[:3]
    assert header.split() == ["lambda", "parameters", "MACs", "val", "cosine", "val", "KD", "loss", "search",
                              "s", "student"]
    lam, params, macs, cosine, kd, seconds, folder = row.split()
    header = json.loads((out / "config.json").read_text())
    card, info = header["config"], header["info"]
    arch = ArchitectureConfig.from_json(json.dumps(card["image"]["architecture"]))
    assert card["image"]["kind"] == "darts" and card["teacher"]["fingerprint"] == "fake-fp-1"
    assert (int(params.replace(",", "")), int(macs.replace(",", ""))) == architecture_cost(arch)
    info = info["image"]
    assert info["command"].startswith("ragsc distill search") and info["genotype"] == card["image"][
        "architecture"]["genotype"]
    assert float(cosine) == pytest.approx(info["val_cosine"], abs=1e-4) and float(seconds) >= 0
    assert info["train_items"] + info["val_items"] == 12 and folder == str(out)
    enc = load_encoder(f"student:{out}")
    assert enc.num_parameters()["image"] == int(params.replace(",", ""))  # the net itself, no extra head
    images = [x.image for x in TeacherStore(test).inputs()[:2]]
    assert enc.encode_images(images).embeddings.shape == (2, 16)
    checkpoint = tmp_path / f"{out.name}.checkpoint"  # beside the student: its folder holds the model alone
    assert json.loads((checkpoint / "lam-0.5" / "search.json").read_text())["complete"]

    # the same command again: the finished checkpoint is reused and the retrained student comes out the same
    before = _files(out)
    code, again, err = search_cli(cli, train, out, "--lam", "0.5", *TINY_SEARCH)
    assert code == 0, err
    assert again.splitlines()[2].split()[:5] == row.split()[:5]
    now = _files(out)
    assert now.keys() == before.keys() and now["model.safetensors"] == before["model.safetensors"]
    # other settings on the same checkpoint: refused, naming the field, nothing changed
    code, _, err = search_cli(cli, train, out, "--lam", "0.5", *TINY_SEARCH, "--lr-alpha", "0.001")
    error = err.splitlines()[-1]  # after the progress bar the check stopped
    assert code == 2 and error.startswith("error:") and "lr_alpha was 0.0003, now 0.001" in error, err
    assert "Traceback" not in err and _files(out) == now

    # eval on the held-out store: a table, or JSON; the teacher's size when its spec loads
    code, text, err = eval_cli(cli, out, test)
    assert code == 0, err
    line = next(x for x in text.splitlines() if x.startswith("image"))
    assert line.split()[1] == "8" and line.split()[5] == params and "unknown" in line
    code, text, err = eval_cli(cli, out, test, "--json")
    figures = json.loads(text)["towers"]["image"]
    held = TeacherStore(test)
    assert figures == score_student(out, held)["towers"]["image"]  # the library's figures, as they are
    assert line.split()[2:5] == [f"{figures['cosine']:.4f}", f"{figures['r@1']:.3f}",
                                 f"{figures['caption_r@1']:.3f}"]  # and the table shows the same
    # what the figures mean, computed here from the student's embeddings and the teacher's in the store
    items, stored = held.inputs(), held.tensors()
    student = F.normalize(torch.as_tensor(enc.encode_images([x.image for x in items]).embeddings), dim=-1)
    teacher, captions = F.normalize(stored["image"], dim=-1), F.normalize(stored["text"], dim=-1)
    own = torch.arange(len(items))
    assert figures["items"] == 8 and "teacher_params" not in figures
    assert figures["cosine"] == pytest.approx(float((student * teacher).sum(-1).mean()), abs=1e-5)
    assert figures["r@1"] == float((student @ teacher.T).argmax(1).eq(own).float().mean())
    nearest = (student @ captions.T).argmax(1).tolist()
    assert figures["caption_r@1"] == sum(items[j].text == x.text for j, x in zip(nearest, items)) / len(items)
    import ragsc.encoders

    class Teacher:
        fingerprint = "fake-fp-1"

        def num_parameters(self):
            return {"image": 100_000, "text": 50_000}

    monkeypatch.setattr(ragsc.encoders, "load_encoder", lambda spec: Teacher())
    code, text, err = eval_cli(cli, out, test, "--json")
    figures = json.loads(text)["towers"]["image"]
    assert figures["teacher_params"] == 100_000
    assert figures["param_ratio"] == pytest.approx(figures["student_params"] / 100_000)
    # a store of another teacher: both fingerprints named
    code, _, err = eval_cli(cli, out, other)
    assert code == 2 and "fp-2" in err and "fake-fp-1" in err and "Traceback" not in err
    code, _, err = eval_cli(cli, tmp_path / "none", test)
    assert code == 2 and "no student" in err


def test_distill_search_traces_a_lambda_front(cli, tmp_path, fake_stores):
    from ragsc.encoders import load_encoder

    out = tmp_path / "front"
    code, text, err = search_cli(cli, fake_stores[0], out, "--lam", "0,1000", *TINY_SEARCH)
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
    assert not (out / "config.json").exists()


def test_distill_search_bad_input_is_an_error_line_that_writes_nothing(cli, tmp_path, fake_stores,
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
             ("--channels", "1"): "channels must be an integer >= 2",
             ("--channels", "100000"): "channels must be at most 1024, got 100000",
             ("--nodes", "1000"): "nodes must be at most 16, got 1000",
             ("--lr-w", "nan"): "lr_w must be a finite number >= 0, got nan",
             ("--lr-alpha", "inf"): "lr_alpha must be a finite number >= 0, got inf"}
    real = ragsc.distill.train.image_inputs
    for args, message in cases.items():
        # every one of these fails before the store's images are read
        monkeypatch.setattr(ragsc.distill.train, "image_inputs", lambda *a, **k: pytest.fail("images read"))
        code, _, err = search_cli(cli, train, out, *TINY_SEARCH, *args)
        assert code == 2 and err.startswith("error:") and message in err, (args, err)
        assert "Traceback" not in err and not out.exists(), args
    monkeypatch.setattr(ragsc.distill.train, "image_inputs", real)
    code, _, err = search_cli(cli, texts, out, *TINY_SEARCH)
    assert code == 2 and "needs a store of images" in err and not out.exists()
    code, _, err = search_cli(cli, tmp_path / "none", out)
    assert code == 2 and "no teacher store" in err and not out.exists()
    # a folder that holds a student of another teacher, or a file: refused, left as it was
    taken = tmp_path / "taken"
    code, _, err = search_cli(cli, other, taken, *TINY_SEARCH)
    assert code == 0, err
    before = _files(taken)
    code, _, err = search_cli(cli, train, taken, *TINY_SEARCH)
    assert code == 2 and "another teacher" in err and "fp-2" in err and _files(taken) == before
    (tmp_path / "file").write_text("x")
    code, _, err = search_cli(cli, train, tmp_path / "file", *TINY_SEARCH)
    assert code == 2 and "is a file" in err and (tmp_path / "file").read_text() == "x"


def _refused(result, out, problem: str) -> None:
    code, _, err = result
    assert code == 2 and err.startswith(f"error: --out {out}: {problem}"), err
    assert "Traceback" not in err and err.count("\n") == 1


def test_distill_cache_out_is_checked_before_the_teacher_loads(cli, tmp_path, forbid, monkeypatch):
    """A folder of other files (once filled with shards beside them), a file, a FIFO, a path under a file:
    refused before the teacher is loaded; a store, or a killed run's shards, is resumed."""
    import os

    import ragsc.encoders
    from ragsc.errors import ModelLoadError

    forbid(ragsc.encoders, "load_encoder")
    src = tmp_path / "s.jsonl"
    src.write_text(json.dumps({"text": "a red circle"}) + "\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    os.mkfifo(tmp_path / "fifo")
    cases = {tmp_path / "mine": "holds other files, not a teacher store (no manifest.json)",
             src: "is a file, not a folder", tmp_path / "fifo": "is a FIFO",
             src / "store": "lies under"}
    for out, problem in cases.items():
        _refused(cli("distill", "cache", "--data", str(src), "--out", str(out)), out, problem)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]

    def reached(spec):
        raise ModelLoadError("the teacher is loaded")

    monkeypatch.setattr(ragsc.encoders, "load_encoder", reached)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "manifest.json").write_text("{}")
    (tmp_path / "killed").mkdir()
    (tmp_path / "killed" / "shard-00000.safetensors").write_bytes(b"")
    for out in (tmp_path / "store", tmp_path / "killed"):
        code, _, err = cli("distill", "cache", "--data", str(src), "--out", str(out))
        assert code == 2 and "the teacher is loaded" in err, err


def test_distill_train_out_is_checked_before_the_store_opens(cli, tmp_path, forbid):
    """A folder of other files, a saved model of another kind, a symbolic link: refused before the store
    is opened or a step trained (once refused by the save, after the training)."""
    import ragsc.distill.store
    import ragsc.distill.train

    forbid(ragsc.distill.store, "TeacherStore")
    forbid(ragsc.distill.train, "train_student")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"kind": "decoders", "format_version": 1}))
    (tmp_path / "link").symlink_to(tmp_path / "mine")
    cases = {tmp_path / "mine": "holds other files, not a saved model",
             tmp_path / "model": "holds a 'decoders', not a 'student'",
             tmp_path / "link": "is a symbolic link"}
    for out, problem in cases.items():
        _refused(cli("distill", "train", "--store", str(tmp_path / "store"), "--out", str(out)), out, problem)
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_distill_search_out_is_checked_before_the_store_opens(cli, tmp_path, forbid):
    """A front's folder that holds other files (once filled beside them), a single student's folder under
    a file, its checkpoint folder a file: refused before the store is opened."""
    import ragsc.distill.store

    forbid(ragsc.distill.store, "TeacherStore")
    (tmp_path / "front").mkdir()
    (tmp_path / "front" / "notes.txt").write_text("keep")
    (tmp_path / "file").write_text("keep")
    (tmp_path / "s.checkpoint").write_text("keep")
    store = tmp_path / "store"
    _refused(search_cli(cli, store, tmp_path / "front", "--lam", "0,1"), tmp_path / "front",
             "holds notes.txt: only a previous front's")
    _refused(search_cli(cli, store, tmp_path / "file" / "s"), tmp_path / "file" / "s", "lies under")
    code, _, err = search_cli(cli, store, tmp_path / "s")
    assert code == 2 and err.startswith(f"error: --out's checkpoint folder {tmp_path / 's.checkpoint'}: is a "
                                        "file, not a folder"), err
    assert (tmp_path / "front" / "notes.txt").read_text() == "keep" and not (tmp_path / "s").exists()
