"""CATCodec: the channel-aware transformer codec between semantic tokens and the channel (after RKD-SC).

The transmitter is a transformer over the input tokens ``[B, T, token_dim]`` (a pooled embedding ``[B, D]``
is ``T = 1``) and ``max_symbols`` learned query slots; slot ``i`` becomes complex symbol ``i``. Both ends are
told the SNR (dB, through a small MLP) and the channel kind (a learned embedding). The code is *ordered*: it
is trained with a random prefix length from ``levels`` per batch, so the first ``n`` symbols of the one
codeword are a code of their own for each ``n`` in ``levels`` (the variable-length output); a prefix is sent
at unit average power per complex symbol. The receiver is a transformer over the equalised prefix (each
symbol with its effective noise variance) that reads out the target embedding ``[B, target_dim]``,
L2-normalised.

The channel in training is the project's own :class:`~ragsc.channel.models.Channel`: Sionna's blocks add noise
and multiply by the fading coefficient with torch operations, so ``y`` is differentiable w.r.t. ``x`` and
training and evaluation cross the very same channel model (:meth:`CATCodec.forward`). The SNR conditioning is
clamped to the trained ``snr_range_db`` (an SNR beyond it is told as the nearest edge); SNRs outside
[-30, 60] dB are an input error, as in every path.

The codec is built from a :class:`~ragsc.channel.cat.CATConfig`; its rate policy is
:mod:`ragsc.channel.cat.policy`, its folder :mod:`ragsc.saved` (kind ``cat-codec``), its training
:mod:`ragsc.distill.cat`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.channel.cat.config import CATConfig, channel_index, check_level
from ragsc.channel.cat.policy import choose_length
from ragsc.channel.models import CHANNELS, Channel, equalize, snr_db_to_no
from ragsc.config import check_snr_db
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, build, load, save


class _Conditioning(nn.Module):
    """The SNR (dB, clamped to the trained range) and the channel kind as one ``model_dim`` vector."""

    def __init__(self, dim: int, snr_range_db: tuple[float, float]) -> None:
        super().__init__()
        self.lo, self.hi = snr_range_db
        self.snr = nn.Sequential(nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.kind = nn.Embedding(len(CHANNELS), dim)

    def forward(self, snr_db: torch.Tensor, kind: int) -> torch.Tensor:  # [B] -> [B, dim]
        s = (2 * (snr_db.clamp(self.lo, self.hi) - self.lo) / (self.hi - self.lo) - 1)[:, None]
        return self.snr(s) + self.kind.weight[kind]


def _transformer(dim: int, heads: int, layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)


def normalize_power(x: torch.Tensor) -> torch.Tensor:
    """Complex ``[B, n]`` scaled to mean power 1 per symbol in each row (an all-zero row stays zero)."""
    power = torch.view_as_real(x).square().sum(dim=(1, 2)) / x.shape[1]
    return x * power.clamp_min(1e-12).rsqrt()[:, None]


class CATCodec(nn.Module):
    """The channel-aware transformer codec (see the module docstring); built from a :class:`CATConfig`.

    Parameters
    ----------
    config
        A :class:`CATConfig` or a dict of its fields.

    Notes
    -----
    The three calls share their last arguments: ``snr_db`` (a float, or ``[B]`` one per item, dB),
    ``channel`` (a kind in ``config.channels``) and ``n_symbols`` (a level in ``config.levels``).
    """

    def __init__(self, config: CATConfig | dict) -> None:
        super().__init__()
        if not isinstance(config, CATConfig | dict):
            raise ConfigError(f"CATCodec takes a CATConfig or a dict of its fields, not "
                              f"{type(config).__name__}")
        self.config = config if isinstance(config, CATConfig) else CATConfig(**config)
        c, d = self.config, self.config.model_dim
        with torch.random.fork_rng():  # the config's seed fixes the initial weights; global RNG untouched
            torch.manual_seed(c.seed)
            self.tx_in = nn.Linear(c.token_dim, d)
            self.tx_pos = nn.Parameter(0.02 * torch.randn(c.max_tokens, d))
            self.tx_slots = nn.Parameter(0.02 * torch.randn(c.max_symbols, d))
            self.tx_cond = _Conditioning(d, c.snr_range_db)
            self.tx = _transformer(d, c.heads, c.layers)
            # per-slot / per-position projections: with one shared projection every slot would carry the same
            # two numbers (and every received symbol land in the same two directions), whatever attention does
            self.tx_out = nn.Parameter(torch.randn(c.max_symbols, d, 2) / math.sqrt(d))
            # per symbol: Re, Im, reliability 1 / (1 + N0_eff), log10(N0_eff) / 3
            self.rx_in = nn.Parameter(torch.randn(c.max_symbols, 4, d) / 2)
            self.rx_pos = nn.Parameter(0.02 * torch.randn(c.max_symbols, d))
            self.rx_query = nn.Parameter(0.02 * torch.randn(d))
            self.rx_cond = _Conditioning(d, c.snr_range_db)
            self.rx = _transformer(d, c.heads, c.layers)
            # the read-out token alone averages the symbols through attention, which a small receiver cannot
            # untangle (8-d toy task: cosine 0.85 where a linear probe of its symbols gives 0.98); each
            # position's state also reaches the output through its own projection (a linear decoder fits)
            self.rx_read = nn.Parameter(torch.zeros(c.max_symbols, d, d))
            self.rx_out = nn.Linear(d, c.target_dim)
        self._sims: dict[str, Channel] = {}

    # --------------------------------------------------------------------------- the three calls
    def encode(self, tokens: torch.Tensor, snr_db: float | torch.Tensor, channel: str, n_symbols: int,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens to the first ``n_symbols`` complex symbols of their codeword.

        Parameters
        ----------
        tokens
            ``[B, T, token_dim]`` input tokens, or ``[B, token_dim]`` (one token per item).
        mask
            Optional ``[B, T]`` bool, ``True`` on real tokens (padding is not attended to).

        Returns
        -------
        torch.Tensor
            complex64 ``[B, n_symbols]``, mean power 1 per symbol in each row.
        """
        x, mask = self._check_tokens(tokens, mask)
        n, kind = self._check_level(n_symbols), self._check_channel(channel)
        snr = self._snr(snr_db, x.shape[0], x.device)
        cond = self.tx_cond(snr, kind)
        b, t = x.shape[:2]
        slots = self.tx_slots.expand(b, -1, -1) + cond[:, None]
        h = torch.cat([self.tx_in(x) + self.tx_pos[:t], slots], dim=1)
        pad = None if mask is None else torch.cat([~mask, mask.new_zeros(b, self.config.max_symbols)], dim=1)
        # every slot is computed whatever n is: a shorter code is a prefix of the longer one (up to its gain)
        s = torch.einsum("bnd,ndc->bnc", self.tx(h, src_key_padding_mask=pad)[:, t: t + n], self.tx_out[:n])
        return normalize_power(torch.view_as_complex(s.float().contiguous()))

    def decode(self, y_eq: torch.Tensor, no_eff: float | torch.Tensor, snr_db: float | torch.Tensor,
               channel: str) -> torch.Tensor:
        """Equalised symbols to the reconstructed target embedding.

        Parameters
        ----------
        y_eq
            complex ``[B, n]`` equalised symbols (as :func:`equalize` with this codec's equaliser returns
            them), ``n`` a level.
        no_eff
            Effective noise variance per symbol: a float, ``[B]``, ``[B, 1]`` or ``[B, n]``.

        Returns
        -------
        torch.Tensor
            ``[B, target_dim]``, L2-normalised rows.
        """
        if not isinstance(y_eq, torch.Tensor) or not y_eq.is_complex() or y_eq.ndim != 2:
            raise InputError("CAT decode takes complex symbols of shape [B, n]")
        if y_eq.shape[0] == 0:
            raise InputError("CAT decode: empty batch")
        n, kind = self._check_level(y_eq.shape[1]), self._check_channel(channel)
        b = y_eq.shape[0]
        no = torch.as_tensor(no_eff, dtype=torch.float32, device=y_eq.device)
        no = no[:, None] if no.ndim == 1 else no
        try:
            no = no.expand(b, n)
        except RuntimeError:
            raise InputError(f"no_eff of shape {tuple(no.shape)} does not fit symbols [{b}, {n}]") from None
        if torch.isnan(no).any() or (no < 0).any():
            raise InputError("no_eff must be >= 0 (a noise variance)")
        no = no.clamp(1e-6, 1e6)  # a deep fade's N0 / |h|^2 is huge, not infinite
        yr = torch.view_as_real(y_eq.to(torch.complex64)).clamp(-10.0, 10.0)  # ZF in a deep fade: bounded
        feats = torch.cat([yr, (1 / (1 + no))[..., None], (no.log10() / 3)[..., None]], dim=-1)
        cond = self.rx_cond(self._snr(snr_db, b, y_eq.device), kind)
        symbols = torch.einsum("bnf,nfd->bnd", feats, self.rx_in[:n]) + self.rx_pos[:n] + cond[:, None]
        h = torch.cat([(self.rx_query + cond)[:, None], symbols], dim=1)
        h = self.rx(h)
        z = h[:, 0] + torch.einsum("bnd,nde->be", h[:, 1:], self.rx_read[:n])
        return F.normalize(self.rx_out(z), dim=-1)

    def forward(self, tokens: torch.Tensor, snr_db: float | torch.Tensor, channel: str, n_symbols: int,
                mask: torch.Tensor | None = None, sim: Channel | None = None) -> torch.Tensor:
        """Encode, cross the channel (differentiably), equalise with perfect CSI, decode: ``[B, target_dim]``.

        ``sim`` is the :class:`Channel` to cross (its kind must be ``channel``); by default one per kind kept
        by this codec, seeded with ``config.seed`` and built with the config's fading and Rician K.
        """
        x = self.encode(tokens, snr_db, channel, n_symbols, mask)
        y_eq, no_eff = self.transmit(x, snr_db, channel, sim)
        return self.decode(y_eq, no_eff, snr_db, channel)

    def transmit(self, x: torch.Tensor, snr_db: float | torch.Tensor, channel: str,
                 sim: Channel | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Symbols ``[B, n]`` through ``sim`` (see :meth:`forward`) at ``snr_db``: ``(y_eq, no_eff)``,
        differentiable w.r.t. ``x``."""
        self._check_channel(channel)
        if sim is None:
            sim = self._sims.get(channel)
            if sim is None:
                c = self.config
                sim = self._sims[channel] = Channel(channel, c.fading, c.rician_k, c.seed, str(x.device))
        elif sim.name != channel:
            raise ConfigError(f"the simulated channel is {sim.name!r} but the codec is told {channel!r}")
        no = snr_db_to_no(self._snr(snr_db, x.shape[0], x.device))
        y, h = sim(x, no)
        return equalize(y, h, no, "perfect", self.config.equalizer)

    # --------------------------------------------------------------------------- the rate policy
    def choose_length(self, snr_db: float, channel: str, quality: float = 0.9) -> int:
        """The fewest symbols (a level) whose calibrated quality at ``snr_db`` on ``channel`` reaches
        ``quality``: :func:`ragsc.channel.cat.policy.choose_length` on this codec's config.

        Quality is the mean cosine to the target measured by :func:`ragsc.distill.cat.calibrate`, interpolated
        between calibrated SNRs. Where no level reaches it, or ``snr_db`` lies below every calibrated SNR,
        the longest level.
        """
        return choose_length(self.config, snr_db, channel, quality)

    # --------------------------------------------------------------------------- saved folder
    kind, format_version = "cat-codec", 1

    def to_saved(self) -> Saved:
        """The codec as :mod:`ragsc.saved` writes it: its config (rate table included) and its weights."""
        return Saved(self.kind, self.format_version, self.config.model_dump(mode="json"), self.state_dict())

    @classmethod
    def from_saved(cls, saved: Saved, device: str = "cpu") -> CATCodec:
        """Rebuild a codec from its :class:`~ragsc.saved.Saved` folder, on ``device``, in eval mode."""
        try:
            config = CATConfig(**saved.config)
        except ConfigError as exc:
            raise ModelLoadError(f"{saved.folder}: invalid CAT codec config: {exc}") from None
        return build(lambda: cls(config), saved.tensors, str(saved.folder)).to(device).eval()

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """:func:`ragsc.saved.save` of this codec (``config.json`` + ``model.safetensors``)."""
        return save(self, folder, overwrite=overwrite)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> CATCodec:
        """:func:`ragsc.saved.load` of a CAT codec folder, on ``device``, in eval mode.

        Raises
        ------
        ModelLoadError
            The folder is not a CAT codec's, a file is missing or corrupt, the config is invalid, or a tensor
            does not match it (each named).
        """
        return load(folder, kind=cls.kind, device=device)

    # --------------------------------------------------------------------------- checks
    def _check_tokens(self, tokens: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.config
        if (not isinstance(tokens, torch.Tensor) or not tokens.is_floating_point()
                or tokens.ndim not in (2, 3)):
            raise InputError("CAT encodes a real float tensor [B, token_dim] or [B, T, token_dim], got "
                             f"{getattr(tokens, 'dtype', type(tokens).__name__)} "
                             f"{tuple(getattr(tokens, 'shape', ()))}")
        x = tokens[:, None] if tokens.ndim == 2 else tokens
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise InputError("CAT encode: empty batch (no items or no tokens)")
        if x.shape[2] != c.token_dim:
            raise InputError(f"tokens have dimension {x.shape[2]} but this CAT codec takes token_dim="
                             f"{c.token_dim}")
        if x.shape[1] > c.max_tokens:
            raise InputError(f"{x.shape[1]} tokens per item, this CAT codec takes at most {c.max_tokens}")
        if not torch.isfinite(x).all():
            raise InputError("CAT encode: tokens contain NaN or inf")
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != x.shape[:2]:
                raise InputError(f"mask must be a bool tensor of shape {tuple(x.shape[:2])}")
            if not mask.any(dim=1).all():
                raise InputError("mask: every item needs at least one real token")
        return x.float(), mask

    def _check_level(self, n_symbols: Any) -> int:
        return check_level(self.config, n_symbols)

    def _check_channel(self, channel: Any) -> int:
        return channel_index(self.config, channel)

    @staticmethod
    def _snr(snr_db: float | torch.Tensor, b: int, device: torch.device) -> torch.Tensor:
        """``[b]`` float SNRs (dB) on ``device``; InputError unless finite and in [-30, 60] dB."""
        if isinstance(snr_db, torch.Tensor):
            if snr_db.ndim > 1 or (snr_db.ndim == 1 and snr_db.shape[0] != b) or snr_db.is_complex():
                raise InputError(f"snr_db must be a number or a real tensor [{b}], got {tuple(snr_db.shape)}")
            snr = snr_db.to(device=device, dtype=torch.float32).expand(b)
            snr_db_to_no(snr)  # validates: finite and inside the range every path accepts
            return snr
        return torch.full((b,), check_snr_db(snr_db), device=device)

