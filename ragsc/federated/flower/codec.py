"""Protocol messages as Flower's ``FitIns`` / ``FitRes``: what the Flower engines put on the wire.

A message to a client is a ``FitIns`` (``config["op"]``: ``calibrate``, ``begin`` and ``evaluate`` with the
global adapters, ``grad`` with the gradient at the cut); a reply is a ``FitRes`` (``metrics["reply"]``:
``upload`` of received symbols, labels, CSI and noise variance, ``stats``, ``update`` of adapters, or
``dropped``). Adapters travel as arrays in the sorted order of their names; complex tensors as float32
pairs. Only numpy arrays and Flower's scalars: no pickle.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.common import Code, FitIns, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays

from ragsc.errors import ConfigError
from ragsc.federated.protocol import (
    Begin,
    Calibrate,
    Dropped,
    Evaluate,
    Gradient,
    Message,
    ReceivedBatch,
    Reply,
    Stats,
    Update,
    Upload,
)


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
        received = ReceivedBatch(_r2c(arrays[0]), torch.from_numpy(arrays[1].astype(np.int64)),
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
