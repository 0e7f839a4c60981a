"""Shared value types: what crosses the boundaries between encoders, channel, kb and decoders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import torch

from ragsc.errors import ConfigError, InputError

Modality = Literal["image", "text"]


@dataclass(frozen=True)
class SemanticTokens:
    """A batch of aligned semantic representations, the unit a transmitter sends.

    Attributes
    ----------
    embeddings
        ``[N, dim]`` float tensor, L2-normalised rows, in the space shared by both modalities.
    modality
        ``"image"`` or ``"text"`` when every row was encoded from that modality; a tuple with one of
        them per row for a mixed batch (a multitask batch sends images and sentences together). A
        per-row sequence whose rows all agree is stored as the single string. :attr:`modalities`
        always gives one per row.
    tokens
        Optional ``[N, T, d]`` patch / word tokens for token-level transmission (``d`` is ``dim`` for
        the embedded default; for other backends it is documented by the backend).
    token_mask
        Optional ``[N, T]`` bool tensor, ``True`` where ``tokens`` holds a real token (text is padded).
    meta
        Free-form provenance: encoder spec and fingerprint, truncated inputs, ...
    """

    embeddings: torch.Tensor
    modality: Modality | tuple[Modality, ...]
    tokens: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        e = self.embeddings
        if not isinstance(e, torch.Tensor) or e.ndim != 2 or not e.is_floating_point():
            raise InputError("SemanticTokens.embeddings must be a float tensor of shape [N, dim]")
        m = self.modality
        if isinstance(m, Sequence) and not isinstance(m, str):
            m = tuple(m)
            if len(m) != e.shape[0]:
                raise InputError(f"SemanticTokens.modality has {len(m)} entries for {e.shape[0]} rows")
            if m and all(x == m[0] for x in m):
                m = m[0]
            object.__setattr__(self, "modality", m)  # frozen: normalised once here
        for x in (m,) if isinstance(m, str) else m:
            if x not in ("image", "text"):
                raise InputError("SemanticTokens.modality must be 'image' or 'text' (or one per row), "
                                 f"got {x!r}")
        if self.tokens is not None and (self.tokens.ndim != 3 or self.tokens.shape[0] != e.shape[0]):
            raise InputError("SemanticTokens.tokens must have shape [N, T, d] with the same N as embeddings")
        if self.token_mask is not None and (
            self.tokens is None or self.token_mask.shape != self.tokens.shape[:2]
        ):
            raise InputError("SemanticTokens.token_mask must have shape [N, T] matching tokens")

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    @property
    def dim(self) -> int:
        """Dimension of the shared embedding space."""
        return self.embeddings.shape[1]

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modality of each row."""
        m = self.modality
        return (m,) * len(self) if isinstance(m, str) else m

    def select(self, index: Sequence[int]) -> SemanticTokens:
        """The rows ``index`` (in that order), with their modalities, tokens and the same meta."""
        idx = torch.as_tensor(list(index), dtype=torch.long)
        pick = lambda t: None if t is None else t[idx]  # noqa: E731
        modality = (self.modality if isinstance(self.modality, str)
                    else tuple(self.modality[i] for i in idx.tolist()))
        return SemanticTokens(self.embeddings[idx], modality, pick(self.tokens), pick(self.token_mask),
                              dict(self.meta))

    def replace(self, embeddings: torch.Tensor, **meta: Any) -> SemanticTokens:
        """Same rows and modalities, new ``[N, dim']`` embeddings (tokens dropped), meta updated with
        ``meta``."""
        return SemanticTokens(embeddings, self.modality, meta={**self.meta, **meta})

    def to(self, device: torch.device | str) -> SemanticTokens:
        """A copy with every tensor on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return SemanticTokens(
            move(self.embeddings), self.modality, move(self.tokens), move(self.token_mask), dict(self.meta)
        )


def parse_ratio(value: str | float | Fraction) -> Fraction:
    """A bandwidth ratio (complex symbols per source value) from ``"1/12"``, a number or a
    :class:`~fractions.Fraction`; :class:`~ragsc.errors.ConfigError` unless it is a number in (0, 1]."""
    try:
        if isinstance(value, bool) or not isinstance(value, (str, int, float, Fraction)):
            raise TypeError
        r = Fraction(value.strip()) if isinstance(value, str) else Fraction(value).limit_denominator(10_000)
    except (ValueError, ZeroDivisionError, TypeError):
        raise ConfigError(f"bandwidth ratio must be a fraction like '1/12' or a number, got {value!r}"
                          ) from None
    if not 0 < r <= 1:
        raise ConfigError(f"bandwidth ratio must be in (0, 1], got {value!r}")
    return r


SNR_RANGE_DB = (-30.0, 60.0)  # the SNRs (Es/N0, dB) every path accepts


def check_snr_db(snr_db: float) -> float:
    """``snr_db`` as a float; :class:`~ragsc.errors.InputError` unless finite and in :data:`SNR_RANGE_DB`."""
    try:
        snr = float(snr_db)
    except (TypeError, ValueError):
        raise InputError(f"snr_db must be a number, got {snr_db!r}") from None
    lo, hi = SNR_RANGE_DB
    if not math.isfinite(snr):
        raise InputError(f"snr_db must be finite, got {snr_db!r}")
    if not lo <= snr <= hi:
        raise InputError(f"snr_db must lie in [{lo}, {hi}] dB, got {snr_db!r}")
    return snr
