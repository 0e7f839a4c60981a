"""The derived KDL-DARTS network: the discrete student a genotype builds.

:class:`DerivedNetwork` is built from an :class:`~ragsc.distill.darts.config.ArchitectureConfig` (the
genotype and the sizes, which may differ from the search's for retraining) on the skeleton it shares with
the supernet (:mod:`~ragsc.distill.darts.layout`), with affine BN. It is saved as every model is
(:mod:`ragsc.saved`, kind ``darts-network``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.distill.darts.config import ArchitectureConfig
from ragsc.distill.darts.layout import CellSpec, cell_specs, check_images, edge_shape, make_stem, preprocess
from ragsc.distill.darts.ops import OPS
from ragsc.errors import ConfigError, ModelLoadError
from ragsc.saved import Saved, build, load, save


class _DerivedCell(nn.Module):
    def __init__(self, spec: CellSpec, cell: tuple[tuple[str, int], ...]) -> None:
        super().__init__()
        self.pre0, self.pre1 = preprocess(spec, affine=True)
        self.inputs = [j for _, j in cell]
        self.ops = nn.ModuleList(OPS[op](spec.c, edge_shape(spec, j)[0], True) for op, j in cell)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for k in range(0, len(self.ops), 2):
            a, b = self.inputs[k], self.inputs[k + 1]
            states.append(self.ops[k](states[a]) + self.ops[k + 1](states[b]))
        return torch.cat(states[2:], dim=1)


class DerivedNetwork(nn.Module):
    """The discrete student: ``x [B, in_channels, image_size, image_size]`` -> ``[B, out_dim]``.

    Built from an :class:`ArchitectureConfig` (kept as ``self.config``): stem, ``layers`` cells of the
    genotype, global average pooling, a linear projection onto the teacher's embedding space.
    """

    def __init__(self, arch: ArchitectureConfig) -> None:
        if not isinstance(arch, ArchitectureConfig):
            raise ConfigError(f"DerivedNetwork is built from an ArchitectureConfig, "
                              f"got {type(arch).__name__}")
        super().__init__()
        self.config = arch
        specs, c_out = cell_specs(arch, arch.nodes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch.seed)
            self.stem = make_stem(arch)
            self.cells = nn.ModuleList(
                _DerivedCell(s, arch.genotype.reduce if s.reduction else arch.genotype.normal) for s in specs)
            self.head = nn.Linear(c_out, arch.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.config)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    # --------------------------------------------------------------------------- saved folder
    kind, format_version = "darts-network", 1

    def to_saved(self) -> Saved:
        """The network as :mod:`ragsc.saved` writes it: the :class:`ArchitectureConfig` and the weights (BN
        statistics included)."""
        return Saved(self.kind, self.format_version, json.loads(self.config.to_json()), self.state_dict())

    @classmethod
    def from_saved(cls, saved: Saved) -> DerivedNetwork:
        """Rebuild the network from its :class:`~ragsc.saved.Saved` folder, in eval mode."""
        try:
            arch = ArchitectureConfig.from_json(json.dumps(saved.config))
        except ConfigError as exc:
            raise ModelLoadError(f"{saved.folder}: invalid architecture config: {exc}") from None
        return build(lambda: cls(arch), saved.tensors, str(saved.folder)).eval()

    def save(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """:func:`ragsc.saved.save` of this network (``config.json`` + ``model.safetensors``)."""
        return save(self, directory, overwrite=overwrite)

    @classmethod
    def load(cls, directory: str | Path) -> DerivedNetwork:
        """:func:`ragsc.saved.load` of a derived network's folder, in eval mode.

        Raises
        ------
        ModelLoadError
            Not a derived network's folder, a file missing or corrupt, or a tensor that does not fit the
            config (named).
        """
        return load(directory, kind=cls.kind)
