"""int8 quantisation of a unit with PyTorch's own eager-mode tools (``torch.ao.quantization``).

* :func:`int8_dynamic`: every ``nn.Linear`` gets int8 weights and quantises its input on the fly at each
  call (fbgemm / x86 kernels). One weight scale per output channel: on MiniLM the cosine to the float
  tower's embeddings is 0.977, against 0.949 with one scale per tensor, at the same speed. Every
  ``nn.Embedding`` gets uint8 rows with a float scale and offset each (weight-only: a table lookup needs
  no activation scale). Nothing to calibrate. The feed-forward Linears of ``nn.TransformerEncoderLayer``
  stay float (:func:`kept_float`).
* :func:`int8_static`: every plain ``nn.Linear`` / ``nn.Conv2d`` (after :func:`~ragsc.compress.layers.
  plain_convs` and :func:`~ragsc.compress.layers.fold_batchnorm`) becomes an *int8 island*: quantise the
  input with a scale calibrated on sample inputs, the int8 layer (per-channel weights), dequantise. Islands
  need no knowledge of the architecture around them (any network works), at the cost of a quantise /
  dequantise pair per layer; the front measures whether that pays. Embeddings get uint8 rows as in
  :func:`int8_dynamic`.

PyTorch >= 2.10 marks ``torch.ao.quantization`` deprecated in favour of torchao (not installed here); its
warnings are silenced around the calls, the modules it builds are unchanged.

A rebuild (:func:`ragsc.compress.apply.rebuild`) replays the same function with ``calibrate=None``: the
structure is the same and the stored scales overwrite the placeholders.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def quiet():
    """torch.ao.quantization's deprecation and observer warnings silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", module=r"torch\.ao\..*")
        yield


def kept_float(unit: nn.Module) -> set[str]:
    """Names of the Linear layers that stay float: the feed-forward layers of ``nn.TransformerEncoderLayer``
    / ``DecoderLayer``, whose forward reads ``linear1.weight`` as a tensor (its fused inference path)."""
    layers = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return {f"{name}.{child}" if name else child for name, m in unit.named_modules() if isinstance(m, layers)
            for child in ("linear1", "linear2")}


def _contiguous_ids(args: tuple) -> tuple:
    return tuple(a.contiguous() if torch.is_tensor(a) else a for a in args)


def _lookup_any_ids(unit: nn.Module) -> nn.Module:
    """The quantised embeddings of ``unit`` made to accept strided index tensors (a beam search's
    reordered ids are views; the uint8 lookup kernel takes contiguous ones only)."""
    from torch.ao.nn.quantized import Embedding

    for m in unit.modules():
        if isinstance(m, Embedding):
            m.register_forward_pre_hook(lambda _, args: _contiguous_ids(args))
    return unit


def int8_dynamic(unit: nn.Module, keep: Iterable[str] = ()) -> nn.Module:
    """Linear layers with int8 weights and dynamic activations, Embeddings with uint8 rows (in place);
    the layers named in ``keep`` (full module names) stay float."""
    import torch.ao.quantization as tq

    with quiet():
        spec: dict = {nn.Linear: tq.per_channel_dynamic_qconfig,
                      nn.Embedding: tq.float_qparams_weight_only_qconfig}
        spec.update(dict.fromkeys([*kept_float(unit), *keep]))  # a name mapped to None is left float
        return _lookup_any_ids(tq.quantize_dynamic(unit.eval(), spec, inplace=True))


def int8_embeddings(unit: nn.Module) -> nn.Module:
    """Embeddings with uint8 rows, a float scale and offset each (weight-only; in place)."""
    import torch.ao.quantization as tq

    with quiet():
        spec = {nn.Embedding: tq.float_qparams_weight_only_qconfig}
        return _lookup_any_ids(tq.quantize_dynamic(unit.eval(), spec, inplace=True))


class Int8Island(nn.Sequential):
    """``quantise -> int8 layer -> dequantise`` around one Linear / Conv2d (static quantisation)."""

    def __init__(self, layer: nn.Module) -> None:
        import torch.ao.quantization as tq

        super().__init__(tq.QuantStub(), layer, tq.DeQuantStub())


def _islands(module: nn.Module, skip: set[str], prefix: str = "") -> int:
    """Wrap every exact Linear / Conv2d below ``module`` (but those named in ``skip``) in an
    :class:`Int8Island`; the count wrapped."""
    n = 0
    for name, child in list(module.named_children()):
        full = f"{prefix}{name}"
        if type(child) in (nn.Linear, nn.Conv2d) and full not in skip:
            setattr(module, name, Int8Island(child))
            n += 1
        elif not isinstance(child, Int8Island):
            n += _islands(child, skip, full + ".")
    return n


def int8_static(unit: nn.Module, calibrate: Callable[[nn.Module], None] | None,
                calibrated: bool = True) -> nn.Module:
    """Static int8 islands (in place).

    Parameters
    ----------
    unit
        The float network (eval mode; BatchNorm folded where a Conv2d precedes it in a Sequential).
    calibrate
        Runs the prepared network on sample inputs (its observers record the activation ranges); None
        when rebuilding a stored compression, whose scales are loaded afterwards.
    calibrated
        False: placeholder observers (no data needed), for a rebuild.
    """
    import torch.ao.quantization as tq

    from ragsc.compress.layers import fold_batchnorm, plain_convs

    with quiet():
        fold_batchnorm(plain_convs(unit.eval()))
        if not _islands(unit, kept_float(unit)):
            from ragsc.errors import ConfigError

            raise ConfigError("int8-static: the network has no plain Linear or Conv2d layer to quantise")
        qconfig = (tq.get_default_qconfig("x86") if calibrated
                   else tq.QConfig(activation=tq.MinMaxObserver.with_args(reduce_range=True),
                                   weight=tq.default_per_channel_weight_observer))
        for m in unit.modules():
            if isinstance(m, Int8Island):
                m.qconfig = qconfig
        tq.prepare(unit, inplace=True)
        if calibrate is not None:
            with torch.no_grad():
                calibrate(unit)
        tq.convert(unit, inplace=True)
    return int8_embeddings(unit)
