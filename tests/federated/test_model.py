"""ragsc.federated.model: the device half (peft LoRA + transmitter), the receiver, adapter files."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.errors import ConfigError, ModelLoadError
from ragsc.federated.model import ClientModel, ReceiverHead, load_adapters, load_base, save_adapters

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(spec: str, targets=None, seed=0) -> ClientModel:
    return ClientModel(load_base(spec), rank=2, alpha=4.0, targets=targets, k_symbols=4, seed=seed)


def test_only_the_adapters_train(tiny_base):
    m = _model(tiny_base)
    names = set(m.trainable())
    assert names == {"encoder.backbone.9.lora_A.default.weight", "encoder.backbone.9.lora_B.default.weight",
                     "encoder.head.proj.lora_A.default.weight", "encoder.head.proj.lora_B.default.weight"}
    assert set(m.get_weights()) == names | {"center"}  # the centre travels with them, not trained
    with_tx = ClientModel(load_base(tiny_base), 2, 4.0, None, 4, seed=0, train_transmitter=True)
    assert set(with_tx.trainable()) == names | {"transmitter.weight"}
    assert type(m.encoder.backbone[9]).__module__.startswith("peft.")  # peft's Conv2d LoRA layer
    assert m.num_trainable() < m.num_parameters()
    assert m.cut == 9


def test_same_seed_same_initial_adapters(tiny_base):
    a, b, c = _model(tiny_base), _model(tiny_base), _model(tiny_base, seed=1)
    for k, v in a.get_weights().items():
        assert torch.equal(v, b.get_weights()[k])
    assert torch.equal(a.transmitter.weight, b.transmitter.weight)
    assert not torch.equal(a.transmitter.weight, c.transmitter.weight)
    assert not torch.equal(a.get_weights()["encoder.head.proj.lora_A.default.weight"],
                           c.get_weights()["encoder.head.proj.lora_A.default.weight"])


def test_cached_prefix_gives_the_full_forward(tiny_base):
    m = _model(tiny_base)
    with torch.no_grad():  # make the adapters non-zero so the adapted path counts
        for p in m.trainable().values():
            p.add_(0.1 * torch.randn_like(p))
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    via_cut = m(m.features(images))
    emb = m.encoder(images.float() / 127.5 - 1)[0]
    direct = torch.view_as_complex(m.transmitter(emb).view(6, 4, 2).contiguous())
    direct = direct / direct.abs().square().mean(1, keepdim=True).sqrt()
    assert torch.allclose(via_cut, direct, atol=1e-5)
    assert torch.allclose(via_cut.abs().square().mean(1), torch.ones(6), atol=1e-5)  # unit power per symbol


def test_unknown_target_names_the_layers(tiny_base):
    with pytest.raises(ConfigError, match="backbone.3"):
        _model(tiny_base, targets=("backbone.99",))


def test_adapters_round_trip(tiny_base, tmp_path):
    m = _model(tiny_base)
    rx = ReceiverHead(4, 8, 10)
    with torch.no_grad():
        for p in m.trainable().values():
            p.add_(torch.randn_like(p))
    save_adapters(tmp_path, m, rx, info={"note": 1})
    m2, rx2 = _model(tiny_base, seed=5), ReceiverHead(4, 8, 10, seed=3)
    meta = load_adapters(tmp_path, m2, rx2)
    assert meta["info"] == {"note": 1} and meta["base"]["fingerprint"] == m.base_fingerprint
    for k, v in m.get_weights().items():
        assert torch.equal(v, m2.get_weights()[k])
    for k, v in rx.state_dict().items():
        assert torch.equal(v, rx2.state_dict()[k])
    assert torch.equal(m2.transmitter.weight, m.transmitter.weight)  # the fixed transmitter comes along


def test_adapters_of_another_base_are_refused_naming_both(tiny_base, other_base, tmp_path):
    m = _model(tiny_base)
    save_adapters(tmp_path, m)
    other = _model(other_base)
    before = other.get_weights()
    with pytest.raises(ModelLoadError) as exc:
        load_adapters(tmp_path, other)
    msg = str(exc.value)
    assert m.base_fingerprint != other.base_fingerprint
    assert m.base_fingerprint in msg and other.base_fingerprint in msg
    assert tiny_base in msg and other_base in msg
    assert all(torch.equal(v, other.get_weights()[k]) for k, v in before.items())  # untouched


def test_adapters_of_another_shape_or_a_bad_file_are_refused(tiny_base, tmp_path):
    m = _model(tiny_base)
    save_adapters(tmp_path, m)
    wide = ClientModel(load_base(tiny_base), rank=3, alpha=4.0, targets=None, k_symbols=4)
    with pytest.raises(ModelLoadError, match="shape"):
        load_adapters(tmp_path, wide)
    header = json.loads((tmp_path / "config.json").read_text())
    assert header["kind"] == "federated-adapters" and header["config"]["k_symbols"] == 4
    (tmp_path / "config.json").write_text(json.dumps({**header, "kind": "student"}))
    with pytest.raises(ModelLoadError, match="holds a 'student', not a federated model"):
        load_adapters(tmp_path, m)
    (tmp_path / "config.json").write_text(json.dumps({**header, "config": {"base": {}}}))
    with pytest.raises(ModelLoadError, match=r"not a valid federated adapters config: .*base\.spec: Field "
                       r"required; .*targets: Field required; k_symbols: Field required"):
        load_adapters(tmp_path, m)
    with pytest.raises(ModelLoadError, match="no federated model"):
        load_adapters(tmp_path / "missing", m)


def test_base_must_be_a_cnn_student(tmp_path):
    with pytest.raises(ConfigError, match="student:embedded or student:<dir>"):
        load_base("embedded")
    with pytest.raises(ModelLoadError, match="no student"):
        load_base(f"student:{tmp_path}")
