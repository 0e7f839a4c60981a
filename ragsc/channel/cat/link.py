"""CATLink: the CAT codec as a transmission path (``path(x, snr_db) -> Received``, like the analog link).

Semantic tokens in (the pooled embeddings, or the patch / word tokens with their mask), a
:class:`~ragsc.channel.path.Received` out, through the project's :class:`~ragsc.channel.models.Channel`, with
the length per item chosen by the codec's rate policy (:mod:`ragsc.channel.cat.policy`) or fixed; channel uses
are counted per item, pilots included.
"""

from __future__ import annotations

from typing import Literal

import torch

from ragsc.channel.analog import from_symbols
from ragsc.channel.cat.codec import CATCodec
from ragsc.channel.models import Channel, equalize, estimate_snr_db, snr_db_to_no
from ragsc.channel.path import Received, TransmissionPath, as_tokens, path_configs
from ragsc.config import SNR_RANGE_DB, ChannelConfig
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens


class CATLink(TransmissionPath):
    """Semantic tokens through a trained :class:`CATCodec` over the project's :class:`Channel`.

    Parameters
    ----------
    codec
        The trained codec (calibrated, unless ``n_symbols`` is fixed).
    config
        The :class:`~ragsc.config.ChannelConfig` (keyword overrides of its fields are merged in). Its channel
        must be one the codec was trained on, with perfect CSI and the codec's equaliser; its ``k_symbols``
        is not used (the rate policy or ``n_symbols`` decides the length).
    quality
        Target mean cosine of the rate policy (:meth:`CATCodec.choose_length`); ignored with ``n_symbols``.
    n_symbols
        A fixed length (one of the codec's levels) instead of the rate policy.
    n_pilots
        ``0``: both ends know the SNR; ``>= 2``: the receiver estimates it from that many unit-power pilots
        per item (:func:`~ragsc.channel.models.estimate_snr_db`, counted as channel uses) and the length and
        the conditioning follow each item's estimate (fed back to the transmitter, not counted).
    source
        ``"embeddings"`` sends the pooled embedding ``[N, D]`` (one token); ``"tokens"`` the patch / word
        tokens ``[N, T, d]`` with their mask.

    Notes
    -----
    Call ``rx = link(tokens, snr_db=None, noiseless=False)`` -> :class:`Received`: ``rx.tokens`` holds the
    decoded (normalised) target embeddings, ``rx.features`` / ``rx.sent`` the equalised / sent symbols as
    reals ``[N, 2 n_max]`` (zeros beyond an item's length), ``rx.channel_uses`` the most any item used, and
    ``rx.meta`` the exact count per item (``channel_uses_per_item``, pilots included) and ``n_symbols`` (data
    symbols per item). ``noiseless=True`` is the path's bound, as the analog link's: the symbols are
    delivered exactly (no channel, no pilots, ``snr_db`` ignored, received SNR ``inf``), at the length the
    rate policy picks on the best channel (the top of the SNR range; or ``n_symbols``), both ends told that
    SNR.
    """

    def __init__(self, codec: CATCodec, config: ChannelConfig | None = None, quality: float = 0.9,
                 n_symbols: int | None = None, n_pilots: int = 0, source: Literal["embeddings", "tokens"] =
                 "embeddings", **overrides) -> None:
        (self.config,) = path_configs(config, overrides, what="CAT link")
        c = self.config
        codec._check_channel(c.channel)
        if c.csi != "perfect" or c.equalizer != codec.config.equalizer:
            raise ConfigError(f"the CAT codec decodes {codec.config.equalizer} equalisation with perfect "
                              f"CSI; the link has csi={c.csi!r}, equalizer={c.equalizer!r}")
        if n_symbols is not None:
            codec._check_level(n_symbols)
        else:
            codec.choose_length(c.snr_db, c.channel, quality)  # raises now if it has no rate table
        if isinstance(n_pilots, bool) or not isinstance(n_pilots, int) or n_pilots == 1 or n_pilots < 0:
            raise ConfigError(f"n_pilots must be 0 (SNR known) or >= 2, got {n_pilots!r}")
        if source not in ("embeddings", "tokens"):
            raise ConfigError(f"CAT link source must be 'embeddings' or 'tokens', got {source!r}")
        self.codec, self.quality, self.n_symbols, self.n_pilots, self.source = (codec, quality, n_symbols,
                                                                                 n_pilots, source)
        self.device = next(codec.parameters()).device
        self.channel = Channel(c.channel, c.fading, c.rician_k, c.seed, str(self.device))

    @torch.no_grad()
    def __call__(self, tokens: SemanticTokens | torch.Tensor, snr_db: float | None = None,
                 noiseless: bool = False) -> Received:
        snr = float("inf") if noiseless else self.snr(snr_db)
        st = as_tokens(tokens)
        x, mask = self._source(st)
        x, mask = self.codec._check_tokens(x.to(self.device), None if mask is None else mask.to(self.device))
        name, n_items = self.config.channel, x.shape[0]
        pilots = 0 if noiseless else self.n_pilots
        if noiseless:  # the best channel the conditioning and the rate table know
            known = torch.full((n_items,), SNR_RANGE_DB[1], device=self.device)
        elif self.n_pilots:  # estimates can overshoot the range every path accepts
            est, _ = estimate_snr_db(self.channel, n_items, self.n_pilots, snr)
            known = est.clamp(*SNR_RANGE_DB).to(self.device)
        else:
            known = torch.full((n_items,), snr, device=self.device)
        lengths = [self.n_symbols or self.codec.choose_length(k, name, self.quality) for k in known.tolist()]
        n_max, no = max(lengths), None if noiseless else snr_db_to_no(snr)
        out = torch.empty(n_items, self.codec.config.target_dim, device=self.device)
        sent = torch.zeros(n_items, 2 * n_max, device=self.device)
        received = torch.zeros_like(sent)
        for n in sorted(set(lengths)):  # one channel call per length, items in order within it
            idx = torch.tensor([i for i, m in enumerate(lengths) if m == n], device=self.device)
            sym = self.codec.encode(x[idx], known[idx], name, n, None if mask is None else mask[idx])
            if noiseless:
                y_eq, no_eff = sym, torch.zeros(len(idx), device=self.device)
            else:
                y, h = self.channel(sym, no)
                # the receiver equalises with the noise level it knows (the pilots' estimate, if any)
                y_eq, no_eff = equalize(y, h, snr_db_to_no(known[idx]), "perfect", self.config.equalizer)
            out[idx] = self.codec.decode(y_eq, no_eff, known[idx], name)
            sent[idx, : 2 * n], received[idx, : 2 * n] = from_symbols(sym), from_symbols(y_eq)
        uses = [n + pilots for n in lengths]
        meta = {**st.meta, "link": self.config.model_dump()}
        return Received(SemanticTokens(out, st.modality, meta=meta), received, sent, max(uses), float(snr),
                        {"path": "noiseless" if noiseless else "cat", "codec": "cat",
                         "channel": "none" if noiseless else name, "n_symbols": lengths,
                         "channel_uses_per_item": uses, "k_symbols": n_max, "pilots": pilots,
                         "snr_db_used": known.tolist(), "quality": None if self.n_symbols else self.quality,
                         "bandwidth_ratio": sum(uses) / len(uses) / (x.shape[1] * x.shape[2])})

    def _source(self, st: SemanticTokens) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.source == "embeddings":
            return st.embeddings.float(), None
        if st.tokens is None:
            raise InputError("CAT link source is 'tokens' but these SemanticTokens carry no tokens "
                             "(encode with return_tokens=True)")
        return st.tokens.float(), st.token_mask
