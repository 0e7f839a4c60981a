"""The image JSCC run folder's checkpoint (ragsc.distill.jscc_checkpoint): the optimiser's state through
safetensors, and what resume_state accepts."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.channel.jscc import JSCCCodec, JSCCConfig
from ragsc.distill.image_jscc import JSCCTrainConfig
from ragsc.distill.jscc_checkpoint import (
    CHECKPOINT_FILE,
    TRAINER_FILE,
    resume_state,
    write_run,
)
from ragsc.errors import InputError
from ragsc.saved import load_optimizer_tensors as load_optimizer
from ragsc.saved import optimizer_tensors as _opt_tensors


def _codec() -> JSCCCodec:
    torch.manual_seed(0)
    return JSCCCodec(JSCCConfig(widths=(8, 8, 8), blocks=(0, 1), max_channels=8, levels=(2, 8)))


def _stepped(codec: JSCCCodec) -> torch.optim.AdamW:
    opt = torch.optim.AdamW(codec.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        codec.decode(codec.encode(torch.rand(1, 3, 16, 16), 5.0, 8), 5.0).mean().backward()
        opt.step()
    return opt


def test_optimiser_state_round_trips_through_tensors():
    codec = _codec()
    opt = _stepped(codec)
    tensors = _opt_tensors(opt)
    assert tensors and all(k.startswith("opt.") for k in tensors)
    fresh = torch.optim.AdamW(codec.parameters(), lr=1e-3)
    load_optimizer(fresh, {**tensors, "model.x": torch.zeros(1)})  # other entries are ignored
    a, b = opt.state_dict()["state"], fresh.state_dict()["state"]
    assert a.keys() == b.keys()
    for i in a:
        assert a[i].keys() == b[i].keys()
        for k in a[i]:
            assert torch.equal(torch.as_tensor(a[i][k]), torch.as_tensor(b[i][k]))


def test_write_run_then_resume_state(tmp_path, photo_files):
    codec = _codec()
    opt = _stepped(codec)
    cfg = JSCCTrainConfig(steps=10, patch=16, max_minutes=1.0)
    g = torch.Generator().manual_seed(3)
    best = {k: v.clone() for k, v in codec.state_dict().items()}
    out = tmp_path / "run"
    write_run(out, codec, best, opt, [{"step": 2, "val_psnr_db": 20.0}], 20.0, 2, g, cfg, photo_files, 12.0,
              {"data": "x"}, done=False, ema=best)
    assert (out / CHECKPOINT_FILE).is_file()
    state = resume_state(out, _codec(), photo_files, JSCCTrainConfig(steps=10, patch=16, max_minutes=5.0))
    assert state["trainer"]["step"] == 2 and state["trainer"]["seconds"] == 12.0
    assert torch.equal(torch.tensor(state["trainer"]["generator"], dtype=torch.uint8), g.get_state())
    assert {k[4:] for k in state["tensors"] if k.startswith("ema.")} == set(best)
    with pytest.raises(InputError, match="other photos or training settings"):
        resume_state(out, _codec(), photo_files, JSCCTrainConfig(steps=11, patch=16))
    photo_files[0].write_bytes(photo_files[0].read_bytes() + b"\0")  # the same name, another file
    with pytest.raises(InputError, match="other photos"):
        resume_state(out, _codec(), photo_files, cfg)
    write_run(out, codec, best, opt, [], 20.0, 10, g, cfg, photo_files, 20.0, None, done=True,
              stopped="reached 10 steps")
    assert not (out / CHECKPOINT_FILE).exists()
    assert json.loads((out / TRAINER_FILE).read_text())["stopped"] == "reached 10 steps"
    with pytest.raises(InputError, match="that run finished"):
        resume_state(out, _codec(), photo_files, cfg)
    assert resume_state(tmp_path / "none", _codec(), photo_files, cfg) is None


@pytest.fixture
def photo_files(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(b"not read, only listed" * (i + 1))
    return paths
