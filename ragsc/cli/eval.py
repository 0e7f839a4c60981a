"""``ragsc eval SPEC``: a pipeline swept over SNRs and channels against the baselines
(:mod:`ragsc.eval`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsc.errors import ConfigError


def eval_pipeline(
    spec: Path = typer.Argument(..., help="Pipeline spec (pipelines/<task>.yaml)."),
    snr: str = typer.Option("-5:20:5", help="SNR range in dB (Es/N0): start:stop:step or a comma list."),
    channel: str = typer.Option("awgn,rayleigh", help="Comma list of channels: awgn, rayleigh, rician."),
    out: Path = typer.Option(Path("eval"), help="Output folder for eval.csv and the PNG plots: new, empty, "
                                                "or holding only a previous eval's (replaced)."),
    n: int = typer.Option(50, min=1, help="Items per task kind (sentences, images)."),
    methods: str = typer.Option("semantic+rag,semantic,semantic-embedding,retrieval,digital,digital-lm,ideal,"
                                "noiseless",
                                help="Comma list of methods to compare."),
    seed: int = typer.Option(0, help="Random seed (items, noise)."),
    k_symbols: int | None = typer.Option(
        None, "--k-symbols", min=1,
        help="Complex symbols per image (and per sentence sent as an embedding), for every method "
             "(default: the spec's channel.k_symbols); sentences on the token link cost their tokens."),
    subset: str = typer.Option("all", help="Sentences and images to send: all (half held by the KBs, half "
                                           "novel), held (KB-held only) or novel (in no KB, no training)."),
) -> None:
    """Sweep a pipeline over SNRs and channels against the baselines at equal channel uses: CSV + PNG."""
    from ragsc.channel.sweep import parse_channels, parse_snr_range
    from ragsc.config import load_pipeline_spec
    from ragsc.eval import SUBSETS, SWEEP_METHODS, run_eval, save, summary_table
    from ragsc.pipelines import Pipeline
    from ragsc.targets import check_folder, only_files

    channels, snrs = parse_channels(channel), parse_snr_range(snr)  # validate before any work
    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    if not chosen or any(m not in SWEEP_METHODS for m in chosen):
        raise ConfigError(f"--methods must be a comma list of {', '.join(SWEEP_METHODS)}, got {methods!r}")
    if subset not in SUBSETS:
        raise ConfigError(f"--subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    check_folder(out, "--out", reuse=only_files("eval.csv", "eval_*.png",
                                                what="a previous eval's eval.csv and eval_*.png"))
    config = load_pipeline_spec(spec).model_dump()
    if k_symbols is not None:
        config["channel"]["k_symbols"] = k_symbols
    pipe = Pipeline.from_config(config)
    rows = run_eval(pipe, channels, snrs, n=n, seed=seed, methods=chosen, subset=subset)
    csv_path, pngs = save(rows, out)
    typer.echo(summary_table(rows))
    typer.echo(f"wrote {csv_path} and {', '.join(str(p) for p in pngs)} ({len(rows)} rows)")
