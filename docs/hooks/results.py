"""MkDocs hook: a results page's figures come from the JSON its benchmark wrote, never from pasted text.

A page holds a marker ``<!-- results: bench_channel -->``; :func:`on_page_markdown` replaces it with the
tables of ``<docs_dir>/results/bench_channel.json`` (written by ``benchmarks/_common.write_results``) as
Markdown tables, preceded by the command that produced them, the machine (with its load average at the
start and end of the run), the date and the git commit. A marker whose JSON is missing or malformed stops
the build (:class:`PluginError`), so a page can never show figures no run produced.

Registered in ``mkdocs.yml`` as ``hooks: [docs/hooks/results.py]``. The module imports nothing but the
standard library at load time, so the tests can load it by path without MkDocs installed.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath

try:
    from mkdocs.exceptions import PluginError
except ImportError:  # the tests run without MkDocs

    class PluginError(Exception):
        """Stands in for ``mkdocs.exceptions.PluginError`` when MkDocs is not installed."""


MARKER = re.compile(r"<!--\s*results:\s*([A-Za-z0-9_.-]+)\s*-->")
RESULTS = "results"  # the folder of the JSONs under docs_dir
REQUIRED = ("format_version", "bench", "command", "date_utc", "wall_s", "git", "machine", "tables")
TABLE_REQUIRED = ("name", "columns", "rows")


def validate(doc: object) -> list[str]:
    """What is wrong with a results document (an empty list when nothing is).

    Parameters
    ----------
    doc
        The parsed JSON of ``docs/results/<bench>.json``.

    Returns
    -------
    list of str
        One message per problem: a missing key, a table whose rows do not all have one cell per column,
        a cell that is not a string or a number.
    """
    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    errors = [f"missing key {k!r}" for k in REQUIRED if k not in doc]
    if not isinstance(doc.get("command", []), list) or not doc.get("command", [None]):
        errors.append("'command' must be the non-empty argv list")
    if not isinstance(doc.get("machine", {}), dict):
        errors.append("'machine' must be an object")
    tables = doc.get("tables", [])
    if not isinstance(tables, list) or not tables:
        return errors + ["'tables' must be a non-empty list"]
    for i, t in enumerate(tables):
        if not isinstance(t, dict) or any(k not in t for k in TABLE_REQUIRED):
            errors.append(f"table {i} lacks one of {TABLE_REQUIRED}")
            continue
        width = len(t["columns"])
        for j, row in enumerate(t["rows"]):
            if not isinstance(row, list) or len(row) != width:
                errors.append(f"table {t['name']!r} row {j} has {len(row) if isinstance(row, list) else '?'} "
                              f"cells, the header {width}")
            elif not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in row):
                errors.append(f"table {t['name']!r} row {j} holds a cell that is not a string or a number")
    return errors


def load(path: Path) -> dict:
    """The results document at ``path``, validated; :class:`PluginError` when missing or malformed."""
    if not path.is_file():
        raise PluginError(f"results: {path} does not exist; run the benchmark that writes it "
                          f"(python benchmarks/{path.stem}.py ...) or remove the marker")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise PluginError(f"results: {path} is not readable JSON ({err})") from None
    errors = validate(doc)
    if errors:
        raise PluginError(f"results: {path} is malformed: " + "; ".join(errors))
    return doc


def _cell(x: object) -> str:
    return str(x).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(columns: list, rows: list) -> str:
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(m: dict) -> str:
    parts = [str(m.get("cpu", "unknown CPU")), f"{m.get('cores', '?')} cores"]
    if "torch" in m:
        parts.append(f"torch {m['torch']} ({m.get('torch_threads', '?')} threads)")
    if "faiss" in m:
        parts.append(f"faiss {m['faiss']} ({m.get('faiss_threads', '?')} threads)")
    if m.get("omp_num_threads_env"):
        parts.append(f"OMP_NUM_THREADS={m['omp_num_threads_env']}")
    if m.get("platform"):
        parts.append(str(m["platform"]))
    start, end = m.get("load_1min_start"), m.get("load_1min_end")
    if start is not None and end is not None:
        parts.append(f"1-minute load average {start:.2f} at the start, {end:.2f} at the end")
    return ", ".join(parts)


def render(doc: dict, figure_prefix: str = "") -> str:
    """The results document as Markdown: how it was made, then each table, its notes and the figures.

    Parameters
    ----------
    doc
        A valid results document (:func:`validate`).
    figure_prefix
        Prepended to each figure's file name: the path from the page to the results folder (``""`` for a
        page in it, ``"results/"`` for a page beside it).
    """
    git = doc["git"] or {}
    commit = git.get("commit")
    commit_s = "unknown"
    if commit:
        commit_s = f"`{commit[:10]}`" + (" (with uncommitted changes)" if git.get("dirty") else "")
    command = " ".join(["python", shlex.join(doc["command"])])
    out = [f"**Command:** `{command}`  ",
           f"**Machine:** {_machine(doc['machine'])}  ",
           f"**Date (UTC):** {doc['date_utc']} · **commit:** {commit_s} · "
           f"**wall time:** {doc['wall_s']:.0f} s",
           ""]
    for t in doc["tables"]:
        title = t.get("title") or ""
        out += [f"**{_cell(t['name'])}**" + (f": {title}" if title else ""), "",
                _table(t["columns"], t["rows"]), ""]
        out += [f"{note}  " for note in t.get("notes", [])] + ([""] if t.get("notes") else [])
    out += [f"{note}  " for note in doc.get("notes", [])] + ([""] if doc.get("notes") else [])
    out += [f"![{doc['bench']}: {Path(f).stem}]({figure_prefix}{f})\n" for f in doc.get("figures", [])]
    return "\n".join(out).rstrip() + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs ``on_page_markdown``: replace each results marker of ``page`` with the rendered JSON."""
    if not MARKER.search(markdown):
        return markdown
    folder = Path(config["docs_dir"]) / RESULTS
    page_dir = PurePosixPath(page.file.src_uri).parent
    prefix = _relative(page_dir, PurePosixPath(RESULTS))

    def replace(match: re.Match) -> str:
        return render(load(folder / f"{match.group(1)}.json"), prefix)

    return MARKER.sub(replace, markdown)


def _relative(src: PurePosixPath, dst: PurePosixPath) -> str:
    """The relative path from folder ``src`` to folder ``dst`` (both under docs_dir), ending in ``/``."""
    a, b = [p for p in src.parts if p != "."], [p for p in dst.parts if p != "."]
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    parts = [".."] * (len(a) - common) + b[common:]
    return "/".join(parts) + "/" if parts else ""
