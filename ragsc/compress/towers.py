"""Where a tower's network sits inside an encoder, and how to feed it.

Compression works on one ``torch.nn.Module`` per tower, the *unit*: the network that turns prepared inputs
(token ids, normalised pixels) into what the encoder's small heads read. A :class:`Tower` finds it in an
encoder, swaps a compressed copy in and out, prepares inputs for timing, calibration and pruning, and (for
the fine-tune after pruning) runs the unit up to the shared embedding space.

========================  ===================================================================================
encoder                   units
========================  ===================================================================================
``embedded``              text: MiniLM (the sentence-transformer's Transformer module); image: the
                          EfficientNet-Lite0 :class:`~ragsc.encoders.embedded.ImageTower` (the alignment
                          heads stay float and are not counted)
``student:<dir>``         text: :class:`~ragsc.distill.students.TextStudent`; image:
                          :class:`~ragsc.distill.students.ImageStudent` (whole towers, heads included)
========================  ===================================================================================

Other backends (open_clip, hf) are refused with the list above.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from ragsc.errors import ConfigError, InputError


@dataclass
class Inputs:
    """Prepared inputs of a unit: ``unit(*args, **kwargs)``; ``size`` items."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    size: int = 0

    def call(self, unit: nn.Module):
        return unit(*self.args, **self.kwargs)


class Tower:
    """One tower of an encoder: its unit and how to feed it (subclasses per encoder class)."""

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


def _images(items: Sequence) -> list:
    from ragsc.encoders.inputs import load_image

    return [load_image(x, i) for i, x in enumerate(items)]


class _EmbeddedText(Tower):
    modality = "text"

    # The unit is the sentence-transformer's Transformer module (features dict in, token embeddings
    # out), not the BertModel inside it: that one is called through ``.forward`` and so runs no hooks.
    @property
    def unit(self) -> nn.Module:
        return self.encoder.text_tower[0]

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.text_tower[0] = unit

    def prepare(self, items: Sequence) -> Inputs:
        from ragsc.encoders.inputs import check_texts

        return Inputs(args=(self.encoder._preprocess(check_texts(list(items))),), size=len(items))


class _EmbeddedImage(Tower):
    modality = "image"
    prunable = True

    @property
    def unit(self) -> nn.Module:
        return self.encoder.image_tower

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.image_tower = unit

    def prepare(self, items: Sequence) -> Inputs:
        pixels = torch.stack([self.encoder.transform(im) for im in _images(items)])
        return Inputs(args=(pixels,), size=len(items))

    def entries(self, unit: nn.Module) -> list[nn.Module]:
        return [unit, unit.net._fc]  # the classifier also reads the feature-map cells (patch tokens)

    def keep(self, unit: nn.Module) -> list[nn.Module]:
        # the heads read the 1280 pooled features and the 1000 ImageNet logits
        head = [m for m in unit.net._conv_head.modules() if isinstance(m, nn.Conv2d)]
        return [unit.net._fc, *head]

    def output_sum(self, out) -> torch.Tensor:
        return out[0].sum() + out[1].sum()

    def embed(self, unit: nn.Module, inputs: Inputs) -> torch.Tensor:
        pooled, logits, _ = inputs.call(unit)
        return self.encoder.heads.image(pooled, logits)


class _StudentText(Tower):
    modality = "text"

    @property
    def unit(self) -> nn.Module:
        return self.encoder.text_net

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.text_net = unit

    def prepare(self, items: Sequence) -> Inputs:
        from ragsc.distill.students import tokenize
        from ragsc.encoders.inputs import check_texts

        ids, mask, _ = tokenize(self.encoder.tokenizer, check_texts(list(items)),
                                self.encoder.config.text.max_tokens)
        return Inputs(args=(ids, mask), size=len(items))


class _StudentImage(Tower):
    modality = "image"
    prunable = True

    @property
    def unit(self) -> nn.Module:
        return self.encoder.image_net

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.image_net = unit

    def prepare(self, items: Sequence) -> Inputs:
        pixels = torch.stack([self.encoder.transform(im) for im in _images(items)])
        return Inputs(args=(pixels,), size=len(items))

    def keep(self, unit: nn.Module) -> list[nn.Module]:
        # what projects onto the teacher's space (a cnn's head, a searched net's own projection) keeps
        # its size
        out_dim = self.encoder.config.image.out_dim
        head = list(unit.head.modules())
        return head + [m for m in unit.modules() if isinstance(m, nn.Linear) and m.out_features == out_dim]

    def output_sum(self, out) -> torch.Tensor:
        return out[0].sum()

    def embed(self, unit: nn.Module, inputs: Inputs) -> torch.Tensor:
        return inputs.call(unit)[0]


def tower_of(encoder, tower: str) -> Tower:
    """The ``tower`` (``"text"`` or ``"image"``) of ``encoder``.

    Raises
    ------
    ConfigError
        The encoder's backend is not one compression knows, or it has no such tower.
    """
    from ragsc.distill.students import StudentEncoder
    from ragsc.encoders.embedded import EmbeddedEncoder

    if tower not in ("text", "image"):
        raise ConfigError(f"tower must be 'text' or 'image', got {tower!r}")
    if isinstance(encoder, EmbeddedEncoder):
        return _EmbeddedText(encoder) if tower == "text" else _EmbeddedImage(encoder)
    if isinstance(encoder, StudentEncoder):
        t = _StudentText(encoder) if tower == "text" else _StudentImage(encoder)
        if (encoder.text_net if tower == "text" else encoder.image_net) is None:
            raise ConfigError(f"{encoder.spec} has no {tower} tower to compress")
        return t
    name = getattr(encoder, "spec", type(encoder).__name__)
    raise ConfigError(f"cannot compress {name}: compression knows the embedded encoder ('embedded') and "
                      "distilled students ('student:<dir>')")


def batch_of(items: Sequence, size: int) -> list:
    """``size`` items: the first ones, repeated when there are fewer."""
    if not len(items):
        raise InputError("no items to build a batch from")
    return [items[i % len(items)] for i in range(size)]
