"""ragsc.compress.serialize: quantised state dicts to plain tensors (safetensors) and back, exactly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load, save
from torch import nn

from ragsc.compress.quantize import int8_dynamic, int8_static
from ragsc.compress.serialize import decode_state, encode_state, stored_bytes
from ragsc.errors import ModelLoadError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()


def _same(a, b) -> bool:
    if torch.is_tensor(a) and a.is_quantized:
        return (b.is_quantized and a.qscheme() == b.qscheme() and torch.equal(a.int_repr(), b.int_repr())
                and torch.equal(a.dequantize(), b.dequantize()))
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b) if torch.is_tensor(a) else a == b


def test_a_dynamic_int8_state_survives_safetensors_exactly():
    q = int8_dynamic(_net())
    state = q.state_dict()
    tensors, meta = encode_state(state)
    assert all(torch.is_tensor(t) and not t.is_quantized for t in tensors.values())
    assert tensors["1._packed_params._packed_params#0"].dtype == torch.int8  # int8 weights, not floats
    assert tensors["0._packed_params._packed_weight"].dtype == torch.uint8  # embedding rows
    back = decode_state(load(save(tensors)), meta)
    assert set(back) == set(state) and all(_same(state[k], back[k]) for k in state)
    # quantised modules read their state by its layout version
    assert back._metadata["1"]["version"] == state._metadata["1"]["version"]
    fresh = int8_dynamic(_net())
    fresh.load_state_dict(back)
    x = torch.randint(0, 50, (3, 5))
    assert torch.equal(fresh(x), q(x))


def _conv_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 5)).eval()


def test_a_static_int8_state_survives_too():
    torch.manual_seed(1)
    net = _conv_net()
    x = torch.randn(4, 3, 8, 8)
    q = int8_static(net, lambda u: u(x))
    tensors, meta = encode_state(q.state_dict())
    rebuilt = int8_static(_conv_net(), None, calibrated=False)
    rebuilt.load_state_dict(decode_state(load(save(tensors)), meta))
    assert torch.equal(rebuilt(x), q(x))
    assert stored_bytes(tensors) == len(save(tensors))


def test_bad_entries_are_refused():
    with pytest.raises(ValueError, match="reserved"):
        encode_state({"a#b": torch.zeros(1)})
    with pytest.raises(TypeError, match="cannot be stored"):
        encode_state({"a": "text"})
    tensors, meta = encode_state(int8_dynamic(_net()).state_dict())
    del tensors["1._packed_params._packed_params#0#scale"]
    with pytest.raises(ModelLoadError, match="1._packed_params._packed_params#0"):
        decode_state(tensors, meta)
