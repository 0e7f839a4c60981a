"""`ragsc kb ...` end to end with the embedded encoder (one pipeline), and its fast-failing user errors.

Every CLI call is a fresh interpreter (1.5 s of imports, +5 s when it loads the encoder), so the
error cases run concurrently with the pipeline to keep the test short.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


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
    assert int(manifest["generation"][4:]) == int(stats["generation"][4:]) + 1  # only the delete committed since

    res = {k: finish(p) for k, p in {**early, **late}.items()}
    user_error(res["dotdot"], "must not contain '..'")
    user_error(res["dotdot_inner"], "must not contain '..'")
    assert not (tmp_path / "x").exists() and not (home / "x").exists() and not (home / "kb" / "x").exists()
    user_error(res["missing_kb"], "no knowledge base")
    user_error(res["missing_source"], "source not found")
    user_error(res["bad_format"], "unknown source format 'csv'")
