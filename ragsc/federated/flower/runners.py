"""Running a federation over Flower: in its simulation engine (:func:`run_simulation`, Ray) or as a gRPC
server here and client processes (:func:`run_grpc`; :func:`serve` and :func:`start_client` for a server
and clients started by hand, on this machine or others).

``flwr.simulation.run_simulation`` and ``flwr.server.start_server`` / ``flwr.client.start_client`` are
marked deprecated in Flower 1.42 in favour of ``flwr run``; they are what lets a library run a federation
from a function call, and they are used only here.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import flwr

from ragsc._deps import require_package
from ragsc.errors import ConfigError
from ragsc.federated.config import FederatedSpec, spec_from
from ragsc.federated.coordinator import FederationError
from ragsc.federated.flower.client import client_app, client_fn_for
from ragsc.federated.flower.server import FlowerServer
from ragsc.federated.results import FederatedResult

log = logging.getLogger(__name__)


def _finish(server: FlowerServer) -> FederatedResult:
    if server.error is not None:
        raise server.error
    if server.result is None:
        raise FederationError("the Flower server ended without a result")
    return server.result


def run_simulation(spec: FederatedSpec, progress: bool = False, num_cpus: int | None = None,
                   cpus_per_client: float = 1.0) -> FederatedResult:
    """Run the federation in Flower's simulation engine (Ray): ``clients.n`` virtual SuperNodes, as many
    running at once as ``num_cpus / cpus_per_client`` (default: every core of this machine)."""
    require_package("ray", "federated")
    from flwr.server import ServerAppComponents, ServerConfig
    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation as flwr_run_simulation

    spec = spec_from({**spec.model_dump(mode="json"), "engine": "flower-sim"})
    server = FlowerServer(spec, progress)
    components = ServerAppComponents(server=server, config=ServerConfig(num_rounds=1))
    app = ServerApp(server_fn=lambda context: components)
    init = {"num_cpus": num_cpus or os.cpu_count() or 1, "include_dashboard": False, "log_to_driver": False}
    flwr_run_simulation(server_app=app, client_app=client_app(spec), num_supernodes=spec.clients.n,
                        backend_config={"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
                                        "init_args": init})
    return _finish(server)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(spec: FederatedSpec, address: str, progress: bool = False) -> FederatedResult:
    """Run the Flower server of a federation at ``address`` (``host:port``) until its rounds are done; the
    ``clients.n`` clients connect with :func:`start_client` (``ragsc federated client``), from this
    machine or others. Main thread only (Flower installs signal handlers; they are restored after)."""
    if threading.current_thread() is not threading.main_thread():
        raise FederationError("the Flower server runs in the main thread; call it from there")
    server = FlowerServer(spec, progress)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        flwr.server.start_server(server_address=address, server=server,
                                 config=flwr.server.ServerConfig(num_rounds=1, round_timeout=spec.timeout_s))
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    return _finish(server)


def start_client(spec: FederatedSpec, partition: int, address: str) -> None:
    """Run client ``partition`` of a federation against the Flower server at ``address`` until it ends."""
    if not 0 <= partition < spec.clients.n:
        raise ConfigError(f"partition must be one of 0..{spec.clients.n - 1}, got {partition}")
    flwr.client.start_client(server_address=address, client_fn=client_fn_for(spec, partition), insecure=True)


def run_grpc(spec: FederatedSpec, progress: bool = False, address: str | None = None,
             log_dir: str | Path | None = None) -> FederatedResult:
    """Run the federation as a Flower server in this process (:func:`serve`) and ``clients.n`` client
    processes (``python -m ragsc.federated.flower``) that connect to it over gRPC on localhost
    (``address``: default a free port on 127.0.0.1). The clients' logs go to ``log_dir`` (default: a
    temporary folder); their last lines are logged if the run fails."""
    spec = spec_from({**spec.model_dump(mode="json"), "engine": "flower-grpc"})
    address = address or f"127.0.0.1:{_free_port()}"
    logs = Path(log_dir or tempfile.mkdtemp(prefix="ragsc-flower-"))
    logs.mkdir(parents=True, exist_ok=True)
    spec_file = logs / "spec.json"
    spec_file.write_text(spec.model_dump_json())
    env = {**os.environ, "FLWR_TELEMETRY_ENABLED": "0"}
    env.setdefault("OMP_NUM_THREADS", "1")  # N client processes share the cores
    procs = []
    try:
        for p in range(spec.clients.n):
            out = open(logs / f"client-{p}.log", "w")
            cmd = [sys.executable, "-m", "ragsc.federated.flower", "client", str(spec_file), str(p), address]
            procs.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env), out))
        return serve(spec, address, progress)
    except BaseException:
        tails = "\n".join(f"--- client {p}:\n" + "".join((logs / f"client-{p}.log").read_text()
                                                          .splitlines(True)[-5:]) for p in range(len(procs)))
        log.error("flower-grpc clients' last lines:\n%s", tails)
        raise
    finally:
        for proc, out in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()


def _client_main(argv: list[str]) -> None:
    """``python -m ragsc.federated.flower client SPEC_JSON PARTITION ADDRESS``: one gRPC client."""
    if len(argv) != 4 or argv[0] != "client":
        sys.exit("usage: python -m ragsc.federated.flower client SPEC_JSON PARTITION ADDRESS")
    start_client(spec_from(json.loads(Path(argv[1]).read_text())), int(argv[2]), argv[3])
