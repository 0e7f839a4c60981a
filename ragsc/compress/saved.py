"""A compressed encoder on disk, and the encoder that ``load_encoder("compressed:<dir>")`` rebuilds from it.

The folder holds two files, nothing pickled::

    <dir>/compressed.json      format, the base encoder (spec, fingerprint, dim), the CompressionConfig,
                               the pruned architecture (sizes of every layer and tensor; null if not
                               pruned), the description of the stored state (quantised tensors' schemes,
                               tuples, dtypes), parameter counts and the front's figures
    <dir>/tower.safetensors    the compressed unit's state: int8 / uint8 integers with their scales and
                               zero points, half or float tensors

:class:`CompressedEncoder` loads the base encoder by its spec, checks that it is the very model the
compression started from (fingerprint), replays the compression on its float unit
(:func:`~ragsc.compress.apply.rebuild`) and loads the stored state. It encodes exactly as the compressed
unit did when it was measured, and it *serves* what its base serves (the base's KBs and decoders; a
student base's teacher too).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field

from ragsc.compress.apply import Compressed, rebuild
from ragsc.compress.config import CompressionConfig
from ragsc.compress.towers import tower_of
from ragsc.encoders.base import Encoded, MultimodalEncoder, serves
from ragsc.errors import ConfigError, InputError, ModelLoadError

M = TypeVar("M", bound=BaseModel)
FORMAT = "ragsc-compressed/1"
CONFIG_FILE, WEIGHTS_FILE = "compressed.json", "tower.safetensors"


class BaseRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str
    fingerprint: str
    dim: int


class SavedCompression(BaseModel):
    """What ``compressed.json`` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = FORMAT
    base: BaseRef
    config: CompressionConfig
    architecture: dict | None = None
    state: dict[str, dict] = Field(default_factory=dict, description="encode_state's description")
    params: int = Field(ge=0, description="parameters of the compressed unit")
    base_params: int = Field(ge=0, description="parameters of the float unit it replaces")
    figures: dict = Field(default_factory=dict, description="the front's measurement of this point")
    info: dict = Field(default_factory=dict)


def check_folder(folder: Path, names: tuple[str, ...], what: str) -> None:
    """:class:`InputError` unless ``folder`` is new or holds only ``names`` (a compression written before)."""
    if folder.exists() and (not folder.is_dir() or any(p.name not in names for p in folder.iterdir())):
        raise InputError(f"{folder} exists and holds other files; write a {what} into a new folder")


def write_saved(folder: Path, weights: str, tensors: dict[str, torch.Tensor], config: str,
                record: BaseModel) -> Path:
    """``tensors`` as ``folder/weights`` (safetensors), then ``record`` as ``folder/config`` (JSON), each
    through a temporary file (a killed write leaves no half-written file)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (weights + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / weights)
    tmp = folder / (config + ".tmp")
    tmp.write_text(json.dumps(record.model_dump(mode="json"), indent=1))
    tmp.replace(folder / config)
    return folder


def read_record(folder: str | Path, config: str, model: type[M], fmt: str, what: str, hint: str) -> M:
    """``folder/config`` validated as ``model`` of format ``fmt``; :class:`ModelLoadError` when missing
    (with ``hint``: how to make one) or invalid."""
    f = Path(folder) / config
    if not f.is_file():
        raise ModelLoadError(f"no {what} at {folder} (no {config}); {hint}")
    try:
        record = model.model_validate_json(f.read_text())
    except ValueError as exc:
        raise ModelLoadError(f"{f}: not a valid {what} config: {exc}") from None
    if record.format != fmt:  # type: ignore[attr-defined]
        raise ModelLoadError(f"{f}: format {record.format!r}, this ragsc reads {fmt!r}")  # type: ignore[attr-defined]
    return record


def save_compressed(folder: str | Path, compressed: Compressed, figures: dict | None = None,
                    info: dict | None = None) -> Path:
    """Write ``compressed`` into ``folder`` (created); returns the folder.

    Raises :class:`InputError` when ``folder`` is a file or holds files of something else.
    """
    folder = Path(folder)
    check_folder(folder, (CONFIG_FILE, WEIGHTS_FILE), "compressed encoder")
    tensors, meta = compressed.state()
    record = SavedCompression(base=BaseRef(**compressed.base), config=compressed.config,
                              architecture=compressed.architecture, state=meta, params=compressed.params,
                              base_params=compressed.base_params, figures=figures or {},
                              info={**(info or {}), "pruning": compressed.pruning,
                                    "finetune": compressed.history})
    return write_saved(folder, WEIGHTS_FILE, tensors, CONFIG_FILE, record)


def read_saved(folder: str | Path) -> SavedCompression:
    """``compressed.json`` of ``folder``; :class:`ModelLoadError` when missing or invalid."""
    return read_record(folder, CONFIG_FILE, SavedCompression, FORMAT, "compressed encoder",
                       "make one with `ragsc compress encoder`")


class CompressedEncoder(MultimodalEncoder):
    """``load_encoder("compressed:<dir>")``: a base encoder with one tower compressed.

    Attributes
    ----------
    base
        The base encoder, its compressed tower's unit swapped in.
    record
        The folder's :class:`SavedCompression`.
    """

    def __init__(self, folder: str | Path, batch_size: int = 64, device: str = "cpu") -> None:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from ragsc.encoders import load_encoder

        self.folder = Path(folder)
        self.record = read_saved(self.folder)
        cfg = self.record.config
        if torch.device(device).type != "cpu" and cfg.precision in ("int8-dynamic", "int8-static"):
            raise ConfigError(f"{self.folder}: int8 towers run on the CPU, not on {device}")
        weights = self.folder / WEIGHTS_FILE
        try:
            self._tensors = load_file(str(weights))
        except (OSError, SafetensorError) as exc:
            raise ModelLoadError(f"{weights}: missing or corrupt compressed weights: {exc}") from None
        self.base = load_encoder(self.record.base.spec, device=device, batch_size=batch_size)
        if self.base.fingerprint != self.record.base.fingerprint:
            raise ModelLoadError(f"{self.folder} compressed {self.record.base.spec} with fingerprint "
                                 f"{self.record.base.fingerprint}; that spec now loads "
                                 f"{self.base.fingerprint}: compress it again")
        super().__init__(f"compressed:{folder}", self.base.dim, batch_size, device)
        self._counts = self.base.num_parameters()  # with the float unit still in place
        self.tower = tower_of(self.base, cfg.tower)
        rebuild(self.tower, cfg, self.record.architecture, self._tensors, self.record.state)
        self._counts[cfg.tower] += self.record.params - self.record.base_params

    def serves(self, fingerprint: str) -> bool:
        """Its own fingerprint and whatever its base serves (the base's KBs and decoders)."""
        return fingerprint == self.fingerprint or serves(self.base, fingerprint)

    def num_parameters(self) -> dict[str, int]:
        return dict(self._counts)

    def _encode_image_batch(self, images: list, return_tokens: bool) -> Encoded:
        return self.base._encode_image_batch(images, return_tokens)

    def _encode_text_batch(self, texts: list[str], return_tokens: bool) -> Encoded:
        return self.base._encode_text_batch(texts, return_tokens)

    def _weights(self) -> dict[str, torch.Tensor]:
        return self._tensors  # the rest of the base is pinned by its fingerprint in the name

    def _fingerprint_name(self) -> str:
        how = json.dumps({"config": self.record.config.model_dump(mode="json"),
                          "architecture": self.record.architecture, "state": self.record.state},
                         sort_keys=True)
        return f"CompressedEncoder<{self.record.base.fingerprint}|{hashlib.sha256(how.encode()).hexdigest()}>"
