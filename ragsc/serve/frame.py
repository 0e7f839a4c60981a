"""The wire format of ``POST /v1/receive``: one transmission's received symbols as a versioned binary frame.

A frame is what a receiver's antenna got for a batch (a :class:`~ragsc.pipelines.transmission.Emission`):
each path's received complex symbols and channel state, and the item headers the paths carry error-free
(each row's kind, the questions asked about a photo, a photo's size, a sentence's frames). No content ever
crosses: the texts and photos stay with the transmitter. Layout, all integers little-endian::

    offset  size  what
    0       4     magic  b"RSCF"
    4       2     version (uint16, this module writes and reads 1)
    6       2     flags   (uint16, 0; reserved)
    8       4     H, the header's length in bytes (uint32)
    12      H     the header: UTF-8 JSON, :class:`FrameHeader`
    12+H    pad   zero bytes up to a multiple of 8
    ...           the arrays, in the order of ``header.arrays``, each ``dtype`` (``"<c8"``: complex64, real
                  then imaginary float32) of ``shape``, C order, 8-byte aligned, nothing after the last

Decoding never unpickles and never trusts a size: the header is validated by pydantic (unknown fields are an
error), every array's bytes must add up to the body exactly, counts are bounded (:data:`MAX_ARRAYS`,
:data:`MAX_ITEMS`), and a NaN or an infinity among the symbols is refused. Every problem is a
:class:`~ragsc.errors.InputError` that names it. Whether the frame fits the receiving pipeline (its
encoder, its ``k_symbols``, a photo's symbol count) is :mod:`ragsc.serve.receiving`'s check.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ragsc.channel.path import Observed
from ragsc.config import ChannelConfig
from ragsc.errors import InputError
from ragsc.pipelines.items import Message
from ragsc.pipelines.transmission import Emission

MAGIC = b"RSCF"
VERSION = 1
PREFIX = struct.Struct("<4sHHI")  # magic, version, flags, header length
MAX_HEADER_BYTES = 1 << 20
MAX_ARRAYS = 4096
MAX_ITEMS = 1024
DTYPE = "<c8"
MEDIA_TYPE = "application/vnd.ragsc.frame"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArraySpec(_Model):
    """One array of the body: its dtype (only ``"<c8"``) and shape."""

    dtype: str
    shape: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(min_length=1, max_length=2)


class ItemHeader(_Model):
    """One item: its kind and, for a photo, the questions the receiver is to answer."""

    kind: Literal["text", "image"]
    questions: list[str] = Field(default_factory=list, max_length=64)


class AnalogSection(_Model):
    """The semantic (analog) link: rows ``rows`` of the batch, array ``y`` ``[n, k]`` (and CSI ``h``),
    each row's power ``gain`` and the basis size ``n_features``."""

    rows: list[int]
    y: int
    h: int | None = None
    gain: list[float]
    n_features: int = Field(gt=0)


class SentenceSection(_Model):
    """The token link: rows ``rows``, one received frame per row of ``y`` ``[frames, width]``; ``frames`` and
    ``tokens`` per sentence and ``channel_uses`` per frame (the transmitter's bookkeeping)."""

    rows: list[int]
    y: int
    h: int | None = None
    frames: list[int]
    tokens: list[int]
    channel_uses: list[int]


class PhotoSection(_Model):
    """The image JSCC: rows ``rows``, one array ``y[j]`` ``[1, n_j]`` (and ``h[j]``) and ``size`` (H, W) per
    photo."""

    rows: list[int]
    y: list[int]
    h: list[int | None]
    size: list[tuple[int, int]]


class FrameHeader(_Model):
    """The frame's JSON header (see the module docstring)."""

    spec: str = Field(max_length=200)
    encoder: str = Field(max_length=500)
    snr_db: float = Field(allow_inf_nan=False)
    channel: dict
    items: list[ItemHeader] = Field(min_length=1, max_length=MAX_ITEMS)
    analog: AnalogSection | None = None
    sentences: SentenceSection | None = None
    photos: PhotoSection | None = None
    arrays: list[ArraySpec] = Field(max_length=MAX_ARRAYS)


def encode(em: Emission, spec: str, encoder: str) -> bytes:
    """The frame of an :class:`Emission` (from :meth:`~ragsc.pipelines.Pipeline.emit`) of pipeline ``spec``
    whose encoder is ``encoder``."""
    arrays: list[np.ndarray] = []

    def put(t: torch.Tensor | None) -> int | None:
        if t is None:
            return None
        arrays.append(np.ascontiguousarray(t.detach().cpu().to(torch.complex64).numpy(), dtype=DTYPE))
        return len(arrays) - 1

    snr = (em.analog or em.sentences or (em.photos or [None])[0]).snr_db
    if not math.isfinite(snr):
        raise InputError("a noiseless emission (the bound) has no frame: send at a finite SNR")
    header: dict = {"spec": spec, "encoder": encoder, "snr_db": snr,
                    "channel": em.channel.model_dump(include=set(ChannelConfig.model_fields)),
                    "items": [{"kind": m.kind, "questions": list(m.questions)} for m in em.messages]}
    if em.analog is not None:
        a = em.analog
        header["analog"] = {"rows": em.analog_rows, "y": put(a.y), "h": put(a.h), "gain": a.side["gain"],
                            "n_features": int(a.side["n_features"][0])}
    if em.sentences is not None:
        s = em.sentences
        header["sentences"] = {"rows": em.token_rows, "y": put(s.y), "h": put(s.h),
                               "frames": em.frames_per_item, "tokens": em.tokens_per_item,
                               "channel_uses": s.side["channel_uses"]}
    if em.photos:
        header["photos"] = {"rows": em.photo_rows, "y": [put(o.y) for o in em.photos],
                            "h": [put(o.h) for o in em.photos],
                            "size": [o.side["size"][0] for o in em.photos]}
    header["arrays"] = [{"dtype": DTYPE, "shape": list(a.shape)} for a in arrays]
    text = json.dumps(header, separators=(",", ":")).encode()
    out = bytearray(PREFIX.pack(MAGIC, VERSION, 0, len(text)) + text)
    out += bytes(-len(out) % 8)
    for a in arrays:
        out += a.tobytes()
    return bytes(out)


def decode(body: bytes) -> tuple[FrameHeader, Emission]:
    """The header and the :class:`Emission` of a frame (messages without content); :class:`InputError` for
    anything malformed."""
    header, arrays = _parse(body)
    messages = [Message(it.kind, None, list(it.questions)) for it in header.items]
    try:
        channel = ChannelConfig.model_validate(header.channel)
    except ValidationError as exc:
        raise InputError(f"frame: channel: {_first(exc)}") from None
    em = Emission(messages, channel)
    n = len(messages)
    rows_seen: list[int] = []
    if header.analog is not None:
        a = header.analog
        y = _array(arrays, a.y, "analog.y")
        h = _opt(arrays, a.h, "analog.h", y)
        _rows(a.rows, n, "analog", y.shape[0], rows_seen)
        if len(a.gain) != y.shape[0] or not all(math.isfinite(g) and g > 0 for g in a.gain):
            raise InputError(f"frame: analog.gain needs one finite, positive gain per row ({y.shape[0]})")
        em.analog = Observed(y, h, header.snr_db,
                             {"gain": list(a.gain), "n_features": [a.n_features] * len(y)})
        em.analog_rows, em.modalities = list(a.rows), [messages[i].kind for i in a.rows]
    if header.sentences is not None:
        s = header.sentences
        y = _array(arrays, s.y, "sentences.y")
        h = _opt(arrays, s.h, "sentences.h", y)
        _rows(s.rows, n, "sentences", len(s.frames), rows_seen)
        if any(messages[i].kind != "text" for i in s.rows):
            raise InputError("frame: sentences.rows name an item that is not a text")
        if len(s.tokens) != len(s.rows) or any(f < 1 for f in s.frames) or sum(s.frames) != y.shape[0] \
                or len(s.channel_uses) != y.shape[0]:
            raise InputError(f"frame: sentences: {len(s.rows)} rows need as many frame and token counts, and "
                             f"the frames ({sum(s.frames)}) one row of y each and a channel-use count each "
                             f"(y has {y.shape[0]} rows)")
        em.sentences = Observed(y, h, header.snr_db, {"channel_uses": list(s.channel_uses)})
        em.token_rows, em.frames_per_item, em.tokens_per_item = list(s.rows), list(s.frames), list(s.tokens)
    if header.photos is not None:
        p = header.photos
        if not len(p.rows) == len(p.y) == len(p.h) == len(p.size):
            raise InputError("frame: photos need one y, h and size per row")
        if any(r not in em.analog_rows or messages[r].kind != "image" for r in p.rows) or \
                len(set(p.rows)) != len(p.rows):
            raise InputError("frame: photos.rows must be distinct image rows of the analog section "
                             "(a photo crosses beside its embedding)")
        em.photos = []
        for j, (yi, hi, size) in enumerate(zip(p.y, p.h, p.size)):
            y = _array(arrays, yi, f"photos.y[{j}]")
            if y.shape[0] != 1 or min(size) < 1:
                raise InputError(f"frame: photos.y[{j}] must be one row [1, n] and its size positive")
            em.photos.append(Observed(y, _opt(arrays, hi, f"photos.h[{j}]", y), header.snr_db,
                                      {"size": [list(size)]}))
        em.photo_rows = list(p.rows)
    if sorted(rows_seen) != list(range(n)):
        raise InputError(f"frame: the analog and sentence sections must carry each of the {n} items exactly "
                         "once")
    return header, em


# --------------------------------------------------------------------------- parsing
def _parse(body: bytes) -> tuple[FrameHeader, list[torch.Tensor]]:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise InputError(f"a frame is bytes, got {type(body).__name__}")
    body = bytes(body)
    if len(body) < PREFIX.size:
        raise InputError(f"frame: {len(body)} bytes, shorter than its {PREFIX.size}-byte prefix")
    magic, version, flags, size = PREFIX.unpack_from(body)
    if magic != MAGIC:
        raise InputError(f"frame: bad magic {magic!r} (expected {MAGIC!r}: a ragsc frame)")
    if version != VERSION:
        raise InputError(f"frame: version {version} is not supported (this receiver reads version {VERSION})")
    if flags != 0:
        raise InputError(f"frame: flags {flags} are reserved and must be 0")
    if size > min(MAX_HEADER_BYTES, len(body) - PREFIX.size):
        raise InputError(f"frame: header of {size} bytes does not fit the body ({len(body)} bytes; at most "
                         f"{MAX_HEADER_BYTES})")
    try:
        raw = json.loads(body[PREFIX.size:PREFIX.size + size].decode("utf-8"))
        header = FrameHeader.model_validate(raw)
    except ValidationError as exc:  # (a ValueError too: first)
        raise InputError(f"frame: header: {_first(exc)}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise InputError(f"frame: the header is not UTF-8 JSON ({type(exc).__name__})") from None
    offset = PREFIX.size + size
    offset += -offset % 8
    arrays = []
    for j, spec in enumerate(header.arrays):
        if spec.dtype != DTYPE:
            raise InputError(f"frame: arrays[{j}] has dtype {spec.dtype!r}; symbols are {DTYPE!r} "
                             "(complex64, little-endian)")
        if any(d < 0 for d in spec.shape):  # (the model refuses them; kept for a model_construct caller)
            raise InputError(f"frame: arrays[{j}] has a negative dimension {spec.shape}")
        nbytes = math.prod(spec.shape) * 8
        if offset + nbytes > len(body):
            raise InputError(f"frame: arrays[{j}] {spec.shape} needs {nbytes} bytes at offset {offset}; "
                             f"the body ends at {len(body)}")
        a = np.frombuffer(body, dtype=DTYPE, count=math.prod(spec.shape), offset=offset).reshape(spec.shape)
        if a.ndim == 1:
            a = a[None]
        if not np.isfinite(a.view(np.float32)).all():
            raise InputError(f"frame: arrays[{j}] holds NaN or infinite symbols")
        arrays.append(torch.from_numpy(a.astype(np.complex64)))
        offset += nbytes
    if offset != len(body):
        raise InputError(f"frame: {len(body) - offset} bytes after the last array (the header's arrays "
                         f"account for {offset} of {len(body)})")
    return header, arrays


def _array(arrays: list[torch.Tensor], j: int | None, name: str) -> torch.Tensor:
    if j is None or not 0 <= j < len(arrays):
        raise InputError(f"frame: {name} names array {j}, but the frame has {len(arrays)}")
    return arrays[j]


def _opt(arrays: list[torch.Tensor], j: int | None, name: str, y: torch.Tensor) -> torch.Tensor | None:
    """The CSI array ``j`` (``None``: none sent), which must broadcast against ``y``: one coefficient per row
    (block fading) or one per symbol (fast fading)."""
    if j is None:
        return None
    h = _array(arrays, j, name)
    if tuple(h.shape) not in ((y.shape[0], 1), tuple(y.shape)):
        raise InputError(f"frame: {name} is {list(h.shape)}; the CSI of y {list(y.shape)} is one coefficient "
                         f"per row [{y.shape[0]}, 1] or one per symbol {list(y.shape)}")
    return h


def _rows(rows: list[int], n: int, name: str, expected: int, seen: list[int]) -> None:
    if len(rows) != expected or len(set(rows)) != len(rows) or any(not 0 <= r < n for r in rows):
        raise InputError(f"frame: {name}.rows must be {expected} distinct item indices in [0, {n}), "
                         f"got {rows}")
    seen += rows


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}" + (f" ({len(exc.errors())} problems)" if len(exc.errors()) > 1 else "")
