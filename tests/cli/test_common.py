"""ragsc/cli/_common.py: the provenance line replays the command it describes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer

from ragsc.cli._common import provenance


def toy_app(seen: list) -> typer.Typer:
    """A group with one command of every kind of parameter the ragsc commands use."""
    app = typer.Typer()
    group = typer.Typer()
    app.add_typer(group, name="group")

    @group.command("run")
    def run(
        ctx: typer.Context,
        path: Path = typer.Argument(...),
        k: int = typer.Option(5, "-k"),
        name: str | None = typer.Option(None),
        rate: float = typer.Option(1e-3),
        lam: str = typer.Option("0,0.1"),
        teacher: bool = typer.Option(True),
        as_json: bool = typer.Option(False, "--json"),
        ids: list[int] = typer.Option([], "--id"),
    ) -> None:
        seen.append((provenance(ctx), dict(ctx.params)))

    @group.command("other")
    def other() -> None:
        pass

    return app


@pytest.mark.parametrize("args", [
    ["a folder/x y"],
    ["p", "-k", "2", "--name", "it's", "--rate", "2.5e-07", "--lam", "-1", "--no-teacher", "--json",
     "--id", "3", "--id", "4"],
])
def test_provenance_replays_the_command(args):
    seen = []
    toy_app(seen)(["group", "run", *args], standalone_mode=False, prog_name="python -m something")
    line, params = seen[0]
    words = shlex.split(line)
    assert words[:3] == ["ragsc", "group", "run"]  # whatever the program was started as
    toy_app(seen)(words[1:], standalone_mode=False)
    assert seen[1] == (line, params)  # the same settings, the same line


def test_provenance_names_every_setting_defaults_included():
    seen = []
    toy_app(seen)(["group", "run", "p"], standalone_mode=False)
    assert seen[0][0] == "ragsc group run p -k 5 --rate 0.001 --lam 0,0.1 --teacher"
