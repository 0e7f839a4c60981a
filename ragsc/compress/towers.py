"""The tower of an encoder that compression works on: asked of the encoder, never dug out of it.

Compression works on one ``torch.nn.Module`` per tower, the *unit*; the encoder says what its towers are
(:meth:`~ragsc.encoders.base.MultimodalEncoder.towers`: the embedded default and distilled students list
theirs, see :mod:`ragsc.encoders.towers`). Other backends (open_clip, hf) have none to offer and are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from ragsc.encoders.towers import Inputs, Tower
from ragsc.errors import ConfigError, InputError

__all__ = ["Inputs", "Tower", "batch_of", "tower_of"]


def tower_of(encoder, tower: str) -> Tower:
    """The ``tower`` (``"text"`` or ``"image"``) of ``encoder``.

    Raises
    ------
    ConfigError
        The encoder offers no towers to compress, or not this one.
    """
    if tower not in ("text", "image"):
        raise ConfigError(f"tower must be 'text' or 'image', got {tower!r}")
    towers = encoder.towers() if callable(getattr(encoder, "towers", None)) else {}
    name = getattr(encoder, "spec", type(encoder).__name__)
    if not towers:
        raise ConfigError(f"cannot compress {name}: compression knows the embedded encoder ('embedded') and "
                          "distilled students ('student:<dir>')")
    if tower not in towers:
        raise ConfigError(f"{name} has no {tower} tower to compress")
    return towers[tower]


def batch_of(items: Sequence, size: int) -> list:
    """``size`` items: the first ones, repeated when there are fewer."""
    if not len(items):
        raise InputError("no items to build a batch from")
    return [items[i % len(items)] for i in range(size)]
