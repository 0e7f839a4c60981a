"""Training the image JSCC (ragsc.distill.image_jscc): a few steps of a tiny codec on generated photos saved
as PNG files; the run folder, resuming a run stopped by its time limit, the refusals, a frozen encoder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import ragsc.distill.image_jscc as image_jscc
from ragsc.channel.jscc import JSCCCodec, JSCCConfig
from ragsc.channel.models import Channel
from ragsc.distill.image_jscc import JSCCTrainConfig, psnr, through_channel, train_jscc, validate
from ragsc.errors import InputError, ModelLoadError, RagscError

TINY = dict(widths=(8, 8, 8), blocks=(0, 1), max_channels=8, levels=(2, 8))
FAST = dict(steps=4, batch_size=2, patch=16, scales=(64,), eval_every=2, warmup=1, ema=0.5)


def _codec(seed: int = 0, **fields) -> JSCCCodec:
    torch.manual_seed(seed)
    return JSCCCodec(JSCCConfig(**{**TINY, **fields}))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[list[Path], list[Path]]:
    """4 training and 1 validation PNG photos (gradients with noise, 64..80 pixels)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        h, w = 64 + 4 * i, 80 - 4 * i
        y, x = np.mgrid[0:h, 0:w]
        px = np.stack([x / w, y / h, np.full((h, w), i / 5)], -1) * 200 + rng.normal(0, 10, (h, w, 3)) + 20
        paths.append(root / f"p{i}.png")
        Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(paths[-1])
    return paths[:4], paths[4:]


def _cfg(**kw) -> JSCCTrainConfig:
    return JSCCTrainConfig(**{**FAST, **kw})


def test_a_short_run_writes_a_loadable_codec_folder(photos, tmp_path):
    train, val = photos
    out = tmp_path / "run"
    run = train_jscc(_codec(), train, val, out, _cfg(), info={"data": "test"})
    assert run.step == 4 and run.stopped == "reached 4 steps" and math.isfinite(run.best_db)
    assert [h["step"] for h in run.history] == [2, 4]
    assert set(run.history[0]) == {"step", "loss", "val_psnr_db", "minutes"}
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "trainer.json"]
    trainer = json.loads((out / "trainer.json").read_text())
    assert trainer["done"] and trainer["step"] == 4 and trainer["history"] == run.history
    assert trainer["data"] == [[p.name, p.stat().st_size] for p in train]
    assert trainer["config"] == _cfg().model_dump(mode="json") and trainer["best_db"] == run.best_db
    header = json.loads((out / "config.json").read_text())
    assert header["kind"] == "image-jscc" and header["files"] == ["trainer.json"]
    info = header["info"]
    assert info["data"] == "test" and info["steps"] == 4 and info["train_photos"] == 4
    assert info["val_psnr_db"] == round(run.best_db, 3) and info["stopped"] == "reached 4 steps"
    back = JSCCCodec.load(out)
    assert back.config == run.codec.config and not run.codec.training
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(back.encode(x, 5.0, 8), run.codec.encode(x, 5.0, 8))
    assert any(abs(run.best_db - h["val_psnr_db"]) < 1e-3 for h in run.history)  # one of the validations


def test_a_finished_run_is_refused_and_so_is_a_used_folder(photos, tmp_path):
    train, val = photos
    out = tmp_path / "run"
    train_jscc(_codec(), train, val, out, _cfg(steps=2))
    with pytest.raises(InputError, match="--out .*run: already holds a saved model"):
        train_jscc(_codec(), train, val, out, _cfg(steps=2))
    with pytest.raises(InputError, match=r"that run finished \(reached 2 steps\); name a new folder"):
        train_jscc(_codec(), train, val, out, _cfg(steps=2), resume=True)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files"):
        train_jscc(_codec(), train, val, other, _cfg(steps=2))
    with pytest.raises(RagscError, match=str(other)):
        train_jscc(_codec(), train, val, other, _cfg(steps=2), resume=True)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]  # nothing written into it
    foreign = _codec().save(tmp_path / "a_codec")  # a saved codec, not a training run
    with pytest.raises(InputError, match="not an image JSCC training run; nothing to resume"):
        train_jscc(_codec(), train, val, foreign, _cfg(steps=2), resume=True)


def test_resume_with_a_new_or_empty_folder_starts_a_run(photos, tmp_path):
    train, val = photos
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new"):
        assert train_jscc(_codec(), train, val, out, _cfg(steps=1), resume=True).step == 1


def test_empty_splits_and_photos_smaller_than_the_patch_are_input_errors(photos, tmp_path):
    train, val = photos
    with pytest.raises(InputError, match="needs photos for both splits, got 4 training and 0 validation"):
        train_jscc(_codec(), train, [], tmp_path / "a", _cfg())
    with pytest.raises(InputError, match=r"p0.png: 80x64 is smaller than the 72-pixel training patch"):
        train_jscc(_codec(), train, val, tmp_path / "b", _cfg(patch=72))
    small = tmp_path / "small.png"
    Image.new("RGB", (40, 44), (10, 200, 30)).save(small)
    with pytest.raises(InputError, match=r"small.png: 40x44 is smaller than the 48-pixel training patch"):
        train_jscc(_codec(), train, [small], tmp_path / "b", _cfg(patch=48))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


class _Clock:
    """A clock that advances 20 s each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 20.0
        return self.now


def test_a_run_stopped_by_its_time_limit_resumes_and_continues_the_step_count(photos, tmp_path, monkeypatch):
    train, val = photos
    out = tmp_path / "run"
    monkeypatch.setattr(image_jscc, "time", SimpleNamespace(perf_counter=_Clock().perf_counter))
    first = train_jscc(_codec(), train, val, out, _cfg(steps=8, max_minutes=1.0))
    monkeypatch.undo()
    assert first.stopped == "time limit of 1.0 minutes" and 1 <= first.step < 8
    trainer = json.loads((out / "trainer.json").read_text())
    assert not trainer["done"] and trainer["step"] == first.step and trainer["seconds"] >= 60
    assert (out / "checkpoint.safetensors").is_file()
    assert JSCCCodec.load(out).config == JSCCConfig(**TINY)  # the folder is a codec all along
    # other settings than the run's are refused; only the time limit may change
    with pytest.raises(InputError, match="that run trains another codec config"):
        train_jscc(_codec(side_info=True), train, val, out, _cfg(steps=8), resume=True)
    with pytest.raises(InputError, match="that run used other photos or training settings"):
        train_jscc(_codec(), train[:3], val, out, _cfg(steps=8), resume=True)
    with pytest.raises(InputError, match="that run used other photos or training settings"):
        train_jscc(_codec(), train, val, out, _cfg(steps=8, lr=1e-2), resume=True)
    resumed = train_jscc(_codec(seed=5), train, val, out, _cfg(steps=8, max_minutes=30.0), resume=True)
    assert resumed.step == 8 and resumed.stopped == "reached 8 steps"
    assert resumed.history[: len(first.history)] == first.history
    assert [h["step"] for h in resumed.history] == [2, 4, 6, 8]
    assert resumed.seconds >= trainer["seconds"]
    done = json.loads((out / "trainer.json").read_text())
    assert done["done"] and done["step"] == 8 and not (out / "checkpoint.safetensors").exists()
    with pytest.raises(InputError, match="that run finished"):
        train_jscc(_codec(), train, val, out, _cfg(steps=8), resume=True)


def test_resume_continues_from_the_checkpointed_weights_not_the_codec_passed(photos, tmp_path, monkeypatch):
    train, val = photos
    out = tmp_path / "run"
    monkeypatch.setattr(image_jscc, "time", SimpleNamespace(perf_counter=_Clock().perf_counter))
    train_jscc(_codec(), train, val, out, _cfg(steps=8, max_minutes=1.0))
    monkeypatch.undo()
    from safetensors.torch import load_file

    checkpoint = load_file(out / "checkpoint.safetensors")
    latest = {k[6:]: v for k, v in checkpoint.items() if k.startswith("model.")}
    fresh = _codec(seed=7)
    assert not torch.equal(fresh.state_dict()["enc_head.weight"], latest["enc_head.weight"])
    state = image_jscc.resume_state(out, fresh, train, _cfg(steps=8))
    assert state["trainer"]["step"] >= 1 and set(state["best"]) == set(fresh.state_dict())
    assert any(k.startswith("opt.") for k in state["tensors"])  # the optimiser's moments travel too


def test_side_only_trains_the_side_branch_alone(photos, tmp_path):
    train, val = photos
    codec = _codec(seed=3, side_info=True)
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    run = train_jscc(codec, train, val, tmp_path / "run", _cfg(steps=3, side_only=True, ema=0.0, lr=1e-2))
    after = JSCCCodec.load(tmp_path / "run").state_dict()
    plain = [k for k in before if not k.startswith(("side.", "fuse."))]
    side = [k for k in before if k.startswith(("side.", "fuse."))]
    assert plain and side
    assert all(torch.equal(before[k], after[k]) for k in plain)  # RAG off decodes exactly as before
    assert any(not torch.equal(before[k], after[k]) for k in side)
    assert run.step == 3


def test_side_only_needs_a_side_branch(photos, tmp_path):
    train, val = photos
    with pytest.raises(InputError, match="side-information branch"):
        train_jscc(_codec(seed=3), train, val, tmp_path / "run", _cfg(steps=1, side_only=True))


def test_side_information_training_moves_the_fusion_from_zero(photos, tmp_path):
    train, val = photos
    codec = _codec(seed=4, side_info=True)
    assert all(float(c.weight.detach().abs().sum()) == 0 for c in codec.fuse)
    run = train_jscc(codec, train, val, tmp_path / "run", _cfg(steps=3, unrelated=0.5, ema=0.0, lr=1e-2))
    assert run.step == 3 and math.isfinite(run.best_db)
    assert any(float(c.weight.detach().abs().sum()) > 0 for c in JSCCCodec.load(tmp_path / "run").fuse)


def test_through_channel_is_differentiable_and_psnr_is_in_db():
    codec = _codec()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = through_channel(codec, x, torch.tensor([0.0, 20.0]), 2, Channel("rayleigh", seed=0))
    assert out.shape == x.shape
    out.square().mean().backward()
    assert codec.enc_head.weight.grad is not None and codec.enc_head.weight.grad.abs().sum() > 0
    ref = torch.full((1, 3, 8, 8), 0.5)
    assert float(psnr(ref + 0.1, ref)) == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert float(psnr(ref, ref)) == pytest.approx(100.0)  # capped: exact copies
    assert psnr(torch.cat([ref, ref + 0.1]), torch.cat([ref, ref])).shape == (2,)


def test_validate_is_repeatable_and_restores_the_mode():
    codec = _codec().train()
    crops = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    a, b = validate(codec, crops), validate(codec, crops)
    assert a == b and math.isfinite(a) and codec.training
    assert validate(codec, crops, snrs=(20.0,)) > validate(codec, crops, snrs=(-5.0,)) - 1.0
    with pytest.raises(ModelLoadError):
        JSCCCodec.load(Path("/nonexistent/run"))
