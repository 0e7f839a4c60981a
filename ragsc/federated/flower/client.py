"""The client side of the Flower engines: :class:`FlowerClient`, its ``client_fn`` and the ``ClientApp``.

Flower builds a fresh client object per message (and Ray may run a node's messages in different worker
processes), so a client keeps its mid-round state (adapters, Adam moments, position) in Flower's
``context.state`` and its data and frozen model in a per-process cache (:func:`local_client`); a client
restored on another worker recomputes the pending batch from the same seeds
(:class:`~ragsc.federated.client.Client`). The work is the in-process client's.
"""

from __future__ import annotations

import flwr
from flwr.common import Code, FitIns, FitRes, GetPropertiesIns, GetPropertiesRes, Status

from ragsc.federated.client import Client
from ragsc.federated.config import FederatedSpec, spec_from
from ragsc.federated.flower.codec import decode_message, encode_reply
from ragsc.federated.model import load_base
from ragsc.federated.protocol import EVALUATOR, Begin, Calibrate
from ragsc.federated.setup import build_model, client_items

STATE_KEY = "ragsc.federated.client"
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
