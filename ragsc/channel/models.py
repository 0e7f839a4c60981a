"""Channel models on complex symbols: ``y = h x + n``, built on Sionna's blocks.

Sionna draws randomness from a process-wide generator; ragsc links must be reproducible one by
one, so each :class:`Channel` owns a ``torch.Generator`` and hands it to the Sionna blocks it uses.
"""

from __future__ import annotations

import math

import torch

from ragsc import checks
from ragsc.config import SNR_RANGE_DB, check_snr_db
from ragsc.errors import ConfigError, InputError

CHANNELS = ("awgn", "rayleigh", "rician")


def snr_db_to_no(snr_db: float | torch.Tensor) -> float | torch.Tensor:
    """Complex noise variance N0 for Es = 1 at ``snr_db`` (Es/N0 in dB); rejects NaN / inf / out of range."""
    if not isinstance(snr_db, torch.Tensor):  # the per-call case: plain float arithmetic, no tensor
        return 10.0 ** (-check_snr_db(snr_db) / 10.0)
    values = snr_db
    if not torch.isfinite(values).all():
        raise InputError(f"snr_db must be finite, got {snr_db!r}")
    lo, hi = SNR_RANGE_DB
    if values.min() < lo or values.max() > hi:
        raise InputError(f"snr_db must lie in [{lo}, {hi}] dB, got {snr_db!r}")
    return 10.0 ** (-values / 10.0)


def _seeded(block_cls, generator: torch.Generator, **kwargs):
    """A Sionna block instance that draws from ``generator`` instead of Sionna's global one."""

    class Seeded(block_cls):
        @property
        def torch_rng(self) -> torch.Generator:  # Sionna's blocks read their RNG from this property
            return generator

    Seeded.__name__ = f"Seeded{block_cls.__name__}"
    return Seeded(precision="single", device=str(generator.device), **kwargs)


class Channel:
    """A flat channel on complex symbols.

    Parameters
    ----------
    name
        ``"awgn"``, ``"rayleigh"`` or ``"rician"``.
    fading
        ``"block"`` (one coefficient per item, i.e. per row) or ``"fast"`` (one per symbol).
    rician_k
        Rician K factor (linear, >= 0); only for ``"rician"``.
    seed
        Seed of this channel's generator (``None``: nondeterministic).

    Notes
    -----
    Call: ``y, h = channel(x, no)`` with ``x`` complex ``[N, k]`` and ``no`` a float or ``[N]``
    tensor of complex noise variances; ``h`` broadcasts against ``x`` (``[N, 1]`` for block fading,
    ``[N, k]`` for fast fading) and is ``None`` for AWGN (no multiplication by ones on the hot path).
    """

    def __init__(self, name: str = "awgn", fading: str = "block", rician_k: float = 4.0, seed: int | None = 0,
                 device: str = "cpu") -> None:
        if name not in CHANNELS:
            raise ConfigError(f"unknown channel {name!r}; choose one of {', '.join(CHANNELS)}")
        if fading not in ("block", "fast"):
            raise ConfigError(f"fading must be 'block' or 'fast', got {fading!r}")
        if not math.isfinite(rician_k) or rician_k < 0:
            raise ConfigError(f"Rician K factor must be a finite number >= 0, got {rician_k!r}")
        from sionna.phy.channel import AWGN, GenerateFlatFadingChannel

        self.name, self.fading, self.rician_k = name, fading, float(rician_k)
        self.generator = torch.Generator(device=device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))
        self._awgn = _seeded(AWGN, self.generator)
        self._fading = (_seeded(GenerateFlatFadingChannel, self.generator, num_tx_ant=1, num_rx_ant=1)
                        if name != "awgn" else None)

    def coefficients(self, n_items: int, k: int) -> torch.Tensor:
        """Draw fading coefficients (complex64): ``[n_items, 1]`` for block fading, ``[n_items, k]`` for fast
        fading; both broadcast against ``[n_items, k]`` symbols. AWGN: ones ``[n_items, 1]``."""
        if self._fading is None:
            return torch.ones(n_items, 1, dtype=torch.complex64)
        count = n_items if self.fading == "block" else n_items * k
        h = self._fading(count).reshape(-1)  # Sionna: [count, 1, 1] i.i.d. CN(0, 1)
        h = h[:, None] if self.fading == "block" else h.reshape(n_items, k)
        if self.name == "rician":
            los = math.sqrt(self.rician_k / (self.rician_k + 1.0))
            h = los + math.sqrt(1.0 / (self.rician_k + 1.0)) * h
        return h.contiguous()

    def __call__(self, x: torch.Tensor, no: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not x.is_complex() or x.ndim != 2:
            raise InputError("channel input must be a complex tensor of shape [N, k]")
        x = x.to(torch.complex64)
        no_t = no if isinstance(no, float) else torch.as_tensor(no, dtype=torch.float32)
        if isinstance(no_t, torch.Tensor) and no_t.ndim == 1:
            no_t = no_t[:, None]  # per-item noise variance
        if self._fading is None:
            return self._awgn(x, no_t), None
        h = self.coefficients(*x.shape)
        return self._awgn(h * x, no_t), h

    def __repr__(self) -> str:
        extra = f", K={self.rician_k}" if self.name == "rician" else ""
        return f"Channel({self.name!r}, fading={self.fading!r}{extra})"


def equalize(y: torch.Tensor, h: torch.Tensor | None, no: float | torch.Tensor, csi: str = "perfect",
             method: str = "mmse") -> tuple[torch.Tensor, torch.Tensor]:
    """Undo the channel coefficient.

    Returns ``(x_hat, no_eff)``: the equalised symbols and the effective noise variance per symbol
    (what a demapper should be told). ``csi="none"`` leaves ``y`` untouched (no channel knowledge).
    ``"zf"``: ``y / h``, ``no_eff = N0 / |h|^2``. ``"mmse"``: ``conj(h) y / (|h|^2 + N0)``, the
    linear MMSE estimate (biased towards 0, lowest MSE), ``no_eff`` as for ZF after de-biasing.
    ``h=None`` means AWGN (h = 1).
    """
    if csi not in ("perfect", "none"):
        raise ConfigError(f"csi must be 'perfect' or 'none', got {csi!r}")
    if method not in ("mmse", "zf"):
        raise ConfigError(f"equalizer must be 'mmse' or 'zf', got {method!r}")
    no_t = torch.as_tensor(no, dtype=torch.float32)
    if no_t.ndim == 1:
        no_t = no_t[:, None]
    if csi == "none" or (h is None and method == "zf"):
        return y, no_t.expand(y.shape)
    if h is None:  # AWGN, MMSE: a real shrinkage 1 / (1 + N0)
        return y * (1.0 / (1.0 + no_t)), no_t.expand(y.shape)
    gain = h.abs() ** 2
    no_eff = no_t / gain.clamp_min(1e-12)
    if method == "zf":
        return y / torch.where(gain > 0, h, torch.ones_like(h)), no_eff
    return h.conj() * y / (gain + no_t), no_eff


def equalize_for_detection(y: torch.Tensor, h: torch.Tensor | None, no: float | torch.Tensor,
                           csi: str = "perfect", method: str = "mmse") -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`equalize` for a detector (a QAM demapper, a codeword likelihood), which expects ``x + noise``.

    The MMSE estimate ``conj(h) y / (|h|^2 + N0)`` is biased towards 0 by ``|h|^2 / (|h|^2 + N0)``; a
    detector must be handed it de-biased, with ``no_eff = N0 / |h|^2``. With one antenna, de-biased MMSE *is*
    zero forcing, ``y / h``: both methods give a detector the same input, computed here by the shorter
    formula (``tests/channel/test_models.py`` checks the identity). The choice matters where the estimate
    itself is the output (the analog paths, :func:`equalize`). Returns ``(x_hat, no_eff)``.
    """
    if method not in ("mmse", "zf"):
        raise ConfigError(f"equalizer must be 'mmse' or 'zf', got {method!r}")
    return equalize(y, h, no, csi, "zf")


def estimate_snr_db(channel: Channel, n_items: int, n_pilots: int,
                    snr_db: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Send ``n_pilots`` known unit-power symbols per item; return per-item (SNR estimate in dB, h estimate).

    Least-squares ``h = mean(y p*)`` and ``N0 = mean |y - h p|^2 * n / (n - 1)``; the estimate is the
    average SNR ``1 / N0`` (Es = 1). Needs ``n_pilots >= 2``; the pilots are channel uses of the caller's.
    """
    n_pilots = checks.integer(n_pilots, "n_pilots (SNR estimation needs at least 2 pilots)", 2)
    pilots = torch.full((n_items, n_pilots), complex(math.sqrt(0.5), math.sqrt(0.5)), dtype=torch.complex64,
                        device=channel.generator.device)
    y, _ = channel(pilots, snr_db_to_no(snr_db))
    h = (y * pilots.conj()).mean(1)
    no = ((y - h[:, None] * pilots).abs() ** 2).sum(1) / (n_pilots - 1)
    return 10 * torch.log10(1 / no.clamp_min(1e-12)), h
