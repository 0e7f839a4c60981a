"""``ragsc encoders``: list the backends, train the embedded default's heads, evaluate an encoder
(:mod:`ragsc.encoders`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ragsc.report import SCORE_HEADER, score_rows, table

app = typer.Typer(help="Multimodal encoders: list, train the embedded default, evaluate.",
                  no_args_is_help=True)


@app.command("list")
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


@app.command("train-embedded")
def encoders_train_embedded(
    out: Path | None = typer.Option(None, help="Where to write the heads (default: the shipped "
                                               "encoders/embedded/heads.safetensors)."),
    epochs: int = typer.Option(40, min=1, help="Training epochs over easy-VQA train."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the embedded encoder's alignment heads (frozen towers; easy-VQA + ImageNet class names)."""
    from ragsc._assets import asset_dir
    from ragsc.encoders.train_embedded import TrainConfig, train_embedded

    target = out or asset_dir("encoders") / "embedded" / "heads.safetensors"
    scores = train_embedded(target, TrainConfig(epochs=epochs, seed=seed))
    typer.echo(f"wrote {target}\n" + table(score_rows(scores), SCORE_HEADER))


@app.command("eval")
def encoders_eval(
    spec: str = typer.Option("embedded", help="Encoder spec."),
    limit: int | None = typer.Option(None, min=1, help="Use only the first N easy-VQA test images."),
) -> None:
    """Caption retrieval R@1 (both ways) on easy-VQA test and the captioned sample photos."""
    from ragsc.encoders import load_encoder
    from ragsc.encoders.evaluate import standard_suite

    enc = load_encoder(spec)
    typer.echo(f"{enc} fingerprint={enc.fingerprint}")
    typer.echo(table(score_rows(standard_suite(enc, limit)), SCORE_HEADER))
