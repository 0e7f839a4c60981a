"""The image JSCC training run's folder: the best codec, the trainer's state and a checkpoint to resume from.

The folder is the codec's saved-model folder (:mod:`ragsc.saved`: ``config.json`` + ``model.safetensors``, the
best weights) with two extra files, ``trainer.json`` (step, history, data listing, training config, random
state) and, until the run ends, ``checkpoint.safetensors`` (latest weights ``model.*``, their moving average
``ema.*`` and the optimiser's state ``opt.<param>.<name>``). Nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ragsc.channel.jscc.codec import JSCCCodec
from ragsc.errors import InputError
from ragsc.saved import Saved, optimizer_tensors, read, save

TRAINER_FILE, CHECKPOINT_FILE = "trainer.json", "checkpoint.safetensors"


def _listing(paths: list[Path]) -> list[list]:
    return [[p.name, p.stat().st_size] for p in paths]


def write_run(out: Path, codec: JSCCCodec, best: dict, opt, history: list[dict], best_db: float, step: int,
              g: torch.Generator, cfg, train: list[Path], seconds: float, info: dict | None, *, done: bool,
              stopped: str = "", ema: dict | None = None) -> None:
    """Write the run folder atomically: the best weights as the codec's saved model, ``trainer.json`` and
    (unless ``done``) the checkpoint (latest weights, their average ``ema``, the optimiser's state)."""
    from safetensors.torch import save as save_bytes

    trainer = {
        "step": step,
        "best_db": best_db,
        "history": history,
        "seconds": round(seconds, 1),
        "done": done,
        "stopped": stopped,
        "config": cfg.model_dump(mode="json"),
        "data": _listing(train),
        "generator": g.get_state().tolist(),
    }
    files = {TRAINER_FILE: json.dumps(trainer).encode()}
    if not done:
        latest = {f"model.{k}": v.detach().contiguous() for k, v in codec.state_dict().items()}
        latest.update({f"ema.{k}": v.contiguous() for k, v in (ema or {}).items()})
        files[CHECKPOINT_FILE] = save_bytes({**latest, **optimizer_tensors(opt)})
    meta = {
        **(info or {}),
        "val_psnr_db": round(best_db, 3),
        "steps": step,
        "train_minutes": round(seconds / 60, 1),
        "stopped": stopped,
        "train_photos": len(train),
    }
    save(
        Saved(codec.kind, codec.format_version, codec.config.model_dump(mode="json"), best, meta, files),
        out,
        overwrite=True,
    )


def resume_state(out: Path, codec: JSCCCodec, train: list[Path], cfg) -> dict | None:
    """The state to continue from, ``None`` when ``out`` is new or empty; :class:`InputError` when it holds
    anything else than an unfinished run of this codec config, data and training config."""
    from safetensors.torch import load as load_bytes

    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not (out / "config.json").is_file():
        raise InputError(f"--out {out}: holds other files, not a training run; nothing to resume (name a new "
                         "or empty folder)")
    saved = read(out)
    if saved.kind != codec.kind or TRAINER_FILE not in saved.files:
        raise InputError(
            f"--out {out}: holds a {saved.kind!r} that is not an image JSCC training run; nothing to resume"
        )
    trainer = json.loads(saved.files[TRAINER_FILE])
    if trainer["done"]:
        raise InputError(
            f"--out {out}: that run finished ({trainer['stopped']}); name a new folder to train again"
        )
    if saved.config != codec.config.model_dump(mode="json"):
        raise InputError(
            f"--out {out}: that run trains another codec config; resume it with the same settings"
        )
    same = {k: v for k, v in trainer["config"].items() if k != "max_minutes"} == cfg.model_dump(
        mode="json", exclude={"max_minutes"})
    if trainer["data"] != _listing(train) or not same:
        raise InputError(
            f"--out {out}: that run used other photos or training settings; resume with the same ones"
        )
    return {"trainer": trainer, "best": saved.tensors, "tensors": load_bytes(saved.files[CHECKPOINT_FILE])}
