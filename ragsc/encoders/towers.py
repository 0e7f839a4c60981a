"""What an encoder's towers are, for the code that works on one tower (compression, pruning, timing).

Every backend that can be compressed answers :meth:`~ragsc.encoders.base.MultimodalEncoder.towers` with a
:class:`Tower` per modality: the *unit* (the ``torch.nn.Module`` that turns prepared inputs -- token ids,
normalised pixels -- into what the encoder's small heads read), how to swap a copy in and out, how to prepare
its inputs, and (for a fine-tune after pruning) how to run it up to the shared space. The encoder knows its
own members; :mod:`ragsc.compress` asks instead of reaching into them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Inputs:
    """Prepared inputs of a unit: ``unit(*args, **kwargs)``; ``size`` items."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    size: int = 0

    def call(self, unit: nn.Module):
        return unit(*self.args, **self.kwargs)


class Tower:
    """One tower of an encoder: its unit and how to feed it (one subclass per encoder class and modality)."""

    modality: str = ""

    def __init__(self, encoder) -> None:
        self.encoder = encoder

    # the unit in the encoder -----------------------------------------------------------------------
    @property
    def unit(self) -> nn.Module:
        raise NotImplementedError

    def set_unit(self, unit: nn.Module) -> None:
        raise NotImplementedError

    @contextmanager
    def swapped(self, unit: nn.Module) -> Iterator[None]:
        """The encoder runs ``unit`` inside the block, its own unit again afterwards."""
        own = self.unit
        self.set_unit(unit)
        try:
            yield
        finally:
            self.set_unit(own)

    # feeding it ------------------------------------------------------------------------------------
    def prepare(self, items: Sequence) -> Inputs:
        """Texts or images (PIL, paths, arrays) -> the unit's inputs, as the encoder prepares them."""
        raise NotImplementedError

    def entries(self, unit: nn.Module) -> list[nn.Module]:
        """The unit's modules the encoder calls from outside (their inputs and outputs are cast when the
        unit runs in half precision)."""
        return [unit]

    # pruning ---------------------------------------------------------------------------------------
    prunable = False

    def keep(self, unit: nn.Module) -> list[nn.Module]:
        """Layers whose outputs the rest of the encoder reads at a fixed size (never pruned)."""
        return []

    def output_sum(self, out) -> torch.Tensor:
        """A scalar of the unit's outputs (torch-pruning traces the graph back from it)."""
        raise NotImplementedError

    def embed(self, unit: nn.Module, inputs: Inputs) -> torch.Tensor:
        """``[B, dim]`` in the shared space (not normalised), differentiable: the fine-tune's output."""
        raise NotImplementedError


def load_images(items: Sequence) -> list:
    """Images as the encoders accept them (PIL, paths, arrays) -> PIL images, with clear errors."""
    from ragsc.encoders.inputs import load_image

    return [load_image(x, i) for i, x in enumerate(items)]
