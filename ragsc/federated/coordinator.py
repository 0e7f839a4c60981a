"""The rounds: sampling, the per-batch exchange, FedAvg, evaluation and byte accounting, over any transport.

:class:`Coordinator` is the server side's orchestration. Each round it draws the participating clients
(``clients.fraction``, seeded), sends them the global adapters, then runs the exchange in lock step: every
still-active client's pending message goes out at once (:meth:`Transport.exchange`), the replies are
taken in client order (uploads through :meth:`SplitServer.step`, whose gradient becomes the client's
next message; updates kept; failures dropped from the round), until no client has a message left. The
updates of the clients that finished are averaged (:func:`~ragsc.federated.server.fedavg`, weighted by
data size) into the new global adapters; a client that failed mid-round leaves out its update, and the
server's steps on the symbols it did send stand (they were valid batches). A round in which every
participant failed changes no adapters: it is reported as skipped (``RoundReport.skipped``) and the run
goes on. After each round the held-out set is encoded with the global adapters by its holder
(:data:`~ragsc.federated.protocol.EVALUATOR`) and scored by the server: accuracy over the channel.

The transport is what differs between engines: :class:`InProcessTransport` calls :class:`Client` objects
one after another (the default, :func:`ragsc.federated.run.inprocess`); :mod:`ragsc.federated.flower`
carries the same messages over Flower (gRPC or its Ray simulation). The coordinator, the clients and the
server are the same code in all of them, and every random draw is seeded by (seed, round, client, step),
so the engines agree. What a round moved is counted in its :class:`~ragsc.federated.results.RoundReport`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from ragsc.errors import InputError, RagscError
from ragsc.federated.client import Client, derive_seed
from ragsc.federated.config import FederatedSpec
from ragsc.federated.data import num_classes
from ragsc.federated.model import Base
from ragsc.federated.protocol import (
    EVALUATOR,
    Begin,
    Calibrate,
    Dropped,
    Evaluate,
    Gradient,
    Message,
    Reply,
    Stats,
    Update,
    Upload,
)
from ragsc.federated.results import FederatedResult, RoundReport
from ragsc.federated.server import SplitServer, fedavg
from ragsc.federated.setup import build_model

log = logging.getLogger(__name__)
_SAMPLE = 4  # derive_seed stream of the participation draw


class FederationError(RagscError, RuntimeError):
    """The federation cannot go on (e.g. the held-out set's holder failed)."""


class Transport(Protocol):
    """Carries one message to each of some clients and brings back each one's reply (or a failure)."""

    def exchange(self, messages: dict[int, Message]) -> dict[int, Reply]: ...


class InProcessTransport:
    """Calls :class:`Client` objects in this process, in client order; an exception is a failure."""

    def __init__(self, clients: dict[int, Client], evaluator: Client | None = None) -> None:
        self.clients, self.evaluator = clients, evaluator

    def exchange(self, messages: dict[int, Message]) -> dict[int, Reply]:
        out: dict[int, Reply] = {}
        for cid in sorted(messages):
            target = self.evaluator if cid == EVALUATOR else self.clients.get(cid)
            if target is None:
                out[cid] = Dropped(f"no client {cid}")
                continue
            try:
                out[cid] = target.handle(messages[cid])
            except Exception as exc:  # a failing client fails the round for itself only
                if cid == EVALUATOR:
                    raise
                log.warning("client %s failed", cid, exc_info=True)
                out[cid] = Dropped(f"failed: {type(exc).__name__}: {exc}")
        return out


class Coordinator:
    """The server side of a run: global adapters, the :class:`SplitServer`, the rounds (see the module).

    Parameters
    ----------
    spec
        The run's spec.
    transport
        Carries messages to the clients (and to :data:`EVALUATOR`, the held-out set's holder).
    clients
        The client ids that may be drawn.
    base
        The frozen base model (the coordinator builds the initial adapters from it and the seed, as
        every client does).
    """

    def __init__(self, spec: FederatedSpec, transport: Transport, clients: list[int], base: Base) -> None:
        if not clients:
            raise InputError("a federation needs at least one client")
        self.spec, self.transport, self.clients = spec, transport, sorted(clients)
        self.model = build_model(spec, base)
        self.weights = self.model.get_weights()
        c = spec.channel
        self.server = SplitServer(c.k_symbols, spec.receiver.hidden, num_classes(spec.data.dataset),
                                  spec.train.server_lr, c.csi, c.equalizer, spec.seed)
        self.client_sizes: dict[int, int] = {}
        self.calibration_bytes = 0
        self._velocity: dict[str, torch.Tensor] = {}

    def sample(self, round_: int) -> list[int]:
        """The round's participants: ``max(1, round(fraction * N))`` clients, seeded, sorted."""
        m = max(1, round(self.spec.clients.fraction * len(self.clients)))
        rng = np.random.default_rng(derive_seed(self.spec.seed, _SAMPLE, round_))
        return sorted(int(c) for c in rng.choice(self.clients, size=m, replace=False))

    def calibrate(self) -> int:
        """Centre the transmitter's input on the mean embedding over every client's items (the initial
        adapters' embedding); returns the bytes sent up. Clients that fail are left out."""
        replies = self.transport.exchange({c: Calibrate() for c in self.clients})
        stats = [r for _, r in sorted(replies.items()) if isinstance(r, Stats)]
        if not stats:
            raise FederationError("no client answered the calibration: " + "; ".join(
                f"{c}: {getattr(r, 'reason', r)}" for c, r in sorted(replies.items())))
        center = sum(s.total for s in stats) / sum(s.count for s in stats)
        self.weights["center"] = center.to(self.weights["center"].dtype)
        return sum(s.nbytes() for s in stats)

    def evaluate(self, round_: int) -> float:
        reply = self.transport.exchange({EVALUATOR: Evaluate(round_, self.weights)}).get(EVALUATOR)
        if not isinstance(reply, Upload):
            raise FederationError(f"the held-out set's holder did not answer round {round_}'s evaluation: "
                                  f"{reply}")
        return self.server.accuracy(reply.received)

    def run_round(self, round_: int) -> RoundReport:
        t0 = time.perf_counter()
        participants = self.sample(round_)
        t = self.spec.train
        for group in self.server.optimizer.param_groups:
            group["lr"] = t.server_lr * t.lr_decay ** (round_ - 1)
        up = {"symbols": 0, "labels": 0, "csi": 0, "adapters": 0}
        down = {"gradients": 0, "adapters": 0}
        pending: dict[int, Message] = {c: Begin(round_, self.weights) for c in participants}
        down["adapters"] += sum(m.nbytes() for m in pending.values())
        updates: dict[int, Update] = {}
        dropped: dict[int, str] = {}
        losses: list[float] = []
        while pending:
            sent, pending = pending, {}
            replies = self.transport.exchange(sent)
            for cid in sorted(replies):
                reply = replies[cid]
                if isinstance(reply, Upload):
                    for k, v in reply.received.nbytes().items():
                        up[k] += v
                    try:
                        grad, loss = self.server.step(reply.received)
                    except InputError as exc:  # a client sent something the server does not take
                        dropped[cid] = f"refused: {exc}"
                        continue
                    losses.append(loss)
                    msg = Gradient(round_, reply.step, grad)
                    down["gradients"] += msg.nbytes()
                    pending[cid] = msg
                elif isinstance(reply, Update):
                    up["adapters"] += reply.nbytes()
                    problem = self._check_update(reply)
                    if problem:
                        dropped[cid] = f"update refused: {problem}"
                    else:
                        updates[cid] = reply
                        self.client_sizes[cid] = reply.n_examples
                else:
                    dropped[cid] = (reply.reason if isinstance(reply, Dropped)
                                    else f"unexpected reply {type(reply).__name__}")
            for cid in set(sent) - set(replies):  # no answer at all: a failure too
                dropped.setdefault(cid, "no reply")
        skipped = None
        if updates:
            avg = fedavg([(u.weights, u.n_examples) for _, u in sorted(updates.items())])
            beta = self.spec.train.server_momentum
            if beta:  # FedAvgM (Hsu et al., 2019): the averaged update as a pseudo-gradient with momentum
                for k, w in avg.items():
                    v = self._velocity.get(k, torch.zeros_like(w))
                    self._velocity[k] = beta * v + (w - self.weights[k])
                avg = {k: self.weights[k] + v for k, v in self._velocity.items()}
            self.weights = avg
        else:
            skipped = (f"all {len(participants)} participating clients dropped: the global adapters are "
                       "unchanged" if participants else "no participants")
            log.warning("round %d skipped: %s", round_, skipped)
        full = len(participants) * self.model.num_parameters() * 4
        acc = self.evaluate(round_)
        return RoundReport(round_, participants, sorted(updates), dict(sorted(dropped.items())), skipped, acc,
                           float(np.mean(losses)) if losses else float("nan"), up, down, full,
                           time.perf_counter() - t0)

    def _check_update(self, u: Update) -> str | None:
        if u.fingerprint != self.model.base_fingerprint:
            return (f"adapters of base {u.fingerprint}, this federation's base is {self.model.base_spec} "
                    f"({self.model.base_fingerprint})")
        if set(u.weights) != set(self.weights) or any(
                tuple(u.weights[k].shape) != tuple(v.shape) for k, v in self.weights.items()):
            return "its adapters do not have the global adapters' names and shapes"
        if u.n_examples < 1:
            return f"a client with {u.n_examples} items cannot be weighted"
        return None

    def run(self, rounds: int | None = None, progress: bool = False,
            on_round: Callable[[RoundReport], None] | None = None) -> FederatedResult:
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        self.calibration_bytes = self.calibrate() if self.spec.train.center else 0
        initial = self.evaluate(0)
        reports = []
        bar = tqdm(range(1, (rounds or self.spec.train.rounds) + 1), desc="federated rounds",
                   disable=not progress)
        for r in bar:
            rep = self.run_round(r)
            reports.append(rep)
            bar.set_postfix(acc=f"{rep.accuracy:.3f}", dropped=len(rep.dropped))
            if on_round is not None:
                on_round(rep)
        self.model.set_weights(self.weights)
        return FederatedResult(self.spec, self.spec.engine, initial, reports, self.model, self.server,
                               dict(sorted(self.client_sizes.items())), time.perf_counter() - t0,
                               self.calibration_bytes)
