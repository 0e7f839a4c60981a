"""``ragsc channel``: SNR sweeps of the wireless link against theory (:mod:`ragsc.channel.sweep`)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="The wireless link: SNR sweeps against theory.", no_args_is_help=True)


@app.command("sweep")
def channel_sweep(
    channel: str = typer.Option("awgn,rayleigh", help="Comma list of channels: awgn, rayleigh, rician."),
    snr: str = typer.Option("-5:20:1", help="SNR range in dB (Es/N0): start:stop:step or a comma list."),
    out: Path = typer.Option(Path("channel_sweep"), help="Output folder for the CSV and PNG: new, empty, or "
                                                         "holding only a previous sweep's (replaced)."),
    codewords: int = typer.Option(200, min=10, help="LDPC codewords per SNR."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """BER/BLER of the digital paths and MSE/cosine of the analog path vs SNR, with closed forms."""
    from ragsc.channel.sweep import SweepSettings, parse_channels, parse_snr_range, plot, run_sweep, write_csv
    from ragsc.targets import check_folder, only_files

    channels, snrs = parse_channels(channel), parse_snr_range(snr)  # validate before any work
    check_folder(out, "--out", reuse=only_files("channel_sweep.csv", "channel_sweep.png",
                                                what="a previous sweep's channel_sweep.csv and .png"))
    rows = run_sweep(channels, snrs, SweepSettings(codewords=codewords, seed=seed))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "channel_sweep.csv")
    plot(rows, out / "channel_sweep.png")
    typer.echo(f"wrote {out / 'channel_sweep.csv'} and {out / 'channel_sweep.png'} ({len(rows)} rows)")
