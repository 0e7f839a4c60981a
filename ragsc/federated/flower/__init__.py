"""Flower engines for federated split fine-tuning: real gRPC clients and server, or Flower's Ray simulation.

The same :class:`~ragsc.federated.client.Client`, :class:`~ragsc.federated.server.SplitServer` and
:class:`~ragsc.federated.coordinator.Coordinator` as in-process; Flower only carries the messages of
:mod:`ragsc.federated.protocol`.

Design. Split learning exchanges a batch of symbols and a gradient per local step, while Flower's
strategy round is one fit -> aggregate. Running the inner loop inside a client's ``fit`` against a server
object would only work in one process, so the exchange is made of Flower messages instead: the
coordinator runs inside a :class:`flwr.server.Server` subclass (:class:`FlowerServer`'s ``fit``) and sends
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

Modules: :mod:`~ragsc.federated.flower.codec` (protocol messages as ``FitIns`` / ``FitRes``),
:mod:`~ragsc.federated.flower.client` (:class:`FlowerClient`, the ``client_fn`` and ``ClientApp``),
:mod:`~ragsc.federated.flower.server` (:class:`FlowerServer`, :class:`FlowerTransport`),
:mod:`~ragsc.federated.flower.runners` (:func:`run_simulation`, :func:`run_grpc`, :func:`serve`,
:func:`start_client`; ``python -m ragsc.federated.flower client ...`` runs one gRPC client).
"""

import os

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # no GPU asked for: leave devices alone

from ragsc._deps import require_package  # noqa: E402

require_package("flwr", "federated")

from ragsc.federated.flower.client import (  # noqa: E402
    STATE_KEY,
    FlowerClient,
    client_app,
    client_fn_for,
    local_client,
)
from ragsc.federated.flower.codec import decode_message, decode_reply, encode_message, encode_reply  # noqa: E402
from ragsc.federated.flower.runners import run_grpc, run_simulation, serve, start_client  # noqa: E402
from ragsc.federated.flower.server import FlowerServer, FlowerTransport  # noqa: E402

__all__ = ["STATE_KEY", "FlowerClient", "FlowerServer", "FlowerTransport", "client_app", "client_fn_for",
           "decode_message", "decode_reply", "encode_message", "encode_reply", "local_client", "run_grpc",
           "run_simulation", "serve", "start_client"]
