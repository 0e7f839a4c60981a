"""The ``ragsc`` command: a thin layer over the public functions, one module per sub-app.

``ragsc encoders list | train-embedded | eval``, ``ragsc spec validate``, ``ragsc channel sweep``,
``ragsc kb create | ingest | search | stats | delete | export``, ``ragsc decoders train``,
``ragsc distill cache | train | search | eval``, ``ragsc federated run | server | client``,
``ragsc compress encoder | lm``, ``ragsc eval SPEC``, ``ragsc demo``, ``ragsc serve SPEC`` and
``ragsc send --to URL ITEMS``. A user mistake prints ``error: ...``
and exits with status 2, never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # defaults never need a hub; a real one is opt-in
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragsc.cli import (  # noqa: E402
    channel,
    compress,
    decoders,
    demo,
    distill,
    encoders,
    federated,
    jscc,
    kb,
    serve,
    spec,
)
from ragsc.cli import eval as eval_  # noqa: E402
from ragsc.cli.kb import kb_path  # noqa: E402
from ragsc.errors import RagscError  # noqa: E402

__all__ = ["app", "kb_path", "main"]

app = typer.Typer(help="ragsc: retrieval-augmented multimodal semantic communication.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
app.command("eval")(eval_.eval_pipeline)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("send")(serve.send)
for _name, _module in (("encoders", encoders), ("spec", spec), ("channel", channel), ("kb", kb),
                       ("decoders", decoders), ("distill", distill), ("federated", federated),
                       ("compress", compress), ("jscc", jscc)):
    app.add_typer(_module.app, name=_name)


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

        # recent typer (0.29 here) vendors click as typer._click: its usage errors derive from
        # TyperException, not click's
        # older typer (0.20, which Flower's extra pins) has no typer.exceptions: click's classes then
        usage = (click.ClickException,
                 getattr(getattr(typer, "exceptions", None), "TyperException", click.ClickException))
        if isinstance(exc, usage) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise
