"""The ``ragsc`` command: a thin layer over the public functions.

``ragsc encoders list | train-embedded | eval``, ``ragsc spec validate``, ``ragsc demo``. A user
mistake prints ``error: ...`` and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # defaults never need a hub; a real one is opt-in
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragsc.errors import RagscError  # noqa: E402
from ragsc.report import SCORE_HEADER, score_rows, table  # noqa: E402

app = typer.Typer(help="ragsc: retrieval-augmented multimodal semantic communication.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
encoders_app = typer.Typer(help="Multimodal encoders: list, train the embedded default, evaluate.",
                           no_args_is_help=True)
spec_app = typer.Typer(help="Pipeline specs (pipelines/*.yaml).", no_args_is_help=True)
channel_app = typer.Typer(help="The wireless link: SNR sweeps against theory.", no_args_is_help=True)
app.add_typer(encoders_app, name="encoders")
app.add_typer(spec_app, name="spec")
app.add_typer(channel_app, name="channel")


@encoders_app.command("list")
def encoders_list() -> None:
    """Show the encoder backends and the shipped embedded heads' measured scores."""
    from safetensors import safe_open

    from ragsc._assets import asset_dir
    from ragsc.encoders import BACKENDS

    typer.echo(table([[k, v] for k, v in BACKENDS.items()], ["backend", "spec / what"]))
    heads = asset_dir("encoders") / "embedded" / "heads.safetensors"
    if heads.is_file():
        with safe_open(str(heads), framework="pt") as f:
            metrics = json.loads((f.metadata() or {}).get("metrics", "{}"))
        if "scores" in metrics:
            typer.echo(f"\nembedded heads: {heads}\n" + table(score_rows(metrics["scores"]), SCORE_HEADER))


@encoders_app.command("train-embedded")
def encoders_train_embedded(
    out: Optional[Path] = typer.Option(None, help="Where to write the heads (default: the shipped encoders/embedded/heads.safetensors)."),
    epochs: int = typer.Option(40, min=1, help="Training epochs over easy-VQA train."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the embedded encoder's alignment heads (frozen towers; easy-VQA + ImageNet class names)."""
    from ragsc._assets import asset_dir
    from ragsc.encoders.train_embedded import TrainConfig, train_embedded

    target = out or asset_dir("encoders") / "embedded" / "heads.safetensors"
    scores = train_embedded(target, TrainConfig(epochs=epochs, seed=seed))
    typer.echo(f"wrote {target}\n" + table(score_rows(scores), SCORE_HEADER))


@encoders_app.command("eval")
def encoders_eval(
    spec: str = typer.Option("embedded", help="Encoder spec."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use only the first N easy-VQA test images."),
) -> None:
    """Caption retrieval R@1 (both ways) on easy-VQA test and the captioned sample photos."""
    from ragsc.encoders import load_encoder
    from ragsc.encoders.evaluate import standard_suite

    enc = load_encoder(spec)
    typer.echo(f"{enc} fingerprint={enc.fingerprint}")
    typer.echo(table(score_rows(standard_suite(enc, limit)), SCORE_HEADER))


@spec_app.command("validate")
def spec_validate(path: Path) -> None:
    """Validate a YAML pipeline spec and print it with defaults filled in."""
    from ragsc.config import load_pipeline_spec

    typer.echo(json.dumps(load_pipeline_spec(path).model_dump(), indent=2))


@channel_app.command("sweep")
def channel_sweep(
    channel: str = typer.Option("awgn,rayleigh", help="Comma list of channels: awgn, rayleigh, rician."),
    snr: str = typer.Option("-5:20:1", help="SNR range in dB (Es/N0): start:stop:step or a comma list."),
    out: Path = typer.Option(Path("channel_sweep"), help="Output folder for the CSV and PNG."),
    codewords: int = typer.Option(200, min=10, help="LDPC codewords per SNR."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """BER/BLER of the digital paths and MSE/cosine of the analog path vs SNR, with closed forms."""
    from ragsc.channel.sweep import SweepSettings, parse_channels, parse_snr_range, plot, run_sweep, write_csv

    channels, snrs = parse_channels(channel), parse_snr_range(snr)  # validate before any work
    rows = run_sweep(channels, snrs, SweepSettings(codewords=codewords, seed=seed))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "channel_sweep.csv")
    plot(rows, out / "channel_sweep.png")
    typer.echo(f"wrote {out / 'channel_sweep.csv'} and {out / 'channel_sweep.png'} ({len(rows)} rows)")


@app.command()
def demo(limit: int = typer.Option(240, min=1, help="easy-VQA test images to use.")) -> None:
    """The main job on the embedded default (grows with each issue: today the encoder stage)."""
    from ragsc.demo import run_demo

    run_demo(limit=limit, echo=typer.echo)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user mistakes become one ``error:`` line and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except RagscError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # click usage errors arrive here in standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
