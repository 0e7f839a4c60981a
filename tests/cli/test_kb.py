"""``ragsc kb`` (ragsc/cli/kb.py): end to end in fresh processes (concurrent readers and writers), and
the error paths in process with a fake encoder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ragsc.kb import KnowledgeBase, NewItem
from tests.cli import _process
from tests.cli._process import finish


def start(home: Path, *args, cwd: Path | None = None) -> subprocess.Popen:
    """``ragsc kb ARGS`` started in a fresh process, with ``home`` as RAGSC_HOME."""
    return _process.start("kb", *args, cwd=cwd, env={"RAGSC_HOME": str(home)})


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


@pytest.fixture
def encoder_loads(monkeypatch):
    """Every ``load_encoder`` call, answered by the fake encoder (the CLI never loads a real model here)."""
    import ragsc.encoders
    from tests.kb._fakes import FakeEncoder

    loads = []
    monkeypatch.setattr(ragsc.encoders, "load_encoder", lambda spec: loads.append(spec) or FakeEncoder())
    return loads


def test_create_on_a_file_is_an_error_line_before_the_encoder_loads(tmp_path, cli, encoder_loads):
    f = tmp_path / "notes.txt"
    f.write_text("keep me")
    code, _, err = cli("kb", "create", str(f))
    assert code == 2 and err.startswith("error:") and "is a file, not a folder" in err
    assert "Traceback" not in err
    assert f.read_text() == "keep me" and encoder_loads == []


def test_export_to_a_folder_is_an_error_line(tmp_path, cli, new_kb):
    kb = new_kb()
    kb.add(np.eye(8, dtype=np.float32)[:2], [NewItem("text", "a"), NewItem("text", "b")])
    (tmp_path / "out").mkdir()
    code, _, err = cli("kb", "export", str(kb.path), "--out", str(tmp_path / "out"))
    assert code == 2 and err.startswith("error:") and "is a folder" in err
    assert not list((tmp_path / "out").iterdir())
    code, out, _ = cli("kb", "export", str(kb.path), "--out", str(tmp_path / "out" / "items.jsonl"))
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


def test_ingest_into_a_busy_kb_fails_at_once_before_loading_the_encoder(tmp_path, cli, new_kb,
                                                                        encoder_loads):
    from tests.kb._fakes import FakeEncoder

    kb = new_kb(encoder=FakeEncoder())
    src = tmp_path / "lines.txt"
    src.write_text("one\ntwo\n")
    held = locked(kb.path)
    try:
        code, _, err = cli("kb", "ingest", str(kb.path), str(src))
    finally:
        held.close()
    assert code == 2 and err.startswith("error:") and "being written by another process (pid 424242" in err
    assert "waiting" not in err and encoder_loads == []


def test_ingest_waits_for_the_lock_says_so_then_loads_the_encoder(tmp_path, cli, new_kb, monkeypatch):
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
        code, out, err = cli("kb", "ingest", str(kb.path), str(src), "--wait", "30")
    finally:
        held.close()
    assert code == 0, err
    assert f"waiting up to 30 s for the writer lock of knowledge base {kb.path} (held by pid 424242" in err
    assert loads == [(True, True)]  # loaded once: after the other writer let go, while the CLI held the lock
    assert sorted(it.text for it in KnowledgeBase.open(kb.path).items()) == ["one", "two"]


def test_kb_commands_report_a_bad_manifest_as_an_error_line(new_kb, cli):
    mine = new_kb("mine")
    mine.add(np.eye(8, dtype=np.float32)[:3], [NewItem("text", t) for t in "abc"])
    m = json.loads((mine.path / "manifest.json").read_text())
    (mine.path / "manifest.json").write_text(json.dumps({**m, "generation": 7}))
    out = mine.path.parent / "x"
    for command in (["kb", "stats", str(mine.path)], ["kb", "export", str(mine.path), "--out", str(out)]):
        code, _, err = cli(*command)
        assert code == 2 and err.startswith("error:")
        assert "generation: Input should be a valid string" in err
    assert not out.exists()


def test_stats_says_whether_it_verified(cli, new_kb):
    kb = new_kb()
    kb.add(np.eye(8, dtype=np.float32)[:2], [NewItem("text", "a"), NewItem("text", "b")])
    code, out, err = cli("kb", "stats", str(kb.path))
    assert code == 0 and json.loads(out)["verified"] is False
    assert "checksums not verified" in err and "--verify" in err
    code, out, err = cli("kb", "stats", str(kb.path), "--verify")
    assert code == 0 and json.loads(out)["verified"] is True and err == ""


def test_bad_names_ids_and_sources_are_error_lines_that_change_nothing(tmp_path, cli, new_kb, encoder_loads,
                                                                       monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("RAGSC_HOME", str(home))
    kb = new_kb()
    kb.add(np.eye(8, dtype=np.float32)[:2], [NewItem("text", "a"), NewItem("text", "b")])
    gen = kb.manifest["generation"]
    scalar = tmp_path / "scalar.json"
    scalar.write_text("5")
    cases = {("create", ""): "must not be empty",
             ("stats", "x" * 300): "too long",
             ("create", "x" * 300): "too long",
             ("delete", str(kb.path), "1", "99999999999999999999999"): "out of range",
             ("ingest", str(kb.path), str(scalar)): "not a JSON object"}
    for args, problem in cases.items():
        code, _, err = cli("kb", *args)
        assert code == 2 and err.startswith("error:") and problem in err, (args, err)
        assert "Traceback" not in err
    assert encoder_loads == [] and not (home / "kb" / "manifest.json").exists()
    assert not (home / "kb").exists() or list((home / "kb").iterdir()) == []
    after = KnowledgeBase.open(kb.path)
    assert after.manifest["generation"] == gen and len(after) == 2


def test_export_over_a_fifo_is_refused_and_the_fifo_kept(tmp_path, cli, new_kb):
    """``os.replace`` would have put the JSONL where the FIFO was: only a new path or a regular file may be
    replaced (a FIFO in tmp_path stands for any special file)."""
    import os
    import stat

    kb = new_kb()
    kb.add(np.eye(8, dtype=np.float32)[:2], [NewItem("text", "a"), NewItem("text", "b")])
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _, err = cli("kb", "export", str(kb.path), "--out", str(fifo))
    assert code == 2 and err == (f"error: --out {fifo}: is a FIFO (named pipe), not a regular file; name a "
                                 "new file or a file to replace\n")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "v.jsonl.npy").symlink_to(fifo)  # the vectors' file is a target too
    code, _, err = cli("kb", "export", str(kb.path), "--out", str(tmp_path / "v.jsonl"))
    assert code == 2 and "--out's vectors file" in err and "is a symbolic link" in err
    assert not (tmp_path / "v.jsonl").exists() and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_export_targets_are_refused_before_the_kb_is_opened(tmp_path, cli, forbid, monkeypatch):
    """A device node, '.', '/', '', a path under a file, a folder, a symbolic link: one error line, the KB
    never opened, nothing replaced (/dev/null is only looked at)."""
    import os
    import stat

    import ragsc.kb

    forbid(ragsc.kb, "KnowledgeBase")
    real_replace = os.replace

    def replace(src, dst, *a, **k):  # a guard: should the check ever fail, no node outside tmp_path moves
        assert str(dst).startswith(str(tmp_path)), f"os.replace onto {dst}"
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)
    null = os.stat("/dev/null")
    (tmp_path / "file").write_text("keep")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x").write_text("keep")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    cases = {"/dev/null": "is a character device, not a regular file", ".": "is the current folder",
             "/": "is the filesystem root", "": "is the current folder",
             str(tmp_path / "file" / "x.jsonl"): "lies under", str(tmp_path / "folder"): "is a folder",
             str(tmp_path / "link"): "is a symbolic link", str(tmp_path / "no" / "x.jsonl"): "does not exist"}
    for out, problem in cases.items():
        code, _, err = cli("kb", "export", "facts", "--out", out)
        assert code == 2 and err.startswith("error: --out ") and problem in err, (out, err)
        assert "Traceback" not in err and err.count("\n") == 1
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_rdev, after.st_ino) == (null.st_rdev, null.st_ino)
    assert (tmp_path / "file").read_text() == "keep" and (tmp_path / "link").is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder", "link"]
