"""A compressed network's state as plain tensors for safetensors, and back (no pickle).

A quantised module's ``state_dict`` holds what safetensors cannot store: quantised tensors, tuples of
them (a dynamic Linear's packed weight and bias) and ``torch.dtype`` values. :func:`encode_state` turns
each into plain tensors plus a small JSON-able description:

* a quantised tensor -> its integers (``int_repr``: int8 / uint8 / int32) under its own name, its scale(s)
  under ``name#scale`` and zero point(s) under ``name#zero_point``; the scheme (per tensor, per channel,
  per channel with float parameters), the quantised dtype and the channel axis in the description;
* a tuple -> its items under ``name#0``, ``name#1``, ...; a dtype or None -> the description only;
* the modules' state-dict versions (``state_dict()._metadata``, which quantised modules read) ->
  the description's ``#versions`` entry.

:func:`decode_state` rebuilds the exact ``state_dict`` (bit-identical integers and parameters), which the
rebuilt architecture loads with ``load_state_dict``.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch

from ragsc.errors import ModelLoadError

VERSIONS = "#versions"  # the description's entry of the modules' state-dict versions
_SCHEMES = {torch.per_tensor_affine: "per_tensor", torch.per_channel_affine: "per_channel",
            torch.per_channel_affine_float_qparams: "per_channel_float"}
_DTYPES = {str(d): d for d in (torch.qint8, torch.quint8, torch.qint32, torch.float32, torch.float16,
                               torch.bfloat16, torch.int8, torch.uint8, torch.int32, torch.int64)}


def encode_state(state: dict) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """``state_dict`` -> (plain tensors, description of every entry that is not a plain tensor)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict] = {}
    for name, value in state.items():
        if "#" in name:  # the separator of the stored parts; module names never hold it
            raise ValueError(f"state entry {name!r}: '#' is reserved")
        _encode(name, value, tensors, meta)
    # each module's state-dict version: quantised modules read older layouts by it
    versions = {k: v["version"] for k, v in getattr(state, "_metadata", {}).items() if "version" in v}
    meta[VERSIONS] = {"kind": "versions", "versions": versions}
    return tensors, meta


def _encode(name: str, value, tensors: dict, meta: dict) -> None:
    if value is None:
        meta[name] = {"kind": "none"}
    elif isinstance(value, torch.dtype):
        meta[name] = {"kind": "dtype", "dtype": str(value)}
    elif isinstance(value, (tuple, list)):
        meta[name] = {"kind": "tuple", "n": len(value)}
        for i, item in enumerate(value):
            _encode(f"{name}#{i}", item, tensors, meta)
    elif torch.is_tensor(value) and value.is_quantized:
        scheme = _SCHEMES.get(value.qscheme())
        if scheme is None:
            raise TypeError(f"{name}: quantisation scheme {value.qscheme()} cannot be stored")
        entry = {"kind": "quantized", "scheme": scheme, "dtype": str(value.dtype)}
        tensors[name] = value.int_repr().contiguous()
        if scheme == "per_tensor":
            tensors[f"{name}#scale"] = torch.tensor(value.q_scale(), dtype=torch.float64)
            tensors[f"{name}#zero_point"] = torch.tensor(value.q_zero_point(), dtype=torch.int64)
        else:
            tensors[f"{name}#scale"] = value.q_per_channel_scales().contiguous()
            tensors[f"{name}#zero_point"] = value.q_per_channel_zero_points().contiguous()
            entry["axis"] = int(value.q_per_channel_axis())
        meta[name] = entry
    elif torch.is_tensor(value):
        # clone: safetensors refuses tensors that share memory (tied or viewed weights)
        tensors[name] = value.detach().cpu().contiguous().clone()
    else:
        raise TypeError(f"{name}: a {type(value).__name__} in a state dict cannot be stored")


def decode_state(tensors: dict[str, torch.Tensor], meta: dict[str, dict]) -> dict:
    """The ``state_dict`` :func:`encode_state` described.

    Raises :class:`ModelLoadError` when a described entry's tensors are missing.
    """
    names = dict.fromkeys([n for n in meta if "#" not in n] + [n for n in tensors if "#" not in n])
    state = OrderedDict((name, _decode(name, tensors, meta)) for name in names)
    versions = meta.get(VERSIONS, {}).get("versions", {})
    state._metadata = OrderedDict((k, {"version": v}) for k, v in versions.items())  # type: ignore[attr-defined]
    return state


def _decode(name: str, tensors: dict, meta: dict):
    entry = meta.get(name)
    try:
        if entry is None:
            return tensors[name]
        kind = entry["kind"]
        if kind == "none":
            return None
        if kind == "dtype":
            return _DTYPES[entry["dtype"]]
        if kind == "tuple":
            return tuple(_decode(f"{name}#{i}", tensors, meta) for i in range(entry["n"]))
        if kind == "quantized":
            ints, scale, zero = tensors[name], tensors[f"{name}#scale"], tensors[f"{name}#zero_point"]
            with warnings.catch_warnings():  # quantised tensors are deprecated in favour of torchao's
                warnings.simplefilter("ignore")
                if entry["scheme"] == "per_tensor":
                    q = torch._make_per_tensor_quantized_tensor(ints, float(scale), int(zero))
                else:
                    q = torch._make_per_channel_quantized_tensor(ints, scale, zero, entry["axis"])
            if str(q.dtype) != entry["dtype"]:
                raise ValueError(f"rebuilt as {q.dtype}, stored as {entry['dtype']}")
            return q
        raise ValueError(f"unknown entry kind {kind!r}")
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot rebuild the stored tensor {name!r}: {exc}") from None


def stored_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """Bytes of the safetensors file these tensors make (the size a compression is judged by)."""
    from safetensors.torch import save

    return len(save(tensors))
