"""Federated split fine-tuning: the model is split at the channel (``ragsc federated run SPEC``).

Device side (:class:`Client`, :class:`ClientModel`): a frozen pretrained image encoder with LoRA adapters
(``peft``) and a transmitter to ``k`` complex symbols; the device simulates its channel and sends what the
receiver gets. Server side (:class:`SplitServer`): a receiver MLP and task head, trained on received
symbols and labels only (:class:`Received`; images never leave a device), returning the loss's gradient at
the cut. Each round the drawn clients go through their local batches in lock step with the server, then
their adapters are averaged (FedAvg, weighted by data size). Non-IID clients by a Dirichlet draw over
labels, partial participation, clients that fail mid-round, and the bytes up and down per round are all
handled and reported (:class:`RoundReport`).

Engines (the same client, server and coordinator code in each): ``inprocess`` (the default),
``flower-sim`` (Flower's simulation engine on Ray) and ``flower-grpc`` (a Flower server and client
processes over gRPC), the last two in :mod:`ragsc.federated.flower` (``pip install 'ragsc[federated]'``).

Modules: :mod:`~ragsc.federated.config` (the spec), :mod:`~ragsc.federated.data` (datasets, Dirichlet
split), :mod:`~ragsc.federated.model` (the two halves, adapter files), :mod:`~ragsc.federated.protocol`
(messages, byte counts), :mod:`~ragsc.federated.client`, :mod:`~ragsc.federated.server`,
:mod:`~ragsc.federated.engine` (rounds, transports, results, plots).
"""

from ragsc.federated.client import Client
from ragsc.federated.config import FederatedSpec, load_spec, spec_from
from ragsc.federated.data import dirichlet_partition, load_images
from ragsc.federated.engine import (
    Coordinator,
    FederatedResult,
    FederationError,
    InProcessTransport,
    RoundReport,
    centralised_spec,
    inprocess,
    plot_runs,
    run_federated,
)
from ragsc.federated.model import ClientModel, Receiver, load_adapters, load_base, save_adapters
from ragsc.federated.protocol import Received, check_received
from ragsc.federated.server import SplitServer, fedavg

__all__ = ["Client", "ClientModel", "Coordinator", "FederatedResult", "FederatedSpec", "FederationError",
           "InProcessTransport", "Received", "Receiver", "RoundReport", "SplitServer", "centralised_spec",
           "check_received", "dirichlet_partition", "fedavg", "inprocess", "load_adapters", "load_base",
           "load_images", "load_spec", "plot_runs", "run_federated", "save_adapters", "spec_from"]
