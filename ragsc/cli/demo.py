"""``ragsc demo``: the main job on the embedded default (:mod:`ragsc.demo`)."""

from __future__ import annotations

import typer


def demo(
    limit: int = typer.Option(240, min=1, help="easy-VQA test images for the encoder check."),
    n: int = typer.Option(8, min=1, help="Sentences and images in the sweep (8: about 5 minutes in all on "
                                         "2 cores)."),
    lm: bool = typer.Option(True, help="Also decode the example sentences the embedding way "
                            "(the semantic-embedding baseline)."),
) -> None:
    """The main job on the embedded default: KBs, the multitask pipeline, examples and a baseline sweep."""
    from ragsc.demo import run_demo

    run_demo(limit=limit, echo=typer.echo, n=n, lm=lm)
