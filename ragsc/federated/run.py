"""Running a federation: :func:`run_federated` with the spec's engine, :func:`inprocess` (the default
engine: clients in this process) and :func:`centralised_spec` (the one-client reference).

``inprocess`` runs the clients one after another in this process; ``flower-sim`` and ``flower-grpc`` run
the same coordinator, clients and server over Flower (:mod:`ragsc.federated.flower`, imported only when
one of them is asked for: ``pip install 'ragsc[federated]'``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ragsc.errors import InputError
from ragsc.federated.client import Client
from ragsc.federated.config import FederatedSpec, spec_from
from ragsc.federated.coordinator import Coordinator, InProcessTransport
from ragsc.federated.model import Base, load_base
from ragsc.federated.protocol import EVALUATOR
from ragsc.federated.results import FederatedResult
from ragsc.federated.setup import build_model, client_items, partition


def inprocess(spec: FederatedSpec, base: Base | None = None,
              client_data: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None,
              test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
              client_factory: Callable[..., Client] = Client) -> Coordinator:
    """A :class:`Coordinator` over in-process clients: the spec's Dirichlet split of its dataset, or
    ``client_data`` (``{cid: (uint8 images, labels)}``, e.g. a split of one's own) and ``test_data``.

    A client without items is refused (:class:`InputError` naming it).
    """
    base = base or load_base(spec.base)
    probe = build_model(spec, base)
    if client_data is None:
        images, labels, parts = partition(spec, base)
        feats = probe.features(images)  # the frozen prefix is the same for everyone: run it once
        shares = {c: (feats[p], labels[p]) for c, p in enumerate(parts)}
    else:
        empty = [c for c, (_, y) in client_data.items() if len(y) == 0]
        if empty:
            raise InputError(f"client {empty[0]} has no data: give every client at least one labelled item, "
                             "or leave it out")
        shares = {c: (probe.features(x), y) for c, (x, y) in client_data.items()}
    clients = {c: client_factory(c, spec, build_model(spec, base), f, y) for c, (f, y) in shares.items()}
    tx, ty = test_data if test_data is not None else client_items(spec, base, EVALUATOR)
    evaluator = Client(EVALUATOR, spec, build_model(spec, base), probe.features(tx), ty)
    return Coordinator(spec, InProcessTransport(clients, evaluator), list(clients), base)


def run_federated(spec: FederatedSpec | dict | str | Path, engine: str | None = None, *,
                  progress: bool = False, **kwargs) -> FederatedResult:
    """Run federated split fine-tuning with the spec's engine (or ``engine``); see :mod:`ragsc.federated`.

    ``engine``: ``inprocess`` (sequential clients in this process), ``flower-sim`` (Flower's simulation
    engine, Ray) or ``flower-grpc`` (a Flower server here and one client process per client, gRPC on
    localhost). Extra keyword arguments go to the engine (:func:`inprocess`, or
    :func:`ragsc.federated.flower.run_simulation` / :func:`~ragsc.federated.flower.run_grpc`).
    """
    spec = spec_from(spec)
    if engine is not None:
        spec = spec_from({**spec.model_dump(mode="json"), "engine": engine})
    if spec.engine == "inprocess":
        return inprocess(spec, **kwargs).run(progress=progress)
    from ragsc.federated.flower import run_grpc, run_simulation

    if spec.engine == "flower-sim":
        return run_simulation(spec, progress=progress, **kwargs)
    return run_grpc(spec, progress=progress, **kwargs)


def centralised_spec(spec: FederatedSpec, epochs: int | None = None) -> FederatedSpec:
    """The same model and training with one client holding all the training data (the reference), for
    ``epochs`` (default: ``train.central_epochs``, else ``train.rounds``) epochs: a round of one client
    is an epoch over everything."""
    d = spec.model_dump(mode="json")
    d["clients"] = {**d["clients"], "n": 1, "fraction": 1.0, "dropout": 0.0}
    d["train"]["rounds"] = epochs or spec.train.central_epochs or spec.train.rounds
    d["train"]["local_epochs"] = 1
    d["engine"] = "inprocess"
    return spec_from(d)
