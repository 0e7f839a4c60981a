"""``ragsc federated``: split fine-tuning in process, or as a Flower server and its clients
(:mod:`ragsc.federated`)."""

from __future__ import annotations

from pathlib import Path

import typer

from ragsc.cli._common import provenance
from ragsc.report import table

app = typer.Typer(help="Federated split fine-tuning: device adapters, a server-side receiver, FedAvg.",
                  no_args_is_help=True)


def _federated_spec(spec: Path, engine: str | None = None, rounds: int | None = None):
    from ragsc.federated.config import load_spec, spec_from

    s = load_spec(spec)
    if engine is None and rounds is None:
        return s
    d = s.model_dump(mode="json")
    d["engine"] = engine or d["engine"]
    d["train"]["rounds"] = rounds or d["train"]["rounds"]
    return spec_from(d)


def _federated_table(result) -> str:
    rows = [["0", "-", "-", "-", f"{result.initial_accuracy:.3f}", "-", "-", "-", "-"]]
    for r in result.rounds:
        rows.append([str(r.round), str(len(r.participants)), str(len(r.completed)),
                     ",".join(str(c) for c in r.dropped) or "-", f"{r.accuracy:.3f}", f"{r.train_loss:.3f}",
                     f"{r.uplink_bytes / 1e3:,.1f}", f"{r.downlink_bytes / 1e3:,.1f}",
                     f"{r.uplink_ratio:.4f}"])
    return table(rows, ["round", "clients", "finished", "dropped", "accuracy", "train loss", "uplink kB",
                        "downlink kB", "uplink / full FedAvg"])


@app.command("run")
def federated_run(
    ctx: typer.Context,
    spec: Path = typer.Argument(..., help="A federated spec, YAML or JSON (pipelines/federated/*.yaml)."),
    engine: str | None = typer.Option(None, help="inprocess, flower-sim (Ray) or flower-grpc (localhost "
                                                 "processes); default: the spec's."),
    rounds: int | None = typer.Option(None, min=1, help="Rounds (default: the spec's train.rounds)."),
    out: Path | None = typer.Option(None, help="A new or empty folder for the run: the trained adapters "
                                               "and receiver in model/ (a saved model), history.json / "
                                               ".csv, accuracy.png."),
    centralised: bool = typer.Option(False, help="Also fine-tune the same model on all the data in one "
                                                 "place and print the accuracy ratio."),
) -> None:
    """Federated split fine-tuning: per round, accuracy over the channel and the bytes up and down."""
    from ragsc.federated import centralised_spec, plot_runs, run_federated
    from ragsc.targets import check_folder

    if out is not None:
        check_folder(out, "--out")  # before any training: a run's results go into a new or empty folder
    s = _federated_spec(spec, engine, rounds)
    result = run_federated(s, progress=True)
    c = s.clients
    typer.echo(f"{s.data.dataset}: {c.n} clients (Dirichlet alpha {c.alpha:g}, {c.fraction:.0%} per round, "
               f"dropout {c.dropout:g}), {s.channel.channel} at {s.channel.snr_db:g} dB, "
               f"{s.channel.k_symbols} symbols per image, engine {result.engine}; accuracy on the "
               + (f"{s.data.n_val} validation items held back from the clients" if s.data.evaluate_on ==
                  "validation" else f"{s.data.n_test or 'all'} test items"))
    typer.echo(_federated_table(result))
    summary = result.summary()
    skipped = [r for r in result.rounds if r.skipped]
    if skipped:
        typer.echo(f"skipped rounds: {', '.join(str(r.round) for r in skipped)} ({skipped[0].skipped})")
    typer.echo(f"device parameters trained {summary['trainable_params']:,} of {summary['device_params']:,}; "
               f"uplink per round {summary['uplink_bytes_per_round'] / 1e3:,.1f} kB = "
               f"{summary['uplink_ratio']:.4f} of full-model FedAvg's")
    ref = None
    if centralised:
        ref = run_federated(centralised_spec(s), progress=True)
        typer.echo(f"centralised fine-tuning: accuracy {ref.accuracy:.3f}; federated / centralised "
                   f"{result.accuracy / ref.accuracy:.3f}")
    if out is not None:
        result.save(out, info={"command": provenance(ctx)})
        png = plot_runs({f"federated ({result.engine})": result}, out / "accuracy.png",
                        title=f"{s.data.dataset}, {s.clients.n} clients",
                        reference=("centralised", ref) if ref is not None else None)
        typer.echo(f"wrote {out} (adapters, receiver, history) and {png}")


@app.command("server")
def federated_server(
    spec: Path = typer.Argument(..., help="A federated spec, YAML or JSON."),
    address: str = typer.Option("0.0.0.0:8080", help="host:port the Flower server listens on."),
    out: Path | None = typer.Option(None, help="A new or empty folder for the adapters and the history."),
) -> None:
    """A Flower server for SPEC; start its clients with `ragsc federated client` (any machine)."""
    from ragsc.targets import check_folder

    if out is not None:
        check_folder(out, "--out")  # before Flower is imported or the server starts
    from ragsc.federated.flower import serve

    s = _federated_spec(spec, "flower-grpc")
    result = serve(s, address, progress=True)
    typer.echo(_federated_table(result))
    if out is not None:
        result.save(out)
        typer.echo(f"wrote {out}")


@app.command("client")
def federated_client(
    spec: Path = typer.Argument(..., help="The server's federated spec (the server refuses another)."),
    partition: int = typer.Option(..., min=0, help="This client's share of the data: 0 .. clients.n - 1."),
    address: str = typer.Option("127.0.0.1:8080", help="host:port of the Flower server."),
) -> None:
    """A Flower client of SPEC: trains its adapters on its own share of the data, sends symbols only."""
    from ragsc.federated.flower import start_client

    start_client(_federated_spec(spec, "flower-grpc"), partition, address)
