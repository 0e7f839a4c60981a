"""The results pages (docs/results/) and what makes them: benchmarks/_common.write_results and
docs/hooks/results.py. Every page's marker has its JSON, every JSON has a page and validates, the hook renders
a page from a JSON, and the writer writes atomically what the hook reads."""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RESULTS = DOCS / "results"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


hook = _load("ragsc_docs_results_hook", DOCS / "hooks" / "results.py")
common = _load("ragsc_bench_common", ROOT / "benchmarks" / "_common.py")

PAGES = sorted(p for p in RESULTS.glob("*.md") if p.name != "index.md")
JSONS = sorted(RESULTS.glob("*.json"))


def _page(src_uri: str):
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri))


def _doc(**over) -> dict:
    doc = {"format_version": 1, "bench": "bench_demo", "command": ["benchmarks/bench_demo.py", "--n", "3"],
           "date_utc": "2026-01-01T00:00:00+00:00", "wall_s": 12.3,
           "git": {"commit": "a" * 40, "dirty": False},
           "machine": {"cpu": "Test CPU", "cores": 2, "torch": "2.0", "torch_threads": 1,
                       "load_1min_start": 0.5, "load_1min_end": 1.25},
           "tables": [{"name": "speed", "title": "how fast", "columns": ["path", "items/s"],
                       "rows": [["a|b", "1.5e+03"], ["c", 7]], "notes": ["a note"]}],
           "notes": ["ready in 1 s"], "figures": []}
    doc.update(over)
    return doc


# ----------------------------------------------------------------------------- the committed pages


def test_every_page_has_its_json():
    for page in PAGES:
        names = hook.MARKER.findall(page.read_text())
        assert names, f"{page.name} has no results marker"
        for name in names:
            assert (RESULTS / f"{name}.json").is_file(), f"{page.name}: no {name}.json"


def test_every_json_has_a_page_listed_in_the_index():
    marked = {name for page in PAGES for name in hook.MARKER.findall(page.read_text())}
    for path in JSONS:
        assert path.stem in marked, f"{path.name} has no page"
    index = (RESULTS / "index.md").read_text()
    for page in PAGES:
        assert f"({page.name})" in index, f"index.md does not link {page.name}"


@pytest.mark.parametrize("path", JSONS, ids=[p.stem for p in JSONS])
def test_every_json_validates_and_renders(path):
    doc = json.loads(path.read_text())
    assert hook.validate(doc) == []
    assert doc["bench"] == path.stem
    for fig in doc.get("figures", []):
        assert (RESULTS / fig).is_file(), f"{path.name}: figure {fig} missing"
    text = hook.render(doc)
    assert text.count("\n|---|") == len(doc["tables"])


# ----------------------------------------------------------------------------- the hook


def test_hook_renders_a_marker(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bench_demo.json").write_text(json.dumps(_doc(figures=["bench_demo-x.png"])))
    page = "# Demo\n\nBefore.\n\n<!-- results: bench_demo -->\n\nAfter.\n"
    out = hook.on_page_markdown(page, _page("results/bench_demo.md"), {"docs_dir": str(tmp_path)}, None)
    assert "<!--" not in out and out.startswith("# Demo") and out.rstrip().endswith("After.")
    assert "`python benchmarks/bench_demo.py --n 3`" in out
    assert "Test CPU, 2 cores, torch 2.0 (1 threads)" in out
    assert "load average 0.50 at the start, 1.25 at the end" in out
    assert "2026-01-01T00:00:00+00:00" in out and "`aaaaaaaaaa`" in out and "uncommitted" not in out
    assert "| path | items/s |\n|---|---|\n| a\\|b | 1.5e+03 |\n| c | 7 |" in out
    assert "a note" in out and "ready in 1 s" in out
    assert "](bench_demo-x.png)" in out
    # a page elsewhere links the figure through the results folder
    out = hook.on_page_markdown(page, _page("guide/perf.md"), {"docs_dir": str(tmp_path)}, None)
    assert "](../results/bench_demo-x.png)" in out


def test_hook_leaves_pages_without_markers_alone(tmp_path):
    text = "# Nothing here\n"
    assert hook.on_page_markdown(text, _page("index.md"), {"docs_dir": str(tmp_path)}, None) is text


def test_hook_fails_on_a_missing_or_bad_json(tmp_path):
    (tmp_path / "results").mkdir()
    config = {"docs_dir": str(tmp_path)}
    with pytest.raises(hook.PluginError, match="does not exist"):
        hook.on_page_markdown("<!-- results: nope -->", _page("results/nope.md"), config, None)
    bad = _doc()
    bad["tables"][0]["rows"].append(["only one cell"])
    (tmp_path / "results" / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(hook.PluginError, match="row 2 has 1 cells"):
        hook.on_page_markdown("<!-- results: bad -->", _page("results/bad.md"), config, None)


def test_validate_names_what_is_missing():
    doc = _doc()
    del doc["git"]
    assert hook.validate(doc) == ["missing key 'git'"]
    assert hook.validate(_doc(tables=[])) == ["'tables' must be a non-empty list"]
    assert "not a string or a number" in hook.validate(_doc(tables=[{"name": "t", "columns": ["a"],
                                                                     "rows": [[None]]}]))[0]


# ----------------------------------------------------------------------------- the writer


def _args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    common.add_results_args(ap)
    return ap.parse_args(["--results-dir", str(tmp_path), *argv])


def test_write_results_writes_what_the_hook_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_demo.py", "--n", "3"])
    png = tmp_path / "curve.png"
    png.write_bytes(b"\x89PNG fake")
    t = common.Table("speed", ["path", "items/s"], [["a", "1.5e+03"], ["b", 2.0]], title="how fast",
                     notes=["a note"])
    path = common.write_results("bench_demo", [t], args=_args(tmp_path), notes=["ready"], figures=[png])
    assert path == tmp_path / "bench_demo.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench_demo-curve.png", "bench_demo.json",
                                                          "curve.png"]  # no temporary file left
    doc = json.loads(path.read_text())
    assert hook.validate(doc) == []
    assert doc["command"] == ["benchmarks/bench_demo.py", "--n", "3"]
    assert doc["tables"] == [{"name": "speed", "title": "how fast", "columns": ["path", "items/s"],
                              "rows": [["a", "1.5e+03"], ["b", 2.0]], "notes": ["a note"]}]
    assert doc["notes"] == ["ready"] and doc["figures"] == ["bench_demo-curve.png"]
    m = doc["machine"]
    for key in ("platform", "cpu", "cores", "torch", "torch_threads", "load_1min_start", "load_1min_end"):
        assert key in m, key
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", doc["date_utc"])
    assert doc["wall_s"] >= 0 and set(doc["git"]) == {"commit", "dirty"}
    assert '["a", "1.5e+03"]' in path.read_text()  # a row on one line
    assert "| a | 1.5e+03 |" in hook.render(doc)


def test_write_results_is_atomic(tmp_path, monkeypatch):
    t = common.Table("t", ["a"], [["1"]])
    path = common.write_results("bench_demo", [t], args=_args(tmp_path))
    before = path.read_text()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(common.os, "replace", fail)
    with pytest.raises(OSError):
        common.write_results("bench_demo", [common.Table("t", ["a"], [["2"]])], args=_args(tmp_path))
    assert path.read_text() == before  # the old results stay whole


def test_write_results_refuses_ragged_tables_and_honours_no_results(tmp_path):
    with pytest.raises(ValueError, match="rows \\[1\\]"):
        common.write_results("bench_demo", [common.Table("t", ["a", "b"], [["1", "2"], ["3"]])],
                             args=_args(tmp_path))
    with pytest.raises(ValueError, match="unique"):
        common.write_results("bench_demo", [common.Table("t", ["a"], []), common.Table("t", ["a"], [])],
                             args=_args(tmp_path))
    assert common.write_results("bench_demo", [common.Table("t", ["a"], [])],
                                args=_args(tmp_path, "--no-results")) is None
    assert not (tmp_path / "bench_demo.json").exists()
