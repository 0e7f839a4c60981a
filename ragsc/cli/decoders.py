"""``ragsc decoders``: train the receiver's decoders (:mod:`ragsc.decoders.train`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ragsc.config import validate

app = typer.Typer(help="The receiver's trained decoders (text GRU, image generator, VQA head).",
                  no_args_is_help=True)


@app.command("train")
def decoders_train(
    out: Path | None = typer.Option(None, help="The decoders folder to write: new, empty, or decoders to "
                                               "replace (default: the shipped encoders/embedded/decoders)."),
    encoder: str = typer.Option("embedded", help="The encoder the decoders read."),
    text_steps: int = typer.Option(2000, min=1, help="Training steps of the text GRU."),
    image_steps: int = typer.Option(1200, min=1, help="Training steps of the image generator."),
    vqa_steps: int = typer.Option(2500, min=1, help="Training steps of the VQA answer head."),
    seed: int = typer.Option(0, help="Random seed."),
    only: str | None = typer.Option(None, help="Comma list of text,image,vqa: retrain only these (the "
                                               "others and their PCA basis are kept from --out, or from "
                                               "the shipped decoders when --out holds none yet)."),
) -> None:
    """Train the text, image and VQA decoders behind an encoder (about 13 minutes on 2 CPU cores)."""
    from ragsc.decoders.bundle import default_path
    from ragsc.decoders.train import TrainDecodersConfig, train_decoders
    from ragsc.saved import check_target

    target = check_target(out or default_path(), overwrite=True, kind="decoders", option="--out")
    cfg = validate(TrainDecodersConfig, {"encoder": encoder, "text_steps": text_steps,
                                         "image_steps": image_steps, "vqa_steps": vqa_steps,
                                         "seed": seed}, "decoders train")
    parts = tuple(p.strip() for p in only.split(",") if p.strip()) if only else ("text", "image", "vqa")
    kept = target if (target / "config.json").is_file() else default_path()  # the decoders --only keeps
    info = train_decoders(target, cfg, parts=parts, base=kept)
    typer.echo(f"wrote {target}\n" + json.dumps({k: v for k, v in info.items() if k != "config"}, indent=2))
