"""The link protocol: what every transmission path takes, returns and is configured with.

Every path (:class:`~ragsc.channel.AnalogLink`, :class:`~ragsc.channel.CATLink`,
:class:`~ragsc.channel.DigitalLink`, :class:`~ragsc.channel.SeparateCoding`,
:class:`~ragsc.channel.IdealDigital`) is a :class:`TransmissionPath`: configured once with a
:class:`~ragsc.config.ChannelConfig` (plus its own few settings), then called on batches like a Sionna
block, ``rx = path(x, snr_db=None)``, which returns a :class:`Received`. ``x`` is
:class:`~ragsc.types.SemanticTokens` (or a float tensor ``[N, D]``) for the semantic paths, and a list
of raw texts or PIL images for the content paths (separate coding, and the ideal bound on content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel

from ragsc.config import ChannelConfig, validate
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens


@dataclass
class Received:
    """What came out of a path.

    Attributes
    ----------
    tokens
        The received :class:`SemanticTokens` (embeddings re-normalised), ready for retrieval; ``None``
        for a content path.
    features
        ``[N, F]`` received real features, in the transmitted domain (``None`` for a content path).
    sent
        ``[N, F]`` the transmitted real features (same domain): ``features - sent`` is the error.
    channel_uses
        Complex symbols spent per item (pilots and headers included).
    snr_db
        The SNR of the transmission (``inf`` for the noiseless bound).
    meta
        What the path reports: always ``path`` and ``channel``; then the chosen k, CRC results, ...
    content
        Content paths: the decoded texts or PIL images, one per item (the fallback where decoding
        failed: an empty text, a mid-grey image).
    ok
        ``[N]`` bool: decoded from a valid transmission (``False``: the fallback was used); ``None``
        where a path has no such decision (analog).
    """

    tokens: SemanticTokens | None
    features: torch.Tensor | None
    sent: torch.Tensor | None
    channel_uses: int
    snr_db: float
    meta: dict[str, Any] = field(default_factory=dict)
    content: list | None = None
    ok: torch.Tensor | None = None

    @property
    def channel(self) -> str:
        """The channel crossed (``"none"`` for the noiseless bound)."""
        return self.meta["channel"]

    @property
    def mse(self) -> float:
        """Mean squared error per real feature, in the transmitted domain (0 when nothing was sent)."""
        self._need_features("mse")
        if not self.features.numel():
            return 0.0
        return float(((self.features - self.sent) ** 2).mean())

    @property
    def cosine(self) -> torch.Tensor:
        """``[N]`` cosine similarity of the received to the transmitted features."""
        self._need_features("cosine")
        return F.cosine_similarity(self.features, self.sent, dim=-1)

    def _need_features(self, what: str) -> None:
        if self.features is None:
            path = self.meta.get("path", "content")
            raise InputError(f"Received.{what}: the {path} path delivers content, not features; "
                             "score its .content instead")


@dataclass
class Observed:
    """What a path's receiver got for a batch, before it equalises: the two ends of a path apart.

    A path's ``observe(x, snr_db)`` is its transmitter and the channel; its ``read(observed)`` the receiver.
    The service's binary frame (:mod:`ragsc.serve.frame`) carries exactly ``y``, ``h``, ``snr_db`` and
    ``side``: what a real receiver would have.

    Attributes
    ----------
    y
        ``[N, W]`` complex64 received symbols, one row per item (or frame), zero-padded to the row width
        ``W`` where a path's items differ in length.
    h
        The channel state the receiver knows (``csi: perfect``), broadcasting against ``y``: ``[N, 1]``
        block fading, ``[N, W]`` fast fading; ``None`` for AWGN or ``csi: none``.
    snr_db
        The SNR the items were sent at (the receiver's noise variance is ``10 ** (-snr_db / 10)``).
    side
        What the path's headers carry error-free beside the symbols, one value per row: small integer or
        float lists (the analog link's power gains, a photo's size, a sentence's frames).
    noiseless
        Delivered without noise (the bound; never on a wire).
    sent
        What the transmitter sent, for scoring only (the analog link's real features; never on a wire).
    """

    y: torch.Tensor
    h: torch.Tensor | None
    snr_db: float
    side: dict[str, list] = field(default_factory=dict)
    noiseless: bool = False
    sent: torch.Tensor | None = None


class TransmissionPath:
    """Base of every path: a :class:`ChannelConfig` in ``self.config``, one call.

    Subclasses implement ``__call__(x, snr_db=None) -> Received`` and resolve the SNR of a call with
    :meth:`snr` (the configured default when ``snr_db`` is ``None``, validated).
    """

    config: ChannelConfig

    def snr(self, snr_db: float | None) -> float:
        return self.config.resolve_snr(snr_db)

    def __call__(self, x, snr_db: float | None = None) -> Received:  # pragma: no cover - interface
        raise NotImplementedError


def path_configs(config: ChannelConfig | None, overrides: dict,
                 *own: tuple[type[BaseModel], BaseModel | None], what: str = "link") -> tuple:
    """Validate a path's :class:`ChannelConfig` and its own configs from keyword ``overrides``.

    Each override goes to the config that declares the field (``AnalogLink(snr_db=5, k_symbols=96)``,
    ``DigitalLink(channel="rayleigh", modulation=16)``); a name no config declares is a
    :class:`ConfigError`. A base config may be a subclass (a pipeline spec's
    :class:`~ragsc.config.PipelineChannelConfig`): only the fields of the model it stands for are taken.
    Returns ``(channel_config, *own_configs)``.
    """
    models = [(ChannelConfig, config), *own]
    known = {name for model, _ in models for name in model.model_fields}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown setting(s) {unknown}; allowed: {', '.join(sorted(known))}")
    out = []
    for model, base in models:
        # validate the merged fields (model_copy(update=...) would skip validation)
        mine = {k: v for k, v in overrides.items() if k in model.model_fields}
        given = base.model_dump(include=set(model.model_fields)) if base is not None else {}
        out.append(validate(model, {**given, **mine}, what))
    return tuple(out)


def as_tokens(x: Any) -> SemanticTokens:
    """``x`` as :class:`SemanticTokens`: tokens pass through, a real float tensor ``[N, D]`` is wrapped
    (a bare tensor says nothing of its modality: its rows are labelled ``"text"``)."""
    if isinstance(x, SemanticTokens):
        return x
    if not isinstance(x, torch.Tensor):
        raise InputError(f"a link sends SemanticTokens or a float tensor [N, D], got {type(x).__name__}")
    if x.ndim != 2 or not x.is_floating_point() or x.is_complex():
        raise InputError(f"a link sends a real float tensor of shape [N, D], got {x.dtype} {tuple(x.shape)}")
    if not torch.isfinite(x.sum()):  # one reduction: NaN / inf propagate (an overflowing sum is garbage too)
        raise InputError("link input contains NaN or inf")
    return SemanticTokens(x, "text")
