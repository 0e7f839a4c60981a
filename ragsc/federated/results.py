"""What a federated run reports: a :class:`RoundReport` per round, the :class:`FederatedResult` of the
run (saved as adapters + ``history.json`` / ``history.csv``), and :func:`plot_runs` of several runs.

Bytes per round (:class:`RoundReport`): uplink = received symbols (complex64) + labels (int64) + CSI
(fading channels) + the finished clients' adapters (float32); downlink = gradients at the cut (complex64)
+ the global adapters sent to each participant. ``full_fedavg_uplink`` is what full-model FedAvg would send
up for the same participants: every device-side parameter (frozen encoder included), float32.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ragsc.federated.config import FederatedSpec
from ragsc.federated.model import ClientModel, save_adapters
from ragsc.federated.server import SplitServer


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
        """The run's folder: the trained model in ``model/`` (adapters + receiver, a saved model:
        :func:`~ragsc.federated.model.save_adapters`), ``history.json`` (spec, summary, rounds) and
        ``history.csv``."""
        folder = Path(folder)
        save_adapters(folder / "model", self.model, self.server.receiver,
                      info={"summary": self.summary(), **(info or {})}, overwrite=True)
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
