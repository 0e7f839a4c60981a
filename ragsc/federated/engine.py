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
one after another (the default); :mod:`ragsc.federated.flower` carries the same messages over Flower
(gRPC or its Ray simulation). The coordinator, the clients and the server are the same code in all of
them, and every random draw is seeded by (seed, round, client, step), so the engines agree.

Bytes per round (:class:`RoundReport`): uplink = received symbols (complex64) + labels (int64) + CSI
(fading channels) + the finished clients' adapters (float32); downlink = gradients at the cut (complex64)
+ the global adapters sent to each participant. ``full_fedavg_uplink`` is what full-model FedAvg would send
up for the same participants: every device-side parameter (frozen encoder included), float32.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch

from ragsc.errors import InputError, RagscError
from ragsc.federated.client import Client, derive_seed
from ragsc.federated.config import FederatedSpec, spec_from
from ragsc.federated.data import dirichlet_partition, load_images, num_classes
from ragsc.federated.model import Base, ClientModel, load_base, save_adapters
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
from ragsc.federated.server import SplitServer, fedavg

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


@dataclass
class RoundReport:
    """One round: who took part, who finished, who failed and where, accuracy after it, bytes moved."""

    round: int
    participants: list[int]
    completed: list[int]
    dropped: dict[int, str]
    skipped: str | None
    accuracy: float
    train_loss: float
    uplink: dict[str, int]
    downlink: dict[str, int]
    full_fedavg_uplink: int
    seconds: float

    @property
    def uplink_bytes(self) -> int:
        return sum(self.uplink.values())

    @property
    def downlink_bytes(self) -> int:
        return sum(self.downlink.values())

    @property
    def uplink_ratio(self) -> float:
        """Uplink over full-model FedAvg's uplink for the same participants."""
        return self.uplink_bytes / self.full_fedavg_uplink if self.full_fedavg_uplink else float("nan")

    def row(self) -> dict:
        d = asdict(self)
        d.update(uplink_bytes=self.uplink_bytes, downlink_bytes=self.downlink_bytes,
                 uplink_ratio=self.uplink_ratio)
        return d


@dataclass
class FederatedResult:
    """A finished run: per-round reports, the global device model and the server."""

    spec: FederatedSpec
    engine: str
    initial_accuracy: float
    rounds: list[RoundReport]
    model: ClientModel
    server: SplitServer
    client_sizes: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    calibration_bytes: int = 0

    @property
    def accuracy(self) -> float:
        return self.rounds[-1].accuracy if self.rounds else self.initial_accuracy

    def summary(self) -> dict:
        rounds, n = self.rounds, len(self.rounds)
        up = sum(r.uplink_bytes for r in rounds)
        full = sum(r.full_fedavg_uplink for r in rounds)
        return {"engine": self.engine, "dataset": self.spec.data.dataset, "clients": self.spec.clients.n,
                "alpha": self.spec.clients.alpha, "rounds": n,
                "skipped_rounds": sum(r.skipped is not None for r in rounds),
                "accuracy": self.accuracy, "initial_accuracy": self.initial_accuracy,
                "uplink_bytes_per_round": up / n if n else 0.0,
                "downlink_bytes_per_round": sum(r.downlink_bytes for r in rounds) / n if n else 0.0,
                "full_fedavg_uplink_per_round": full / n if n else 0.0,
                "uplink_ratio": up / full if full else float("nan"),
                "calibration_uplink_bytes": self.calibration_bytes,
                "trainable_params": self.model.num_trainable(), "device_params": self.model.num_parameters(),
                "seconds": self.seconds}

    def save(self, folder: str | Path, info: dict | None = None) -> Path:
        """Adapters + receiver (safetensors, :func:`~ragsc.federated.model.save_adapters`), ``history.json``
        (spec, summary, rounds) and ``history.csv``."""
        folder = Path(folder)
        save_adapters(folder, self.model, self.server.receiver,
                      info={"summary": self.summary(), **(info or {})})
        rows = [r.row() for r in self.rounds]
        (folder / "history.json").write_text(json.dumps(
            {"spec": self.spec.model_dump(mode="json"), "summary": self.summary(), "rounds": rows}, indent=1))
        with open(folder / "history.csv", "w", newline="") as f:
            cols = ["round", "accuracy", "train_loss", "uplink_bytes", "downlink_bytes", "full_fedavg_uplink",
                    "uplink_ratio", "participants", "completed", "dropped", "skipped", "seconds"]
            w = csv.DictWriter(f, cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({**r, "participants": len(r["participants"]), "completed": len(r["completed"]),
                            "dropped": len(r["dropped"])})
        return folder


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


# ----------------------------------------------------------------------------------------- building
def build_model(spec: FederatedSpec, base: Base) -> ClientModel:
    """The device half every party builds identically from the spec and the seed."""
    return ClientModel(base, spec.lora.rank, spec.lora.alpha, spec.lora.targets, spec.channel.k_symbols,
                       spec.seed, spec.train.train_transmitter)


def image_size(spec: FederatedSpec, base: Base) -> int:
    return spec.data.image_size or base.image_size


def train_items(spec: FederatedSpec, base: Base,
                part: Literal["clients", "validation"] = "clients") -> tuple[torch.Tensor, torch.Tensor]:
    """The train split's items the clients share (``part="clients"``) or the validation items held back
    from them (``part="validation"``; :class:`InputError` when the spec holds none back)."""
    if part not in ("clients", "validation"):
        raise InputError(f"part must be 'clients' or 'validation', got {part!r}")
    d = spec.data
    size = image_size(spec, base)
    if d.n_val is None:
        if part == "validation":
            raise InputError("the spec holds back no validation items: set data.n_val")
        return load_images(d.dataset, "train", d.n_train, size)
    if d.n_train is not None:
        try:
            images, labels = load_images(d.dataset, "train", d.n_train + d.n_val, size)
        except InputError as err:  # the split is smaller than asked
            raise InputError(f"data.n_train + data.n_val = {d.n_train} + {d.n_val} is more than "
                             f"{d.dataset}'s train split holds ({err}): lower one of them") from err
        cut = d.n_train
    else:
        images, labels = load_images(d.dataset, "train", None, size)
        cut = len(labels) - d.n_val
        if cut < 1:
            raise InputError(f"data.n_val = {d.n_val} leaves none of the {len(labels)} items of "
                             f"{d.dataset}'s train split to the clients")
    keep = slice(cut, None) if part == "validation" else slice(None, cut)
    return images[keep], labels[keep]


def partition(spec: FederatedSpec, base: Base) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """The clients' share of the train split, its labels and each client's indices (seeded Dirichlet
    split); validation items (``data.n_val``) are never dealt."""
    images, labels = train_items(spec, base)
    c = spec.clients
    parts = dirichlet_partition(labels, c.n, c.alpha, spec.seed, c.min_examples)
    return images, labels, parts


def client_items(spec: FederatedSpec, base: Base, cid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Client ``cid``'s own images and labels (EVALUATOR: the held-out set, ``data.evaluate_on``)."""
    if cid == EVALUATOR:
        if spec.data.evaluate_on == "validation":
            return train_items(spec, base, "validation")
        return load_images(spec.data.dataset, "test", spec.data.n_test, image_size(spec, base))
    if not 0 <= cid < spec.clients.n:
        raise InputError(f"client {cid} is not one of the spec's {spec.clients.n} clients "
                         f"(0..{spec.clients.n - 1})")
    images, labels, parts = partition(spec, base)
    return images[parts[cid]], labels[parts[cid]]


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
    from ragsc.federated import flower

    if spec.engine == "flower-sim":
        return flower.run_simulation(spec, progress=progress, **kwargs)
    return flower.run_grpc(spec, progress=progress, **kwargs)


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


def plot_runs(runs: dict[str, FederatedResult], path: str | Path, title: str = "",
              reference: tuple[str, FederatedResult] | None = None) -> Path:
    """Accuracy vs round and vs cumulative uplink bytes, one line per run (PNG).

    ``reference`` (a label and a run, e.g. centralised fine-tuning) is drawn against rounds and, as its
    final accuracy and 95 % of it, as horizontal lines; its bytes are not plotted (nothing is federated).
    Each federated run is also drawn at the uplink full-model FedAvg would have needed for its rounds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for label, res in runs.items():
        acc = [res.initial_accuracy] + [r.accuracy for r in res.rounds]
        line = a.plot(range(len(acc)), acc, marker=".", label=label)[0]
        mb = np.cumsum([r.uplink_bytes for r in res.rounds]) / 1e6  # after rounds 1..R
        b.plot(mb, acc[1:], marker=".", color=line.get_color(), label=label)
        full = np.cumsum([r.full_fedavg_uplink for r in res.rounds]) / 1e6
        b.plot(full, acc[1:], ls=":", color=line.get_color(), label=f"{label}, at full-model FedAvg's uplink")
    if reference is not None:
        label, ref = reference
        acc = [ref.initial_accuracy] + [r.accuracy for r in ref.rounds]
        a.plot(range(len(acc)), acc, marker=".", color="black", label=label)
        for ax in (a, b):
            ax.axhline(ref.accuracy, color="black", lw=0.8, ls="--", label=f"{label}, final")
            ax.axhline(0.95 * ref.accuracy, color="grey", lw=0.8, ls="--", label=f"95 % of {label}")
    a.set_xlabel("round (centralised: epoch)" if reference is not None else "round")
    b.set_xlabel("cumulative uplink (MB)")
    b.set_xscale("log")
    for ax in (a, b):
        ax.set_ylabel("test accuracy over the channel")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
