"""What crosses between a client and the server in one round of split fine-tuning, and its size in bytes.

Server -> client: :class:`Calibrate` (once, before round 1: the sum of the client's embeddings, to centre
the transmitter's input), :class:`Begin` (the global adapters), :class:`Gradient` (d loss / d received
symbols of the batch the client last sent), :class:`Evaluate` (the global adapters, to encode the held-out
set). Client -> server: :class:`Stats` (answers Calibrate), :class:`Upload` (one batch of received symbols
and their labels), :class:`Update` (the client's adapters after its last local step and its number of
items), or :class:`Dropped` (the client failed; what a lost connection, an exception or a timeout also
becomes).

A round with ``B`` local batches is ``B + 1`` exchanges per client: ``Begin -> Upload 0``,
``Gradient 0 -> Upload 1``, ..., ``Gradient B-1 -> Update``. Every message holds tensors and a few
numbers; the byte counts are the tensors' sizes (complex64 symbols and gradients: 8 bytes per complex
symbol, int64 labels, float32 weights), not the transport's framing.

:class:`ReceivedBatch` is the one thing the server's training API accepts: received symbols ``[B, k]``
(complex), the receiver's channel state (``h``, perfect CSI, or None for AWGN), the noise variance and the
labels. :func:`check_received` refuses anything else (an image batch, real-valued features, labels that do
not match), so raw data cannot reach the server through it by mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ragsc.errors import InputError

EVALUATOR = -1  # the client id of the held-out set's holder in every transport


@dataclass
class ReceivedBatch:
    """One batch as the server receives it: ``y [B, k]`` complex64, ``labels [B]`` int64, the noise
    variance ``no`` and the receiver's CSI ``h`` (``[B, 1]`` or ``[B, k]`` complex64; None: AWGN)."""

    y: torch.Tensor
    labels: torch.Tensor
    no: float
    h: torch.Tensor | None = None

    def nbytes(self) -> dict[str, int]:
        return {"symbols": tensor_bytes(self.y), "labels": tensor_bytes(self.labels),
                "csi": tensor_bytes(self.h) if self.h is not None else 0}


def check_received(r: object, k_symbols: int, num_classes: int) -> ReceivedBatch:
    """``r`` if it is a :class:`ReceivedBatch` of ``k_symbols`` complex symbols per item with valid labels,
    else :class:`InputError` (the server never takes images or features: only symbols off the channel)."""
    if not isinstance(r, ReceivedBatch):
        raise InputError(f"the server takes ReceivedBatch symbols and labels, got {type(r).__name__}")
    y, labels = r.y, r.labels
    if not isinstance(y, torch.Tensor) or not y.is_complex() or y.ndim != 2 or y.shape[1] != k_symbols:
        what = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise InputError(f"the server takes received symbols: a complex tensor [B, {k_symbols}], got {what}")
    if (not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1
            or len(labels) != len(y)):
        got = f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}"
        raise InputError(f"labels must be int64 [B] with B = {len(y)} (one per item), got {got}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise InputError(f"labels must lie in [0, {num_classes}), got "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    if not (isinstance(r.no, float) and math.isfinite(r.no) and r.no > 0):
        raise InputError(f"the noise variance must be a finite float > 0, got {r.no!r}")
    h = r.h
    if h is not None and (not isinstance(h, torch.Tensor) or not h.is_complex() or h.ndim != 2
                          or h.shape[0] != len(y) or h.shape[1] not in (1, k_symbols)):
        raise InputError(f"h must be None (AWGN) or complex [B, 1] / [B, {k_symbols}], got "
                         f"{getattr(h, 'dtype', type(h).__name__)} {tuple(getattr(h, 'shape', ()))}")
    if len(y) == 0:
        raise InputError("an empty batch of symbols")
    return r


def tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def weights_bytes(weights: dict[str, torch.Tensor]) -> int:
    return sum(tensor_bytes(v) for v in weights.values())


# ----------------------------------------------------------------------------------------- messages
@dataclass
class Begin:
    round: int
    weights: dict[str, torch.Tensor]

    def nbytes(self) -> int:
        return weights_bytes(self.weights)


@dataclass
class Gradient:
    round: int
    step: int
    grad: torch.Tensor  # [B, k] complex64: d loss / d y, the symbols the client's channel produced

    def nbytes(self) -> int:
        return tensor_bytes(self.grad)


@dataclass
class Calibrate:
    """Before round 1: each client returns the sum of its embeddings and its count (:class:`Stats`)."""


@dataclass
class Stats:
    total: torch.Tensor  # [D] float64
    count: int

    def nbytes(self) -> int:
        return tensor_bytes(self.total)


@dataclass
class Evaluate:
    round: int
    weights: dict[str, torch.Tensor]


@dataclass
class Upload:
    step: int
    received: ReceivedBatch


@dataclass
class Update:
    weights: dict[str, torch.Tensor]
    n_examples: int
    fingerprint: str
    metrics: dict = field(default_factory=dict)

    def nbytes(self) -> int:
        return weights_bytes(self.weights)


@dataclass
class Dropped:
    reason: str


Message = Begin | Gradient | Evaluate | Calibrate
Reply = Upload | Update | Dropped | Stats
