"""Ingestion sources: where KB items come from, as a deterministic stream of records.

Formats (``ragsc kb ingest NAME SOURCE --format ...``):

* ``folder`` — images with same-name ``.txt`` captions (clip-retrieval's convention); a missing
  caption is allowed (counted), a caption that is not UTF-8 is decoded with replacement (counted);
* ``coco`` — a COCO captions JSON (``images`` + ``annotations``); images next to it or in ``--images``;
* ``vqa`` — VQAv2-style questions JSON + annotations JSON (``SOURCE`` is the questions file, the
  annotations file is found by name or given with ``--annotations``): one text item per Q/A pair;
* ``jsonl`` — one JSON object per line with a ``text`` field (other fields go to ``extra``);
* ``text`` — one item per non-empty line; ``paragraphs`` — items separated by blank lines or ``%``
  lines (the ``fortune`` format);
* ``easy-vqa`` — the packaged easy-VQA images with derived captions (``SOURCE``: ``train``/``test``).

A record's position in the stream is stable, which is what ``--resume`` relies on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragsc.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
FORMATS = ("folder", "coco", "vqa", "jsonl", "text", "paragraphs", "easy-vqa")


@dataclass
class Record:
    """One item to ingest: an image (``path``) or a text, with its caption / text and provenance."""

    modality: str  # "image" | "text"
    text: str | None
    source_uri: str
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # e.g. ("missing_caption",), counted by the ingester


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a valid JSON file: {exc}") from None


def detect_format(source: str) -> str:
    p = Path(source)
    if source in ("train", "test"):
        return "easy-vqa"
    if p.is_dir():
        return "folder"
    if p.suffix == ".jsonl":
        return "jsonl"
    if p.suffix == ".json":
        data = _load_json(p)
        if not isinstance(data, dict):
            raise InputError(f"{source}: not a JSON object (COCO captions or VQA questions), but a "
                             f"{type(data).__name__}; give a COCO or VQA file, or pass --format")
        if "annotations" in data and "images" in data:
            return "coco"
        if "questions" in data:
            return "vqa"
        raise InputError(f"{source}: JSON that is neither COCO captions nor VQA questions; pass --format")
    return "text"


def records(source: str, fmt: str | None = None, images: str | None = None,
            annotations: str | None = None) -> Iterator[Record]:
    """The record stream of a source (see the module docstring). Checks the source before returning."""
    if fmt != "easy-vqa" and source not in ("train", "test") and not Path(source).exists():
        raise InputError(f"source not found: {source}")
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise InputError(f"unknown source format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "easy-vqa" and source not in ("train", "test"):
        raise InputError(f"easy-vqa source must be 'train' or 'test', got {source!r}")
    if fmt != "easy-vqa" and Path(source).is_dir() != (fmt == "folder"):
        raise InputError(f"format {fmt!r} reads a {'folder' if fmt == 'folder' else 'file'}: {source}")
    if fmt in ("coco", "vqa"):  # parse and check the structure now, not halfway through an ingestion
        data = _load_json(Path(source))
        need = ("images", "annotations") if fmt == "coco" else ("questions",)
        if not isinstance(data, dict) or any(k not in data for k in need):
            raise InputError(f"{source}: a {fmt} file needs the keys {', '.join(need)}")
        if fmt == "coco":
            _check_entries(source, data, "images", {"id": int, "file_name": str})
            _check_entries(source, data, "annotations", {"image_id": int, "caption": str})
            return _coco(source, images, data)
        _check_entries(source, data, "questions", {"question_id": int, "question": str, "image_id": int})
        return _vqa(source, data, _vqa_answers(source, annotations))
    return {"folder": _folder, "jsonl": _jsonl, "text": _lines, "paragraphs": _paragraphs,
            "easy-vqa": _easy_vqa}[fmt](source, images, annotations)


def _check_entries(source: str, data: dict, key: str, fields: dict[str, type]) -> None:
    """``data[key]`` must be a list of objects with ``fields`` of these types (checked before ingesting)."""
    entries = data[key]
    if not isinstance(entries, list):
        raise InputError(f"{source}: {key!r} must be a list, got a {type(entries).__name__}")
    names = [repr(f) for f in fields]
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(f not in entry for f in fields):
            raise InputError(f"{source}: {key}[{n}] needs {', '.join(names[:-1])} and {names[-1]}")
        for f, kind in fields.items():
            if not isinstance(entry[f], kind) or isinstance(entry[f], bool):
                what = "an integer" if kind is int else "a string"
                raise InputError(f"{source}: {key}[{n}]: {f!r} must be {what}, got {entry[f]!r}")


def _vqa_answers(source: str, annotations: str | None) -> dict:
    """Answers by question id from the VQA annotations file (given, or found by name; none if absent)."""
    ann_path = (Path(annotations) if annotations
                else Path(source).with_name(Path(source).name.replace("questions", "annotations")))
    if not ann_path.is_file() or ann_path == Path(source):
        return {}
    data = _load_json(ann_path)
    if not isinstance(data, dict) or "annotations" not in data:
        raise InputError(f"{ann_path}: a VQA annotations file needs the key annotations")
    _check_entries(str(ann_path), data, "annotations", {"question_id": int})
    return {a["question_id"]: a.get("multiple_choice_answer") for a in data["annotations"]}


def _read_caption(path: Path) -> tuple[str | None, tuple[str, ...]]:
    if not path.is_file():
        return None, ("missing_caption",)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").strip() or None, ()
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace").strip(), ("non_utf8_caption",)


def _folder(source: str, *_: Any) -> Iterator[Record]:
    for p in sorted(Path(source).rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            caption, notes = _read_caption(p.with_suffix(".txt"))
            yield Record("image", caption, str(p.resolve()), p, notes=notes)


def _coco(source: str, images: str | None, data: dict) -> Iterator[Record]:
    root = Path(images) if images else Path(source).parent
    captions: dict[int, list[str]] = {}
    for a in data["annotations"]:
        captions.setdefault(a["image_id"], []).append(a["caption"].strip())
    for im in sorted(data["images"], key=lambda x: x["id"]):
        caps = captions.get(im["id"], [])
        p = root / im["file_name"]
        yield Record("image", caps[0] if caps else None, str(p), p, {"coco_id": im["id"], "captions": caps},
                     () if caps else ("missing_caption",))


def _vqa(source: str, data: dict, answers: dict) -> Iterator[Record]:
    for item in sorted(data["questions"], key=lambda x: x["question_id"]):
        ans = answers.get(item["question_id"])
        text = f"{item['question'].strip()} {ans}" if ans else item["question"].strip()
        yield Record("text", text, f"{source}#{item['question_id']}", None,
                     {"image_id": item["image_id"], "question_id": item["question_id"], "answer": ans})


def _jsonl(source: str, *_: Any) -> Iterator[Record]:
    with open(source, "rb") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.decode("utf-8", errors="replace"))
            except json.JSONDecodeError:
                yield Record("text", None, f"{source}:{n + 1}", notes=("bad_json",))
                continue
            text = obj.pop("text", None) if isinstance(obj, dict) else None
            yield Record("text", text if isinstance(text, str) and text.strip() else None,
                         f"{source}:{n + 1}", extra=obj if isinstance(obj, dict) else {},
                         notes=() if text else ("missing_text",))


def _decode(raw: bytes) -> tuple[str, tuple[str, ...]]:
    try:
        return raw.decode("utf-8"), ()
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), ("non_utf8_text",)


def _lines(source: str, *_: Any) -> Iterator[Record]:
    with open(source, "rb") as f:
        for n, raw in enumerate(f):
            text, notes = _decode(raw)
            if text.strip():
                yield Record("text", text.strip(), f"{source}:{n + 1}", notes=notes)


def _paragraphs(source: str, *_: Any) -> Iterator[Record]:
    text, notes = _decode(Path(source).read_bytes())
    block: list[str] = []
    start = 1
    for n, line in enumerate(text.splitlines() + [""], 1):
        if line.strip() in ("", "%"):
            if block:
                yield Record("text", "\n".join(block).strip(), f"{source}:{start}", notes=notes)
            block, start = [], n + 1
        else:
            block.append(line)


def _easy_vqa(source: str, *_: Any) -> Iterator[Record]:
    from ragsc.datasets import load_easy_vqa

    for x in load_easy_vqa(source):
        yield Record("image", x.caption, f"easy-vqa:{source}/{x.image_id}", x.path,
                     {"color": x.color, "shape": x.shape, "image_id": x.image_id})
