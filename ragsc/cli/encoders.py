"""``ragsc encoders``: list the backends, train the embedded default's heads, evaluate an encoder
(:mod:`ragsc.encoders`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsc.report import SCORE_HEADER, score_rows, table

app = typer.Typer(help="Multimodal encoders: list, train the embedded default, evaluate.",
                  no_args_is_help=True)


@app.command("list")
def encoders_list() -> None:
    """Show the encoder backends and the shipped embedded heads' measured scores."""
    from ragsc.encoders import backends
    from ragsc.encoders.embedded import default_heads
    from ragsc.saved import read_header

    typer.echo(table([[k, v] for k, v in backends().items()], ["backend", "spec / what"]))
    heads = default_heads()
    if (heads / "config.json").is_file():
        metrics = read_header(heads)["info"]
        if "scores" in metrics:
            typer.echo(f"\nembedded heads: {heads}\n" + table(score_rows(metrics["scores"]), SCORE_HEADER))


@app.command("train-embedded")
def encoders_train_embedded(
    out: Path | None = typer.Option(None, help="A new folder for the heads (default: replace the shipped "
                                               "encoders/embedded/heads)."),
    epochs: int = typer.Option(40, min=1, help="Training epochs over easy-VQA train."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train the embedded encoder's alignment heads (frozen towers; easy-VQA + ImageNet class names)."""
    from ragsc.encoders.embedded import default_heads
    from ragsc.encoders.train_embedded import TrainHeadsConfig, train_embedded
    from ragsc.saved import check_target

    target = check_target(out or default_heads(), overwrite=out is None, kind="embedded-heads",
                          option="--out")
    scores = train_embedded(target, TrainHeadsConfig(epochs=epochs, seed=seed), overwrite=out is None)
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
