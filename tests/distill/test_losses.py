"""ragsc.distill.losses: plain KD, soft KD and the information-bottleneck loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ragsc.distill.losses import BottleneckConfig, BottleneckHead, ib_kd_loss, kd_loss, soft_kd_loss
from ragsc.errors import ConfigError, InputError


def test_kd_loss_is_zero_on_the_teacher_and_two_opposite():
    t = F.normalize(torch.randn(5, 8), dim=-1)
    assert float(kd_loss(3 * t, t)) == pytest.approx(0.0, abs=1e-6)  # scale does not matter
    assert float(kd_loss(-t, t)) == pytest.approx(2.0, abs=1e-6)
    assert float(kd_loss(-t, t, mse_weight=1.0)) == pytest.approx(2.0 + 4.0, abs=1e-5)
    with pytest.raises(InputError, match="both be"):
        kd_loss(torch.randn(5, 8), torch.randn(5, 7))


def test_soft_kd_matches_the_kl_definition():
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    T = 2.0
    p = F.softmax(t / T, -1)
    manual = (p * (p.log() - F.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    assert float(soft_kd_loss(s, t, T)) == pytest.approx(float(manual), rel=1e-5)
    assert float(soft_kd_loss(t, t, T)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError):
        soft_kd_loss(s, t, 0)


def test_bottleneck_rate_is_the_gaussian_kl_and_eval_is_deterministic():
    head = BottleneckHead(BottleneckConfig(in_dim=6, code_dim=3, target_dim=8, num_classes=4))
    h = torch.randn(16, 6)
    out = head(h)
    kl = 0.5 * (out.mu ** 2 + out.logvar.exp() - 1 - out.logvar).sum(-1).mean()
    rate = float(out.rate().detach())
    assert rate == pytest.approx(float(kl.detach())) and rate >= 0
    assert out.embedding.shape == (16, 8) and out.logits.shape == (16, 4)
    head.eval()
    assert torch.equal(head(h).z, head(h).z) and torch.equal(head(h).z, head(h).mu)
    with pytest.raises(ConfigError):
        BottleneckConfig(in_dim=0, code_dim=3, target_dim=8)


def test_ib_loss_terms_and_unlabelled_items():
    torch.manual_seed(0)
    head = BottleneckHead(BottleneckConfig(in_dim=6, code_dim=3, target_dim=8, num_classes=4))
    out = head(torch.randn(16, 6))
    t = torch.randn(16, 8)
    labels = torch.tensor([0, 1, 2, 3] * 2 + [-1] * 8)
    with torch.no_grad():
        a = ib_kd_loss(out, t, beta=0.0, labels=labels)
        b = ib_kd_loss(out, t, beta=0.5, labels=labels)
    assert float(b["loss"] - a["loss"]) == pytest.approx(0.5 * float(a["rate"]), rel=1e-5)
    assert float(a["task"]) > 0
    none = ib_kd_loss(out, t, beta=0.0, labels=torch.full((16,), -1))
    assert float(none["task"]) == 0.0
    with pytest.raises(ConfigError, match="beta"):
        ib_kd_loss(out, t, beta=-1)


def test_a_larger_beta_trains_a_code_of_lower_rate():
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    t = torch.cat([x, x.square()], dim=1)
    rates = {}
    for beta in (0.0, 1.0):
        torch.manual_seed(1)
        head = BottleneckHead(BottleneckConfig(in_dim=6, code_dim=4, target_dim=12))
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        for _ in range(300):
            loss = ib_kd_loss(head(x), t, beta=beta)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates[beta] = float(head(x).rate().detach())
    assert rates[1.0] < 0.5 * rates[0.0]
