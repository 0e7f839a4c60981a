"""Deriving the discrete KDL-DARTS architecture from a searched supernet, optionally within a budget.

:func:`derive` keeps, per node, the two incoming edges whose strongest non-``none`` operation is
strongest, as in DARTS, with at most ``max_skip`` skip connections in the normal cell (the weakest extra
skip is banned on its edge and the cell re-derived: the P-DARTS / DARTS+ rule).

The budget: :func:`architecture_cost` counts a derived network's parameters and MACs;
:func:`cheapest_architecture` is the cheapest one derive can build from a search space. A ``budget`` (at
most that many parameters or MACs, as ``complexity`` says) fails at once, before any training, when even
the cheapest exceeds it (:func:`check_budget`, the message gives the cheapest figure); when the plain
DARTS derivation exceeds it, derive picks within it instead (the strongest architecture at the smallest
price per unit of cost that fits).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ragsc.distill.darts.config import ArchitectureConfig, Genotype, SearchSpaceConfig
from ragsc.distill.darts.layout import cell_edges, cell_specs, edge_shape
from ragsc.distill.darts.network import DerivedNetwork
from ragsc.distill.darts.ops import COMPLEXITIES, count_macs, op_cost
from ragsc.distill.darts.supernet import SearchNetwork
from ragsc.errors import ConfigError, InputError


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
    costs = Costs(cfg, complexity, max_skip)
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
    return net.num_parameters(), count_macs(net, (1, arch.in_channels, arch.image_size, arch.image_size))


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


class Costs:
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
        specs, _ = cell_specs(space, space.nodes)
        self.table = {kind: [[sum(op_cost(op, s.c, *edge_shape(s, j))[column]
                                  for s in specs if s.reduction == (kind == "reduce")) for op in space.ops]
                             for j in range(space.nodes + 1)] for kind in ("normal", "reduce")}
        flat = torch.zeros(len(cell_edges(space.nodes)), len(space.ops))
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
    costs = Costs(space, complexity, max_skip)
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
    costs = Costs(space, complexity, max_skip)
    if costs.floor > budget:
        raise ConfigError(costs.hopeless(budget))
    return costs.floor
