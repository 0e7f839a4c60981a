"""``ragsc decoders``: train the receiver's decoders (:mod:`ragsc.decoders.train`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ragsc.config import validate
from ragsc.errors import InputError

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
    data: str | None = typer.Option(None, help="Train the text and image decoders on your own content "
                                               "instead of the default corpora: any `ragsc kb ingest` "
                                               "source (a folder of images with same-name .txt captions, "
                                               "COCO captions JSON, JSONL, text lines); implies --only "
                                               "text,image (the VQA head trains on easy-VQA only)."),
    data_format: str | None = typer.Option(None, "--format", help="The --data source's format (as `ragsc "
                                                                  "kb ingest --format`; default: detected)."),
) -> None:
    """Train the text, image and VQA decoders behind an encoder (about 13 minutes on 2 CPU cores)."""
    from ragsc.decoders.bundle import default_path
    from ragsc.decoders.train import TrainDecodersConfig, train_decoders
    from ragsc.saved import check_target

    target = check_target(out or default_path(), overwrite=True, kind="decoders", option="--out")
    cfg = validate(TrainDecodersConfig, {"encoder": encoder, "text_steps": text_steps,
                                         "image_steps": image_steps, "vqa_steps": vqa_steps,
                                         "seed": seed}, "decoders train")
    everything = ("text", "image") if data is not None else ("text", "image", "vqa")
    parts = tuple(p.strip() for p in only.split(",") if p.strip()) if only else everything
    if data is not None:
        from ragsc.kb.sources import FORMATS

        if data_format is not None and data_format not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {data_format!r}")
        if not Path(data).exists() and data not in ("train", "test"):
            raise InputError(f"--data: no such file or folder: {data}")
    elif data_format is not None:
        raise InputError("--format describes the --data source; give --data too")
    kept = target if (target / "config.json").is_file() else default_path()  # the decoders --only keeps
    info = train_decoders(target, cfg, parts=parts, base=kept, data=data, data_format=data_format)
    typer.echo(f"wrote {target}\n" + json.dumps({k: v for k, v in info.items() if k != "config"}, indent=2))
