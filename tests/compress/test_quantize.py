"""ragsc.compress.quantize / layers: int8 layers replace float ones and stay close to them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ragsc.compress.layers import fold_batchnorm, plain_convs
from ragsc.compress.quantize import Int8Island, int8_dynamic, int8_static, kept_float
from ragsc.errors import ConfigError


class StaticSame(nn.Conv2d):
    """EfficientNet's Conv2dStaticSamePadding in small: pads in its own forward."""

    def __init__(self, c_in, c_out, k, stride=1):
        super().__init__(c_in, c_out, k, stride, bias=False)
        self.static_padding = nn.ZeroPad2d((0, 1, 0, 1))

    def forward(self, x):
        return F.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(StaticSame(3, 8, 2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_rewrites_keep_the_outputs():
    net, x = _cnn(), torch.randn(2, 3, 9, 9)
    before = net(x)
    plain_convs(net)
    assert type(net[0]) is nn.Sequential and type(net[0][1]) is nn.Conv2d
    assert torch.allclose(net(x), before, atol=1e-6)
    fold_batchnorm(net)
    assert isinstance(net[1], nn.Identity) and isinstance(net[4], nn.Identity)  # both BNs folded away
    assert torch.allclose(net(x), before, atol=1e-5)
    plain_convs(fold_batchnorm(net))  # idempotent
    assert torch.allclose(net(x), before, atol=1e-5)


def test_int8_dynamic_quantises_linears_and_embeddings():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Embedding(100, 32), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32)).eval()
    x = torch.randint(0, 100, (4, 6))
    ref = net(x)
    q = int8_dynamic(net)
    assert type(q[0]).__module__.startswith("torch.ao.nn.quantized.modules")  # uint8 rows
    assert type(q[1]).__module__.startswith("torch.ao.nn.quantized.dynamic")  # int8, dynamic activations
    assert F.cosine_similarity(q(x).flatten(1), ref.flatten(1)).min() > 0.99
    # strided ids (a beam search's reordered rows are views): the uint8 lookup takes them too
    strided = torch.randint(0, 100, (6, 4)).t()
    assert not strided.is_contiguous()
    assert torch.equal(q(strided), q(strided.contiguous()))


def test_transformer_feed_forwards_stay_float():
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    net = nn.Sequential(nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Linear(16, 4)).eval()
    assert kept_float(net) == {f"0.layers.{i}.{n}" for i in (0, 1) for n in ("linear1", "linear2")}
    x = torch.randn(2, 5, 16)
    ref = net(x)
    with torch.inference_mode():  # the fused inference path reads linear1.weight as a tensor
        out = int8_dynamic(net)(x)
    assert type(net[0].layers[0].linear1) is nn.Linear and type(net[1]) is not nn.Linear
    assert F.cosine_similarity(out.flatten(1), ref.flatten(1)).min() > 0.99


def test_int8_static_islands_are_calibrated():
    net, x = _cnn(), torch.randn(16, 3, 9, 9)
    ref = net(x)
    q = int8_static(net, lambda u: u(x))
    islands = [m for m in q.modules() if isinstance(m, Int8Island)]
    assert len(islands) == 3 and all("quantized" in type(i[1]).__module__ for i in islands)
    assert F.cosine_similarity(q(x), ref).mean() > 0.98
    with pytest.raises(ConfigError, match="no plain Linear or Conv2d"):
        int8_static(nn.Sequential(nn.ReLU()), None)
