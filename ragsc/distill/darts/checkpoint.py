"""The KDL-DARTS search's checkpoint on disk (safetensors and JSON, never a pickle; every file written
atomically). A derived network is a model like any other and is saved by :mod:`ragsc.saved`.

* A search run with ``checkpoint=FOLDER`` rewrites its whole state there after every epoch
  (:func:`save_checkpoint`, the layout below); a rerun with the same settings
  (:func:`search_settings`, :func:`check_same_search`) restores it (:func:`restore_checkpoint`) and goes
  on after the last complete epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ragsc.distill.darts.config import SearchSpaceConfig
from ragsc.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    from ragsc.distill.darts.supernet import SearchNetwork

def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)  # a failed write never leaves a half file under the real name
    finally:
        tmp.unlink(missing_ok=True)


# The search's checkpoint keeps its history, one EpochStats per epoch done, beside its state.

@dataclass(frozen=True)
class EpochStats:
    """One search epoch: mean KD losses (``1 - cosine``) and the normalised expected complexity after it."""

    epoch: int
    train_kd: float
    val_kd: float
    complexity: float


# The checkpoint of a search (search(..., checkpoint=FOLDER)), rewritten after every epoch:
#   FOLDER/search.json                 format, the search's settings, the epochs done, the history, the
#                                      optimisers' learning rates and the schedule's state
#   FOLDER/state-<epoch>.safetensors   the supernet (alphas and BN statistics included), the task head,
#                                      both optimisers' state tensors, the RNG states
# The state file of an epoch is complete before the manifest names it (both written atomically) and the
# previous one is removed only after: a run killed at any point leaves a manifest naming a whole file.
CHECKPOINT_FORMAT = "ragsc-darts-search/1"
CHECKPOINT_MANIFEST = "search.json"


def data_digest(*tensors: torch.Tensor | None) -> str:
    """A content hash of the search's data (shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"-")
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{list(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def search_settings(cfg: SearchSpaceConfig, data: str, classes: int, **settings) -> dict:
    """Everything a search's trajectory depends on, flat (``space.channels``) so a difference names its
    field. The budget and the skip cap act only at derivation: a finished search is re-derived with
    others from its checkpoint."""
    out = {f"space.{f.name}": list(getattr(cfg, f.name)) if f.name == "ops" else getattr(cfg, f.name)
           for f in dataclasses.fields(cfg)}
    out.update(settings)
    out.update(classes=classes, data=data)
    return out


def read_checkpoint(folder: Path) -> dict | None:
    """The manifest of the checkpoint in ``folder`` (``None``: none there yet); a manifest that is not
    readable or not a KDL-DARTS search's raises :class:`~ragsc.errors.ModelLoadError`."""
    path = folder / CHECKPOINT_MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not a readable search checkpoint: {exc}; remove {folder} to start "
                             f"the search over") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{path}: not a KDL-DARTS search checkpoint (format {CHECKPOINT_FORMAT!r}); "
                             f"use another checkpoint folder")
    return manifest


def check_same_search(folder: Path, stored: dict, settings: dict) -> None:
    """Refuse (:class:`~ragsc.errors.ConfigError`) a checkpoint whose settings differ from this run's,
    naming every field that differs."""
    if not isinstance(stored, dict):
        raise ModelLoadError(f"{folder / CHECKPOINT_MANIFEST}: its settings are not a JSON object")
    missing = object()
    differ = [k for k in sorted(set(stored) | set(settings))
              if stored.get(k, missing) != settings.get(k, missing)]
    if not differ:
        return

    def show(key: str, value) -> str:
        if value is missing:
            return "unset"
        return f"{value[:12]}..." if key == "data" and isinstance(value, str) else repr(value)

    fields = "; ".join(f"{k} was {show(k, stored.get(k, missing))}, now {show(k, settings.get(k, missing))}"
                       + (" (the images, teacher embeddings or labels of the splits)" if k == "data" else "")
                       for k in differ)
    raise ConfigError(f"{folder} holds the checkpoint of another search: {fields}. Rerun with the "
                      f"checkpoint's settings to resume it, or give another checkpoint folder")


def state_tensors(network: SearchNetwork, head: nn.Module | None, optimizers: dict,
                  generator: torch.Generator, device: torch.device) -> tuple[dict, dict]:
    """The tensors of a checkpoint, and the optimisers' non-tensor state for the manifest."""
    tensors = {f"network.{k}": v for k, v in network.state_dict().items()}
    if head is not None:
        tensors.update({f"head.{k}": v for k, v in head.state_dict().items()})
    extra = {}
    for name, opt in optimizers.items():
        extra[name] = {}
        for i, state in opt.state_dict()["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{name}.{i}.{key}"] = value
                else:
                    extra[name].setdefault(str(i), {})[key] = value
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.batches"] = generator.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    return {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, extra


def save_checkpoint(folder: Path, manifest: dict, tensors: dict) -> None:
    """Write one epoch's state, then the manifest naming it, then drop the previous state."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    previous = read_checkpoint(folder)
    state = folder / manifest["state"]
    _write_atomic(state, lambda tmp: save_file(tensors, str(tmp)))
    _write_atomic(folder / CHECKPOINT_MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
    if previous is not None and previous.get("state") not in (None, manifest["state"]):
        (folder / Path(str(previous["state"])).name).unlink(missing_ok=True)


def restore_checkpoint(folder: Path, manifest: dict, network: SearchNetwork, head: nn.Module | None,
                       optimizers: dict, schedule, generator: torch.Generator,
                       device: torch.device) -> tuple[int, list[EpochStats]]:
    """Load a checkpoint into the search's objects; returns the epochs done and their history."""
    from safetensors.torch import load_file

    path = folder / Path(str(manifest.get("state"))).name
    if not path.is_file():
        raise ModelLoadError(f"{folder}: the checkpoint's state file {path.name} is missing; remove "
                             f"{folder} to start the search over")
    try:
        state = load_file(str(path))
        for prefix, module in (("network.", network), ("head.", head)):
            if module is not None:
                module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        for name, opt in optimizers.items():
            saved: dict[int, dict] = {}
            for key, value in state.items():
                if key.startswith(name + "."):
                    _, i, field_name = key.split(".", 2)
                    saved.setdefault(int(i), {})[field_name] = value
            for i, values in manifest["optimizers"][name]["extra"].items():
                saved.setdefault(int(i), {}).update(values)
            groups = opt.state_dict()["param_groups"]
            for group, lrs in zip(groups, manifest["optimizers"][name]["groups"], strict=True):
                group.update(lrs)  # the schedule's current and initial rates
            opt.load_state_dict({"state": saved, "param_groups": groups})
        schedule.load_state_dict(manifest["schedule"])
        generator.set_state(state["rng.batches"])
        torch.set_rng_state(state["rng.cpu"])
        if device.type == "cuda" and "rng.cuda" in state:
            torch.cuda.set_rng_state(state["rng.cuda"], device)
        epoch = manifest["epoch"]
        history = [EpochStats(**row) for row in manifest["history"]]
    except Exception as exc:  # a truncated file, missing keys, a hand-edited manifest: name the checkpoint
        raise ModelLoadError(f"cannot resume from the checkpoint in {folder} ({path.name}): {exc}; remove "
                             f"{folder} to start the search over") from exc
    if not isinstance(epoch, int) or len(history) != epoch:
        raise ModelLoadError(f"{folder / CHECKPOINT_MANIFEST}: {epoch!r} epochs done but {len(history)} in "
                             f"its history; remove {folder} to start the search over")
    return epoch, history
