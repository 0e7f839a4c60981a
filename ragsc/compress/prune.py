"""Structured pruning with torch-pruning, and the record that rebuilds a pruned architecture.

:func:`prune` removes whole channels (conv filters, Linear rows, with every coupled layer: BatchNorms,
depthwise convs, residual partners) by L2 magnitude, in small uniform steps, until the unit's MACs (or
parameters) fall to ``keep`` of what they were. Layers the encoder reads at a fixed size (the projection
onto the shared space, the classifier) are never pruned.

A pruned network no longer matches the config its weights came from, so :func:`architecture` records the
size attributes of every sized layer and the shape of every tensor; :func:`apply_architecture` makes a
freshly built float network take those shapes (empty tensors, filled by the stored weights afterwards).
That record is JSON in the compressed folder's config: no module is pickled.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ragsc.compress.towers import Inputs
from ragsc.errors import ConfigError

_SIZES = {nn.Conv2d: ("in_channels", "out_channels", "groups"), nn.Linear: ("in_features", "out_features"),
          nn.BatchNorm2d: ("num_features",), nn.BatchNorm1d: ("num_features",),
          nn.LayerNorm: ("normalized_shape",), nn.Embedding: ("num_embeddings", "embedding_dim")}


def count(unit: nn.Module, example: Inputs) -> tuple[int, int]:
    """``(MACs, parameters)`` of one forward pass of ``unit`` on ``example`` (torch-pruning's counter)."""
    import torch_pruning as tp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, params = tp.utils.count_ops_and_params(unit, _example(example))
    return int(macs), int(params)


def _example(example: Inputs):
    if example.kwargs:
        return dict(example.kwargs)
    return example.args[0] if len(example.args) == 1 else tuple(example.args)


def prune(unit: nn.Module, example: Inputs, *, keep: float, by: str = "macs", fixed: list[nn.Module] = (),
          output_sum=None, steps: int = 100) -> dict:
    """Prune ``unit`` in place until its MACs (``by="macs"``) or parameters fall to ``keep`` of the start.

    Parameters
    ----------
    unit
        A float network (conv layers: torch-pruning traces it through autograd).
    example
        One prepared input (batch 1) to trace and count with.
    keep
        The share of MACs / parameters to keep, in (0, 1).
    fixed
        Layers never pruned (their outputs keep their size).
    output_sum
        ``out -> scalar`` for a unit with several outputs.

    Returns
    -------
    dict
        ``macs_before``, ``macs_after``, ``params_before``, ``params_after``, ``steps``.

    Raises
    ------
    ConfigError
        ``keep`` is out of range, or the unit cannot be pruned that far.
    """
    import torch_pruning as tp

    if not 0 < keep < 1 or by not in ("macs", "params"):
        raise ConfigError(f"prune: keep must be in (0, 1) and by 'macs' or 'params', got {keep}, {by!r}")
    unit.eval().requires_grad_(True)  # torch-pruning follows autograd's graph
    macs0, params0 = count(unit, example)
    start = macs0 if by == "macs" else params0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(unit, _example(example),
                                           importance=tp.importance.MagnitudeImportance(p=2),
                                           pruning_ratio=0.9, iterative_steps=steps,
                                           ignored_layers=list(fixed), output_transform=output_sum)
        done, figures = 0, (macs0, params0)
        for step in range(1, steps + 1):
            done = step
            pruner.step()
            figures = count(unit, example)
            if figures[0 if by == "macs" else 1] <= keep * start:
                break
    unit.requires_grad_(False)
    now = figures[0 if by == "macs" else 1]
    if now > keep * start:
        raise ConfigError(f"prune: cannot bring the {by} below {keep:.0%} of {start:,} (reached {now:,}); "
                          "ask for a larger prune_keep")
    return {"macs_before": macs0, "macs_after": figures[0], "params_before": params0,
            "params_after": figures[1], "steps": done}


def architecture(unit: nn.Module) -> dict:
    """The sizes that define ``unit``'s shape: ``{"modules": {name: {attr: value}}, "tensors": {name:
    shape}}`` (JSON-able)."""
    modules = {}
    for name, m in unit.named_modules():
        attrs = next((a for t, a in _SIZES.items() if isinstance(m, t)), None)
        if attrs:
            modules[name] = {a: list(v) if isinstance(v := getattr(m, a), tuple) else v for a in attrs}
    tensors = {n: list(t.shape) for n, t in [*unit.named_parameters(), *unit.named_buffers()]}
    return {"modules": modules, "tensors": tensors}


_MISFIT = "the recorded architecture does not fit this network"


def apply_architecture(unit: nn.Module, record: dict) -> nn.Module:
    """Give ``unit`` (in place) the sizes of ``record`` (:func:`architecture` of a pruned copy): layers
    take the recorded size attributes, tensors of another shape are replaced by uninitialised ones (the
    stored weights fill them).

    Pruning only removes: a record (read from a saved folder) that names an attribute other than a layer's
    size, or asks for a size larger than the float network's, is refused before anything is allocated.
    """
    try:
        for name, attrs in record["modules"].items():
            m = unit.get_submodule(name)
            sizes = next((a for t, a in _SIZES.items() if isinstance(m, t)), ())
            for a, v in attrs.items():
                if a not in sizes:
                    raise ConfigError(f"{_MISFIT}: {name}: {a!r} is not a size of a {type(m).__name__} "
                                      f"(its sizes: {', '.join(sizes) or 'none'})")
                value = tuple(v) if isinstance(v, list) else v
                _no_larger(f"{name}.{a}", value, getattr(m, a), low=1)
                setattr(m, a, value)
        for name, shape in record["tensors"].items():
            owner_name, _, leaf = name.rpartition(".")
            owner = unit.get_submodule(owner_name)
            old = getattr(owner, leaf)
            _no_larger(f"tensor {name}", tuple(shape), tuple(old.shape), low=0)
            if list(old.shape) == list(shape):
                continue
            new = torch.empty(shape, dtype=old.dtype)
            if isinstance(old, nn.Parameter):
                setattr(owner, leaf, nn.Parameter(new, requires_grad=old.requires_grad))
            else:
                owner.register_buffer(leaf, new)
    except (AttributeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{_MISFIT}: {exc}") from None
    return unit


def _no_larger(what: str, new, old, low: int) -> None:
    """``new`` (an int or a tuple of ints, each >= ``low``) is ``old`` or smaller in every dimension."""
    pair = (new, old) if isinstance(old, tuple) else ((new,), (old,))
    ok = (isinstance(new, tuple) == isinstance(old, tuple) and len(pair[0]) == len(pair[1])
          and all(isinstance(n, int) and not isinstance(n, bool) and low <= n <= o for n, o in zip(*pair)))
    if not ok:
        raise ConfigError(f"{_MISFIT}: it asks {what} to be {new!r}; pruning keeps or shrinks it ({old!r} "
                          "before)")
