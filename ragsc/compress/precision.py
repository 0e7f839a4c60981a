"""Half precision (float16 or bfloat16) of a unit, invisible to the encoder around it.

The unit's weights are cast. Hooks cast floating-point inputs to the half type on the way into every
module that holds weights (a network may make float32 tensors of its own on the way, e.g. a mask turned
into floats for pooling) and outputs back to float32 on the way out of its entry modules (the unit, and
any submodule the encoder calls directly, see :meth:`ragsc.compress.towers.Tower.entries`), so the
encoder's float heads read float32 as before. Integer inputs (token ids, masks) pass unchanged.

On CPUs without native half arithmetic this is often *slower* than float32;
:func:`ragsc.compress.pareto` measures it rather than assuming.
"""

from __future__ import annotations

import torch
from torch import nn

HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def _cast(obj, dtype: torch.dtype):
    """Floating-point tensors in ``obj`` (nested tuples / lists / dicts, model outputs) cast to ``dtype``."""
    if torch.is_tensor(obj):
        return obj.to(dtype) if obj.is_floating_point() else obj
    if isinstance(obj, tuple):
        return type(obj)(*(_cast(x, dtype) for x in obj)) if hasattr(obj, "_fields") else tuple(
            _cast(x, dtype) for x in obj)
    if isinstance(obj, list):
        return [_cast(x, dtype) for x in obj]
    if isinstance(obj, dict):
        if type(obj) is dict:
            return {k: _cast(v, dtype) for k, v in obj.items()}
        for k in list(obj.keys()):  # a transformers ModelOutput: its items are also its attributes
            obj[k] = _cast(obj[k], dtype)
        return obj
    return obj


def to_half(unit: nn.Module, method: str, entries: list[nn.Module]) -> nn.Module:
    """Cast ``unit`` (in place) to ``method``'s type (``"fp16"`` or ``"bf16"``) with casting hooks on
    ``entries``; returns ``unit``."""
    dtype = HALF[method]
    unit.to(dtype)

    def inputs(module, args, kwargs):
        return _cast(args, dtype), _cast(kwargs, dtype)

    def outputs(module, args, out):
        return _cast(out, torch.float32)

    weighted = [m for m in unit.modules() if any(True for _ in m.parameters(recurse=False))]
    for m in dict.fromkeys([*entries, *weighted]):
        m.register_forward_pre_hook(inputs, with_kwargs=True)
    for m in entries:
        m.register_forward_hook(outputs)
    return unit
