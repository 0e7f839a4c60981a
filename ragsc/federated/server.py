"""The server's half of split fine-tuning: a receiver trained on what comes off the channel, and FedAvg.

:class:`SplitServer` holds the receiver (:class:`~ragsc.federated.model.ReceiverHead`) and its optimiser.
:meth:`SplitServer.step` takes one client batch of :class:`~ragsc.federated.protocol.ReceivedBatch` symbols
and labels, equalises them (the receiver's CSI), computes the task loss, updates the receiver and
returns the loss's gradient w.r.t. the received symbols: the client backpropagates it through its own
channel simulation, transmitter and adapters. Clients' batches are taken one after another in client
order (SplitFed v2, Thapa et al. 2022: one server model, updated per client batch), so the result does
not depend on which reply arrives first.

:func:`fedavg` averages the clients' adapters, weighted by their numbers of items.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ragsc.channel.models import equalize
from ragsc.errors import InputError
from ragsc.federated.model import ReceiverHead
from ragsc.federated.protocol import ReceivedBatch, check_received


class SplitServer:
    """The receiver, its optimiser and the equaliser settings.

    Parameters
    ----------
    k_symbols, hidden, num_classes
        The receiver's shape (:class:`~ragsc.federated.model.ReceiverHead`).
    lr
        Adam learning rate of the receiver.
    csi, equalizer
        As :func:`ragsc.channel.models.equalize` (``perfect`` / ``none``; ``mmse`` / ``zf``).
    seed
        Seeds the receiver's initialisation.
    """

    def __init__(self, k_symbols: int, hidden: int, num_classes: int, lr: float = 1e-3, csi: str = "perfect",
                 equalizer: str = "mmse", seed: int = 0) -> None:
        self.k_symbols, self.num_classes, self.csi, self.equalizer = k_symbols, num_classes, csi, equalizer
        self.receiver = ReceiverHead(k_symbols, hidden, num_classes, seed)
        self.optimizer = torch.optim.Adam(self.receiver.parameters(), lr=lr)

    def _logits(self, r: ReceivedBatch, y: torch.Tensor) -> torch.Tensor:
        x_hat, _ = equalize(y, r.h, r.no, self.csi, self.equalizer)
        return self.receiver(x_hat)

    def step(self, received: ReceivedBatch) -> tuple[torch.Tensor, float]:
        """Train on one batch; returns ``(d loss / d y [B, k] complex64, loss)``.

        The loss is the batch's mean cross-entropy; the gradient follows PyTorch's convention for complex
        tensors, so the client's ``y.backward(grad)`` is the chain rule through its channel.
        """
        r = check_received(received, self.k_symbols, self.num_classes)
        y = r.y.detach().to(torch.complex64).requires_grad_(True)
        self.receiver.train()
        loss = F.cross_entropy(self._logits(r, y), r.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return y.grad.detach(), float(loss.detach())

    @torch.no_grad()
    def predict(self, received: ReceivedBatch) -> torch.Tensor:
        """Class predictions ``[B]`` for received symbols (the labels are not used)."""
        r = check_received(received, self.k_symbols, self.num_classes)
        self.receiver.eval()
        return torch.cat([self._logits(r_, r_.y).argmax(-1) for r_ in _chunks(r, 1024)])

    def accuracy(self, received: ReceivedBatch) -> float:
        return float((self.predict(received) == received.labels).float().mean())


def _chunks(r: ReceivedBatch, size: int):
    for i in range(0, len(r.y), size):
        yield ReceivedBatch(r.y[i:i + size], r.labels[i:i + size], r.no,
                            None if r.h is None else r.h[i:i + size])


def fedavg(updates: list[tuple[dict[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    """The average of ``(weights, n_examples)`` pairs, weighted by ``n_examples`` (FedAvg).

    Every update must name the same tensors with the same shapes, and hold at least one item.
    """
    if not updates:
        raise InputError("FedAvg needs at least one update")
    keys = set(updates[0][0])
    for w, n in updates:
        if set(w) != keys:
            raise InputError("FedAvg: the updates hold different adapters (another model?)")
        if n < 1:
            raise InputError(f"FedAvg: an update from a client with {n} items")
    total = sum(n for _, n in updates)
    out = {}
    for k in updates[0][0]:
        shapes = {tuple(w[k].shape) for w, _ in updates}
        if len(shapes) != 1:
            raise InputError(f"FedAvg: adapter {k} has shapes {sorted(shapes)} across clients")
        out[k] = sum(w[k].double() * (n / total) for w, n in updates).to(updates[0][0][k].dtype)
    return out
