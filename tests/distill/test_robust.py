"""ragsc.distill.robust: stage 2 of the robust KD, student + CAT + task head through the channel."""

from __future__ import annotations

import pytest

from ragsc.channel.cat import CATCodec, CATConfig
from ragsc.distill.robust import evaluate_over_channel, train_robust
from ragsc.distill.store import DataRecipe, build_store
from ragsc.distill.student_nets import ImageStudentConfig
from ragsc.distill.train import train_student
from ragsc.errors import ConfigError
from tests.kb._fakes import FakeEncoder

IMAGE = ImageStudentConfig(image_size=16, widths=(4, 8), out_dim=16)


def cat(dim: int = 16) -> CATCodec:
    return CATCodec(CATConfig(token_dim=dim, target_dim=dim, model_dim=16, layers=1, heads=2, max_symbols=8,
                              levels=(2, 4, 8), channels=("awgn", "rayleigh"), snr_range_db=(0, 20)))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("s") / "s", FakeEncoder(),
                       DataRecipe(source="train", n=96, label_field="shape"))


def test_stage_two_trains_the_chain_through_the_channel(store, one_thread):
    stage1 = train_student(store, IMAGE, epochs=4, batch_size=16, lr=5e-3, val_fraction=0.0).student
    before = evaluate_over_channel(store, stage1, IMAGE, cat(), None, snrs=(20.0,), channels=("awgn",))
    result = train_robust(store, stage1, IMAGE, cat(), epochs=6, batch_size=16, lr=3e-3, val_fraction=0.25)
    assert [r["epoch"] for r in result.history] == list(range(1, 7)) and "val_cosine" in result.history[-1]
    rows = evaluate_over_channel(store, result.student, IMAGE, result.codec, result.head, snrs=(0.0, 20.0))
    assert [(r["channel"], r["snr_db"]) for r in rows] == [("awgn", 0.0), ("awgn", 20.0), ("rayleigh", 0.0),
                                                             ("rayleigh", 20.0)]
    assert all(0 <= r["accuracy"] <= 1 and r["n_symbols"] == 8 for r in rows)
    assert rows[1]["cosine"] > before[0]["cosine"] + 0.1  # through the channel, the trained chain wins
    assert not any(p.requires_grad for p in result.codec.parameters())  # returned ready for inference
    short = evaluate_over_channel(store, result.student, IMAGE, result.codec, result.head, snrs=(20.0,),
                                  channels=("awgn",), n_symbols=2)
    assert short[0]["n_symbols"] == 2


def test_a_codec_of_another_dimension_is_refused(store):
    with pytest.raises(ConfigError, match="teacher's"):
        train_robust(store, train_student(store, IMAGE, epochs=1).student, IMAGE, cat(dim=8))


def test_the_receiver_of_a_frozen_transmitter_learns_through_the_channel(one_thread):
    import torch

    from ragsc.distill.robust import evaluate_features, train_receiver
    from ragsc.errors import InputError

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(3, 16, generator=g)
    labels = torch.arange(96) % 3
    features = centres[labels] + 0.3 * torch.randn(96, 16, generator=g)  # a frozen transmitter's output
    labels[::4] = -1  # a quarter unlabelled: reconstruction only
    before = evaluate_features(features, centres[labels.clamp_min(0)], labels, cat(), None, snrs=(20.0,))
    result = train_receiver(features, centres[labels.clamp_min(0)], labels, cat(), num_classes=3, epochs=20,
                            batch_size=16, lr=3e-3, val_fraction=0.25)
    assert result.student is None and result.head.out_features == 3
    rows = evaluate_features(features, centres[labels.clamp_min(0)], labels, result.codec, result.head,
                             snrs=(20.0,), channels=("awgn",))
    assert rows[0]["cosine"] > before[0]["cosine"] + 0.1 and rows[0]["accuracy"] > 0.8
    assert "accuracy" not in before[0]  # no head, no accuracy
    # 4 labels in 96: the head still trains at every step, on a batch of labelled items
    few = torch.full((96,), -1)
    few[:4] = labels[:4].clamp_min(0)
    head_calls = []
    import ragsc.distill.robust as robust

    make_head = robust._head

    def counted_head(*args):
        head = make_head(*args)
        head.register_forward_hook(lambda m, x, _: head_calls.append(len(x[0])) if m.training else None)
        return head

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(robust, "_head", counted_head)
        train_receiver(features, centres[labels.clamp_min(0)], few, cat(), num_classes=3, epochs=2,
                       batch_size=16, val_fraction=0.0)
    assert len(head_calls) == 2 * 6 and set(head_calls) <= {4}
    with pytest.raises(ConfigError, match="labels go up to 2"):
        train_receiver(features, features, labels, cat(), num_classes=2)
    with pytest.raises(InputError, match="differ in length"):
        train_receiver(features[:10], features, None, cat())
    with pytest.raises(ConfigError, match="transmitter gives 8-d"):
        train_receiver(features[:, :8], features, None, cat())
