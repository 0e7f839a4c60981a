"""The KDL-DARTS operations: what an edge of a cell can be, and what each one costs.

:data:`OPS` holds the DARTS set (ReLU-Conv-BN style convolutions, separable and dilated convolutions,
pools, the skip connection and ``none``); every operation maps ``[B, c, H, W]`` to
``[B, c, ceil(H / s), ceil(W / s)]`` at stride ``s``. :func:`op_cost` prices one discrete operation in
parameters and multiply-accumulates (:data:`COMPLEXITIES`): the figures the supernet's expected
complexity and the complexity budget add up.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

COMPLEXITIES = ("params", "macs")  # what a cost counts, in the order op_cost returns them


class _Zero(nn.Module):
    """The ``none`` operation: zeros at the output resolution."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
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


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> nn.Module:
    """ReLU, conv, BN (DARTS's ``conv`` ops and the cells' 1x1 input convolutions)."""
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
    "skip_connect": lambda c, s, affine: nn.Identity() if s == 1 else FactorizedReduce(c, c, affine),
    "max_pool_3x3": lambda c, s, affine: nn.MaxPool2d(3, s, padding=1),
    "avg_pool_3x3": lambda c, s, affine: nn.AvgPool2d(3, s, padding=1, count_include_pad=False),
    "sep_conv_3x3": lambda c, s, affine: _sep_conv(c, 3, s, 1, affine),
    "sep_conv_5x5": lambda c, s, affine: _sep_conv(c, 5, s, 2, affine),
    "dil_conv_3x3": lambda c, s, affine: _dil_conv(c, 3, s, 2, 2, affine),
    "dil_conv_5x5": lambda c, s, affine: _dil_conv(c, 5, s, 4, 2, affine),
    "conv_3x3": lambda c, s, affine: relu_conv_bn(c, c, 3, s, 1, affine),
    "conv_5x5": lambda c, s, affine: relu_conv_bn(c, c, 5, s, 2, affine),
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
    return sum(p.numel() for p in op.parameters()), count_macs(op, (1, channels, size, size))


def count_macs(module: nn.Module, shape: tuple[int, ...]) -> int:
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
