"""Flower engines for federated split fine-tuning: real gRPC clients and server, or Flower's Ray simulation.

The same :class:`~ragsc.federated.client.Client`, :class:`~ragsc.federated.server.SplitServer` and
:class:`~ragsc.federated.engine.Coordinator` as in-process; Flower only carries the messages of
:mod:`ragsc.federated.protocol`.

Design. Split learning exchanges a batch of symbols and a gradient per local step, while Flower's
strategy round is one fit -> aggregate. Running the inner loop inside a client's ``fit`` against a server
object would only work in one process, so the exchange is made of Flower messages instead: the
coordinator runs inside a :class:`flwr.server.Server` subclass (:class:`SplitServer`'s ``fit``) and sends
one ``FitIns`` per client per exchange (``config["op"]``: ``begin`` with the global adapters, ``grad``
with the gradient at the cut, ``evaluate`` with the global adapters), the clients of an exchange in
parallel threads; each ``FitRes`` is an upload (received symbols, labels, CSI, noise variance), an update
(adapters + number of items) or a simulated dropout. A raised exception, an error reply or a lost
connection counts as a dropout. Only symbols, labels, gradients and adapters cross: images stay in the
client process. The legacy ``Server`` / ``Client`` pair is the one piece of Flower that runs unchanged
over both transports we use:

* ``flower-grpc`` (:func:`run_grpc`): ``flwr.server.start_server`` here and one ``flwr.client.start_client``
  process per client (gRPC bidi, localhost); each client process is ``python -m ragsc.federated.flower
  client`` with the spec and its partition, which can also be started by hand on other machines.
* ``flower-sim`` (:func:`run_simulation`): ``flwr.simulation.run_simulation`` with a ``ServerApp``
  (this server) and a ``ClientApp`` (the same client), on Ray actors.

Both APIs are marked deprecated in Flower 1.42 in favour of ``flwr run`` (SuperLink / SuperNode and a
packaged app); they are what lets a library run a federation from a function call, and they are used
here only through this module.

Flower builds a fresh client object per message (and Ray may run a node's messages in different worker
processes), so a client keeps its mid-round state (adapters, Adam moments, position) in Flower's
``context.state`` and its data and frozen model in a per-process cache; a client restored on another
worker recomputes the pending batch from the same seeds (:class:`~ragsc.federated.client.Client`).
Simulated dropouts are answered as a ``dropped`` reply rather than a crash, because a crashing gRPC client
process could not come back in a later round as the in-process one does; the server handles both alike.

Byte counts are the tensors' (as in-process), not Flower's framing. Telemetry of Flower and Ray is
switched off (``FLWR_TELEMETRY_ENABLED=0``, ``RAY_USAGE_STATS_ENABLED=0``): nothing leaves localhost.
"""

from __future__ import annotations

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPU asked for: leave devices alone

import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ragsc._deps import require_package  # noqa: E402
from ragsc.errors import ConfigError  # noqa: E402
from ragsc.federated.client import Client  # noqa: E402
from ragsc.federated.config import FederatedSpec, spec_from  # noqa: E402
from ragsc.federated.engine import (  # noqa: E402
    Coordinator,
    FederatedResult,
    FederationError,
    build_model,
    client_items,
)
from ragsc.federated.model import load_base  # noqa: E402
from ragsc.federated.protocol import (  # noqa: E402
    EVALUATOR,
    Begin,
    Calibrate,
    Dropped,
    Evaluate,
    Gradient,
    Message,
    Received,
    Reply,
    Stats,
    Update,
    Upload,
)

flwr = require_package("flwr", "federated")
from flwr.common import (  # noqa: E402
    Code,
    FitIns,
    FitRes,
    GetPropertiesIns,
    GetPropertiesRes,
    Status,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)

log = logging.getLogger(__name__)
STATE_KEY = "ragsc.federated.client"


# ----------------------------------------------------------------------------------------- encoding
def _c2r(t: torch.Tensor) -> np.ndarray:
    return torch.view_as_real(t.detach().to(torch.complex64).contiguous()).numpy()


def _r2c(a: np.ndarray) -> torch.Tensor:
    return torch.view_as_complex(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)))


def encode_message(msg: Message) -> FitIns:
    """A protocol message as a ``FitIns`` (weights in name order)."""
    if isinstance(msg, Calibrate):
        return FitIns(ndarrays_to_parameters([]), {"op": "calibrate", "round": 0})
    if isinstance(msg, Begin | Evaluate):
        op = "begin" if isinstance(msg, Begin) else "evaluate"
        arrays = [msg.weights[k].numpy() for k in sorted(msg.weights)]
        return FitIns(ndarrays_to_parameters(arrays), {"op": op, "round": msg.round})
    return FitIns(ndarrays_to_parameters([_c2r(msg.grad)]),
                  {"op": "grad", "round": msg.round, "step": msg.step})


def decode_message(ins: FitIns, keys: list[str]) -> Message:
    arrays = parameters_to_ndarrays(ins.parameters)
    op, r = str(ins.config["op"]), int(ins.config["round"])
    if op in ("begin", "evaluate"):
        weights = {k: torch.from_numpy(a.copy()) for k, a in zip(sorted(keys), arrays)}
        return Begin(r, weights) if op == "begin" else Evaluate(r, weights)
    if op == "grad":
        return Gradient(r, int(ins.config["step"]), _r2c(arrays[0]))
    if op == "calibrate":
        return Calibrate()
    raise ConfigError(f"unknown operation {op!r}")


def encode_reply(reply: Reply) -> FitRes:
    ok = Status(Code.OK, "")
    if isinstance(reply, Upload):
        r = reply.received
        arrays = [_c2r(r.y), r.labels.numpy()] + ([] if r.h is None else [_c2r(r.h)])
        return FitRes(ok, ndarrays_to_parameters(arrays), len(r.labels),
                      {"reply": "upload", "step": reply.step, "no": float(r.no)})
    if isinstance(reply, Stats):
        return FitRes(ok, ndarrays_to_parameters([reply.total.numpy()]), reply.count, {"reply": "stats"})
    if isinstance(reply, Update):
        arrays = [reply.weights[k].numpy() for k in sorted(reply.weights)]
        return FitRes(ok, ndarrays_to_parameters(arrays), reply.n_examples,
                      {"reply": "update", "fingerprint": reply.fingerprint})
    return FitRes(ok, ndarrays_to_parameters([]), 0, {"reply": "dropped", "reason": reply.reason})


def decode_reply(res: FitRes, keys: list[str]) -> Reply:
    arrays = parameters_to_ndarrays(res.parameters)
    kind = res.metrics.get("reply")
    if kind == "upload":
        h = _r2c(arrays[2]) if len(arrays) > 2 else None
        received = Received(_r2c(arrays[0]), torch.from_numpy(arrays[1].astype(np.int64)),
                            float(res.metrics["no"]), h)
        return Upload(int(res.metrics["step"]), received)
    if kind == "stats":
        return Stats(torch.from_numpy(arrays[0].copy()), res.num_examples)
    if kind == "update":
        if len(arrays) != len(keys):
            odd = {f"#{i}": torch.from_numpy(a.copy()) for i, a in enumerate(arrays)}
            return Update(odd, res.num_examples, str(res.metrics.get("fingerprint")))  # refused by the check
        weights = {k: torch.from_numpy(a.copy()) for k, a in zip(sorted(keys), arrays)}
        return Update(weights, res.num_examples, str(res.metrics.get("fingerprint")))
    return Dropped(str(res.metrics.get("reason", f"unexpected reply {kind!r}")))


# ----------------------------------------------------------------------------------------- client side
_LOCAL: dict[tuple[str, int], Client] = {}  # per process: (spec digest, client id) -> data + frozen model


def local_client(spec: FederatedSpec, cid: int) -> Client:
    """This process's :class:`Client` ``cid`` (its own share of the data; EVALUATOR: the held-out set)."""
    key = (spec.digest(), cid)
    if key not in _LOCAL:
        base = load_base(spec.base)
        images, labels = client_items(spec, base, cid)
        _LOCAL[key] = Client.from_images(cid, spec, build_model(spec, base), images, labels)
    return _LOCAL[key]


class FlowerClient(flwr.client.Client):
    """One client as Flower sees it; the work is :class:`~ragsc.federated.client.Client`'s."""

    def __init__(self, spec: FederatedSpec, partition: int, context) -> None:
        self.spec, self.partition, self.ctx = spec, partition, context

    def get_properties(self, ins: GetPropertiesIns) -> GetPropertiesRes:
        return GetPropertiesRes(Status(Code.OK, ""),
                                {"partition": self.partition, "digest": self.spec.digest()})

    def fit(self, ins: FitIns) -> FitRes:
        evaluate = ins.config.get("op") == "evaluate"
        client = local_client(self.spec, EVALUATOR if evaluate else self.partition)
        msg = decode_message(ins, list(client.model.get_weights()))
        if evaluate or isinstance(msg, Calibrate):  # stateless
            return encode_reply(client.handle(msg))
        state = self.ctx.state.get(STATE_KEY) if self.ctx is not None else None
        if state is not None and not isinstance(msg, Begin):
            client.import_state(state.to_torch_state_dict())
        reply = client.handle(msg)
        if self.ctx is not None:
            from flwr.app import ArrayRecord

            self.ctx.state[STATE_KEY] = ArrayRecord(client.export_state())
        return encode_reply(reply)


def client_fn_for(spec: FederatedSpec, partition: int | None = None):
    """A Flower ``client_fn``: ``partition`` fixed (a gRPC client process) or read from the node's
    ``partition-id`` (the simulation engine)."""
    spec_json = spec.model_dump_json()

    def client_fn(context) -> flwr.client.Client:
        s = spec_from(spec_json)
        p = partition if partition is not None else int(context.node_config["partition-id"])
        return FlowerClient(s, p, context)

    return client_fn


def client_app(spec: FederatedSpec):
    """The ``ClientApp`` of the simulation engine."""
    from flwr.clientapp import ClientApp

    return ClientApp(client_fn=client_fn_for(spec))


# ----------------------------------------------------------------------------------------- server side
class FlowerTransport:
    """Sends protocol messages as ``FitIns`` through Flower client proxies (an exchange in parallel)."""

    def __init__(self, proxies: dict[int, object], keys: list[str], timeout: float) -> None:
        self.proxies, self.keys, self.timeout = proxies, keys, timeout
        self.pool = ThreadPoolExecutor(max_workers=max(1, len(proxies)))

    def _one(self, cid: int, msg: Message) -> Reply:
        proxy = self.proxies[min(self.proxies) if cid == EVALUATOR else cid]
        res = proxy.fit(encode_message(msg), timeout=self.timeout, group_id=getattr(msg, "round", 0))
        if res.status.code != Code.OK:
            return Dropped(f"status {res.status.code}: {res.status.message}")
        return decode_reply(res, self.keys)

    def exchange(self, messages: dict[int, Message]) -> dict[int, Reply]:
        futures = {cid: self.pool.submit(self._one, cid, msg) for cid, msg in messages.items()}
        out: dict[int, Reply] = {}
        for cid, fut in sorted(futures.items()):
            try:
                out[cid] = fut.result()
            except Exception as exc:  # error reply, lost connection, timeout: this client failed
                if cid == EVALUATOR:
                    raise FederationError(f"the held-out set's holder failed: {exc}") from None
                log.warning("client %s failed: %s", cid, exc)
                out[cid] = Dropped(f"failed: {type(exc).__name__}: {exc}")
        return out


class SplitServer(flwr.server.Server):
    """A Flower server whose ``fit`` is the :class:`~ragsc.federated.engine.Coordinator`'s run."""

    def __init__(self, spec: FederatedSpec, progress: bool = False) -> None:
        super().__init__(client_manager=flwr.server.SimpleClientManager(), strategy=None)
        self.spec, self.progress = spec, progress
        self.result: FederatedResult | None = None
        self.error: BaseException | None = None

    def fit(self, num_rounds: int, timeout: float | None):
        t0 = time.perf_counter()
        try:
            self.result = self._run()
        except BaseException as exc:  # re-raised by the caller, outside Flower's threads
            self.error = exc
        return flwr.server.History(), time.perf_counter() - t0

    def _run(self) -> FederatedResult:
        spec, cm = self.spec, self.client_manager()
        if not cm.wait_for(spec.clients.n, timeout=int(spec.timeout_s)):
            raise FederationError(f"only {cm.num_available()} of {spec.clients.n} clients connected within "
                                  f"{spec.timeout_s:g} s")
        proxies: dict[int, object] = {}
        for proxy in cm.all().values():
            props = proxy.get_properties(GetPropertiesIns({}), timeout=spec.timeout_s, group_id=0).properties
            if props.get("digest") != spec.digest():
                raise ConfigError(f"client {props.get('partition')} runs another spec (digest "
                                  f"{props.get('digest')}, the server's is {spec.digest()}): start every "
                                  "client with the server's spec")
            p = int(props["partition"])
            if p in proxies:
                raise FederationError(f"two clients claim partition {p}")
            proxies[p] = proxy
        if sorted(proxies) != list(range(spec.clients.n)):
            raise FederationError(f"the clients' partitions are {sorted(proxies)}, expected "
                                  f"0..{spec.clients.n - 1}")
        base = load_base(spec.base)
        keys = list(build_model(spec, base).get_weights())
        transport = FlowerTransport(proxies, keys, spec.timeout_s)
        try:
            result = Coordinator(spec, transport, sorted(proxies), base).run(progress=self.progress)
        finally:
            transport.pool.shutdown(wait=False)
        result.engine = spec.engine
        return result


def _finish(server: SplitServer) -> FederatedResult:
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
    server = SplitServer(spec, progress)
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
    server = SplitServer(spec, progress)
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


if __name__ == "__main__":
    _client_main(sys.argv[1:])
