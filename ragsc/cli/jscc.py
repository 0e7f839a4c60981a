"""``ragsc jscc``: train the image JSCC codec on photos (yours, or the shipped codec's) and evaluate it."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="The image JSCC codec: photos of any size through the channel.", no_args_is_help=True)

DATA_HELP = (
    "A folder of photos (searched recursively; 10 % of them, chosen by a hash of their path, validate), "
    "or 'debian': the shipped codec's photos from Debian's background packages"
)


def _photos(data: str) -> tuple[list[Path], list[Path]]:
    from ragsc.datasets.debian_photos import photo_paths
    from ragsc.datasets.folders import list_photos, split_photos

    if data == "debian":
        return photo_paths()
    return split_photos(list_photos(data), data)


def _table(rows: list[dict], keys: list[str]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _snr_pair(text: str) -> tuple[float, float]:
    from ragsc.errors import ConfigError

    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--snr-range must be lo:hi in dB (e.g. -5:25), got {text!r}") from None
    return lo, hi


@app.command("train")
def jscc_train(
    ctx: typer.Context,
    data: str = typer.Option(..., help=DATA_HELP),
    out: Path = typer.Option(
        ...,
        help="The run folder: new or empty (or an unfinished run, with --resume). "
        "It ends as the codec's folder, which a pipeline spec names.",
    ),
    ratio: str = typer.Option(
        "1/48,1/12,1/6",
        help="Bandwidth ratios the one codec sends (a comma list; both ends are told which). Each must be "
        "an even number of 384ths.",
    ),
    snr_range: str = typer.Option("-5:25", help="SNRs (dB) trained over, lo:hi (drawn uniformly)."),
    channel: str = typer.Option("awgn,rayleigh,rician", help="Channel kinds trained on (one per batch)."),
    steps: int = typer.Option(6000, min=1, help="Most training steps (a plateau stops it sooner)."),
    batch_size: int = typer.Option(16, min=1, max=1024),
    patch: int = typer.Option(128, min=16, max=1024, help="Training crop side in pixels (a multiple of 8)."),
    lr: float = typer.Option(1e-3, min=0.0),
    patience: int = typer.Option(8, min=1, help="Validations without a gain before stopping."),
    max_minutes: float | None = typer.Option(
        None, help="Stop after this long (the best codec so far is kept)."
    ),
    side_info: bool = typer.Option(False, help="Give the decoder the side-information branch (KB photos)."),
    init: Path | None = typer.Option(
        None,
        help="Start from this trained codec's weights (with --side-info: only the side-information branch "
        "trains; the codec's transmitter and plain decoder stay exactly as they were).",
    ),
    resume: bool = typer.Option(False, help="Continue the unfinished run in --out."),
    seed: int = typer.Option(0),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Train an image JSCC codec through the simulated channel (the shipped one: --data debian, 6,000 steps,
    about 40 minutes on 2 CPU cores)."""
    from ragsc.channel.jscc import JSCCCodec, JSCCConfig
    from ragsc.channel.jscc.config import SOURCE_VALUES_PER_POSITION, parse_ratio
    from ragsc.channel.sweep import parse_channels
    from ragsc.config import validate
    from ragsc.distill.image_jscc import JSCCTrainConfig, train_jscc
    from ragsc.errors import InputError
    from ragsc.saved import check_target

    if not resume:
        check_target(out, option="--out")
    ratios = [parse_ratio(r) for r in ratio.split(",") if r.strip()]
    levels = sorted({r * 2 * SOURCE_VALUES_PER_POSITION for r in ratios})
    if not ratios or any(lv.denominator != 1 or lv % 2 for lv in levels):
        raise InputError(
            f"--ratio {ratio}: each ratio must be an even number of 384ths (1/48, 1/12, 1/6, ...)"
        )
    init_codec = JSCCCodec.load(init) if init is not None else None
    base = init_codec.config.model_dump() if init_codec is not None else {}
    config = validate(
        JSCCConfig,
        {
            **base,
            "levels": tuple(int(x) for x in levels),
            "max_channels": int(levels[-1]),
            "snr_range_db": _snr_pair(snr_range),
            "channels": tuple(parse_channels(channel)),
            "side_info": side_info,
        },
        "--ratio",
    )
    train_cfg = validate(
        JSCCTrainConfig,
        {
            "steps": steps,
            "batch_size": batch_size,
            "patch": patch,
            "lr": lr,
            "patience": patience,
            "max_minutes": max_minutes,
            "seed": seed,
            "side_only": side_info and init is not None,
        },
        "jscc train",
    )
    train, val = _photos(data)
    codec = JSCCCodec(config)
    if init_codec is not None:
        missing = codec.load_state_dict(init_codec.state_dict(), strict=False)
        if missing.unexpected_keys or any(not k.startswith(("side.", "fuse.")) for k in missing.missing_keys):
            raise InputError(
                f"--init {init}: its architecture is not this codec's (widths, blocks, channels)"
            )
    from ragsc.cli._common import provenance

    run = train_jscc(
        codec,
        train,
        val,
        out,
        train_cfg,
        resume=resume,
        progress=progress,
        info={"command": provenance(ctx), "data": data, "validation_photos": [p.name for p in val]},
    )
    typer.echo(
        f"wrote {out}: {codec.num_parameters():,} parameters, validation PSNR {run.best_db:.2f} dB "
        f"after {run.step} steps ({run.seconds / 60:.1f} min; {run.stopped})"
    )


@app.command("eval")
def jscc_eval(
    codec: Path = typer.Argument(..., help="The codec's folder."),
    data: str = typer.Option(
        ...,
        help="A folder of photos to score (all of them), or 'heldout': the image "
        "benchmark's 24 held-out photos.",
    ),
    snr: str = typer.Option("0,10,20", help="SNRs in dB: start:stop:step or a comma list."),
    channel: str = typer.Option("awgn,rayleigh", help="Channel kinds."),
    ratio: str | None = typer.Option(
        None, help="Bandwidth ratios (comma list; default: every one the codec sends)."
    ),
    seed: int = typer.Option(0),
    out: Path | None = typer.Option(
        None, help="Also write the rows as JSON to this file (written whole, replacing it)."
    ),
) -> None:
    """PSNR and MS-SSIM of photos through a codec, per channel, SNR and ratio."""
    from ragsc.channel.jscc import JSCCCodec
    from ragsc.channel.sweep import parse_channels, parse_snr_range
    from ragsc.datasets.folders import list_photos
    from ragsc.datasets.photos import heldout_photo_paths
    from ragsc.encoders.inputs import load_image
    from ragsc.eval.image import evaluate_jscc
    from ragsc.targets import check_file

    if out is not None:
        check_file(out, "--out")
    model = JSCCCodec.load(codec)
    ratios = [r.strip() for r in ratio.split(",")] if ratio else [str(r) for r in model.config.ratios]
    for r in ratios:
        model.config.level_for(r)
    paths = [p for _, p in heldout_photo_paths()] if data == "heldout" else list_photos(data)
    photos = [load_image(p, i) for i, p in enumerate(paths)]
    rows = evaluate_jscc(
        model, photos, parse_snr_range(snr), parse_channels(channel), ratios, seed=seed, progress=True
    )
    typer.echo(f"{len(photos)} photos from {data}")
    typer.echo(
        _table(
            rows, ["channel", "snr_db", "ratio", "psnr_db", "ms_ssim", "channel_uses", "seconds_per_photo"]
        )
    )
    if out is not None:
        out.write_text(json.dumps({"codec": str(codec), "data": str(data), "rows": rows}, indent=1) + "\n")
