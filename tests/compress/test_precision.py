"""ragsc.compress.precision: a half-precision unit reads and returns float32 around it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ragsc.compress.precision import to_half


class MakesFloats(nn.Module):
    """Like the text student: ids in, a float32 mask made inside, a tuple out."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 4)

    def forward(self, ids, mask):
        m = mask[..., None].float()
        return self.proj((self.embed(ids) * m).sum(1) / m.sum(1)), None


@pytest.mark.parametrize("method,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_half_units_look_float_from_outside(method, dtype):
    torch.manual_seed(0)
    net = MakesFloats().eval()
    ids, mask = torch.randint(0, 20, (3, 5)), torch.ones(3, 5, dtype=torch.bool)
    ref = net(ids, mask)[0]
    half = to_half(net, method, [net])
    assert net.proj.weight.dtype == dtype
    out, extra = half(ids, mask)
    assert out.dtype == torch.float32 and extra is None
    assert torch.allclose(out, ref, atol=5e-2) and not torch.equal(out, ref)
    conv = to_half(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval(), method, [])
    assert conv(torch.randn(1, 3, 5, 5)).dtype == dtype  # no entry: float32 in, nothing cast back
