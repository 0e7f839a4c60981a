"""The skeleton both KDL-DARTS networks share: cell sizes, edges, the stem, the cells' input convolutions.

The supernet (:mod:`~ragsc.distill.darts.supernet`) and the derived network
(:mod:`~ragsc.distill.darts.network`) are one skeleton, stem -> ``layers`` cells -> global average pool ->
linear head, and differ only in what sits on a cell's edges. :func:`cell_specs` gives each cell's
channels and input resolution for a config (search space or architecture); :func:`cell_edges` and
:func:`edge_shape` name a search cell's edges and their stride and input side; :func:`check_images` is
both networks' input check.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ragsc.distill.darts.config import reduction_positions
from ragsc.distill.darts.ops import FactorizedReduce, relu_conv_bn
from ragsc.errors import InputError

STEM_MULTIPLIER = 3  # the stem widens the image to 3 * channels, as in DARTS


@dataclass(frozen=True)
class CellSpec:
    """One cell's sizes, as :func:`cell_specs` lays them out."""

    c_pp: int  # channels of the input two cells back
    c_p: int  # channels of the input one cell back
    c: int  # channels inside the cell
    reduction: bool
    reduction_prev: bool  # the input two back is at twice this cell's input resolution
    size: int  # side of the cell's input resolution


def cell_specs(cfg, nodes: int) -> tuple[list[CellSpec], int]:
    """The cells' sizes for a config (search or architecture), and the last cell's output channels."""
    reduce_at = set(reduction_positions(cfg.layers, cfg.reductions))
    c_pp = c_p = STEM_MULTIPLIER * cfg.channels
    c, size, reduction_prev, specs = cfg.channels, cfg.image_size, False, []
    for i in range(cfg.layers):
        reduction = i in reduce_at
        c = 2 * c if reduction else c
        specs.append(CellSpec(c_pp, c_p, c, reduction, reduction_prev, size))
        c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
        size = (size + 1) // 2 if reduction else size
    return specs, c_p


def cell_edges(nodes: int) -> list[tuple[int, int]]:
    """``(node, input)`` of every edge of a search cell, in alpha's row order."""
    return [(i, j) for i in range(nodes) for j in range(2 + i)]


def edge_shape(spec: CellSpec, source: int) -> tuple[int, int]:
    """``(stride, input side)`` of an edge: a reduction cell's edges from its inputs halve the resolution."""
    if not spec.reduction:
        return 1, spec.size
    return (2, spec.size) if source < 2 else (1, (spec.size + 1) // 2)


def preprocess(spec: CellSpec, affine: bool) -> tuple[nn.Module, nn.Module]:
    """Bring both cell inputs to ``spec.c`` channels at the cell's resolution."""
    pre0 = (FactorizedReduce(spec.c_pp, spec.c, affine) if spec.reduction_prev
            else relu_conv_bn(spec.c_pp, spec.c, 1, 1, 0, affine))
    return pre0, relu_conv_bn(spec.c_p, spec.c, 1, 1, 0, affine)


def make_stem(cfg) -> nn.Module:
    """The stem: a 3x3 conv widening the image to ``STEM_MULTIPLIER * channels``, and BN."""
    width = STEM_MULTIPLIER * cfg.channels
    return nn.Sequential(nn.Conv2d(cfg.in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))


def check_images(x, cfg, what: str = "x") -> None:
    """``x`` is a float tensor of images ``[N, in_channels, image_size, image_size]`` (``cfg``'s), or an
    :class:`~ragsc.errors.InputError` names ``what``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError(f"{what} must be a float tensor of images [N, {cfg.in_channels}, {cfg.image_size}, "
                         f"{cfg.image_size}], got {type(x).__name__}"
                         + (f" of {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise InputError(f"{what} must be images [N, {', '.join(map(str, expected))}] (the config's "
                         f"in_channels and image_size), got shape {list(x.shape)}")
