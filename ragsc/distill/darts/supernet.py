"""The KDL-DARTS supernet: every edge of every cell a softmax(alpha)-weighted mix of all operations.

:class:`SearchNetwork` is built from a :class:`~ragsc.distill.darts.config.SearchSpaceConfig`;
``alpha_normal`` / ``alpha_reduce`` are shared by all cells of a kind. Its expected complexity,
``sum_edges softmax(alpha) . cost(op)`` with ``cost`` from :func:`~ragsc.distill.darts.ops.op_cost`, is
differentiable in alpha: the term the search penalises. The identity skip's output passes a dropout that
the search turns on (the P-DARTS guard, see :mod:`~ragsc.distill.darts.searching`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.distill.darts.config import SearchSpaceConfig
from ragsc.distill.darts.layout import (
    CellSpec,
    cell_edges,
    cell_specs,
    check_images,
    edge_shape,
    make_stem,
    preprocess,
)
from ragsc.distill.darts.ops import COMPLEXITIES, OPS, op_cost
from ragsc.errors import ConfigError


class _MixedOp(nn.Module):
    """One search edge: ``sum_k w_k op_k(x)``; the identity skip's output goes through ``skip_drop``."""

    def __init__(self, c: int, stride: int, ops: tuple[str, ...]) -> None:
        super().__init__()
        built = []
        for name in ops:
            op = OPS[name](c, stride, False)
            if "pool" in name:  # DARTS: pools get a BN so their scale matches the normalised convs'
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            built.append(op)
        self.ops = nn.ModuleList(built)
        # P-DARTS drops only the parameter-free identity, the shortcut the collapse goes to
        self.skip_index = ops.index("skip_connect") if "skip_connect" in ops and stride == 1 else None
        self.skip_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = 0.0
        for k, op in enumerate(self.ops):
            y = op(x)
            out = out + weights[k] * (self.skip_drop(y) if k == self.skip_index else y)
        return out


class _SearchCell(nn.Module):
    def __init__(self, spec: CellSpec, nodes: int, ops: tuple[str, ...]) -> None:
        super().__init__()
        self.nodes = nodes
        self.pre0, self.pre1 = preprocess(spec, affine=False)
        self.edges = nn.ModuleList(_MixedOp(spec.c, edge_shape(spec, j)[0], ops)
                                   for _, j in cell_edges(nodes))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            n = len(states)
            states.append(sum(self.edges[offset + j](states[j], weights[offset + j]) for j in range(n)))
            offset += n
        return torch.cat(states[2:], dim=1)


class SearchNetwork(nn.Module):
    """The supernet: ``x [B, in_channels, image_size, image_size]`` -> ``[B, out_dim]``.

    Stem, ``layers`` cells whose edges mix all ``ops`` by ``softmax(alpha)``, global average pooling and a
    linear projection onto the teacher's embedding space. BN without affine parameters, as in the DARTS
    search. Built from a :class:`SearchSpaceConfig`, kept as ``self.config``.
    """

    def __init__(self, config: SearchSpaceConfig) -> None:
        if not isinstance(config, SearchSpaceConfig):
            raise ConfigError(f"SearchNetwork is built from a SearchSpaceConfig, got {type(config).__name__}")
        super().__init__()
        self.config = config
        self._specs, c_out = cell_specs(config, config.nodes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.stem = make_stem(config)
            self.cells = nn.ModuleList(_SearchCell(s, config.nodes, config.ops) for s in self._specs)
            self.head = nn.Linear(c_out, config.out_dim)
            shape = (len(cell_edges(config.nodes)), len(config.ops))
            self.alpha_normal = nn.Parameter(1e-3 * torch.randn(shape))
            self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(shape))
        # cost[kind][cell, edge, op]: fixed by the config, so not saved with the weights
        for kind, column in zip(COMPLEXITIES, (0, 1)):
            table = [[[op_cost(op, s.c, *edge_shape(s, j))[column] for op in config.ops]
                      for _, j in cell_edges(config.nodes)] for s in self._specs]
            self.register_buffer(f"cost_{kind}", torch.tensor(table, dtype=torch.float32), persistent=False)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture weights ``[alpha_normal, alpha_reduce]``, each ``[edges, ops]``."""
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the architecture weights."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def set_skip_dropout(self, p: float) -> None:
        """Dropout rate on the identity skip's output during training (the P-DARTS guard); 0 turns it off."""
        for module in self.modules():
            if isinstance(module, _MixedOp):
                module.skip_drop.p = float(p)

    def _cell_weights(self) -> list[torch.Tensor]:
        normal, reduce = F.softmax(self.alpha_normal, dim=-1), F.softmax(self.alpha_reduce, dim=-1)
        return [reduce if s.reduction else normal for s in self._specs]

    def expected_complexity(self, complexity: str = "params", normalize: bool = False) -> torch.Tensor:
        """``sum over cells and edges of softmax(alpha) . cost(op)``, differentiable in alpha.

        Parameters
        ----------
        complexity
            ``"params"`` (each op's parameter count) or ``"macs"`` (its multiply-accumulates per image at
            its input shape), see :func:`op_cost`. Stem, preprocessing and head do not depend on alpha and
            are left out.
        normalize
            Divide by :meth:`max_complexity`, giving a value in [0, 1].

        Returns
        -------
        torch.Tensor
            A scalar.
        """
        cost = self._cost(complexity)
        total = sum((w * c).sum() for w, c in zip(self._cell_weights(), cost))
        return total / self.max_complexity(complexity) if normalize else total

    def max_complexity(self, complexity: str = "params") -> float:
        """The expected complexity with every edge on its costliest op (at least 1, to divide by)."""
        return max(float(self._cost(complexity).amax(dim=-1).sum()), 1.0)

    def _cost(self, complexity: str) -> torch.Tensor:
        if complexity not in COMPLEXITIES:
            raise ConfigError(f"complexity must be one of {', '.join(COMPLEXITIES)}, got {complexity!r}")
        return getattr(self, f"cost_{complexity}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.config)
        s0 = s1 = self.stem(x)
        for cell, weights in zip(self.cells, self._cell_weights()):
            s0, s1 = s1, cell(s0, s1, weights)
        return self.head(F.adaptive_avg_pool2d(s1, 1).flatten(1))
