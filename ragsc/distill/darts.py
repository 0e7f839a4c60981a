"""KDL-DARTS: a differentiable architecture search for compact image students (the RKD-SC paper's search).

The student maps an image ``[B, C, H, W]`` into the teacher's embedding space ``[B, out_dim]``; the search
trades how well it imitates the teacher against how big it is. The flow, top to bottom in this module:

1. The search space: DARTS operations (ReLU-Conv-BN style), normal and reduction cells of ``nodes``
   intermediate nodes, each node fed by every earlier node and the two cell inputs.
2. :class:`SearchNetwork` (the supernet, built from a :class:`SearchSpaceConfig`): every edge is a
   softmax(alpha)-weighted mix of all operations, with ``alpha_normal`` / ``alpha_reduce`` shared by all
   cells of a kind. :meth:`SearchNetwork.expected_complexity` is ``sum_edges softmax(alpha) . cost(op)``,
   ``cost`` being the discrete operation's parameter count or MACs at its input shape.
3. :func:`search`: first-order bilevel DARTS. The weights step on the train split, alpha (Adam) on the
   validation split, both with the KD loss ``1 - cos(student, teacher)``; alpha's loss adds
   ``lam * expected_complexity / max_complexity``, where ``max_complexity`` is the expected complexity of
   the supernet with every edge on its costliest operation. The normalised term lies in [0, 1], so ``lam``
   is dimensionless and weighs "the whole net at its largest" against "one minus cosine" (also in [0, 2]).
   With ``checkpoint=FOLDER`` the search writes its whole state after every epoch (safetensors and a
   JSON manifest of its settings, never a pickle); a rerun with the same settings resumes after the last
   complete epoch and ends exactly as an uninterrupted run, one with other settings is refused naming
   the fields that differ.
4. :func:`derive` -> :class:`Genotype`: per node the two incoming edges whose strongest non-``none``
   operation is strongest, as in DARTS.
5. :class:`DerivedNetwork`, built from an :class:`ArchitectureConfig` (the genotype plus sizes, which may
   differ from the search's for retraining), saved as ``config.json`` + ``weights.safetensors``.
6. The budget: :func:`architecture_cost` counts a derived network's parameters and MACs;
   :func:`cheapest_architecture` is the cheapest one derive can build from a search space. A ``budget``
   (at most that many parameters or MACs, as ``complexity`` says) given to :func:`search` or
   :func:`derive` fails at once, before any training, when even the cheapest exceeds it (the message
   gives the cheapest figure); when the plain DARTS derivation exceeds it, derive picks within it instead
   (the strongest architecture at the smallest price per unit of cost that fits, see :func:`derive`).
7. :func:`lambda_front` sweeps ``lam`` (search, derive, short retraining, validation score) and
   :func:`plot_front` draws parameters against score.

:mod:`ragsc.distill.runs` runs all this on a teacher store and saves the result as a student
(``ragsc distill search``).

The skip guard (:class:`SkipGuard`). DARTS is known to collapse onto parameter-free skip connections: they
make the supernet's optimisation easy early on, so their alphas win without the derived net being any
good (Chen et al., P-DARTS; Liang et al., DARTS+). A complexity penalty makes this worse, skip being
free. Two guards, both on by default:

* a cap on the derived normal cell: at most ``max_skip`` (2) skip connections. The weakest extra skip is
  banned on its edge and the cell re-derived, until the cap holds (the P-DARTS / DARTS+ rule). Only the
  normal cell is capped: a reduction cell's input skips are parametric factorized reductions, not
  shortcuts.
* dropout on the identity skip's output during the search (P-DARTS), rate ``dropout`` decayed linearly
  to 0 over the epochs, so skip cannot win by being the easy path early, yet is judged without the
  handicap at the end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ragsc.decoders.arch import json_fields as _json_fields  # exactly the fields: no default fills a gap
from ragsc.errors import ConfigError, InputError, ModelLoadError

STEM_MULTIPLIER = 3  # the stem widens the image to 3 * channels, as in DARTS
COMPLEXITIES = ("params", "macs")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"


# ----------------------------------------------------------------------------------------------------------
# 1. Operations
# ----------------------------------------------------------------------------------------------------------

class _Zero(nn.Module):
    """The ``none`` operation: zeros at the output resolution."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class _FactorizedReduce(nn.Module):
    """Halve the resolution with two offset 1x1 stride-2 convolutions (the stride-2 ``skip_connect``)."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        # an odd side is padded so both halves give ceil(side / 2), like the stride-2 convs and pools
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def _relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


def _dil_conv(c: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool) -> nn.Module:
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, kernel, stride, padding, dilation, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine))


def _sep_conv(c: int, kernel: int, stride: int, padding: int, affine: bool) -> nn.Module:
    """Two depthwise-separable convs in a row, the first one strided (DARTS's ``sep_conv``)."""
    return nn.Sequential(_dil_conv(c, kernel, stride, padding, 1, affine),
                         _dil_conv(c, kernel, 1, padding, 1, affine))


# name -> builder(channels, stride, affine); every op maps [B, c, H, W] to [B, c, ceil(H/s), ceil(W/s)]
OPS = {
    "none": lambda c, s, affine: _Zero(s),
    "skip_connect": lambda c, s, affine: nn.Identity() if s == 1 else _FactorizedReduce(c, c, affine),
    "max_pool_3x3": lambda c, s, affine: nn.MaxPool2d(3, s, padding=1),
    "avg_pool_3x3": lambda c, s, affine: nn.AvgPool2d(3, s, padding=1, count_include_pad=False),
    "sep_conv_3x3": lambda c, s, affine: _sep_conv(c, 3, s, 1, affine),
    "sep_conv_5x5": lambda c, s, affine: _sep_conv(c, 5, s, 2, affine),
    "dil_conv_3x3": lambda c, s, affine: _dil_conv(c, 3, s, 2, 2, affine),
    "dil_conv_5x5": lambda c, s, affine: _dil_conv(c, 5, s, 4, 2, affine),
    "conv_3x3": lambda c, s, affine: _relu_conv_bn(c, c, 3, s, 1, affine),
    "conv_5x5": lambda c, s, affine: _relu_conv_bn(c, c, 5, s, 2, affine),
}
PRIMITIVES = tuple(OPS)


@lru_cache(maxsize=4096)
def op_cost(name: str, channels: int, stride: int, size: int) -> tuple[int, int]:
    """The cost of the discrete operation ``name`` (as :class:`DerivedNetwork` builds it) on a
    ``[1, channels, size, size]`` input.

    Returns
    -------
    (params, macs)
        Its parameter count, and its multiply-accumulates counted by forward hooks: a convolution costs
        ``output elements * in_channels / groups * kernel area``; a pooling window counts as ``kernel
        area`` accumulations per output element; BN (folded into the conv at inference), ReLU and
        identity cost nothing.
    """
    with torch.random.fork_rng(devices=[]):  # building the op draws initial weights: leave the caller's RNG
        op = OPS[name](channels, stride, True).eval()
    return sum(p.numel() for p in op.parameters()), _count_macs(op, (1, channels, size, size))


def _count_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of ``module`` on zeros of ``shape``: a convolution costs
    ``output elements * in_channels / groups * kernel area``, a pooling window ``kernel area`` per output
    element, a linear layer ``output elements * in_features``; everything else nothing."""
    macs = 0

    def count(m: nn.Module, inputs, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            macs += output.numel() * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            macs += output.numel() * m.kernel_size ** 2
        elif isinstance(m, nn.Linear):
            macs += output.numel() * m.in_features

    handles = [m.register_forward_hook(count) for m in module.modules()]
    try:
        with torch.no_grad():
            module(torch.zeros(shape))
    finally:
        for handle in handles:
            handle.remove()
    return macs


# ----------------------------------------------------------------------------------------------------------
# 2. Configs and the genotype
# ----------------------------------------------------------------------------------------------------------

def _check_int(cfg, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    # bool is an int to Python, and a JSON float such as 8.0 must not slip through as a size
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{type(cfg).__name__}.{name} must be an integer >= {minimum}, got {value!r}")


def _reduction_positions(layers: int, reductions: int) -> tuple[int, ...]:
    """Indices of the reduction cells, spread: DARTS's ``layers // 3`` and ``2 * layers // 3`` for 2."""
    return tuple(k * layers // (reductions + 1) for k in range(1, reductions + 1))


def _check_sizes(cfg) -> None:
    """The checks :class:`SearchSpaceConfig` and :class:`ArchitectureConfig` share."""
    for name, minimum in (("in_channels", 1), ("image_size", 1), ("channels", 2), ("layers", 1),
                          ("reductions", 0), ("out_dim", 1)):
        _check_int(cfg, name, minimum)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"{type(cfg).__name__}.seed must be an integer, got {cfg.seed!r}")
    if len(set(_reduction_positions(cfg.layers, cfg.reductions))) < cfg.reductions:
        raise ConfigError(f"{type(cfg).__name__}: {cfg.layers} layers cannot hold {cfg.reductions} reduction "
                          f"cells; use layers >= reductions")
    if cfg.image_size < 2 ** cfg.reductions:
        raise ConfigError(f"{type(cfg).__name__}.image_size {cfg.image_size} is too small for "
                          f"{cfg.reductions} reductions (each halves the side): it must be at least "
                          f"{2 ** cfg.reductions}; use fewer reductions or larger images")


@dataclass(frozen=True)
class SearchSpaceConfig:
    """The search space and the supernet's sizes.

    Parameters
    ----------
    in_channels
        Image channels: 1 for Fashion-MNIST, 3 for RGB.
    image_size
        Side of the (square) input images in pixels; at least ``2 ** reductions``.
    channels
        Channels of the first cells (C); each reduction cell doubles them. At least 2.
    layers
        Number of cells.
    nodes
        Intermediate nodes per cell; a cell outputs their concatenation (``nodes * C`` channels).
    ops
        Candidate operations on every edge, names from :data:`PRIMITIVES`.
    out_dim
        The teacher's embedding size (e.g. 384): the student projects onto it.
    reductions
        Number of reduction cells (stride 2, channels doubled), spread evenly over the layers.
    seed
        Seeds the weight and alpha initialisation.
    """

    in_channels: int = 3
    image_size: int = 32
    channels: int = 16
    layers: int = 8
    nodes: int = 4
    ops: tuple[str, ...] = PRIMITIVES
    out_dim: int = 384
    reductions: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        _check_sizes(self)
        _check_int(self, "nodes", 1)
        if isinstance(self.ops, str) or not isinstance(self.ops, Sequence):
            raise ConfigError(f"SearchSpaceConfig.ops must be a sequence of op names, got {self.ops!r}")
        object.__setattr__(self, "ops", tuple(self.ops))  # a JSON list becomes the hashable tuple
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise ConfigError(f"SearchSpaceConfig.ops: unknown op(s) {unknown}; the ops are "
                              f"{', '.join(PRIMITIVES)}")
        if len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"SearchSpaceConfig.ops lists an op twice: {list(self.ops)}")
        if not [op for op in self.ops if op != "none"]:
            raise ConfigError("SearchSpaceConfig.ops needs at least one op other than 'none' to derive from")


def _cell_from_json(name: str, value) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ConfigError(f"Genotype.{name} must be a list of [op, input] pairs, got {value!r}")
    pairs = []
    for pair in value:
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise ConfigError(f"Genotype.{name}: each entry is an [op, input] pair, got {pair!r}")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


@dataclass(frozen=True)
class Genotype:
    """A discrete cell pair: for each node, in order, two ``(op, input)`` entries.

    ``input`` indexes the cell's states: 0 and 1 are the two cell inputs (the cells two and one back),
    ``2 + i`` is node ``i``. A cell outputs the concatenation of all its nodes.

    Parameters
    ----------
    normal, reduce
        The normal and the reduction cell, ``2 * nodes`` pairs each.
    """

    normal: tuple[tuple[str, int], ...]
    reduce: tuple[tuple[str, int], ...]

    def __post_init__(self) -> None:
        for name in ("normal", "reduce"):
            cell = _cell_from_json(name, getattr(self, name))
            object.__setattr__(self, name, cell)
            if not cell or len(cell) % 2:
                raise ConfigError(f"Genotype.{name} needs two [op, input] pairs per node, "
                                  f"got {len(cell)} pairs")
            for k, (op, source) in enumerate(cell):
                node = k // 2
                if op not in OPS or op == "none":
                    raise ConfigError(f"Genotype.{name}: node {node} has op {op!r}; the ops are "
                                      f"{', '.join(p for p in PRIMITIVES if p != 'none')}")
                if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < 2 + node:
                    raise ConfigError(f"Genotype.{name}: node {node} reads input {source!r}; it can read "
                                      f"0..{1 + node} (the two cell inputs and the nodes before it)")
        if len(self.normal) != len(self.reduce):
            raise ConfigError(f"Genotype: the normal cell has {len(self.normal) // 2} nodes, the reduction "
                              f"cell {len(self.reduce) // 2}; they must match")

    @property
    def nodes(self) -> int:
        """Intermediate nodes per cell."""
        return len(self.normal) // 2

    def to_json(self) -> str:
        """The genotype as a JSON object ``{"normal": [[op, input], ...], "reduce": [...]}``."""
        return json.dumps({name: [list(p) for p in getattr(self, name)] for name in ("normal", "reduce")})

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Rebuild a genotype from :meth:`to_json`'s output.

        Raises
        ------
        ConfigError
            Not JSON, a missing or unknown key, or an invalid entry (named).
        """
        return cls(**_json_fields(cls, text))


@dataclass(frozen=True)
class ArchitectureConfig:
    """A discrete network: a :class:`Genotype` and the sizes to build it at.

    Parameters
    ----------
    genotype
        The cells; its node count is the cells'.
    in_channels, image_size, channels, layers, reductions, out_dim, seed
        As in :class:`SearchSpaceConfig`; ``channels`` and ``layers`` may differ from the search's
        (a searched cell is usually retrained wider and deeper).
    """

    genotype: Genotype
    in_channels: int = 3
    image_size: int = 32
    channels: int = 16
    layers: int = 8
    reductions: int = 2
    out_dim: int = 384
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.genotype, Genotype):
            raise ConfigError(f"ArchitectureConfig.genotype must be a Genotype, "
                              f"got {type(self.genotype).__name__}")
        _check_sizes(self)

    @property
    def nodes(self) -> int:
        """Intermediate nodes per cell."""
        return self.genotype.nodes

    @classmethod
    def from_search(cls, space: SearchSpaceConfig, genotype: Genotype, *, channels: int | None = None,
                    layers: int | None = None) -> ArchitectureConfig:
        """The searched sizes of ``space`` with ``genotype``; ``channels`` / ``layers`` override them."""
        if not isinstance(space, SearchSpaceConfig):
            raise ConfigError(f"from_search needs a SearchSpaceConfig, got {type(space).__name__}")
        return cls(genotype, space.in_channels, space.image_size,
                   space.channels if channels is None else channels,
                   space.layers if layers is None else layers, space.reductions, space.out_dim, space.seed)

    def to_json(self) -> str:
        """The config as a JSON object; the genotype nested as in :meth:`Genotype.to_json`."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["genotype"] = json.loads(self.genotype.to_json())
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ArchitectureConfig:
        """Rebuild a config from :meth:`to_json`'s output.

        Raises
        ------
        ConfigError
            Not JSON, a missing or unknown field, or an invalid value (named).
        """
        data = _json_fields(cls, text)
        genotype = data.pop("genotype")
        if not isinstance(genotype, dict):
            raise ConfigError(f"ArchitectureConfig.genotype must be a JSON object, got {genotype!r}")
        return cls(Genotype.from_json(json.dumps(genotype)), **data)


# ----------------------------------------------------------------------------------------------------------
# 3. The shared layout: stem, cell sizes, edges, head
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _CellSpec:
    c_pp: int  # channels of the input two cells back
    c_p: int  # channels of the input one cell back
    c: int  # channels inside the cell
    reduction: bool
    reduction_prev: bool  # the input two back is at twice this cell's input resolution
    size: int  # side of the cell's input resolution


def _layout(cfg, nodes: int) -> tuple[list[_CellSpec], int]:
    """The cells' sizes for a config (search or architecture), and the last cell's output channels."""
    reduce_at = set(_reduction_positions(cfg.layers, cfg.reductions))
    c_pp = c_p = STEM_MULTIPLIER * cfg.channels
    c, size, reduction_prev, specs = cfg.channels, cfg.image_size, False, []
    for i in range(cfg.layers):
        reduction = i in reduce_at
        c = 2 * c if reduction else c
        specs.append(_CellSpec(c_pp, c_p, c, reduction, reduction_prev, size))
        c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
        size = (size + 1) // 2 if reduction else size
    return specs, c_p


def _edges(nodes: int) -> list[tuple[int, int]]:
    """``(node, input)`` of every edge of a search cell, in alpha's row order."""
    return [(i, j) for i in range(nodes) for j in range(2 + i)]


def _edge_shape(spec: _CellSpec, source: int) -> tuple[int, int]:
    """``(stride, input side)`` of an edge: a reduction cell's edges from its inputs halve the resolution."""
    if not spec.reduction:
        return 1, spec.size
    return (2, spec.size) if source < 2 else (1, (spec.size + 1) // 2)


def _preprocess(spec: _CellSpec, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both cell inputs to ``spec.c`` channels at the cell's resolution."""
    pre0 = (_FactorizedReduce(spec.c_pp, spec.c, affine) if spec.reduction_prev
            else _relu_conv_bn(spec.c_pp, spec.c, 1, 1, 0, affine))
    return pre0, _relu_conv_bn(spec.c_p, spec.c, 1, 1, 0, affine)


def _stem(cfg) -> nn.Module:
    width = STEM_MULTIPLIER * cfg.channels
    return nn.Sequential(nn.Conv2d(cfg.in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))


def _check_images(x, cfg, what: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError(f"{what} must be a float tensor of images [N, {cfg.in_channels}, {cfg.image_size}, "
                         f"{cfg.image_size}], got {type(x).__name__}"
                         + (f" of {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise InputError(f"{what} must be images [N, {', '.join(map(str, expected))}] (the config's "
                         f"in_channels and image_size), got shape {list(x.shape)}")


def _check_split(x, t, cfg, split: str) -> None:
    """Images and their stored teacher embeddings: same length, non-empty, the config's shapes."""
    _check_images(x, cfg, f"x_{split}")
    is_tensor = isinstance(t, torch.Tensor)
    if not is_tensor or not t.is_floating_point() or t.dim() != 2 or t.shape[1] != cfg.out_dim:
        got = f"shape {list(t.shape)} {t.dtype}" if is_tensor else type(t).__name__
        raise InputError(f"t_{split} must be the teacher's embeddings, a float tensor [N, {cfg.out_dim}] "
                         f"(out_dim), got {got}")
    if len(x) != len(t):
        raise InputError(f"x_{split} holds {len(x)} images but t_{split} {len(t)} teacher embeddings; "
                         f"they must pair up")
    if len(x) == 0:
        raise InputError(f"the {split} split is empty: give at least one image and its teacher embedding")


# ----------------------------------------------------------------------------------------------------------
# 4. The supernet
# ----------------------------------------------------------------------------------------------------------

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
    def __init__(self, spec: _CellSpec, nodes: int, ops: tuple[str, ...]) -> None:
        super().__init__()
        self.nodes = nodes
        self.pre0, self.pre1 = _preprocess(spec, affine=False)
        self.edges = nn.ModuleList(_MixedOp(spec.c, _edge_shape(spec, j)[0], ops) for _, j in _edges(nodes))

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
        self._specs, c_out = _layout(config, config.nodes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.stem = _stem(config)
            self.cells = nn.ModuleList(_SearchCell(s, config.nodes, config.ops) for s in self._specs)
            self.head = nn.Linear(c_out, config.out_dim)
            shape = (len(_edges(config.nodes)), len(config.ops))
            self.alpha_normal = nn.Parameter(1e-3 * torch.randn(shape))
            self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(shape))
        # cost[kind][cell, edge, op]: fixed by the config, so not saved with the weights
        for kind, column in zip(COMPLEXITIES, (0, 1)):
            table = [[[op_cost(op, s.c, *_edge_shape(s, j))[column] for op in config.ops]
                      for _, j in _edges(config.nodes)] for s in self._specs]
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
        _check_images(x, self.config)
        s0 = s1 = self.stem(x)
        for cell, weights in zip(self.cells, self._cell_weights()):
            s0, s1 = s1, cell(s0, s1, weights)
        return self.head(F.adaptive_avg_pool2d(s1, 1).flatten(1))


# ----------------------------------------------------------------------------------------------------------
# 5. Deriving the discrete architecture
# ----------------------------------------------------------------------------------------------------------

def _top_edges(weights: torch.Tensor, ops: tuple[str, ...], nodes: int,
               cell: str) -> list[tuple[str, int, int]]:
    """Per node, the two edges whose strongest non-``none`` op weighs most: ``(op, input, edge)``.

    A negative weight marks a banned (edge, op) pair.
    """
    usable = [k for k, name in enumerate(ops) if name != "none"]
    chosen, offset = [], 0
    for i in range(nodes):
        candidates = []
        for j in range(2 + i):
            row = weights[offset + j]
            best = max(usable, key=lambda k: float(row[k]))  # ties: the op listed first
            if row[best] >= 0:
                candidates.append((float(row[best]), -j, ops[best], j, offset + j))
        if len(candidates) < 2:
            raise ConfigError(f"cannot derive the {cell} cell: node {i} has fewer than two usable incoming "
                              f"edges once the skip cap is applied; allow more skips or add ops")
        candidates.sort(reverse=True)  # strongest first; ties: the earlier input
        chosen += [(op, j, e) for _, _, op, j, e in candidates[:2]]
        offset += 2 + i
    return chosen


def _derive_cell(weights: torch.Tensor, ops: tuple[str, ...], nodes: int, max_skip: int | None,
                 cell: str) -> tuple[tuple[str, int], ...]:
    weights = weights.detach().float().cpu().clone()
    while True:
        chosen = _top_edges(weights, ops, nodes, cell)
        skips = [(float(weights[e, ops.index(op)]), e) for op, _, e in chosen if op == "skip_connect"]
        if max_skip is None or len(skips) <= max_skip:
            return tuple((op, j) for op, j, _ in chosen)
        # ban skip on the weakest chosen skip edge and re-derive (P-DARTS / DARTS+): the edge may then
        # come back with its next-best op, or lose its place to another edge
        _, edge = min(skips)
        weights[edge, ops.index("skip_connect")] = -1.0


def _check_max_skip(max_skip) -> None:
    if max_skip is not None and (isinstance(max_skip, bool) or not isinstance(max_skip, int) or max_skip < 0):
        raise ConfigError(f"max_skip must be None or an integer >= 0, got {max_skip!r}")


def derive(network: SearchNetwork, max_skip: int | None = 2, *, budget: float | None = None,
           complexity: str = "params") -> Genotype:
    """The discrete architecture of a (searched) supernet, as in DARTS, optionally within a budget.

    For each node, each incoming edge is scored by its strongest non-``none`` op's softmax weight; the
    two best edges stay, each with that op.

    With a ``budget``, when that architecture's whole network (:func:`architecture_cost`, at the search's
    sizes) costs more than ``budget``, the architecture is picked within it instead: per cell, the two
    ``(op, input)`` entries of each node maximise ``sum softmax weight - mu * cost`` (the skip cap held),
    at the smallest price ``mu`` whose architecture fits (a bisection). A high enough price gives the
    cheapest derivable architecture, so a budget that one meets always yields an architecture.

    Parameters
    ----------
    network
        The supernet.
    max_skip
        At most this many ``skip_connect`` in the normal cell (the skip guard's cap); ``None``: no cap.
    budget
        The most parameters or MACs (``complexity``) the derived network may have; ``None``: no budget.
    complexity
        ``"params"`` or ``"macs"``: what ``budget`` counts.

    Returns
    -------
    Genotype

    Raises
    ------
    InputError
        ``network`` is not a :class:`SearchNetwork`.
    ConfigError
        ``max_skip`` is not ``None`` or an integer >= 0, or the cap cannot be met with the ops searched;
        the budget is not a positive number, or even the cheapest derivable architecture exceeds it.
    """
    if not isinstance(network, SearchNetwork):
        raise InputError(f"derive needs a SearchNetwork, got {type(network).__name__}")
    _check_max_skip(max_skip)
    cfg = network.config
    if budget is not None:
        _check_budget_value(budget, complexity)
    with torch.no_grad():
        normal = F.softmax(network.alpha_normal, dim=-1)
        reduce = F.softmax(network.alpha_reduce, dim=-1)
    genotype = Genotype(normal=_derive_cell(normal, cfg.ops, cfg.nodes, max_skip, "normal"),
                        reduce=_derive_cell(reduce, cfg.ops, cfg.nodes, None, "reduction"))
    if budget is None:
        return genotype
    costs = _Costs(cfg, complexity, max_skip)
    if costs.floor > budget:
        raise ConfigError(costs.hopeless(budget))
    if costs.total(genotype) <= budget:
        return genotype
    lo, hi = 0.0, 4.0 * cfg.nodes + 1.0  # at hi, one unit of cost outweighs every softmax weight together
    best = costs.cheapest
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        candidate = costs.priced(normal, reduce, mid)
        if costs.total(candidate) <= budget:
            hi, best = mid, candidate
        else:
            lo = mid
    return best


# ----------------------------------------------------------------------------------------------------------
# 6. The derived network
# ----------------------------------------------------------------------------------------------------------

class _DerivedCell(nn.Module):
    def __init__(self, spec: _CellSpec, cell: tuple[tuple[str, int], ...]) -> None:
        super().__init__()
        self.pre0, self.pre1 = _preprocess(spec, affine=True)
        self.inputs = [j for _, j in cell]
        self.ops = nn.ModuleList(OPS[op](spec.c, _edge_shape(spec, j)[0], True) for op, j in cell)

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
        specs, c_out = _layout(arch, arch.nodes)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(arch.seed)
            self.stem = _stem(arch)
            self.cells = nn.ModuleList(
                _DerivedCell(s, arch.genotype.reduce if s.reduction else arch.genotype.normal) for s in specs)
            self.head = nn.Linear(c_out, arch.out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_images(x, self.config)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` (the :class:`ArchitectureConfig`) and ``weights.safetensors`` (weights and
        BN statistics) into ``directory`` (created); each file is replaced only once its new version is
        complete. Returns the directory."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        _write_atomic(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))
        _write_atomic(directory / CONFIG_FILE, lambda tmp: tmp.write_text(self.config.to_json()))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> DerivedNetwork:
        """Rebuild a network written by :meth:`save`, in eval mode.

        Raises
        ------
        ModelLoadError
            A file is missing or corrupt, or the config does not match the weights (the file is named).
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        for path in (config_path, weights_path):
            if not path.is_file():
                raise ModelLoadError(f"no {path.name} in {directory}: not a saved DerivedNetwork "
                                     f"(DerivedNetwork.save writes {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            arch = ArchitectureConfig.from_json(config_path.read_text())
        except (OSError, UnicodeDecodeError, ConfigError) as exc:
            raise ModelLoadError(f"cannot read the architecture config {config_path}: {exc}") from exc
        try:
            state = load_file(str(weights_path))
        except Exception as exc:  # not safetensors, truncated header: say which file
            raise ModelLoadError(f"cannot read the weights {weights_path}: {exc}") from exc
        net = cls(arch)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:  # missing / unexpected keys or shapes: the files do not belong together
            raise ModelLoadError(f"{config_path} does not match the weights in {weights_path}: "
                                 f"{exc}") from exc
        return net.eval()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)  # a failed write never leaves a half file under the real name
    finally:
        tmp.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# 7. The complexity budget
# ----------------------------------------------------------------------------------------------------------

def architecture_cost(arch: ArchitectureConfig) -> tuple[int, int]:
    """The cost of the whole :class:`DerivedNetwork` an architecture builds (stem, cells, head).

    Returns
    -------
    (params, macs)
        Its parameter count, and its multiply-accumulates per image counted as :func:`op_cost` counts
        them (convolutions, pooling windows), plus ``in * out`` for the head; BN, ReLU, the additions and
        the global pool cost nothing.
    """
    if not isinstance(arch, ArchitectureConfig):
        raise ConfigError(f"architecture_cost needs an ArchitectureConfig, got {type(arch).__name__}")
    net = DerivedNetwork(arch).eval()
    return net.num_parameters(), _count_macs(net, (1, arch.in_channels, arch.image_size, arch.image_size))


def _format_figure(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


def _check_budget_value(budget, complexity: str) -> None:
    if complexity not in COMPLEXITIES:
        raise ConfigError(f"complexity must be one of {', '.join(COMPLEXITIES)}, got {complexity!r}")
    number = isinstance(budget, (int, float)) and not isinstance(budget, bool)
    if not number or not math.isfinite(budget) or budget <= 0:
        raise ConfigError(f"budget must be a positive number of {_UNITS[complexity]}, got {budget!r}")


_UNITS = {"params": "parameters", "macs": "MACs"}


def _priced_cell(weights: torch.Tensor, table: list[list[int]], ops: tuple[str, ...], nodes: int,
                 max_skip: int | None, mu: float, cell: str) -> tuple[tuple[str, int], ...]:
    """The cell whose entries maximise ``sum (weight - mu * cost)``, at most ``max_skip`` skips.

    ``table[input][op]`` is the cost of ``op`` on an edge from ``input``. Nodes are independent but for
    the skip count, so a small dynamic programme over the nodes with the skips used so far is exact.
    """
    usable = [k for k, name in enumerate(ops) if name != "none"]
    skip = ops.index("skip_connect") if max_skip is not None and "skip_connect" in ops else None
    weights = weights.detach().float().cpu()
    best: dict[int, tuple[float, tuple]] = {0: (0.0, ())}  # skips used -> (score, entries)
    offset = 0
    for i in range(nodes):
        choices = []  # per input: its best non-skip entry and its skip entry, (score, op index)
        for j in range(2 + i):
            scored = [(float(weights[offset + j, k]) - mu * table[j][k], k) for k in usable]
            plain = [e for e in scored if e[1] != skip]
            choices.append(([max(plain, key=lambda e: e[0])] if plain else [])  # ties: the op listed first
                           + [e for e in scored if e[1] == skip])
        merged: dict[int, tuple[float, tuple]] = {}
        for used, (score, entries) in best.items():
            for a in range(2 + i):
                for b in range(a + 1, 2 + i):
                    for ea in choices[a]:
                        for eb in choices[b]:
                            n = used + (ea[1] == skip) + (eb[1] == skip)
                            if max_skip is not None and n > max_skip:
                                continue
                            total = score + ea[0] + eb[0]
                            if n not in merged or total > merged[n][0]:
                                merged[n] = (total, entries + ((ops[ea[1]], a), (ops[eb[1]], b)))
        if not merged:
            raise ConfigError(f"cannot derive the {cell} cell: node {i} has fewer than two usable incoming "
                              f"edges once the skip cap is applied; allow more skips or add ops")
        best, offset = merged, offset + 2 + i
    return max(best.values(), key=lambda v: v[0])[1]


class _Costs:
    """A search space's costs: per cell kind, input and op (summed over the cells of that kind), and the
    part no genotype changes (stem, the cells' input convolutions, head)."""

    def __init__(self, space: SearchSpaceConfig, complexity: str, max_skip: int | None) -> None:
        if not isinstance(space, SearchSpaceConfig):
            raise ConfigError(f"the budget is checked on a SearchSpaceConfig, got {type(space).__name__}")
        if complexity not in COMPLEXITIES:
            raise ConfigError(f"complexity must be one of {', '.join(COMPLEXITIES)}, got {complexity!r}")
        _check_max_skip(max_skip)
        self.space, self.complexity, self.max_skip = space, complexity, max_skip
        column = COMPLEXITIES.index(complexity)
        specs, _ = _layout(space, space.nodes)
        self.table = {kind: [[sum(op_cost(op, s.c, *_edge_shape(s, j))[column]
                                  for s in specs if s.reduction == (kind == "reduce")) for op in space.ops]
                             for j in range(space.nodes + 1)] for kind in ("normal", "reduce")}
        flat = torch.zeros(len(_edges(space.nodes)), len(space.ops))
        self.cheapest = self.priced(flat, flat, 1.0)  # no weights: the cost alone decides
        self.floor = architecture_cost(ArchitectureConfig.from_search(space, self.cheapest))[column]
        self.fixed = self.floor - self._cells(self.cheapest)

    def _cells(self, genotype: Genotype) -> int:
        index = {op: k for k, op in enumerate(self.space.ops)}
        return sum(self.table[kind][j][index[op]] for kind in ("normal", "reduce")
                   for op, j in getattr(genotype, kind))

    def total(self, genotype: Genotype) -> int:
        """The whole network's cost with this genotype at the search's sizes."""
        return self.fixed + self._cells(genotype)

    def priced(self, normal: torch.Tensor, reduce: torch.Tensor, mu: float) -> Genotype:
        ops, nodes = self.space.ops, self.space.nodes
        return Genotype(
            normal=_priced_cell(normal, self.table["normal"], ops, nodes, self.max_skip, mu, "normal"),
            reduce=_priced_cell(reduce, self.table["reduce"], ops, nodes, None, mu, "reduction"))

    def hopeless(self, budget: float) -> str:
        unit = _UNITS[self.complexity]
        cap = f", at most {self.max_skip} skip(s) in the normal cell" if self.max_skip is not None else ""
        return (f"no architecture of this search space fits a budget of {_format_figure(budget)} {unit}: "
                f"the cheapest one derive can build has {self.floor:,} {unit} (every edge on its cheapest "
                f"op{cap}), {self.fixed:,} of them in the stem, the cells' input convolutions and the head "
                f"whatever the cells; raise the budget to at least {self.floor:,} or shrink the search space "
                f"(channels, layers, nodes, image_size)")


def cheapest_architecture(space: SearchSpaceConfig, complexity: str = "params",
                          max_skip: int | None = 2) -> tuple[ArchitectureConfig, int]:
    """The cheapest architecture :func:`derive` can build from ``space`` (at the search's sizes).

    Parameters
    ----------
    space
        The search space.
    complexity
        ``"params"`` or ``"macs"``: what "cheapest" counts (see :func:`architecture_cost`).
    max_skip
        The skip guard's cap on the normal cell, which derive holds (``None``: no cap).

    Returns
    -------
    (ArchitectureConfig, int)
        The architecture and its cost.
    """
    costs = _Costs(space, complexity, max_skip)
    return ArchitectureConfig.from_search(space, costs.cheapest), costs.floor


def check_budget(space: SearchSpaceConfig, budget: float, complexity: str = "params",
                 max_skip: int | None = 2) -> int:
    """Fail fast, before any training, when no architecture of ``space`` fits ``budget``.

    Returns
    -------
    int
        The cheapest derivable architecture's cost (:func:`cheapest_architecture`).

    Raises
    ------
    ConfigError
        ``budget`` is not a positive number, or even the cheapest architecture exceeds it (the message
        gives the cheapest figure).
    """
    _check_budget_value(budget, complexity)
    costs = _Costs(space, complexity, max_skip)
    if costs.floor > budget:
        raise ConfigError(costs.hopeless(budget))
    return costs.floor


# ----------------------------------------------------------------------------------------------------------
# 8. The search and the retraining
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SkipGuard:
    """The guard against the collapse onto skip connections (see the module docstring).

    Parameters
    ----------
    max_skip
        At most this many ``skip_connect`` in the derived normal cell; ``None``: no cap.
    dropout
        Dropout rate on the identity skip's output during the search; 0 turns it off.
    decay
        Decay the dropout rate linearly to 0 over the epochs (P-DARTS); otherwise keep it constant.
    """

    max_skip: int | None = 2
    dropout: float = 0.3
    decay: bool = True

    def __post_init__(self) -> None:
        cap = self.max_skip
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise ConfigError(f"SkipGuard.max_skip must be None or an integer >= 0, got {self.max_skip!r}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"SkipGuard.dropout must be a rate in [0, 1), got {self.dropout!r}")


@dataclass(frozen=True)
class EpochStats:
    """One search epoch: mean KD losses (``1 - cosine``) and the normalised expected complexity after it."""

    epoch: int
    train_kd: float
    val_kd: float
    complexity: float


@dataclass
class SearchResult:
    """What :func:`search` returns: the derived genotype, the per-epoch history (the resumed epochs'
    too) and the epoch the run resumed from (0: a fresh run)."""

    genotype: Genotype
    history: list[EpochStats] = field(default_factory=list)
    resumed_from: int = 0


def _kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``1 - cosine(student, teacher)``, averaged over the batch."""
    return 1.0 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1).mean()


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    yield from torch.randperm(n, generator=generator).split(batch_size)


def _cycle(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    while True:
        yield from _batches(n, batch_size, generator)


def _check_training(epochs, batch_size, **rates) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    for name, value in rates.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_labels(y_train, y_val, n_train: int, n_val: int) -> int:
    """The number of classes of the optional labels (0: none given)."""
    if y_train is None and y_val is None:
        return 0
    if y_train is None or y_val is None:
        raise InputError("give labels for both splits (y_train and y_val) or for neither")
    for name, y, n in (("y_train", y_train, n_train), ("y_val", y_val, n_val)):
        if not isinstance(y, torch.Tensor) or y.dtype != torch.long or y.shape != (n,):
            raise InputError(f"{name} must be class indices, a long tensor [{n}], got "
                             + (f"shape {list(y.shape)} {y.dtype}" if isinstance(y, torch.Tensor)
                                else type(y).__name__))
        if len(y) and y.min() < 0:
            raise InputError(f"{name} holds a negative class index")
    return int(max(y_train.max(), y_val.max())) + 1


# The checkpoint of a search (search(..., checkpoint=FOLDER)), rewritten after every epoch:
#   FOLDER/search.json                 format, the search's settings, the epochs done, the history, the
#                                      optimisers' learning rates and the schedule's state
#   FOLDER/state-<epoch>.safetensors   the supernet (alphas and BN statistics included), the task head,
#                                      both optimisers' state tensors, the RNG states
# The state file of an epoch is complete before the manifest names it (both written atomically) and the
# previous one is removed only after: a run killed at any point leaves a manifest naming a whole file.
CHECKPOINT_FORMAT = "ragsc-darts-search/1"
CHECKPOINT_MANIFEST = "search.json"


def _digest(*tensors: torch.Tensor | None) -> str:
    """A content hash of the search's data (shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"-")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{list(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _search_settings(cfg: SearchSpaceConfig, data: str, classes: int, **settings) -> dict:
    """Everything a search's trajectory depends on, flat (``space.channels``) so a difference names its
    field. The budget and the skip cap act only at derivation: a finished search is re-derived with
    others from its checkpoint."""
    out = {f"space.{f.name}": list(getattr(cfg, f.name)) if f.name == "ops" else getattr(cfg, f.name)
           for f in dataclasses.fields(cfg)}
    out.update(settings)
    out.update(classes=classes, data=data)
    return out


def _read_checkpoint(folder: Path) -> dict | None:
    path = folder / CHECKPOINT_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a readable search checkpoint: {exc}; remove {folder} to start "
                             f"the search over") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path}: not a KDL-DARTS search checkpoint (format {CHECKPOINT_FORMAT!r}); "
                             f"use another checkpoint folder")
    return manifest


def _check_same_search(folder: Path, stored: dict, settings: dict) -> None:
    if not isinstance(stored, dict):
        raise ModelLoadError(f"{folder / CHECKPOINT_MANIFEST}: its settings are not a JSON object")
    missing = object()
    differ = [k for k in sorted(set(stored) | set(settings))
              if stored.get(k, missing) != settings.get(k, missing)]
    if not differ:
        return

    def show(key: str, value) -> str:
        if value is missing:
            return "unset"
        return f"{value[:12]}..." if key == "data" and isinstance(value, str) else repr(value)

    fields = "; ".join(f"{k} was {show(k, stored.get(k, missing))}, now {show(k, settings.get(k, missing))}"
                       + (" (the images, teacher embeddings or labels of the splits)" if k == "data" else "")
                       for k in differ)
    raise ConfigError(f"{folder} holds the checkpoint of another search: {fields}. Rerun with the "
                      f"checkpoint's settings to resume it, or give another checkpoint folder")


def _state_tensors(network: SearchNetwork, head: nn.Module | None, optimizers: dict,
                   generator: torch.Generator, device: torch.device) -> tuple[dict, dict]:
    """The tensors of a checkpoint, and the optimisers' non-tensor state for the manifest."""
    tensors = {f"network.{k}": v for k, v in network.state_dict().items()}
    if head is not None:
        tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    extra = {}
    for name, opt in optimizers.items():
        extra[name] = {}
        for i, state in opt.state_dict()["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{name}.{i}.{key}"] = value
                else:
                    extra[name].setdefault(str(i), {})[key] = value
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.batches"] = generator.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, extra


def _save_checkpoint(folder: Path, manifest: dict, tensors: dict) -> None:
    """Write one epoch's state, then the manifest naming it, then drop the previous state."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    previous = _read_checkpoint(folder)
    state = folder / manifest["state"]
    _write_atomic(state, lambda tmp: save_file(tensors, str(tmp)))
    _write_atomic(folder / CHECKPOINT_MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
    if previous is not None and previous.get("state") not in (None, manifest["state"]):
        (folder / Path(str(previous["state"])).name).unlink(missing_ok=True)


def _restore(folder: Path, manifest: dict, network: SearchNetwork, head: nn.Module | None, optimizers: dict,
             schedule, generator: torch.Generator, device: torch.device) -> tuple[int, list[EpochStats]]:
    """Load a checkpoint into the search's objects; returns the epochs done and their history."""
    from safetensors.torch import load_file

    path = folder / Path(str(manifest.get("state"))).name
    if not path.is_file():
        raise ModelLoadError(f"{folder}: the checkpoint's state file {path.name} is missing; remove "
                             f"{folder} to start the search over")
    try:
        state = load_file(str(path))
        for prefix, module in (("network.", network), ("head.", head)):
            if module is not None:
                module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        for name, opt in optimizers.items():
            saved: dict[int, dict] = {}
            for key, value in state.items():
                if key.startswith(name + "."):
                    _, i, field_name = key.split(".", 2)
                    saved.setdefault(int(i), {})[field_name] = value
            for i, values in manifest["optimizers"][name]["extra"].items():
                saved.setdefault(int(i), {}).update(values)
            groups = opt.state_dict()["param_groups"]
            for group, lrs in zip(groups, manifest["optimizers"][name]["groups"], strict=True):
                group.update(lrs)  # the schedule's current and initial rates
            opt.load_state_dict({"state": saved, "param_groups": groups})
        schedule.load_state_dict(manifest["schedule"])
        generator.set_state(state["rng.batches"])
        torch.set_rng_state(state["rng.cpu"])
        if device.type == "cuda" and "rng.cuda" in state:
            torch.cuda.set_rng_state(state["rng.cuda"], device)
        epoch = manifest["epoch"]
        history = [EpochStats(**row) for row in manifest["history"]]
    except Exception as exc:  # a truncated file, missing keys, a hand-edited manifest: name the checkpoint
        raise ModelLoadError(f"cannot resume from the checkpoint in {folder} ({path.name}): {exc}; remove "
                             f"{folder} to start the search over") from exc
    if not isinstance(epoch, int) or len(history) != epoch:
        raise ModelLoadError(f"{folder / CHECKPOINT_MANIFEST}: {epoch!r} epochs done but {len(history)} in "
                             f"its history; remove {folder} to start the search over")
    return epoch, history


def search(network: SearchNetwork, x_train: torch.Tensor, t_train: torch.Tensor, x_val: torch.Tensor,
           t_val: torch.Tensor, *, epochs: int = 50, lam: float = 0.0, batch_size: int = 64,
           lr_w: float = 0.025, lr_alpha: float = 3e-4, seed: int = 0, complexity: str = "params",
           skip_guard: SkipGuard = SkipGuard(), y_train: torch.Tensor | None = None,
           y_val: torch.Tensor | None = None, task_weight: float = 1.0, budget: float | None = None,
           checkpoint: str | Path | None = None, progress: bool = False) -> SearchResult:
    """First-order bilevel DARTS with a KD loss and a complexity penalty; trains ``network`` in place.

    Each step: alpha takes an Adam step on a validation batch with ``KD + lam * expected_complexity /
    max_complexity``; then the weights take an SGD step (momentum 0.9, cosine schedule, gradient norm
    clipped at 5) on a train batch with the KD loss. KD loss = ``1 - cosine(student, teacher)``.

    Parameters
    ----------
    network
        The supernet; left in eval mode with the skip dropout off.
    x_train, x_val
        Images ``[N, in_channels, image_size, image_size]`` (float).
    t_train, t_val
        The teacher's stored embeddings of those images, ``[N, out_dim]``.
    epochs
        Passes over the train split; a validation batch is drawn (cycling) for each train batch.
    lam
        Weight of the normalised complexity (dimensionless, >= 0): at ``lam = 1`` going from the
        all-cheapest to the all-costliest supernet costs as much as a cosine of 1.
    batch_size, lr_w, lr_alpha
        Batch size, the weights' SGD learning rate, alpha's Adam learning rate (DARTS's defaults).
    seed
        Seeds the batch order and the dropout masks.
    complexity
        ``"params"`` or ``"macs"``, see :meth:`SearchNetwork.expected_complexity`; also what ``budget``
        counts.
    skip_guard
        The skip dropout during the search and the cap at derivation.
    y_train, y_val
        Optional class labels ``[N]`` (long): adds ``task_weight`` times the cross-entropy of a linear head
        on the student's output (the head is trained with the weights and then dropped).
    budget
        The most parameters or MACs (``complexity``) the derived network may have (see :func:`derive`);
        checked before any training: when no derivable architecture fits, nothing is trained.
    checkpoint
        A folder (created) where the search's state is written after every epoch (safetensors and a JSON
        manifest, no pickle). A rerun with the same settings and data resumes after the last complete
        epoch and ends exactly as an uninterrupted run would (on CPU); a finished checkpoint is
        re-derived without training, e.g. under another ``budget`` or skip cap, which act only at
        derivation. ``network`` takes the checkpoint's weights.
    progress
        Show a tqdm bar over the epochs.

    Returns
    -------
    SearchResult
        The genotype derived with ``skip_guard.max_skip`` (and ``budget``), the per-epoch losses and
        complexity, the epoch resumed from.

    Raises
    ------
    InputError
        The data do not fit the network's config, lengths differ, a split is empty, labels are bad.
    ConfigError
        A training setting is invalid; no architecture of the space fits ``budget``; ``checkpoint`` holds
        another search's state (the differing settings are named).
    ModelLoadError
        The checkpoint is corrupt.
    """
    if not isinstance(network, SearchNetwork):
        raise InputError(f"search needs a SearchNetwork, got {type(network).__name__}")
    if not isinstance(skip_guard, SkipGuard):
        raise ConfigError(f"skip_guard must be a SkipGuard, got {type(skip_guard).__name__}")
    _check_training(epochs, batch_size, lam=lam, lr_w=lr_w, lr_alpha=lr_alpha, task_weight=task_weight)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    network._cost(complexity)  # an unknown complexity fails before any training
    cfg = network.config
    _check_split(x_train, t_train, cfg, "train")
    _check_split(x_val, t_val, cfg, "val")
    n_classes = _check_labels(y_train, y_val, len(x_train), len(x_val))
    if budget is not None:
        check_budget(cfg, budget, complexity, skip_guard.max_skip)
    folder = manifest = settings = None
    if checkpoint is not None:
        folder = Path(checkpoint)
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"checkpoint {folder} is a file; give a folder (created when missing)")
        settings = _search_settings(
            cfg, _digest(x_train, t_train, x_val, t_val, y_train, y_val), n_classes, epochs=epochs,
            lam=float(lam), batch_size=batch_size, lr_w=float(lr_w), lr_alpha=float(lr_alpha), seed=seed,
            complexity=complexity, task_weight=float(task_weight),
            **{"skip_guard.dropout": float(skip_guard.dropout), "skip_guard.decay": bool(skip_guard.decay)})
        manifest = _read_checkpoint(folder)
        if manifest is not None:
            _check_same_search(folder, manifest.get("settings"), settings)
    device = network.alpha_normal.device
    history: list[EpochStats] = []
    start = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the task head's initialisation and the dropout masks
        head = nn.Linear(cfg.out_dim, n_classes).to(device) if n_classes else None
        weights = network.weight_parameters() + (list(head.parameters()) if head else [])
        w_opt = torch.optim.SGD(weights, lr=lr_w, momentum=0.9, weight_decay=3e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, epochs, eta_min=0.01 * lr_w)
        a_opt = torch.optim.Adam(network.arch_parameters(), lr=lr_alpha, betas=(0.5, 0.999),
                                 weight_decay=1e-3)
        optimizers = {"w_opt": w_opt, "a_opt": a_opt}
        generator = torch.Generator().manual_seed(seed)
        if manifest is not None:
            start, history = _restore(folder, manifest, network, head, optimizers, schedule, generator,
                                      device)

        def loss_on(x, t, y, idx):
            out = network(x[idx].to(device))
            kd = _kd_loss(out, t[idx].to(device))
            task = F.cross_entropy(head(out), y[idx].to(device)) if head is not None else 0.0
            return kd, kd + task_weight * task

        network.train()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, initial=start, desc="KDL-DARTS search", unit="epoch")
        for epoch in range(start, epochs):
            rate = skip_guard.dropout * (1.0 - epoch / epochs) if skip_guard.decay else skip_guard.dropout
            network.set_skip_dropout(rate)
            val_batches = _cycle(len(x_val), batch_size, generator)
            train_sum = val_sum = 0.0
            steps = 0
            for idx in _batches(len(x_train), batch_size, generator):
                val_kd, val_loss = loss_on(x_val, t_val, y_val, next(val_batches))
                a_opt.zero_grad()
                (val_loss + lam * network.expected_complexity(complexity, normalize=True)).backward()
                a_opt.step()
                train_kd, train_loss = loss_on(x_train, t_train, y_train, idx)
                w_opt.zero_grad()
                train_loss.backward()
                nn.utils.clip_grad_norm_(weights, 5.0)
                w_opt.step()
                train_sum, val_sum, steps = train_sum + train_kd.item(), val_sum + val_kd.item(), steps + 1
            schedule.step()
            with torch.no_grad():
                cplx = float(network.expected_complexity(complexity, normalize=True))
            history.append(EpochStats(epoch, train_sum / steps, val_sum / steps, cplx))
            if folder is not None:
                tensors, extra = _state_tensors(network, head, optimizers, generator, device)
                _save_checkpoint(folder, {
                    "format": CHECKPOINT_FORMAT, "settings": settings, "epoch": epoch + 1,
                    "complete": epoch + 1 == epochs, "state": f"state-{epoch + 1:04d}.safetensors",
                    "history": [dataclasses.asdict(h) for h in history],
                    "optimizers": {name: {"groups": [{k: g[k] for k in ("lr", "initial_lr") if k in g}
                                                     for g in opt.param_groups], "extra": extra[name]}
                                   for name, opt in optimizers.items()},
                    "schedule": schedule.state_dict()}, tensors)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    network.set_skip_dropout(0.0)
    network.eval()
    genotype = derive(network, skip_guard.max_skip, budget=budget, complexity=complexity)
    return SearchResult(genotype, history, resumed_from=start)


def retrain(network: DerivedNetwork, x: torch.Tensor, t: torch.Tensor, *, epochs: int = 10,
            batch_size: int = 64, lr: float = 0.025, seed: int = 0, progress: bool = False) -> list[float]:
    """Train a derived network's weights on ``(x, t)`` with the KD loss; SGD (momentum 0.9, cosine schedule).

    Parameters
    ----------
    network
        Trained in place and left in eval mode.
    x, t
        Images ``[N, in_channels, image_size, image_size]`` and teacher embeddings ``[N, out_dim]``.
    epochs, batch_size, lr, seed
        Passes over the data, batch size, learning rate, seed of the batch order.
    progress
        Show a tqdm bar over the epochs.

    Returns
    -------
    list of float
        The mean KD loss (``1 - cosine``) of each epoch.
    """
    if not isinstance(network, DerivedNetwork):
        raise InputError(f"retrain needs a DerivedNetwork, got {type(network).__name__}")
    _check_training(epochs, batch_size, lr=lr)
    _check_split(x, t, network.config, "train")
    device = next(network.parameters()).device
    opt = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=0.01 * lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    network.train()
    epochs_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs_iter = tqdm(epochs_iter, desc="retrain", unit="epoch")
    for _ in epochs_iter:
        total, steps = 0.0, 0
        for idx in _batches(len(x), batch_size, generator):
            loss = _kd_loss(network(x[idx].to(device)), t[idx].to(device))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            opt.step()
            total, steps = total + loss.item(), steps + 1
        schedule.step()
        losses.append(total / steps)
    network.eval()
    return losses


def kd_score(network: SearchNetwork | DerivedNetwork, x: torch.Tensor, t: torch.Tensor,
             batch_size: int = 256) -> float:
    """Mean cosine between the network's outputs (eval mode) and the teacher's embeddings ``t``."""
    if not isinstance(network, (SearchNetwork, DerivedNetwork)):
        raise InputError(f"kd_score needs a SearchNetwork or DerivedNetwork, got {type(network).__name__}")
    _check_split(x, t, network.config, "eval")
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = network(x[start:start + batch_size].to(device))
            total += float(F.cosine_similarity(out, t[start:start + batch_size].to(device), dim=-1).sum())
    network.train(was_training)
    return total / len(x)


# ----------------------------------------------------------------------------------------------------------
# 9. The lambda front
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FrontPoint:
    """One searched architecture: its ``lam``, parameter count, validation score (mean cosine to the
    teacher after retraining) and genotype; its MACs per image, the search's seconds (this run's) and
    the retrained network."""

    lam: float
    params: int
    score: float
    genotype: Genotype
    macs: int = 0
    seconds: float = 0.0
    network: DerivedNetwork | None = field(default=None, compare=False, repr=False)


def lambda_front(x_train: torch.Tensor, t_train: torch.Tensor, x_val: torch.Tensor, t_val: torch.Tensor,
                 lambdas: Sequence[float], config: SearchSpaceConfig, *, epochs: int = 20,
                 retrain_epochs: int = 10, batch_size: int = 64, lr_w: float = 0.025, lr_alpha: float = 3e-4,
                 seed: int = 0, complexity: str = "params", skip_guard: SkipGuard = SkipGuard(),
                 channels: int | None = None, layers: int | None = None, budget: float | None = None,
                 checkpoint: str | Path | None = None, progress: bool = False) -> list[FrontPoint]:
    """Search, derive and retrain once per ``lam``: the size / imitation trade-off.

    Parameters
    ----------
    x_train, t_train, x_val, t_val
        As in :func:`search`; the derived net is retrained on the train split and scored on the validation
        split.
    lambdas
        The complexity weights to search with (each >= 0).
    config
        The search space; a fresh supernet is built from it for each ``lam``.
    epochs, batch_size, lr_w, lr_alpha, seed, complexity, skip_guard
        Passed to :func:`search`.
    retrain_epochs
        Epochs of :func:`retrain` for each derived net (learning rate ``lr_w``).
    channels, layers
        Sizes of the retrained nets (default: the search's).
    budget
        Passed to :func:`search` (the most parameters or MACs of the derived net at the search's sizes);
        checked once before any search.
    checkpoint
        A folder: each ``lam``'s search checkpoints into ``<checkpoint>/lam-<lam>`` (see :func:`search`),
        so an interrupted front resumes where it stopped.
    progress
        tqdm bars over the lambdas, and over each search's and retraining's epochs.

    Returns
    -------
    list of FrontPoint
        In the order of ``lambdas``.
    """
    if not isinstance(config, SearchSpaceConfig):
        raise ConfigError(f"lambda_front needs a SearchSpaceConfig, got {type(config).__name__}")
    lambdas = list(lambdas)
    if not lambdas:
        raise InputError("lambdas is empty: give at least one complexity weight")
    _check_training(epochs, batch_size, **{f"lambdas[{k}]": lam for k, lam in enumerate(lambdas)})
    _check_training(retrain_epochs, batch_size)
    if not isinstance(skip_guard, SkipGuard):
        raise ConfigError(f"skip_guard must be a SkipGuard, got {type(skip_guard).__name__}")
    if budget is not None:
        check_budget(config, budget, complexity, skip_guard.max_skip)
    points = []
    lam_iter = lambdas
    if progress:
        from tqdm.auto import tqdm

        lam_iter = tqdm(lambdas, desc="lambda front", unit="lambda")
    for lam in lam_iter:
        start = time.perf_counter()
        result = search(SearchNetwork(config), x_train, t_train, x_val, t_val, epochs=epochs, lam=lam,
                        batch_size=batch_size, lr_w=lr_w, lr_alpha=lr_alpha, seed=seed, complexity=complexity,
                        skip_guard=skip_guard, budget=budget, progress=progress,
                        checkpoint=None if checkpoint is None else Path(checkpoint) / f"lam-{float(lam)!r}")
        seconds = time.perf_counter() - start
        net = DerivedNetwork(ArchitectureConfig.from_search(config, result.genotype, channels=channels,
                                                            layers=layers))
        retrain(net, x_train, t_train, epochs=retrain_epochs, batch_size=batch_size, lr=lr_w, seed=seed,
                progress=progress)
        score = kd_score(net, x_val, t_val)
        params, macs = architecture_cost(net.config)
        points.append(FrontPoint(float(lam), params, score, result.genotype, macs, seconds, net))
    return points


def plot_front(points: Sequence[FrontPoint], path: str | Path) -> Path:
    """Save a PNG of parameters (x) against validation score (y), each point labelled with its ``lam``.

    Returns
    -------
    Path
        ``path``, its folder created.
    """
    from matplotlib.figure import Figure

    points = list(points)
    if not points:
        raise InputError("plot_front needs at least one FrontPoint")
    fig = Figure(figsize=(5.0, 3.6), dpi=120)
    ax = fig.subplots()
    ordered = sorted(points, key=lambda p: p.params)
    ax.plot([p.params for p in ordered], [p.score for p in ordered], "o-", color="tab:blue")
    for p in points:
        ax.annotate(f"λ={p.lam:g}", (p.params, p.score), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("parameters of the derived student")
    ax.set_ylabel("validation cosine to the teacher")
    ax.set_title("KDL-DARTS: size vs. imitation")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
