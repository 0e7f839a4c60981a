"""ragsc.distill.deepjscc: the teacher-free, end-to-end learned baseline of the distillation benchmark."""

from __future__ import annotations

import pytest
import torch

from ragsc.channel.models import Channel
from ragsc.distill.deepjscc import DeepJSCC, DeepJSCCConfig, evaluate_deepjscc, train_deepjscc
from ragsc.errors import ConfigError, InputError

CFG = DeepJSCCConfig(image_size=16, widths=(8, 16), n_symbols=4, num_classes=2, hidden=32,
                     channels=("awgn", "rayleigh"), snr_range_db=(0.0, 20.0))


def two_classes(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark images (class 0) and bright ones (class 1), with noise."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    base = torch.where(labels[:, None, None, None] == 1, 190.0, 60.0)
    x = (base + 30 * torch.randn(n, 3, 16, 16, generator=g)).clamp(0, 255).to(torch.uint8)
    return x, labels


def test_symbols_have_unit_power_and_the_chain_learns_the_task(one_thread):
    x, y = two_classes()
    model = DeepJSCC(CFG)
    from ragsc.distill.train import to_student_pixels

    s = model.symbols(to_student_pixels(x[:8]))
    assert s.shape == (8, 4) and s.is_complex()
    assert torch.allclose(s.abs().square().mean(1), torch.ones(8), atol=1e-5)
    before = evaluate_deepjscc(model, x, y, snrs=(20.0,), channels=("awgn",))
    result = train_deepjscc(model, x, y, epochs=6, batch_size=32, lr=5e-3)
    assert len(result.history) == 6 and result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    rows = evaluate_deepjscc(model, x, y, snrs=(-10.0, 20.0))
    assert [(r["channel"], r["snr_db"]) for r in rows] == [("awgn", -10.0), ("awgn", 20.0),
                                                             ("rayleigh", -10.0), ("rayleigh", 20.0)]
    assert rows[1]["accuracy"] > 0.9 and rows[1]["accuracy"] >= before[0]["accuracy"]
    assert all(r["n_symbols"] == 4 for r in rows)
    # the channel is in the loop: the same symbols at -10 dB and 20 dB give different logits
    sim = Channel("awgn", "block", 4.0, 0)
    pixels = to_student_pixels(x[:4])
    assert not torch.allclose(model(pixels, -10.0, sim), model(pixels, 20.0, sim))


def test_few_labels_train_for_as_many_steps(one_thread):
    """A quarter of the labels: the labelled items are cycled, so the model takes as many steps."""
    x, y = two_classes(64)
    steps = []
    for share in (1.0, 0.25):
        labels = y.clone()
        if share < 1:
            labels[torch.arange(64) % 4 != 0] = -1
        model = DeepJSCC(CFG)
        calls: list[int] = []
        model.register_forward_hook(lambda m, *_, calls=calls: calls.append(1) if m.training else None)
        train_deepjscc(model, x, labels, epochs=2, batch_size=16)
        steps.append(len(calls))
    assert steps[0] == steps[1] == 2 * 4


def test_bad_input_is_refused():
    x, y = two_classes(8)
    with pytest.raises(InputError, match=r"\[N, 3, 16, 16\]"):
        train_deepjscc(DeepJSCC(CFG), x[:, :, :8, :8], y)
    with pytest.raises(InputError, match="labels only"):
        train_deepjscc(DeepJSCC(CFG), x, torch.full((8,), -1))
    with pytest.raises(ConfigError, match="unknown channel 'wifi'"):
        DeepJSCC(CFG.model_copy(update={"channels": ("wifi",)}))
    with pytest.raises(InputError, match="no labelled"):
        evaluate_deepjscc(DeepJSCC(CFG), x, torch.full((8,), -1))
