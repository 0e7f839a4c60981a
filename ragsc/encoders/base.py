"""The one encoder interface every backend implements.

A :class:`MultimodalEncoder` turns images and texts into :class:`~ragsc.types.SemanticTokens` in one
shared, L2-normalised space. Backends implement two batch methods on already-validated inputs
(``_encode_image_batch`` on RGB PIL images, ``_encode_text_batch`` on non-empty strings); this base
class owns input handling, batching, normalisation and the fingerprint, so every backend behaves the
same on bad input.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ragsc.config import LIMITS, Limits
from ragsc.encoders.inputs import ImageLike, as_batch, check_texts, load_image
from ragsc.encoders.towers import Tower
from ragsc.types import Modality, SemanticTokens


class Encoded(NamedTuple):
    """What a backend returns for one batch."""

    embeddings: torch.Tensor  # [B, dim], not necessarily normalised
    tokens: torch.Tensor | None = None  # [B, T, d]
    mask: torch.Tensor | None = None  # [B, T] bool, True on real tokens
    truncated: tuple[int, ...] = ()  # batch positions of texts cut to the model's context


def weights_digest(weights: dict[str, torch.Tensor], name: str = "") -> str:
    """sha256 (32 hex digits) of ``name`` and the weights' names, shapes, dtypes and bytes: equal iff the
    weights are equal (what a fingerprint is made of)."""
    h = hashlib.sha256(name.encode())
    for key, tensor in sorted(weights.items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
        # reshape: 0-d tensors (logit_scale) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


class MultimodalEncoder(ABC):
    """Encode images and texts into one aligned semantic space.

    Attributes
    ----------
    spec
        The registry string the encoder was loaded from (``"embedded"``, ``"open_clip:..."``, ``"hf:..."``).
    dim
        Dimension of the shared embedding space.
    """

    spec: str
    dim: int

    def __init__(self, spec: str, dim: int, batch_size: int = 64, device: str = "cpu") -> None:
        self.spec = spec
        self.dim = dim
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def encode_images(
        self, images: ImageLike | list[ImageLike], *, return_tokens: bool = False, progress: bool = False,
        limits: Limits = LIMITS,
    ) -> SemanticTokens:
        """Encode a batch of images.

        Parameters
        ----------
        images
            PIL images, file paths or ``HxW[xC]`` numpy arrays (one or a sequence).
        return_tokens
            Also return patch tokens ``[N, T, d]`` (when the backend has them).
        progress
            Show a progress bar over batches.
        limits
            ``limits.image_pixels`` bounds each image, checked before it is decoded
            (:class:`~ragsc.errors.InputError` past it); images are loaded ``batch_size`` at a time.

        Returns
        -------
        SemanticTokens
            ``embeddings`` of shape ``[N, dim]``, L2-normalised, ``modality="image"``.
        """
        items = as_batch(images, "image")
        return self._run("image", items, return_tokens, progress, limits)

    @torch.inference_mode()
    def encode_texts(
        self, texts: str | list[str], *, return_tokens: bool = False, progress: bool = False,
        limits: Limits = LIMITS,
    ) -> SemanticTokens:
        """Encode a batch of texts (non-empty strings of at most ``limits.text_chars`` characters; texts
        longer than the model's context are truncated and reported in meta).

        Returns
        -------
        SemanticTokens
            ``embeddings`` of shape ``[N, dim]``, L2-normalised, ``modality="text"``.
        """
        items = check_texts(as_batch(texts, "text"), limits)
        return self._run("text", items, return_tokens, progress, limits)

    @property
    def fingerprint(self) -> str:
        """Stable id of the model and its weights: equal iff spec family, architecture and weights are
        equal."""
        if self._fingerprint is None:
            self._fingerprint = weights_digest(self._weights(), self._fingerprint_name())
        return self._fingerprint

    def serves(self, fingerprint: str) -> bool:
        """Whether a KB or decoder built for the encoder of ``fingerprint`` can use this encoder: itself,
        or (a distilled student) the teacher whose space it was trained into."""
        return fingerprint == self.fingerprint

    def num_parameters(self) -> dict[str, int]:
        """``{"image": int, "text": int}``: the parameters used to encode each modality (weights shared
        by both count in both)."""
        return {m: sum(t.numel() for t in tensors) for m, tensors in self._modality_weights().items()}

    def towers(self) -> dict[str, Tower]:
        """The towers that tower-level tools (compression) may work on, by modality (``"text"``,
        ``"image"``); none by default: a backend lists only what it can swap and feed."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(spec={self.spec!r}, dim={self.dim})"

    # ------------------------------------------------------------------ backend hooks
    @abstractmethod
    def _encode_image_batch(self, images: list, return_tokens: bool) -> Encoded:
        """Encode RGB PIL images; embeddings need not be normalised."""

    @abstractmethod
    def _encode_text_batch(self, texts: list[str], return_tokens: bool) -> Encoded:
        """Encode non-empty strings; embeddings need not be normalised."""

    @abstractmethod
    def _weights(self) -> dict[str, torch.Tensor]:
        """Every tensor that determines the encoder's output (for the fingerprint)."""

    def _modality_weights(self) -> dict[str, list[torch.Tensor]]:
        """The weights each modality's encoding uses (for :meth:`num_parameters`)."""
        raise NotImplementedError(f"{type(self).__name__} does not report its parameters")

    def _fingerprint_name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ shared machinery
    def _run(self, modality: Modality, items: list, return_tokens: bool, progress: bool,
             limits: Limits = LIMITS) -> SemanticTokens:
        meta: dict[str, Any] = {"encoder": self.spec}
        if not items:
            return SemanticTokens(torch.empty(0, self.dim), modality, meta=meta)
        embs, toks, masks, truncated = [], [], [], []
        chunks = list(self._chunks(items))
        for start, chunk in tqdm(chunks, desc=f"encode {modality}s", disable=not progress or len(chunks) < 2):
            if modality == "image":
                images = [load_image(x, start + i, limits) for i, x in enumerate(chunk)]
                out = self._encode_image_batch(images, return_tokens)
            else:
                out = self._encode_text_batch(chunk, return_tokens)
            embs.append(out.embeddings.float())
            toks.append(out.tokens)
            masks.append(out.mask)
            truncated += [start + i for i in out.truncated]
        if truncated:
            meta["truncated"] = truncated
        embeddings = F.normalize(torch.cat(embs), dim=-1)
        tokens, token_mask = _cat_tokens(toks, masks) if return_tokens else (None, None)
        return SemanticTokens(embeddings, modality, tokens, token_mask, meta)

    def _chunks(self, items: list) -> Iterator[tuple[int, list]]:
        for start in range(0, len(items), self.batch_size):
            yield start, items[start : start + self.batch_size]


def serves(encoder, fingerprint: str) -> bool:
    """Whether ``encoder`` can use a KB / decoders built for the encoder of ``fingerprint`` (itself, or
    the teacher of a student); objects without :meth:`MultimodalEncoder.serves` must match exactly."""
    check = getattr(encoder, "serves", None)
    return bool(check(fingerprint)) if callable(check) else encoder.fingerprint == fingerprint


def _cat_tokens(
    toks: list[torch.Tensor | None], masks: list[torch.Tensor | None]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Concatenate per-batch tokens, padding the token axis when batches differ in length (text)."""
    if any(t is None for t in toks):
        return None, None
    length = max(t.shape[1] for t in toks)
    padded, full_masks = [], []
    for t, m in zip(toks, masks):
        m = torch.ones(t.shape[:2], dtype=torch.bool) if m is None else m.bool()
        pad = length - t.shape[1]
        padded.append(F.pad(t.float(), (0, 0, 0, pad)))
        full_masks.append(F.pad(m, (0, pad), value=False))
    return torch.cat(padded), torch.cat(full_masks)
