"""A compressed encoder on disk, and the encoder that ``load_encoder("compressed:<dir>")`` rebuilds from it.

It is saved as every model is (:mod:`ragsc.saved`, kind ``compressed-encoder``), nothing pickled:

* ``config.json``'s ``config`` (:class:`SavedCompression`): the base encoder (spec, fingerprint, dim), the
  :class:`~ragsc.compress.config.CompressionConfig`, the pruned architecture (sizes of every layer and tensor;
  null if not pruned), the description of the stored state (quantised tensors' schemes, tuples, dtypes) and
  parameter counts; its ``info``: the front's figures, the pruning and fine-tune records;
* ``model.safetensors``: the compressed unit's state: int8 / uint8 integers with their scales and zero points,
  half or float tensors.

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

import torch
from pydantic import Field

from ragsc.compress.apply import Compressed, rebuild
from ragsc.compress.config import CompressionConfig
from ragsc.compress.towers import tower_of
from ragsc.config import MAX_DIM, Config
from ragsc.encoders.base import Encoded, MultimodalEncoder, serves
from ragsc.errors import ConfigError, ModelLoadError
from ragsc.saved import Saved, loading, parse_config, read, require, save

KIND = "compressed-encoder"


class BaseRef(Config):
    """The encoder a compression started from: its spec (loaded again), fingerprint and dimension."""

    spec: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)
    dim: int = Field(ge=1, le=MAX_DIM)


class SavedCompression(Config):
    """What a compressed encoder's ``config.json`` holds as its ``config``."""

    base: BaseRef
    config: CompressionConfig
    architecture: dict | None = None
    state: dict[str, dict] = Field(default_factory=dict, description="encode_state's description")
    params: int = Field(ge=0, description="parameters of the compressed unit")
    base_params: int = Field(ge=0, description="parameters of the float unit it replaces")


def save_compressed(folder: str | Path, compressed: Compressed, figures: dict | None = None,
                    info: dict | None = None, *, overwrite: bool = False) -> Path:
    """Save ``compressed`` into ``folder`` (:func:`ragsc.saved.save`); returns the folder.

    Raises :class:`InputError` when ``folder`` is a file or holds files of something else.
    """
    tensors, meta = compressed.state()
    record = SavedCompression(base=BaseRef(**compressed.base), config=compressed.config,
                              architecture=compressed.architecture, state=meta, params=compressed.params,
                              base_params=compressed.base_params)
    info = {"figures": figures or {}, **(info or {}), "pruning": compressed.pruning,
            "finetune": compressed.history}
    return save(Saved(KIND, CompressedEncoder.format_version, record.model_dump(mode="json"), tensors, info),
                folder, overwrite=overwrite)


class CompressedEncoder(MultimodalEncoder):
    """``load_encoder("compressed:<dir>")``: a base encoder with one tower compressed.

    Attributes
    ----------
    base
        The base encoder, its compressed tower's unit swapped in.
    record
        The folder's :class:`SavedCompression`.
    """

    kind, format_version = KIND, 1

    def __init__(self, folder: str | Path, batch_size: int = 64, device: str = "cpu", *,
                 saved: Saved | None = None) -> None:
        from ragsc.encoders import load_encoder

        self.folder = Path(folder)
        if saved is None:
            require(self.folder, KIND, "compressed encoder", "make one with `ragsc compress encoder`")
            saved = read(self.folder)
        self.record = parse_config(SavedCompression, saved.config, self.folder, "compressed encoder")
        self.info = saved.info
        cfg = self.record.config
        if torch.device(device).type != "cpu" and cfg.precision in ("int8-dynamic", "int8-static"):
            raise ConfigError(f"{self.folder}: int8 towers run on the CPU, not on {device}")
        self._tensors = saved.tensors
        with loading(self.folder, "compressed encoder's base"):  # compressed:<this folder> is refused
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

    @classmethod
    def from_saved(cls, saved: Saved, batch_size: int = 64, device: str = "cpu") -> CompressedEncoder:
        """The encoder of a :class:`~ragsc.saved.Saved` folder (what ``ragsc.saved.load`` calls)."""
        return cls(saved.folder, batch_size, device, saved=saved)

    def to_saved(self) -> Saved:
        return Saved(self.kind, self.format_version, self.record.model_dump(mode="json"), self._tensors,
                     self.info)

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


def load(folder: str, *, spec: str = "", device: str = "cpu", batch_size: int = 64) -> CompressedEncoder:
    """The registry's loader for ``compressed:<dir>``."""
    if not folder:
        raise ConfigError("a compressed spec names its folder: compressed:<dir>")
    return CompressedEncoder(folder, batch_size=batch_size, device=device)
