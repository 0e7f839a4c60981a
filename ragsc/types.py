"""Shared value types: what crosses the boundaries between encoders, channel, kb and decoders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ragsc.errors import InputError

Modality = Literal["image", "text"]


@dataclass(frozen=True)
class SemanticTokens:
    """A batch of aligned semantic representations, the unit a transmitter sends.

    Attributes
    ----------
    embeddings
        ``[N, dim]`` float tensor, L2-normalised rows, in the space shared by both modalities.
    modality
        ``"image"`` or ``"text"``: what the rows were encoded from.
    tokens
        Optional ``[N, T, d]`` patch / word tokens for token-level transmission (``d`` is ``dim`` for
        the embedded default; for other backends it is documented by the backend).
    token_mask
        Optional ``[N, T]`` bool tensor, ``True`` where ``tokens`` holds a real token (text is padded).
    meta
        Free-form provenance: encoder spec and fingerprint, truncated inputs, ...
    """

    embeddings: torch.Tensor
    modality: Modality
    tokens: torch.Tensor | None = None
    token_mask: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        e = self.embeddings
        if not isinstance(e, torch.Tensor) or e.ndim != 2 or not e.is_floating_point():
            raise InputError("SemanticTokens.embeddings must be a float tensor of shape [N, dim]")
        if self.modality not in ("image", "text"):
            raise InputError(f"SemanticTokens.modality must be 'image' or 'text', got {self.modality!r}")
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

    def to(self, device: torch.device | str) -> SemanticTokens:
        """A copy with every tensor on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return SemanticTokens(
            move(self.embeddings), self.modality, move(self.tokens), move(self.token_mask), dict(self.meta)
        )
