"""Importance ordering of embeddings: :class:`PCAOrdering`, the principal axes of a KB's embeddings, most
variance first; sending the leading ``2k`` coefficients is the best linear ``k``-symbol summary. The analog
:class:`~ragsc.channel.AnalogLink` takes it as its ``transform``; the trained decoders store theirs in their
folder.

(The trained channel-adaptive path is :mod:`ragsc.channel.cat`; its rate policy is calibrated, not predicted.)
"""

from __future__ import annotations

from pathlib import Path

import torch

from ragsc.errors import InputError


class PCAOrdering:
    """Principal-axis change of basis: ``encode(z) = (z - mean) @ V``, columns of ``V`` by decreasing
    variance."""

    def __init__(self, mean: torch.Tensor, components: torch.Tensor, variances: torch.Tensor) -> None:
        self.mean, self.components, self.variances = mean.float(), components.float(), variances.float()

    @classmethod
    def fit(cls, embeddings: torch.Tensor) -> PCAOrdering:
        """Fit on ``[N, D]`` embeddings (e.g. a knowledge base's); needs N >= 2."""
        if embeddings.ndim != 2 or embeddings.shape[0] < 2 or not torch.isfinite(embeddings).all():
            raise InputError("PCA ordering needs a finite [N, D] tensor with N >= 2")
        x = embeddings.double()
        mean = x.mean(0)
        cov = (x - mean).T @ (x - mean) / (x.shape[0] - 1)
        var, vec = torch.linalg.eigh(cov)  # ascending
        order = torch.argsort(var, descending=True)
        return cls(mean, vec[:, order], var[order].clamp_min(0))

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() - self.mean) @ self.components

    def decode(self, c: torch.Tensor) -> torch.Tensor:
        return self.mean + c.float() @ self.components.T

    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        save_file({"mean": self.mean.contiguous(), "components": self.components.contiguous(),
                   "variances": self.variances.contiguous()}, str(path))

    @classmethod
    def load(cls, path: str | Path) -> PCAOrdering:
        from safetensors.torch import load_file

        d = load_file(str(path))
        return cls(d["mean"], d["components"], d["variances"])
