"""ragsc/cli/__init__.py: the command tree, and the console entry's exit statuses."""

from __future__ import annotations

import typer

from ragsc.cli import app

TREE = {"encoders": {"list", "train-embedded", "eval"}, "spec": {"validate"}, "channel": {"sweep"},
        "kb": {"create", "ingest", "search", "stats", "delete", "export", "shard"}, "decoders": {"train"},
        "distill": {"cache", "train", "search", "eval"}, "federated": {"run", "server", "client"},
        "compress": {"encoder", "lm"}, "jscc": {"train", "eval"}, "eval": None, "demo": None,
        "serve": None, "send": None}


def test_the_command_tree():
    root = typer.main.get_command(app)
    assert set(root.commands) == set(TREE)
    for name, commands in TREE.items():
        assert set(getattr(root.commands[name], "commands", None) or ()) == (commands or set()), name


def test_help_and_usage_errors(cli, tmp_path):
    code, out, _ = cli("--help")
    assert code == 0 and all(name in out for name in TREE)
    code, out, _ = cli("compress", "lm", "--help")
    assert code == 0 and "--keep-float" in out and "--tower" not in out
    code, _, err = cli("nonsense")
    assert code == 2 and "No such command" in err and "Traceback" not in err
    # the one-command form of compress is gone: its options belong to `compress encoder` or `compress lm`
    code, _, err = cli("compress", "--lm", "smollm2", "--out", tmp_path / "c")
    assert code == 2 and "No such option" in err and not (tmp_path / "c").exists()
