"""ragsc.federated.flower.codec: protocol messages and replies survive Flower's FitIns / FitRes."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("flwr")

from ragsc.federated import flower  # noqa: E402
from ragsc.federated.protocol import (  # noqa: E402
    Begin,
    Calibrate,
    Dropped,
    Evaluate,
    Gradient,
    ReceivedBatch,
    Stats,
    Update,
    Upload,
)


def test_messages_survive_flower_encoding():
    keys = ["b", "a", "center"]
    w = {k: torch.randn(3, 2) for k in keys}
    g = torch.randn(5, 4, dtype=torch.complex64)
    for msg in (Begin(2, w), Evaluate(3, w)):
        back = flower.decode_message(flower.encode_message(msg), keys)
        assert type(back) is type(msg) and back.round == msg.round
        assert all(torch.equal(back.weights[k], w[k]) for k in keys)
    back = flower.decode_message(flower.encode_message(Gradient(2, 7, g)), keys)
    assert back.step == 7 and torch.equal(back.grad, g)
    assert isinstance(flower.decode_message(flower.encode_message(Calibrate()), keys), Calibrate)
    r = ReceivedBatch(g, torch.arange(5), 0.25, torch.randn(5, 1, dtype=torch.complex64))
    up = flower.decode_reply(flower.encode_reply(Upload(3, r)), keys)
    assert up.step == 3 and torch.equal(up.received.y, r.y) and torch.equal(up.received.h, r.h)
    assert torch.equal(up.received.labels, r.labels) and up.received.no == 0.25
    upd = flower.decode_reply(flower.encode_reply(Update(w, 9, "fp")), keys)
    assert upd.n_examples == 9 and upd.fingerprint == "fp"
    assert all(torch.equal(upd.weights[k], w[k]) for k in keys)
    st = flower.decode_reply(flower.encode_reply(Stats(torch.arange(4.0, dtype=torch.float64), 4)), keys)
    assert st.count == 4 and torch.equal(st.total, torch.arange(4.0, dtype=torch.float64))
    assert flower.decode_reply(flower.encode_reply(Dropped("gone")), keys).reason == "gone"
