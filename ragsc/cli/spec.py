"""``ragsc spec``: pipeline specs (:func:`ragsc.config.load_pipeline_spec`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Pipeline specs (pipelines/*.yaml).", no_args_is_help=True)


@app.command("validate")
def spec_validate(path: Path) -> None:
    """Validate a YAML pipeline spec and print it with defaults filled in."""
    from ragsc.config import load_pipeline_spec

    typer.echo(json.dumps(load_pipeline_spec(path).resolved(), indent=2))
