"""JSON for what the service returns: an :class:`~ragsc.pipelines.Output` per item, a KB hit, and images.

Images travel as base64 PNG (lossless: what the receiver decoded, pixel for pixel). A hit carries its
provenance: the KB it came from (``kb``: ``local`` / ``global``), the fusion's ``provenance``, its id, score,
modality, text and source URI (a URI inside the server's KB, never a path the client could open).
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import PurePath

from PIL import Image

from ragsc.errors import InputError
from ragsc.pipelines.transmission import Output


def png_base64(im: Image.Image) -> str:
    """An image as base64 PNG."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=3)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_from_base64(data: str, index: int, max_bytes: int) -> Image.Image:
    """A photo sent as base64 (any format Pillow reads, HEIF included); :class:`InputError` naming the item
    when it is not base64 or not an image, or over ``max_bytes`` decoded. Only the header is read here:
    pixels are decoded by the pipeline, after its pixel limit is checked."""
    if not isinstance(data, str):
        raise InputError(f"item {index}: image must be a base64 string, got {type(data).__name__}")
    if len(data) > 4 * (max_bytes // 3 + 2):
        raise InputError(f"item {index}: image of {len(data) * 3 // 4:,} bytes, more than {max_bytes:,}")
    if data.startswith("data:"):  # a data URL, as a browser's FileReader gives it
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise InputError(f"item {index}: image is not valid base64") from None
    try:
        im = Image.open(io.BytesIO(raw))
    except Exception:  # Pillow raises several kinds for a file it cannot identify
        raise InputError(f"item {index}: image is not a file Pillow can read "
                         "(PNG, JPEG, WebP, HEIF, ...)") from None
    return im


def hit_json(hit) -> dict:
    """A retrieved item with its provenance (``kb``: ``local``, ``global`` or ``local+global``)."""
    item = hit.item
    return {"id": int(hit.id), "score": _num(hit.score), "kb": hit.provenance, "modality": item.modality,
            "text": item.text, "source": public_uri(item.source_uri)}


def public_uri(uri: str | None) -> str | None:
    """A source URI as a client sees it: dataset URIs (``easy-vqa:``, ``gcompris:``, ``fortunes:``...) as they
    are, a file on the server as ``file:<its name>`` (the server's folders are not the client's business)."""
    if not uri:
        return uri
    head = uri.split(":", 1)[0]
    if len(head) > 1 and head != "file" and "/" not in head and "\\" not in head and ":" in uri:
        return uri
    return "file:" + PurePath(uri.replace("\\", "/")).name


def output_json(o: Output) -> dict:
    """One item's output: ``kind``, ``text``, ``caption``, ``label``, ``questions``, ``answers``, ``image``
    (base64 PNG or ``None``), ``context`` and ``meta``. ``context``: the retrieved hits (``None`` without
    RAG); for a sentence on the token link, the KB sentences its decoder weighed, with where they came from
    (``meta["rag_sources"]``, set by the service)."""
    meta = dict(o.meta)
    sources = meta.pop("rag_sources", None)
    if o.context is not None:
        context = [hit_json(h) for h in o.context]
    else:
        context = [{**s, "source": public_uri(s.get("source"))} for s in sources] if sources else None
    return {"kind": o.kind, "text": o.text, "caption": o.caption, "label": o.label,
            "questions": list(o.questions), "answers": list(o.answers),
            "image": png_base64(o.image) if o.image is not None else None,
            "context": context, "meta": _plain(meta)}


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _plain(value):
    """Meta values as JSON: numbers, strings, lists and dicts of them (anything else as its string)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return _num(value)
    return str(value)
