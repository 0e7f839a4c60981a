"""Apply a :class:`~ragsc.compress.config.CompressionConfig` to a tower, and replay it to rebuild a saved one.

:func:`compress` copies the tower's float unit and runs the config's methods on the copy, in order:

1. ``prune``: plain convs, structured pruning to the MACs / parameter target, the architecture recorded,
   then the KD fine-tune (targets: a teacher store's, or the float unit's own embeddings of easy-VQA
   train images or of the images given);
2. the precision method: ``int8-dynamic``, ``int8-static`` (calibrated on training-side items), ``fp16``
   or ``bf16``.

The encoder itself is left as it was. :func:`rebuild` replays the same steps on a freshly loaded base
encoder's float unit without data (architecture from the record, placeholder scales), loads the stored
state and swaps the unit in: what ``load_encoder("compressed:<dir>")`` runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ragsc.compress.config import CompressionConfig
from ragsc.compress.layers import plain_convs
from ragsc.compress.precision import HALF, to_half
from ragsc.compress.prune import apply_architecture, architecture, prune
from ragsc.compress.quantize import int8_dynamic, int8_static, quiet
from ragsc.compress.serialize import decode_state, encode_state
from ragsc.compress.towers import Tower, tower_of
from ragsc.errors import ConfigError, ModelLoadError


@dataclass
class Compressed:
    """A compressed unit and what rebuilding and reporting it needs."""

    config: CompressionConfig
    base: dict  # the base encoder's spec, fingerprint, dim
    tower: Tower
    unit: nn.Module
    params: int  # parameters of the unit (int8 weights counted like float ones)
    base_params: int  # parameters of the float unit
    architecture: dict | None = None  # pruned: the sizes that rebuild it
    pruning: dict = field(default_factory=dict)  # MACs / parameters before and after
    history: list[dict] = field(default_factory=list)  # the fine-tune's epochs

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
        """The unit's state as plain tensors and their description (:func:`~ragsc.compress.serialize.
        encode_state`)."""
        return encode_state(self.unit.state_dict())


def _params(unit: nn.Module) -> int:
    return sum(p.numel() for p in unit.parameters())


def _batches(items: Sequence, size: int = 32):
    for b in range(0, len(items), size):
        yield items[b:b + size]


def compress(config: CompressionConfig, encoder=None, *, images: Sequence | None = None,
             targets: torch.Tensor | None = None, calibration: Sequence | None = None,
             cache: dict | None = None, progress: bool = False) -> Compressed:
    """Compress one tower of an encoder (the encoder is not changed).

    Parameters
    ----------
    config
        What to do; ``config.encoder`` must be ``encoder.spec`` when an encoder is given.
    encoder
        The loaded base encoder (default: ``load_encoder(config.encoder)``).
    images, targets
        Fine-tune data after pruning: images (PIL, paths, arrays) and, optionally, their target
        embeddings ``[N, dim]`` (default: the float unit's own). Default images: the first
        ``config.finetune.images`` easy-VQA train images; ``config.finetune.store`` overrides both.
    calibration
        Items (texts or images) that calibrate int8-static (default: training-side items,
        :func:`~ragsc.compress.data.calibration_items`).
    cache
        A dict shared by the calls of one front: a pruned and fine-tuned unit is reused by configs that
        prune alike.

    Raises
    ------
    ConfigError
        The encoder cannot be compressed (its backend, a missing tower) or is not ``config.encoder``.
    """
    if encoder is None:
        from ragsc.encoders import load_encoder

        encoder = load_encoder(config.encoder)
    if config.encoder != encoder.spec:
        raise ConfigError(f"the config compresses {config.encoder!r}, the encoder given is {encoder.spec!r}")
    tower = tower_of(encoder, config.tower)
    base = {"spec": encoder.spec, "fingerprint": encoder.fingerprint, "dim": encoder.dim}
    float_unit = tower.unit
    out = Compressed(config, base, tower, None, 0, _params(float_unit))  # type: ignore[arg-type]
    if not config.pruned:
        return _precision(out, config, tower, (copy.deepcopy(float_unit), None, {}, []), calibration)
    if cache is None:
        return _precision(out, config, tower, _pruned(tower, encoder, config, images, targets, progress),
                          calibration)
    key = (config.prune_keep, config.prune_by, config.finetune, id(images))
    if key not in cache:  # kept pristine: each config quantises its own copy
        cache[key] = _pruned(tower, encoder, config, images, targets, progress)
    return _precision(out, config, tower, copy.deepcopy(cache[key]), calibration)


def _pruned(tower: Tower, encoder, config: CompressionConfig, images: Sequence | None,
            targets: torch.Tensor | None, progress: bool) -> tuple[nn.Module, dict, dict, list[dict]]:
    """A pruned, fine-tuned copy of the tower's float unit, its architecture record, the pruning's
    figures and the fine-tune's history."""
    from ragsc.compress.data import train_images

    float_unit = tower.unit
    unit = plain_convs(copy.deepcopy(float_unit))
    ft = config.finetune
    if ft.store is not None:
        from ragsc.compress.finetune import store_data

        images, targets = store_data(ft.store, encoder)
    elif images is None:
        images = train_images(ft.images)
    figures = prune(unit, tower.prepare(list(images[:1])), keep=config.prune_keep, by=config.prune_by,
                    fixed=tower.keep(unit), output_sum=tower.output_sum)
    record = architecture(unit)
    history: list[dict] = []
    if ft.epochs:
        from ragsc.compress.finetune import embeddings, finetune

        if targets is None:
            targets = embeddings(tower, float_unit, list(images))
        history = finetune(tower, unit, list(images), targets, ft, progress=progress)
    return unit, record, figures, history


def _precision(out: Compressed, config: CompressionConfig, tower: Tower, start: tuple,
               calibration: Sequence | None) -> Compressed:
    """Apply the config's precision method to a float (maybe pruned) unit and fill in ``out``.

    ``start`` is ``(unit, architecture record, pruning figures, fine-tune history)``."""
    from ragsc.compress.data import calibration_items

    unit, out.architecture, out.pruning, out.history = start
    unit.eval().requires_grad_(False)
    out.params = _params(unit)  # before quantisation: packed int8 weights are no Parameters
    precision = config.precision
    if precision == "int8-dynamic":
        int8_dynamic(unit)
    elif precision == "int8-static":
        items = list(calibration) if calibration is not None else calibration_items(config.tower,
                                                                                   config.calibration)
        int8_static(unit, lambda u: [tower.prepare(b).call(u) for b in _batches(items)])
    elif precision in HALF:
        to_half(unit, precision, tower.entries(unit))
    out.unit = unit
    return out


def rebuild(tower: Tower, config: CompressionConfig, record: dict | None, tensors: dict, meta: dict
            ) -> nn.Module:
    """Replay ``config`` on ``tower``'s float unit without data, load the stored state, swap it in.

    ``record`` is the pruned architecture (None when not pruned); ``tensors`` and ``meta`` are what
    :meth:`Compressed.state` stored. Raises :class:`ModelLoadError` when the state does not fit.
    """
    unit = tower.unit
    try:
        if config.pruned:
            if record is None:
                raise ModelLoadError("a pruned compression without its recorded architecture")
            apply_architecture(plain_convs(unit), record)
        precision = config.precision
        if precision == "int8-dynamic":
            int8_dynamic(unit)
        elif precision == "int8-static":
            int8_static(unit, None, calibrated=False)
        elif precision in HALF:
            to_half(unit, precision, tower.entries(unit))
        with quiet():  # quantised modules' load warns of torch.ao's deprecation
            unit.load_state_dict(decode_state(tensors, meta))
    except (ConfigError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"cannot rebuild the compressed {config.tower} tower ({config.name}): {exc}") \
            from None
    unit.eval().requires_grad_(False)
    tower.set_unit(unit)
    return unit
