"""SNR sweeps of the link: measured BER / BLER / feature MSE / cosine beside the closed forms.

``ragsc channel sweep --channel awgn,rayleigh --snr -5:20:1 --out DIR`` writes ``DIR/channel_sweep.csv``
(one row per channel, SNR, path and metric, with the theory value where one exists) and
``DIR/channel_sweep.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ragsc import report
from ragsc.channel import theory
from ragsc.channel.analog import AnalogLink
from ragsc.channel.digital import CodedPHY, CodingConfig
from ragsc.channel.models import CHANNELS
from ragsc.config import SNR_RANGE_DB, ChannelConfig, validate
from ragsc.errors import ConfigError


def parse_snr_range(spec: str) -> list[float]:
    """``"-5:20:1"`` (start:stop:step, stop included) or ``"0,5,10"`` -> list of SNRs in dB."""
    try:
        if ":" in spec:
            start, stop, step = (float(x) for x in spec.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            values = [round(start + i * step, 6)
                      for i in range(int(math.floor((stop - start) / step + 1e-9)) + 1)]
        else:
            values = [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise ConfigError("SNR range must be 'start:stop:step' (step > 0) or a comma list, "
                          f"got {spec!r}") from None
    lo, hi = SNR_RANGE_DB
    bad = [v for v in values if not math.isfinite(v) or not lo <= v <= hi]
    if not values or bad:
        raise ConfigError(f"SNRs must be finite and within [{lo}, {hi}] dB, got {spec!r}")
    return values


def parse_channels(spec: str) -> list[str]:
    names = [c.strip() for c in spec.split(",") if c.strip()]
    bad = [c for c in names if c not in CHANNELS]
    if not names or bad:
        raise ConfigError(f"unknown channel(s) {bad or spec!r}; choose from {', '.join(CHANNELS)}")
    return names


@dataclass
class SweepSettings:
    """Sample sizes of a sweep (defaults: a few minutes on 2 CPU cores for 2 channels x 26 SNRs)."""

    uncoded_symbols: int = 200_000
    codewords: int = 200
    k_symbols: int = 256  # per codeword (QPSK, R = 1/2 -> 256 information bits)
    analog_items: int = 2000
    analog_dim: int = 384
    seed: int = 0


def run_sweep(channels: list[str], snrs: list[float], settings: SweepSettings = SweepSettings(),
              progress: bool = True) -> list[dict]:
    """Measure every path at every (channel, SNR); return rows ``channel, snr_db, path, metric, value,
    theory``."""
    rows: list[dict] = []
    g = torch.Generator().manual_seed(settings.seed)
    z = F.normalize(torch.randn(settings.analog_items, settings.analog_dim, generator=g), dim=-1)
    grid = [(c, s) for c in channels for s in snrs]
    for channel, snr in tqdm(grid, desc="channel sweep", disable=not progress):
        seed = settings.seed
        link = ChannelConfig(channel=channel, fading="block", seed=seed, k_symbols=None)

        def on_link(link: ChannelConfig = link, **change) -> ChannelConfig:  # a validated variant of the link
            return validate(ChannelConfig, {**link.model_dump(), **change}, "channel sweep")

        # channel and snr bound as defaults: the row records this iteration's values
        def add(path: str, metric: str, value: float, th: float | None = None, *, channel: str = channel,
                snr: float = snr) -> None:
            rows.append({"channel": channel, "snr_db": snr, "path": path, "metric": metric, "value": value,
                         "theory": "" if th is None or not math.isfinite(th) else th})

        for m in (4, 16):  # uncoded QAM, fast fading so every symbol sees its own h
            coding = CodingConfig(coded=False, modulation=m)
            phy = CodedPHY(on_link(k_symbols=settings.uncoded_symbols // 16, fading="fast"), coding)
            bits = torch.randint(0, 2, (16, phy.info_bits), generator=g).float()
            res = phy(bits, snr)
            th = None
            if channel == "awgn":
                th = float(theory.ber_qam_awgn(coding.bits_per_symbol, snr))
            elif channel == "rayleigh" and m == 4:
                th = float(theory.ber_qpsk_rayleigh(snr))
            add(f"uncoded_qam{m}", "ber", res.bit_errors / res.n_bits, th)

        phy = CodedPHY(on_link(k_symbols=settings.k_symbols),
                       CodingConfig(coded=True, modulation=4, code_rate=0.5))
        bits = torch.randint(0, 2, (settings.codewords, phy.info_bits), generator=g).float()
        res = phy(bits, snr)
        add("ldpc_qam4_r0.5", "ber", res.bit_errors / res.n_bits)
        # block Rayleigh: the outage probability at R * log2(M) = 1 bit/use is the ideal long code's BLER
        add("ldpc_qam4_r0.5", "bler", 1.0 - res.crc_ok.float().mean().item(),
            float(theory.outage_rayleigh(1.0, snr)) if channel == "rayleigh" else None)

        for eq in ("mmse", "zf"):
            rx = AnalogLink(link, snr_db=snr, equalizer=eq)(z)
            has_th = channel in ("awgn", "rayleigh")
            add(f"analog_{eq}", "mse", rx.mse, float(theory.analog_mse(channel, snr, eq)) if has_th else None)
            add(f"analog_{eq}", "cosine", rx.cosine.mean().item(),
                float(theory.analog_cosine(channel, snr)) if has_th else None)
        if channel in ("awgn", "rayleigh"):  # no closed form here for Rician
            add("capacity", "bits_per_use", float(theory.capacity_awgn(snr) if channel == "awgn"
                                                   else theory.capacity_rayleigh(snr)))
    return rows


# the CSV's columns, in order: one row per channel, SNR, path and metric ("theory" empty where none exists)
COLUMNS = ("channel", "snr_db", "path", "metric", "value", "theory")
# the plot's panels, one per metric: (metric, axis label, log scale)
PANELS = (("ber", "BER", True), ("bler", "BLER", True), ("mse", "feature MSE (per real dim)", True),
          ("cosine", "cosine(sent, received)", False))


def write_csv(rows: list[dict], path: Path) -> None:
    """Write :func:`run_sweep`'s rows to ``path`` as CSV with the columns :data:`COLUMNS`."""
    report.write_csv(rows, path, COLUMNS)


def plot(rows: list[dict], path: Path) -> None:
    """One row of :data:`PANELS` per channel (BER, BLER, MSE, cosine): markers measured, lines theory."""
    channels = list(dict.fromkeys(r["channel"] for r in rows))
    grid = [[_panel(rows, ch, metric, label, log) for metric, label, log in PANELS] for ch in channels]
    report.plot_grid(grid, path, title="ragsc link sweep (Es = 1, one channel use = one complex symbol)",
                     panel_size=(4.2, 3.4), title_size=10, dpi=120)


def _panel(rows: list[dict], channel: str, metric: str, label: str, log: bool) -> report.Panel:
    """One channel's metric: per path, the measured points and the theory line in the same colour."""
    sel = [r for r in rows if r["channel"] == channel and r["metric"] == metric]
    lines = []
    for n, p in enumerate(dict.fromkeys(r["path"] for r in sel)):
        pts = sorted((r["snr_db"], r["value"], r["theory"]) for r in sel if r["path"] == p)
        lines.append(report.Line([a for a, _, _ in pts], [b for _, b, _ in pts], f"{p} (measured)",
                                 {"color": f"C{n}", "marker": "o", "ls": "none", "ms": 3.5}))
        # theory below what the sample size can measure would only stretch the axis
        th = [(a, t) for a, _, t in pts if t != "" and (not log or t > 1e-7)]
        if th:
            lines.append(report.Line([a for a, _ in th], [t for _, t in th], f"{p} (theory)",
                                     {"color": f"C{n}", "ls": "-", "lw": 1}))
    return report.Panel(f"{channel}: {label}", lines, xlabel="SNR = Es/N0 [dB]", log_y=log, legend=6,
                        title_size=9, label_size=8)
