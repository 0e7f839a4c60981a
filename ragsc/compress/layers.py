"""Rewrites that make a network's layers standard ones, which pruning and quantisation know.

Both run *before* a method and again, identically, when a saved compression is rebuilt (the stored
weights are then loaded into the rewritten network), so each rewrite depends on the architecture alone,
never on weights or data.

* :func:`plain_convs`: EfficientNet's ``Conv2dStaticSamePadding`` (a Conv2d subclass that pads in its
  own forward) becomes ``Sequential(padding, Conv2d(padding=0))``: same outputs, and a layer that
  torch-pruning's graph and PyTorch's quantised-module mappings recognise (both match exact types).
* :func:`fold_batchnorm`: a Conv2d (or a padding + Conv2d pair) directly followed by a BatchNorm2d in a
  ``Sequential`` becomes one Conv2d (eval-mode statistics folded into its weights and bias), the
  BatchNorm an Identity.
"""

from __future__ import annotations

from torch import nn


def plain_convs(module: nn.Module) -> nn.Module:
    """Replace (in place) every Conv2d subclass that carries a ``static_padding`` module by its padding
    and a plain Conv2d sharing its weights; returns ``module``. Idempotent."""
    for name, child in list(module.named_children()):
        if (isinstance(child, nn.Conv2d) and type(child) is not nn.Conv2d
                and isinstance(getattr(child, "static_padding", None), nn.Module)):
            conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride, 0,
                             child.dilation, child.groups, child.bias is not None)
            conv.weight = child.weight
            conv.bias = child.bias
            conv.train(child.training)
            setattr(module, name, nn.Sequential(child.static_padding, conv))
        else:
            plain_convs(child)
    return module


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold (in place) each ``Conv2d -> BatchNorm2d`` pair of every Sequential into the Conv2d (eval-mode
    statistics); returns ``module``. Idempotent; the module must be in eval mode."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for child in module.modules():
        if not isinstance(child, nn.Sequential):
            continue
        for i in range(len(child) - 1):
            # a conv, or the (padding, conv) pair plain_convs makes
            pair = isinstance(child[i], nn.Sequential) and len(child[i])
            holder, at = (child[i], -1) if pair else (child, i)
            conv, bn = holder[at], child[i + 1]
            if type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d):
                holder[at] = fuse_conv_bn_eval(conv.eval(), bn.eval())
                child[i + 1] = nn.Identity()
    return module
