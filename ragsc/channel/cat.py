"""CAT: a channel-aware transformer codec between semantic tokens and the channel (after RKD-SC).

* :class:`CATConfig` — the architecture, the channels and SNRs it is trained for, and (after calibration)
  its rate table :class:`CATCalibration`; stored as ``config.json`` beside ``weights.safetensors``.
* :class:`CATCodec` — the network. The transmitter is a transformer over the input tokens
  ``[B, T, token_dim]`` (a pooled embedding ``[B, D]`` is ``T = 1``) and ``max_symbols`` learned query
  slots; slot ``i`` becomes complex symbol ``i``. Both ends are told the SNR (dB, through a small MLP) and
  the channel kind (a learned embedding). The code is *ordered*: it is trained with a random prefix length
  from ``levels`` per batch, so the first ``n`` symbols of the one codeword are a code of their own for each
  ``n`` in ``levels`` (the variable-length output); a prefix is sent at unit average power per complex
  symbol. The receiver is a transformer over the equalised prefix (each symbol with its effective noise
  variance) that reads out the target embedding ``[B, target_dim]``, L2-normalised.
* The rate policy belongs to the codec: :func:`ragsc.distill.cat.calibrate` measures the mean cosine to the
  target per (channel, SNR, level) on a validation split through the real :class:`Channel`, and
  :meth:`CATCodec.choose_length` picks the fewest symbols whose measured quality reaches a target; fewer
  symbols where the channel is good.
* :class:`CATLink` — the transmission path: semantic tokens in, a :class:`Received` out, through the
  project's :class:`Channel`, with the length per item chosen by the rate policy (or fixed).

The channel in training is the project's own :class:`Channel`: Sionna's blocks add noise and multiply by the
fading coefficient with torch operations, so ``y`` is differentiable w.r.t. ``x`` and training and evaluation
cross the very same channel model (:meth:`CATCodec.forward`). The SNR conditioning is clamped to the trained
``snr_range_db`` (an SNR beyond it is told as the nearest edge); SNRs outside [-30, 60] dB are an input error,
as in every path.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn

from ragsc.channel.analog import from_symbols
from ragsc.channel.models import CHANNELS, Channel, equalize, estimate_snr_db, snr_db_to_no
from ragsc.channel.path import Received, TransmissionPath, as_tokens, path_configs
from ragsc.config import SNR_RANGE_DB, ChannelConfig, check_snr_db
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.types import SemanticTokens

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.safetensors"
Size = Annotated[int, Field(strict=True, ge=1)]  # strict: a JSON 8.0 must not build another architecture
ChannelName = Literal["awgn", "rayleigh", "rician"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(f"invalid {type(self).__name__}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    """Each bad field and what is wrong with it (a nested config's own ConfigError as it is)."""
    out = []
    for err in exc.errors():
        inner = (err.get("ctx") or {}).get("error")
        msg = str(inner) if isinstance(inner, ConfigError) else err["msg"].removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        out.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(out)


class CATCalibration(_Frozen):
    """The rate table: mean cosine to the target per channel, SNR and level, measured on validation data.

    ``quality[channel][i][j]`` is the quality at ``snrs_db[i]`` with ``levels[j]`` symbols (the codec's
    levels).
    """

    snrs_db: tuple[float, ...] = Field(min_length=1)
    quality: dict[ChannelName, tuple[tuple[float, ...], ...]]
    n_items: Size = Field(description="validation items behind each entry")
    seed: int = 0

    @model_validator(mode="after")
    def _shape(self) -> CATCalibration:
        s = self.snrs_db
        if any(not math.isfinite(x) or not SNR_RANGE_DB[0] <= x <= SNR_RANGE_DB[1] for x in s):
            raise ValueError(f"snrs_db must be finite and in {list(SNR_RANGE_DB)} dB, got {list(s)}")
        if any(b <= a for a, b in zip(s, s[1:])):
            raise ValueError(f"snrs_db must be strictly increasing, got {list(s)}")
        for name, rows in self.quality.items():
            if len(rows) != len(s):
                raise ValueError(f"quality[{name!r}] has {len(rows)} rows for {len(s)} SNRs")
        return self

    def row(self, channel: str, snr_db: float) -> tuple[float, ...] | None:
        """Quality per level at ``snr_db``, interpolated linearly between the calibrated SNRs; above the
        highest, the highest's; ``None`` below the lowest (nothing measured vouches for it)."""
        rows, s = self.quality[channel], self.snrs_db
        if snr_db < s[0]:
            return None
        if snr_db >= s[-1]:
            return rows[-1]
        i = max(j for j, x in enumerate(s) if x <= snr_db)
        w = (snr_db - s[i]) / (s[i + 1] - s[i])
        return tuple((1 - w) * a + w * b for a, b in zip(rows[i], rows[i + 1]))


class CATConfig(_Frozen):
    """What a :class:`CATCodec` is built from, and what it was trained and calibrated for.

    Attributes
    ----------
    token_dim, target_dim
        Dimension of the input semantic tokens, and of the (teacher) embedding the receiver reconstructs.
    model_dim, layers, heads
        Width (divisible by ``heads``) and depth of each end's transformer.
    max_tokens
        Input tokens per item at most (learned positions).
    max_symbols, levels
        Complex symbols per item at most, and the prefix lengths that are codes (strictly increasing, the
        last one ``max_symbols``).
    channels, snr_range_db, rician_k, fading, equalizer
        The channel kinds and the SNR range (Es/N0, dB) trained for, the training channel's Rician K, its
        fading and the receiver's equaliser (perfect CSI).
    seed
        Seed of the weights' initialisation.
    calibration
        The rate table (:func:`ragsc.distill.cat.calibrate`), or ``None`` before calibration.
    """

    token_dim: Size
    target_dim: Size
    model_dim: Size = 128
    layers: Size = 2
    heads: Size = 4
    max_tokens: Size = 256
    max_symbols: Size = 64
    levels: tuple[Size, ...] = (8, 16, 32, 48, 64)
    channels: tuple[ChannelName, ...] = CHANNELS
    snr_range_db: tuple[float, float] = (-5.0, 20.0)
    rician_k: float = Field(4.0, ge=0.0, allow_inf_nan=False)
    fading: Literal["block", "fast"] = "block"
    equalizer: Literal["mmse", "zf"] = "mmse"
    seed: int = 0
    calibration: CATCalibration | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CATConfig:
        if self.model_dim % self.heads:
            raise ValueError(f"model_dim ({self.model_dim}) must be divisible by heads ({self.heads})")
        lv = self.levels
        if not lv or any(b <= a for a, b in zip(lv, lv[1:])) or lv[-1] != self.max_symbols:
            raise ValueError("levels must be strictly increasing and end at max_symbols "
                             f"({self.max_symbols}), got {list(lv)}")
        if not self.channels or len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels must be distinct names among {', '.join(CHANNELS)}, "
                             f"got {list(self.channels)}")
        lo, hi = self.snr_range_db
        if not (SNR_RANGE_DB[0] <= lo < hi <= SNR_RANGE_DB[1]):
            raise ValueError("snr_range_db must be (low, high) with low < high inside "
                             f"{list(SNR_RANGE_DB)} dB, got {[lo, hi]}")
        cal = self.calibration
        if cal is not None:
            for name, rows in cal.quality.items():
                if name not in self.channels:
                    raise ValueError(f"calibration for channel {name!r}, which the codec was not trained on "
                                     f"({', '.join(self.channels)})")
                if any(len(r) != len(lv) for r in rows):
                    raise ValueError(f"calibration[{name!r}] rows must have one quality per level "
                                     f"({len(lv)})")
        return self


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
        ``quality``.

        Quality is the mean cosine to the target measured by :func:`ragsc.distill.cat.calibrate`, interpolated
        between calibrated SNRs. Where no level reaches it, or ``snr_db`` lies below every calibrated SNR,
        the longest level.
        """
        self._check_channel(channel)
        snr = check_snr_db(snr_db)
        if isinstance(quality, bool) or not isinstance(quality, int | float) or not 0 < quality <= 1:
            raise ConfigError(f"quality is a mean cosine in (0, 1], got {quality!r}")
        cal = self.config.calibration
        if cal is None:
            raise ConfigError("this CAT codec has no rate table: calibrate it (ragsc.distill.cat.calibrate) "
                              "or send a fixed n_symbols")
        if channel not in cal.quality:
            raise ConfigError(f"the rate table has no entry for channel {channel!r} (calibrated: "
                              f"{', '.join(cal.quality)})")
        row = cal.row(channel, snr)
        if row is not None:
            for level, q in zip(self.config.levels, row):
                if q >= quality:
                    return level
        return self.config.levels[-1]

    # --------------------------------------------------------------------------- files
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` (the config with its rate table) and ``weights.safetensors`` into
        ``folder``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        text = self.config.model_dump_json(indent=2) + "\n"
        for name, write in ((WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"})),
                            (CONFIG_FILE, lambda p: p.write_text(text))):
            tmp = folder / (name + ".tmp")
            try:
                write(tmp)
                os.replace(tmp, folder / name)  # never a half-written file under the real name
            finally:
                tmp.unlink(missing_ok=True)
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> CATCodec:
        """Rebuild a codec from :meth:`save`'s folder (in eval mode).

        Raises
        ------
        ModelLoadError
            A file is missing or corrupt, the config is invalid, or the weights do not match it (each
            names the file).
        """
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg_path, w_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise ModelLoadError(f"CAT codec: {p} not found (a codec folder holds {CONFIG_FILE} and "
                                     f"{WEIGHTS_FILE}, written by CATCodec.save)")
        try:
            data = json.loads(cfg_path.read_text())
            if not isinstance(data, dict):
                raise ConfigError(f"expected a JSON object, got {type(data).__name__}")
            codec = cls(CATConfig(**data))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ConfigError) as exc:
            raise ModelLoadError(f"CAT codec: cannot read {cfg_path}: {exc}") from None
        try:
            state = load_file(str(w_path), device=device)
        except Exception as exc:  # not safetensors, truncated: say which file
            raise ModelLoadError(f"CAT codec: cannot read {w_path}: {exc}") from None
        try:
            codec.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelLoadError(f"CAT codec: {w_path} does not match the architecture in {cfg_path}: "
                                 f"{str(exc).splitlines()[0]}") from None
        return codec.to(device).eval()

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
        levels = self.config.levels
        if isinstance(n_symbols, bool) or not isinstance(n_symbols, int) or n_symbols not in levels:
            raise ConfigError(f"n_symbols must be one of this CAT codec's levels {list(levels)}, "
                              f"got {n_symbols!r}")
        return n_symbols

    def _check_channel(self, channel: Any) -> int:
        if channel not in CHANNELS:
            raise ConfigError(f"unknown channel {channel!r}; choose one of {', '.join(CHANNELS)}")
        if channel not in self.config.channels:
            raise ConfigError(f"this CAT codec was trained on {', '.join(self.config.channels)}, "
                              f"not {channel!r}")
        return CHANNELS.index(channel)

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
