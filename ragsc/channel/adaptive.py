"""Channel-adaptive transmission: what to send, how much of it, and how to weight it, given the SNR.

* :class:`PCAOrdering` — importance ordering: principal axes of a KB's embeddings, most variance
  first; sending the leading ``2k`` coefficients is the best linear ``k``-symbol summary.
* :class:`RatePolicy` — variable-length output: the fewest symbols whose *predicted* distortion
  (truncated variance + noise on what is sent) meets a target, capped by the budget. At high SNR
  noise costs little, so fewer symbols reach the target; at low SNR more are needed (up to the cap).
* :class:`AdaptiveScaling` — ADJSCC-style attention-feature modules: an SNR-conditioned weighting
  of the sent coefficients at the transmitter and a matching one at the receiver, trainable end to
  end through the (differentiable) link; :meth:`AdaptiveLink.train_scaling` is the plain MSE recipe,
  run through the link's own :meth:`AdaptiveLink.forward`.
* :func:`estimate_snr_db` — SNR from known pilot symbols (they cost channel uses).
* :class:`AdaptiveLink` — all of the above around the analog link; reports what was sent.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.channel.analog import from_symbols
from ragsc.channel.models import Channel, equalize, snr_db_to_no
from ragsc.channel.path import Received, TransmissionPath, as_tokens, path_configs
from ragsc.config import SNR_RANGE_DB, ChannelConfig
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens


class PCAOrdering:
    """Principal-axis change of basis: ``encode(z) = (z - mean) @ V``, columns of ``V`` by decreasing
    variance."""

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, variances: torch.Tensor) -> None:
        self.mean, self.components, self.variances = mean.float(), components.float(), variances.float()

    @classmethod
    def fit(cls, embeddings: torch.Tensor) -> PCAOrdering:
        """Fit on ``[N, D]`` embeddings (e.g. a knowledge base's); needs N >= 2."""
        if embeddings.ndim != 2 or embeddings.shape[0] < 2 or not torch.isfinite(embeddings).all():
            raise InputError("PCA ordering needs a finite [N, D] tensor with N >= 2")
        x = embeddings.double()
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / (x.shape[0] - 1)
        var, vec = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(var, descending=True)
        return cls(mean, vec[:, order], var[order].clamp_min(0))

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() - self.mean) @ self.components

    def decode(self, c: torch.Tensor) -> torch.Tensor:
        return self.mean + c.float() @ self.components.T

    def predicted_distortion(self, n_real: int, snr_db: float) -> float:
        """Expected squared error per item, as a fraction of the total variance, when the first
        ``n_real`` coefficients are sent with uniform power over AWGN (ZF): ``N0 * sent + dropped``."""
        no = snr_db_to_no(snr_db)
        total = float(self.variances.sum())
        sent = float(self.variances[:n_real].sum())
        return (no * sent + (total - sent)) / total

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({"mean": self.mean.contiguous(), "components": self.components.contiguous(),
                   "variances": self.variances.contiguous()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> PCAOrdering:
        from safetensors.torch import load_file

        d = load_file(str(path))
        return cls(d["mean"], d["components"], d["variances"])


class RatePolicy:
    """Choose ``k_symbols`` for an SNR: the fewest meeting ``target_distortion``, at most ``max_symbols``."""

    def __init__(self, ordering: PCAOrdering, target_distortion: float = 0.2,
                 max_symbols: int | None = None) -> None:
        if not 0 < target_distortion < 1:
            raise ConfigError(f"target_distortion must lie in (0, 1), got {target_distortion}")
        self.ordering = ordering
        self.target = target_distortion
        self.max_symbols = ordering.variances.numel() // 2 if max_symbols is None else max_symbols
        if not 0 < self.max_symbols <= ordering.variances.numel() // 2:
            raise ConfigError(f"max_symbols must be in 1..{ordering.variances.numel() // 2}, "
                              f"got {max_symbols}")

    def k_for(self, snr_db: float) -> int:
        for k in range(1, self.max_symbols + 1):
            if self.ordering.predicted_distortion(2 * k, snr_db) <= self.target:
                return k
        return self.max_symbols  # target out of reach: spend the whole budget


class AdaptiveScaling(nn.Module):
    """SNR-conditioned attention weighting (ADJSCC-style) of ``n_features`` importance-ordered coefficients.

    Two small modules map the SNR to per-coefficient weights: ``tx_weights(snr)`` scales what is sent
    (a learned power allocation across the ordered coefficients), ``rx_weights(snr)`` scales what is
    received (a learned per-coefficient estimator). Both depend on the SNR only, so the receiver can
    compute the transmitter's weights and the power-normalisation gain without side information.
    """

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        self.n_features = n_features

        def af() -> nn.Sequential:
            return nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, n_features))

        self.tx_af, self.rx_af = af(), af()

    @staticmethod
    def _snr(snr_db: float | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(snr_db, dtype=torch.float32)
        return (t.reshape(-1, 1) if t.ndim else t.reshape(1, 1)) / 20.0

    def tx_weights(self, snr_db: float | torch.Tensor) -> torch.Tensor:
        """``[B, n_features]`` (or ``[1, n_features]`` for a scalar SNR) positive transmit weights."""
        return 2 * torch.sigmoid(self.tx_af(self._snr(snr_db)))

    def rx_weights(self, snr_db: float | torch.Tensor) -> torch.Tensor:
        return 2 * torch.sigmoid(self.rx_af(self._snr(snr_db)))


def power_gain(k: int, weights: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """Gain that makes ``k`` symbols of weighted coefficients average unit power: ``sqrt(k / sum w^2 var)``
    (over the last axis). It depends on the ordering's variances and the weights only, so both ends
    know it."""
    return (k / (weights**2 * variances).sum(-1).clamp_min(1e-12)).sqrt()


def estimate_snr_db(channel: Channel, n_items: int, n_pilots: int,
                    snr_db: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Send ``n_pilots`` known unit-power symbols per item; return per-item (SNR estimate in dB, h estimate).

    Least-squares ``h = mean(y p*)`` and ``N0 = mean |y - h p|^2 * n / (n - 1)``; the estimate is the
    average SNR ``1 / N0`` (Es = 1). Needs ``n_pilots >= 2``.
    """
    if n_pilots < 2:
        raise ConfigError(f"SNR estimation needs at least 2 pilots, got {n_pilots}")
    pilots = torch.full((n_items, n_pilots), complex(math.sqrt(0.5), math.sqrt(0.5)), dtype=torch.complex64)
    y, _ = channel(pilots, snr_db_to_no(snr_db))
    h = (y * pilots.conj()).mean(1)
    no = ((y - h[:, None] * pilots).abs() ** 2).sum(1) / (n_pilots - 1)
    return 10 * torch.log10(1 / no.clamp_min(1e-12)), h


class AdaptiveLink(TransmissionPath):
    """Analog link with importance ordering, an SNR-driven rate policy and optional trained scaling.

    Parameters
    ----------
    ordering
        The :class:`PCAOrdering` (fit on the KB's embeddings).
    config
        The :class:`~ragsc.config.ChannelConfig` (keyword overrides of its fields are merged in); its
        ``k_symbols`` is the budget when no policy is given.
    policy
        A :class:`RatePolicy`; ``None`` always sends ``config.k_symbols``.
    scaling
        A trained :class:`AdaptiveScaling` for the policy's maximum length (coefficients beyond the
        chosen ``2k`` are masked to zero before it), or ``None``.
    n_pilots
        ``0``: the SNR is known; ``> 1``: estimated from that many pilots per item (counted as channel uses).
    """

    def __init__(self, ordering: PCAOrdering, config: ChannelConfig | None = None,
                 policy: RatePolicy | None = None, scaling: AdaptiveScaling | None = None, n_pilots: int = 0,
                 **overrides) -> None:
        self.ordering, self.policy, self.scaling, self.n_pilots = ordering, policy, scaling, n_pilots
        (self.config,) = path_configs(config, overrides, what="adaptive link")
        c = self.config
        self.channel = Channel(c.channel, c.fading, c.rician_k, c.seed)
        self.budget = policy.max_symbols if policy else (c.k_symbols or ordering.variances.numel() // 2)
        if not 0 < self.budget <= ordering.variances.numel() // 2:
            raise ConfigError(f"k_symbols={self.budget} is more than the {ordering.variances.numel()} "
                              f"ordered coefficients allow (at most {ordering.variances.numel() // 2} "
                              "complex symbols)")
        if n_pilots == 1 or n_pilots < 0:
            raise ConfigError(f"n_pilots must be 0 (SNR known) or >= 2, got {n_pilots}")
        # The chosen k travels in a header: ceil(log2(budget) / 2) uncoded QPSK symbols, counted.
        self.header_symbols = math.ceil(math.log2(self.budget) / 2) if policy and self.budget > 1 else 0
        if scaling is not None and scaling.n_features != 2 * self.budget:
            raise ConfigError(f"scaling was built for {scaling.n_features} features, "
                              f"the budget sends {2 * self.budget}")

    @torch.no_grad()
    def __call__(self, tokens: SemanticTokens | torch.Tensor, snr_db: float | None = None) -> Received:
        snr = self.snr(snr_db)
        st = as_tokens(tokens)
        n = len(st)
        if st.dim != self.ordering.mean.numel():
            raise InputError(f"embeddings have dimension {st.dim} but the ordering was fit on "
                             f"{self.ordering.mean.numel()}")
        if self.n_pilots:
            est, _ = estimate_snr_db(self.channel, n, self.n_pilots, snr)
            known = min(max(float(est.mean()), SNR_RANGE_DB[0]), SNR_RANGE_DB[1])  # estimates can overshoot
        else:
            known = snr
        k = self.policy.k_for(known) if self.policy else self.budget
        coeffs = self.ordering.encode(st.embeddings)
        received = self.forward(coeffs[:, : 2 * self.budget], k, known, snr, self.channel)
        full = torch.zeros_like(coeffs)
        full[:, : 2 * self.budget] = received
        z_hat = self.ordering.decode(full)
        out = st.replace(F.normalize(z_hat, dim=-1), path="adaptive")
        uses = k + self.n_pilots + self.header_symbols
        return Received(out, received[:, : 2 * k], coeffs[:, : 2 * k], uses, snr,
                        {"path": "adaptive", "channel": self.config.channel, "k_symbols": k,
                         "pilots": self.n_pilots, "header": self.header_symbols, "snr_db_used": known,
                         "bandwidth_ratio": uses / coeffs.shape[1]})

    def forward(self, coeffs: torch.Tensor, k: int, known_db: float | torch.Tensor,
                snr_db: float | torch.Tensor, channel: Channel) -> torch.Tensor:
        """The link on ordered coefficients ``[N, 2 * budget]``: weight, normalise, send the first
        ``k`` symbols over ``channel`` at ``snr_db``, equalise, undo the gain, weight at the receiver.

        ``known_db`` is the SNR both ends act on (the true one, or the pilots' estimate); SNRs may be
        floats or ``[N]`` tensors (one per item, as in training). Returns ``[N, 2 * budget]`` received
        coefficients (zeros beyond ``2k``). Differentiable in the scaling's parameters.
        """
        n = coeffs.shape[0]
        mask = (torch.arange(2 * self.budget) < 2 * k).float()
        tx_w = self.scaling.tx_weights(known_db) * mask if self.scaling is not None else mask[None]
        var = self.ordering.variances[: 2 * self.budget]
        # Average-power normalisation: the gain follows from k, the ordering's variances and the
        # SNR-only weights, so the receiver recomputes it (no per-item side information).
        gain = power_gain(k, tx_w, var)[:, None]  # [N or 1, 1]
        s = coeffs * tx_w * gain
        x = torch.view_as_complex(s[:, : 2 * k].reshape(n, k, 2).contiguous())
        y, h = channel(x, snr_db_to_no(snr_db))
        # the receiver's MMSE uses the noise level it knows (estimated from pilots when there are any);
        # the channel coefficient itself is assumed known (perfect CSI) or ignored (csi="none")
        x_hat, _ = equalize(y, h, snr_db_to_no(known_db), self.config.csi, self.config.equalizer)
        received = F.pad(from_symbols(x_hat) / gain, (0, 2 * (self.budget - k)))
        rx_w = self.scaling.rx_weights(known_db) if self.scaling is not None else 1.0
        return received * rx_w * mask

    def train_scaling(self, embeddings: torch.Tensor, snr_range_db: tuple[float, float] = (-5.0, 20.0),
                      steps: int = 300, lr: float = 3e-3, batch_size: int = 256,
                      seed: int = 0) -> list[float]:
        """Train the link's :class:`AdaptiveScaling` to minimise the coefficient MSE through :meth:`forward`.

        Each step draws a batch of ``embeddings`` and one SNR per item, uniform in ``snr_range_db``,
        and sends the whole budget over a channel of this link's kind seeded with ``seed`` (the
        link's own generator is left alone). Returns the loss per step.
        """
        if self.scaling is None:
            raise ConfigError("this adaptive link has no scaling to train "
                              "(pass scaling=AdaptiveScaling(...))")
        g = torch.Generator().manual_seed(seed)
        c = self.config
        channel = Channel(c.channel, c.fading, c.rician_k, seed)
        opt = torch.optim.Adam(self.scaling.parameters(), lr=lr)
        coeffs = self.ordering.encode(embeddings)[:, : 2 * self.budget]
        losses = []
        for _ in range(steps):
            idx = torch.randint(0, coeffs.shape[0], (batch_size,), generator=g)
            snr = torch.empty(batch_size).uniform_(*snr_range_db, generator=g)
            s = coeffs[idx]
            loss = F.mse_loss(self.forward(s, self.budget, snr, snr, channel), s)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses
