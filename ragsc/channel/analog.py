"""Analog (JSCC-style) transmission of semantic tokens.

``tokens -> real features -> pairs of reals as complex symbols -> power normalisation per item ->
channel -> equalisation -> features -> tokens``. Only the first ``2 * k_symbols`` real features are
sent (pass an ordering from :mod:`ragsc.channel.adaptive` to choose which); unsent ones are
received as zeros. Received embeddings are re-normalised, so the per-item power-normalisation gain
never has to reach the receiver: only directions matter in the shared space.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from ragsc.channel.models import Channel, equalize, snr_db_to_no
from ragsc.channel.path import Observed, Received, TransmissionPath, as_tokens, path_configs
from ragsc.config import ChannelConfig
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens

Source = Literal["embeddings", "tokens"]


class Transform(Protocol):
    """A change of basis applied before sending (e.g. PCA importance ordering)."""

    def encode(self, z: torch.Tensor) -> torch.Tensor: ...  # [N, D] -> [N, F], most important first

    def decode(self, c: torch.Tensor) -> torch.Tensor: ...  # [N, F] (zeros where unsent) -> [N, D]


def to_symbols(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real ``[N, 2k]`` -> complex ``[N, k]`` with mean symbol power 1 per item; also returns the gains
    ``[N]``.

    An all-zero item stays all-zero (gain 1) instead of dividing by zero: it carries no energy.
    """
    x = torch.view_as_complex(features.float().reshape(features.shape[0], -1, 2).contiguous())
    power = features.float().square().sum(dim=1) / x.shape[1]  # mean |x|^2 from the reals: no complex abs
    gain = torch.where(power > 0, power.clamp_min(1e-30).rsqrt(), torch.ones_like(power))
    return x * gain[:, None], gain


def from_symbols(x: torch.Tensor) -> torch.Tensor:
    """Complex ``[N, k]`` -> real ``[N, 2k]`` (inverse pairing of :func:`to_symbols`)."""
    return torch.view_as_real(x.contiguous()).reshape(x.shape[0], -1)


class AnalogLink(TransmissionPath):
    """Analog transmission of semantic tokens over one channel.

    Parameters
    ----------
    config
        The :class:`~ragsc.config.ChannelConfig` (keyword overrides of its fields are merged in).
    transform
        Optional change of basis applied before sending (see :class:`Transform`); its leading
        coefficients are the ones sent.
    source
        ``"embeddings"`` sends the pooled embedding ``[N, D]``; ``"tokens"`` the patch / word tokens
        ``[N, T, d]`` (encode with ``return_tokens=True``).

    Notes
    -----
    Call ``rx = link(tokens, snr_db=None, noiseless=False)``: ``tokens`` are :class:`SemanticTokens` (or
    a float tensor ``[N, D]``); returns a :class:`Received`. ``snr_db`` overrides the configured SNR for
    this call; ``noiseless=True`` delivers the same ``k_symbols`` exactly (no channel, no noise, so
    ``snr_db`` is ignored and the received SNR is ``inf``): the upper bound of the analog path at
    equal channel uses.
    """

    def __init__(self, config: ChannelConfig | None = None, transform: Transform | None = None,
                 source: Source = "embeddings", **overrides) -> None:
        (self.config,) = path_configs(config, overrides, what="link")
        if source not in ("embeddings", "tokens"):
            raise ConfigError(f"link source must be 'embeddings' or 'tokens', got {source!r}")
        c = self.config
        self.channel = Channel(c.channel, c.fading, c.rician_k, c.seed)
        self.transform = transform
        self.source = source

    def __call__(self, tokens: SemanticTokens | torch.Tensor, snr_db: float | None = None,
                 noiseless: bool = False) -> Received:
        st = as_tokens(tokens)
        return self.read(self.observe(st, snr_db, noiseless), list(st.modalities), st.meta, template=st)

    # --------------------------------------------------------------------------- the two ends
    def observe(self, tokens: SemanticTokens | torch.Tensor, snr_db: float | None = None,
                noiseless: bool = False) -> Observed:
        """The transmitter and the channel: ``[N, k]`` received symbols, the CSI, and each item's power
        gain (side information the receiver needs only with a ``transform``)."""
        snr = float("inf") if noiseless else self.snr(snr_db)
        st = as_tokens(tokens)
        z = self._features(st)
        coeffs = self.transform.encode(z) if self.transform is not None else z
        k = self.k_symbols_for(coeffs.shape[1])
        x, gain = to_symbols(coeffs[:, : 2 * k])
        side = {"gain": gain.tolist(), "n_features": [coeffs.shape[1]] * len(x)}
        if noiseless:
            return Observed(x, None, snr, side, noiseless=True, sent=from_symbols(x))
        y, h = self.channel(x, snr_db_to_no(snr))
        return Observed(y, h if self.config.csi == "perfect" else None, snr, side, sent=from_symbols(x))

    def read(self, obs: Observed, modalities: list[str], meta: dict | None = None,
             template: SemanticTokens | None = None) -> Received:
        """The receiver: equalise, undo the gain, fill the unsent coefficients with zeros, back to tokens
        (``modalities`` per row, from the item headers; ``meta`` the tokens' meta). A link of patch / word
        tokens (``source="tokens"``) needs the sent tokens' shape: ``template``, the sent tokens."""
        if self.source == "tokens" and template is None:
            raise ConfigError("a link of patch / word tokens reads symbols only beside the sent "
                              "tokens' shape (template=); a wire carries pooled embeddings")
        y, n = obs.y, obs.y.shape[0]
        k = y.shape[1]
        gain = torch.as_tensor(obs.side["gain"], dtype=torch.float32).reshape(n)
        n_features = int(obs.side["n_features"][0]) if n else 2 * k
        if obs.noiseless:
            x_hat = y
        else:
            no = snr_db_to_no(obs.snr_db)
            x_hat, _ = equalize(y, obs.h, no, self.config.csi, self.config.equalizer)
        received = from_symbols(x_hat)
        # A transform's decode adds its mean back, so the per-item gain must be undone first (a scalar
        # the receiver gets as side information); without one only the direction matters and the
        # tokens are re-normalised anyway, so the hot path skips the division.
        rescaled = received / gain[:, None] if self.transform is not None else received
        if 2 * k == n_features:
            full = rescaled
        else:  # unsent coefficients are received as zeros
            full = torch.zeros(n, n_features, dtype=rescaled.dtype)
            full[:, : 2 * k] = rescaled
        z_hat = self.transform.decode(full) if self.transform is not None else full
        dim = z_hat.shape[1]
        st = template if template is not None else SemanticTokens(torch.zeros(n, dim), modalities,
                                                                      meta=dict(meta or {}))
        return Received(self._tokens(st, z_hat), received, obs.sent, k, float(obs.snr_db),
                        {"channel": "none" if obs.noiseless else self.config.channel, "k_symbols": k,
                         "bandwidth_ratio": k / dim, "path": "noiseless" if obs.noiseless else "analog"})

    # --------------------------------------------------------------------------- helpers
    def _features(self, st: SemanticTokens) -> torch.Tensor:
        if self.source == "embeddings":
            return st.embeddings.float()
        if st.tokens is None:
            raise InputError("link source is 'tokens' but these SemanticTokens carry no tokens "
                             "(encode with return_tokens=True)")
        return st.tokens.float().reshape(st.tokens.shape[0], -1)

    def k_symbols_for(self, n_real: int) -> int:
        """Complex symbols per item for a source of ``n_real`` real features (ConfigError when they do
        not fit)."""
        k_max = n_real // 2
        k = self.config.k_symbols or k_max
        if k > k_max:
            raise ConfigError(f"k_symbols={k} needs {2 * k} real features but the source has {n_real} "
                              f"(at most {k_max} complex symbols per item)")
        return k

    def _tokens(self, st: SemanticTokens, z_hat: torch.Tensor) -> SemanticTokens:
        meta = {**st.meta, "link": self.config.model_dump()}
        if self.source == "embeddings":
            return SemanticTokens(F.normalize(z_hat, dim=-1), st.modality, meta=meta)
        tokens = F.normalize(z_hat.reshape(st.tokens.shape), dim=-1)
        mask = st.token_mask if st.token_mask is not None else torch.ones(tokens.shape[:2], dtype=torch.bool)
        tokens = tokens * mask[..., None]  # padding carried only noise
        pooled = F.normalize(tokens.sum(dim=1) / mask.sum(1, keepdim=True).clamp_min(1), dim=-1)
        return SemanticTokens(pooled, st.modality, tokens, st.token_mask, meta)
