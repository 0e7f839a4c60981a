"""Federated split fine-tuning: the model is split at the channel (``ragsc federated run SPEC``).

Device side (:class:`Client`, :class:`ClientModel`): a frozen pretrained image encoder with LoRA adapters
(``peft``) and a transmitter to ``k`` complex symbols; the device simulates its channel and sends what the
receiver gets. Server side (:class:`SplitServer`): a receiver MLP and task head, trained on received
symbols and labels only (:class:`ReceivedBatch`; images never leave a device), returning the loss's gradient
at the cut. Each round the drawn clients go through their local batches in lock step with the server, then
their adapters are averaged (FedAvg, weighted by data size). Non-IID clients by a Dirichlet draw over
labels, partial participation, clients that fail mid-round, and the bytes up and down per round are all
handled and reported (:class:`RoundReport`).

Engines (the same client, server and coordinator code in each): ``inprocess`` (the default),
``flower-sim`` (Flower's simulation engine on Ray) and ``flower-grpc`` (a Flower server and client
processes over gRPC), the last two in :mod:`ragsc.federated.flower` (``pip install 'ragsc[federated]'``).

Modules, from the bottom up: :mod:`~ragsc.federated.config` (the spec), :mod:`~ragsc.federated.data`
(datasets, Dirichlet split), :mod:`~ragsc.federated.model` (the two halves, adapter files),
:mod:`~ragsc.federated.protocol` (messages, byte counts), :mod:`~ragsc.federated.client`,
:mod:`~ragsc.federated.server`, :mod:`~ragsc.federated.setup` (what every party builds from the spec),
:mod:`~ragsc.federated.results` (round reports, the run's result, plots),
:mod:`~ragsc.federated.coordinator` (the rounds, over any transport), :mod:`~ragsc.federated.flower`
(the Flower engines) and :mod:`~ragsc.federated.run` (:func:`run_federated`, the in-process engine).
"""

from ragsc.federated.client import Client
from ragsc.federated.config import FederatedSpec, load_spec, spec_from
from ragsc.federated.coordinator import Coordinator, FederationError, InProcessTransport
from ragsc.federated.data import dirichlet_partition, load_images
from ragsc.federated.model import ClientModel, ReceiverHead, load_adapters, load_base, save_adapters
from ragsc.federated.protocol import ReceivedBatch, check_received
from ragsc.federated.results import FederatedResult, RoundReport, plot_runs
from ragsc.federated.run import centralised_spec, inprocess, run_federated
from ragsc.federated.server import SplitServer, fedavg

__all__ = ["Client", "ClientModel", "Coordinator", "FederatedResult", "FederatedSpec", "FederationError",
           "InProcessTransport", "ReceivedBatch", "ReceiverHead", "RoundReport", "SplitServer",
           "centralised_spec",
           "check_received", "dirichlet_partition", "fedavg", "inprocess", "load_adapters", "load_base",
           "load_images", "load_spec", "plot_runs", "run_federated", "save_adapters", "spec_from"]
