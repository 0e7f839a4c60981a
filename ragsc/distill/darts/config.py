"""The KDL-DARTS configs: the search space, the genotype and the architecture.

:class:`SearchSpaceConfig` sizes the supernet and lists the candidate operations; :class:`Genotype` is
what a search derives, two ``(op, input)`` entries per node of the normal and of the reduction cell;
:class:`ArchitectureConfig` is a genotype and the sizes to build it at (a derived network's
``config.json``). Frozen dataclasses, checked when built: a bad value raises
:class:`~ragsc.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from ragsc.checks import size
from ragsc.config import MAX_DIM, MAX_WIDTH
from ragsc.decoders.arch import json_fields as _json_fields  # exactly the fields: no default fills a gap
from ragsc.distill.darts.ops import OPS, PRIMITIVES
from ragsc.errors import ConfigError

# (lowest, highest) of each size: generous, but finite, so that a saved network's config.json cannot ask for
# an allocation of any size (the widest cell, channels * 2 ** reductions, is bounded by MAX_WIDTH too)
BOUNDS = {"in_channels": (1, 64), "image_size": (1, 1024), "channels": (2, 1024), "layers": (1, 64),
          "reductions": (0, 10), "out_dim": (1, MAX_DIM), "nodes": (1, 16)}


def reduction_positions(layers: int, reductions: int) -> tuple[int, ...]:
    """Indices of the reduction cells, spread: DARTS's ``layers // 3`` and ``2 * layers // 3`` for 2."""
    return tuple(k * layers // (reductions + 1) for k in range(1, reductions + 1))


def _check_sizes(cfg) -> None:
    """The checks :class:`SearchSpaceConfig` and :class:`ArchitectureConfig` share."""
    for name in ("in_channels", "image_size", "channels", "layers", "reductions", "out_dim"):
        size(cfg, name, *BOUNDS[name])
    if cfg.channels * 2 ** cfg.reductions > MAX_WIDTH:
        raise ConfigError(f"{type(cfg).__name__}: the widest cells have channels * 2 ** reductions = "
                          f"{cfg.channels * 2 ** cfg.reductions} channels; at most {MAX_WIDTH}")
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int):
        raise ConfigError(f"{type(cfg).__name__}.seed must be an integer, got {cfg.seed!r}")
    if len(set(reduction_positions(cfg.layers, cfg.reductions))) < cfg.reductions:
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
        size(self, "nodes", *BOUNDS["nodes"])
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
            if not cell or len(cell) % 2 or len(cell) > 2 * BOUNDS["nodes"][1]:
                raise ConfigError(f"Genotype.{name} needs two [op, input] pairs per node, for 1 to "
                                  f"{BOUNDS['nodes'][1]} nodes, got {len(cell)} pairs")
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
