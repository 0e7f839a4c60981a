"""The device's half of split fine-tuning: local data, adapters, transmitter and its side of the protocol.

A :class:`Client` holds its items as the frozen prefix's features (see
:class:`~ragsc.federated.model.ClientModel`) and their labels, and answers the server's messages
(:mod:`ragsc.federated.protocol`). Per round it loads the global adapters, makes ``local_epochs`` passes
over its items in seeded batches and, per batch, sends the symbols its channel delivered
(:class:`~ragsc.federated.protocol.ReceivedBatch`: symbols, CSI, noise variance, labels), waits for the
gradient at the cut and takes an Adam step on its adapters (and its transmitter, if that trains).

The channel is simulated on the client's side of the link: the client owns the autograd graph from its
adapters to the received symbols ``y = h x + n``, the server returns d loss / d ``y``, and the client's
``y.backward(grad)`` carries it through the channel to its weights (the server never needs the client's
``x``, nor the client the server's receiver). Each transmission's noise and fading are drawn from a seed of
(run seed, round, client, step), so a batch sent again after a restart (a Flower client that lost its
in-memory state) is the same batch, and any engine sees the same channel.

Simulated dropouts are drawn here, from (seed, round, client): with probability ``clients.dropout`` the
client fails at a uniformly drawn exchange, after sending 1..B-1 batches of symbols or before returning its
update; it answers :class:`~ragsc.federated.protocol.Dropped`, which the server treats as it treats a real
failure (an exception, a lost connection or a timeout).
"""

from __future__ import annotations

import math
import uuid

import numpy as np
import torch

from ragsc.channel.models import Channel, snr_db_to_no
from ragsc.errors import InputError
from ragsc.federated.config import FederatedSpec
from ragsc.federated.model import ClientModel
from ragsc.federated.protocol import (
    EVALUATOR,
    Begin,
    Calibrate,
    Dropped,
    Evaluate,
    Gradient,
    ReceivedBatch,
    Reply,
    Stats,
    Update,
    Upload,
)
from ragsc.saved import load_optimizer_tensors, optimizer_tensors

_BATCHES, _DROP, _NOISE = 1, 2, 3  # streams of derive_seed


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (negative ones allowed): independent streams per (round, client, ...)."""
    return int(np.random.SeedSequence([p % (2 ** 32) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


class Client:
    """One device of the federation.

    Parameters
    ----------
    cid
        The client's id (its partition; :data:`~ragsc.federated.protocol.EVALUATOR` for the held-out set).
    spec
        The run's spec (batch size, learning rate, channel, seed, dropout).
    model
        The device half (frozen base + adapters + transmitter); the client trains it in place.
    features, labels
        Its items as :meth:`ClientModel.features` output ``[N, ...]`` and int64 labels ``[N]``.

    Raises
    ------
    InputError
        A client without items: it could neither train nor be weighted.
    """

    def __init__(self, cid: int, spec: FederatedSpec, model: ClientModel, features: torch.Tensor,
                 labels: torch.Tensor) -> None:
        if len(labels) == 0:
            raise InputError(f"client {cid} has no data: give every client at least one labelled item (a "
                             "Dirichlet split guarantees clients.min_examples), or leave it out")
        if len(features) != len(labels):
            raise InputError(f"client {cid}: {len(features)} items but {len(labels)} labels")
        self.cid, self.spec, self.model = cid, spec, model
        self.features, self.labels = features, labels.to(torch.int64)
        c = spec.channel
        self.sim = Channel(c.channel, c.fading, c.rician_k, seed=0)
        self.no = float(snr_db_to_no(c.snr_db))
        self.round: int | None = None
        self.expect = -1  # the step whose gradient the client waits for
        self.optimizer: torch.optim.Optimizer | None = None
        self._pending: tuple[int, int, torch.Tensor] | None = None  # (round, step, y with its graph)
        self._token = 0
        self._plan: tuple[int, list[torch.Tensor]] | None = None

    @classmethod
    def from_images(cls, cid: int, spec: FederatedSpec, model: ClientModel, images: torch.Tensor,
                    labels: torch.Tensor) -> Client:
        """A client from uint8 images ``[N, 3, S, S]`` (the frozen prefix runs once over them here)."""
        if len(labels) == 0:
            return cls(cid, spec, model, torch.empty(0), labels)  # refused with the client's message
        return cls(cid, spec, model, model.features(images), labels)

    @property
    def n_examples(self) -> int:
        return len(self.labels)

    def _optimizer(self, round_: int) -> torch.optim.Optimizer:
        t = self.spec.train
        # a fresh Adam each round (its moments would be stale after FedAvg); plain SGD learnt slower here
        return torch.optim.Adam(list(self.model.trainable().values()), lr=t.lr * t.lr_decay ** (round_ - 1))

    def n_batches(self) -> int:
        return self.spec.train.local_epochs * math.ceil(self.n_examples / self.spec.train.batch_size)

    def batches(self, round_: int) -> list[torch.Tensor]:
        """The round's batches of item indices: ``local_epochs`` seeded permutations, cut in batch_size."""
        if self._plan is not None and self._plan[0] == round_:
            return self._plan[1]
        out = []
        for epoch in range(self.spec.train.local_epochs):
            g = torch.Generator().manual_seed(derive_seed(self.spec.seed, _BATCHES, round_, self.cid, epoch))
            out += list(torch.randperm(self.n_examples, generator=g).split(self.spec.train.batch_size))
        self._plan = (round_, out)
        return out

    def drop_at(self, round_: int) -> int | None:
        """The exchange (1..B) at which this client fails in ``round_``, or None: B means after its last
        step, before returning its update; e < B after sending e batches of symbols."""
        rng = np.random.default_rng(derive_seed(self.spec.seed, _DROP, round_, self.cid))
        if rng.random() < self.spec.clients.dropout:
            return int(rng.integers(1, self.n_batches() + 1))
        return None

    def transmit(self, features: torch.Tensor, round_: int,
                 step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Symbols of ``features`` through this client's channel: ``(y [B, k] complex64, h or None)``;
        ``y`` keeps the graph back to the adapters when grad is enabled."""
        x = self.model(features)
        self.sim.generator.manual_seed(derive_seed(self.spec.channel.seed, _NOISE, round_, self.cid, step))
        y, h = self.sim(x, self.no)
        return y, (None if h is None else h.detach())

    # ------------------------------------------------------------------------------------- protocol
    def handle(self, msg: Begin | Gradient | Evaluate | Calibrate) -> Reply:
        """Answer one server message (see :mod:`ragsc.federated.protocol`)."""
        if isinstance(msg, Calibrate):
            return self._calibrate()
        if isinstance(msg, Begin):
            return self._begin(msg)
        if isinstance(msg, Gradient):
            return self._gradient(msg)
        if isinstance(msg, Evaluate):
            return self._evaluate(msg)
        raise InputError(f"a client answers Calibrate, Begin, Gradient or Evaluate, got {type(msg).__name__}")

    @torch.no_grad()
    def _calibrate(self) -> Stats:
        total = sum(self.model.embed(self.features[i:i + 1024]).double().sum(0)
                    for i in range(0, self.n_examples, 1024))
        return Stats(total, self.n_examples)

    def _begin(self, msg: Begin) -> Reply:
        if self.cid == EVALUATOR:
            raise InputError("the held-out set's holder does not train")
        self.model.set_weights(msg.weights)
        self.optimizer = self._optimizer(msg.round)
        self.round = msg.round
        return self._upload(0)

    def _upload(self, step: int) -> Upload:
        idx = self.batches(self.round)[step]
        y, h = self.transmit(self.features[idx], self.round, step)
        self._pending, self.expect = (self.round, step, y), step
        return Upload(step, ReceivedBatch(y.detach(), self.labels[idx], self.no, h))

    def _gradient(self, msg: Gradient) -> Reply:
        if self.round != msg.round or msg.step != self.expect:
            raise InputError(f"client {self.cid}: a gradient for round {msg.round} step {msg.step}, it waits "
                             f"for round {self.round} step {self.expect}")
        exchange = msg.step + 1
        if self.drop_at(msg.round) == exchange:
            self.round, self._pending = None, None
            where = ("before returning its update" if exchange == self.n_batches()
                     else f"after sending {exchange} of {self.n_batches()} batches")
            return Dropped(f"simulated dropout {where}")
        if self._pending is not None and self._pending[:2] == (msg.round, msg.step):
            y = self._pending[2]
        else:  # state restored from elsewhere: the same batch, the same channel draw, again
            y, _ = self.transmit(self.features[self.batches(msg.round)[msg.step]], msg.round, msg.step)
        grad = msg.grad.to(torch.complex64)
        if grad.shape != y.shape:
            raise InputError(f"client {self.cid}: gradient {tuple(grad.shape)} for symbols {tuple(y.shape)}")
        self.optimizer.zero_grad()
        y.backward(grad)
        self.optimizer.step()
        self._pending = None
        if exchange < self.n_batches():
            return self._upload(exchange)
        self.round = None
        return Update(self.model.get_weights(), self.n_examples, self.model.base_fingerprint)

    @torch.no_grad()
    def _evaluate(self, msg: Evaluate) -> Upload:
        self.model.set_weights(msg.weights)
        ys, hs = [], []
        for i, start in enumerate(range(0, self.n_examples, 1024)):
            y, h = self.transmit(self.features[start:start + 1024], msg.round, -1 - i)
            ys.append(y)
            hs.append(h)
        h = None if hs[0] is None else torch.cat(hs)
        return Upload(-1, ReceivedBatch(torch.cat(ys), self.labels, self.no, h))

    # ------------------------------------------------------------------------------------- state
    def export_state(self) -> dict[str, torch.Tensor]:
        """The mid-round state (weights, optimiser moments, position) as tensors, for an engine that does
        not keep client objects between messages (Flower)."""
        self._token = uuid.uuid4().int % (2 ** 62)
        round_ = self.round if self.round is not None else -1
        state = {"meta": torch.tensor([round_, self.expect, self._token], dtype=torch.int64)}
        state.update({f"w.{k}": v for k, v in self.model.get_weights().items()})
        if self.optimizer is not None:
            state.update(optimizer_tensors(self.optimizer))
        return state

    def import_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`export_state`'s output (a no-op when this object wrote it last)."""
        round_, expect, token = (int(v) for v in state["meta"])
        if token == self._token and token != 0:
            return
        self.round, self.expect, self._token = (None if round_ < 0 else round_), expect, token
        self._pending = None
        self.model.set_weights({k[2:]: v for k, v in state.items() if k.startswith("w.")})
        self.optimizer = None
        if self.round is not None:
            self.optimizer = self._optimizer(self.round)
            load_optimizer_tensors(self.optimizer, state)
