"""``ragsc serve SPEC`` (the receiver as a service) and ``ragsc send --to URL ITEMS...`` (a transmitter)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ragsc.errors import InputError


def serve(spec: str = typer.Argument(..., help="a shipped spec's name (multitask, text, ...) or a YAML path"),
          host: str = typer.Option("127.0.0.1", help="address to listen on (loopback by default)"),
          port: int = typer.Option(8000, help="port (0: any free one)"),
          token_file: Path | None = typer.Option(None, help="bearer token for writes (mode 600)"),
          protect_reads: bool = typer.Option(False, help="reads need the token too"),
          max_batch: int = typer.Option(32, help="items per decoding batch"),
          max_wait_ms: float = typer.Option(2.0, help="how long a request waits for company"),
          max_queue: int = typer.Option(256, help="items waiting before requests get 429"),
          cors_origin: list[str] = typer.Option([], help="an origin CORS allows (repeat; none: CORS off)"),
          engine: str = typer.Option("uvicorn", help="uvicorn, or ray (Ray Serve; extra: ray)"),
          replicas: int = typer.Option(1, help="Ray Serve replicas (--engine ray)")) -> None:
    """Serve a pipeline's receiver over HTTP: the API (/docs), the web page (/), /metrics."""
    from ragsc.pipelines.factory import load_spec
    from ragsc.serve.config import ServeConfig
    from ragsc.serve.security import Guard

    config = ServeConfig(host=host, port=port, token_file=token_file, protect_reads=protect_reads,
                         max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                         cors_origins=cors_origin, engine=engine, replicas=replicas)
    Guard(config.token_file, config.protect_reads)  # a bad token file fails before any model loads
    spec_ = load_spec(spec)
    if config.engine == "ray":
        from ragsc.serve.ray_serve import serve_on_ray

        serve_on_ray(spec_, config)
        return
    from ragsc.serve.server import serve as run

    typer.echo(f"ragsc: serving {spec_.name!r} on http://{host}:{port} (the page at /, the API at /docs); "
               "loading models...", err=True)
    run(spec_, config)


def send(items: list[str] = typer.Argument(..., help="sentences, or photo files (questions: --ask)"),
         to: str = typer.Option(..., "--to", help="the receiver's URL (http://127.0.0.1:8000)"),
         snr: float | None = typer.Option(None, "--snr", help="SNR in dB (default: the spec's)"),
         channel: str | None = typer.Option(None, help="awgn, rayleigh or rician (default: the spec's)"),
         seed: int | None = typer.Option(None, help="the channel's seed (default: the spec's)"),
         rag: bool | None = typer.Option(None, "--rag/--no-rag", help="default: the spec's"),
         ask: list[str] = typer.Option([], help="a question about every photo (repeat)"),
         token_file: Path | None = typer.Option(None, help="bearer token, for a server with --protect-reads"),
         out: Path | None = typer.Option(None, help="write the whole answer (JSON, images as base64 PNG) "
                                         "here"),
         ) -> None:
    """Transmit ITEMS to a served receiver: encoded and sent through the simulated channel here, the received
    symbols posted to it; prints what arrived."""
    from ragsc import targets
    from ragsc.client import Transmitter
    from ragsc.serve.security import read_token

    if out is not None:
        targets.check_file(out, "--out")
    photos = {".png", ".jpg", ".jpeg", ".webp", ".heic", ".heif", ".avif", ".bmp", ".tif", ".tiff", ".gif"}
    parsed = []
    for it in items:
        p = Path(it)
        if p.suffix.lower() in photos:
            if not p.is_file():
                raise InputError(f"{it}: no such photo")
            parsed.append({"image": p, "questions": list(ask)})
        else:
            parsed.append(it)
    token = read_token(token_file) if token_file is not None else None
    with Transmitter(to, token=token) as tx:
        answer = tx.send(parsed, snr_db=snr, channel=channel, seed=seed, rag=rag)
    for item, o, uses in zip(items, answer["outputs"], answer["channel_uses"]):
        got = o["text"] if o["kind"] == "text" else f"[photo] caption: {o['caption']!r}"
        typer.echo(f"{item!r} ({uses} channel uses) -> {got!r}")
        for q, a in zip(o["questions"], o["answers"]):
            typer.echo(f"    {q} -> {a}")
    if out is not None:
        targets.write_atomic(out, json.dumps(answer, indent=1))
        typer.echo(f"wrote {out}", err=True)
