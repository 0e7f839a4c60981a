"""A teacher store's ``manifest.json``: its schema, read and checked before any path in it is used.

The manifest names the teacher, the data recipe and the shards (:mod:`ragsc.distill.store`). Like a
knowledge base's manifest (:mod:`ragsc.kb.manifest`) it is the one thing a reader trusts, so it is
validated by a strict schema (:class:`StoreManifest`) first: a shard is a ``shard-NNNNN.safetensors``
file of this store (not ``../other/shard-00000.safetensors``, not an absolute path), the counts add up,
and a missing or wrong-typed field is an :class:`~ragsc.errors.InputError` naming it, not a
``KeyError`` deep in the reader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from ragsc.config import MAX_DIM, Config, join, problems
from ragsc.errors import InputError

STORE_FORMAT = "ragsc-teacher-store/1"
MANIFEST = "manifest.json"
_SHARD = re.compile(r"shard-\d{5,}\.safetensors")  # what build_store names them: shard-{s:05d}.safetensors


class DataRecipe(Config):
    """What a store was computed from: a store is reused only for the same recipe and teacher."""

    source: str = Field(description="a KB ingestion source, fashion-mnist:train|test, or corpus")
    format: str | None = Field(None, description="KB source format (None: detected)")
    n: int | None = Field(None, ge=1, description="the first n items of the stream (None: all)")
    views: int = Field(0, ge=0, le=64, description="augmented views per image (random resized crop + flip)")
    tokens: bool = Field(False, description="also store the teacher's patch tokens (images)")
    label_field: str | None = Field(None, description="record field that labels an item (easy-vqa: shape, "
                                    "color); Fashion-MNIST items carry their class")
    seed: int = 0


# strict: a manifest is machine-written JSON, so a wrong type ("items": "2") means damage, not a value to
# coerce (the recipe stays lax: it is also what a user writes)
STRICT = ConfigDict(strict=True)


class StoreTeacher(Config):
    """The teacher that computed a store: its spec (to load it), fingerprint (to recognise it) and dim."""

    model_config = STRICT
    spec: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)
    dim: int = Field(ge=1, le=MAX_DIM)


class StoreShard(Config):
    """One shard: a file of the store's folder and the items it holds."""

    model_config = STRICT
    file: str
    count: int = Field(ge=1)

    @field_validator("file")
    @classmethod
    def _a_shard_of_this_store(cls, v: str) -> str:
        if not _SHARD.fullmatch(v):
            raise ValueError("must name a shard file inside the store (shard-NNNNN.safetensors)")
        return v


class StoreManifest(Config):
    """``manifest.json`` of a teacher store (see the module docstring)."""

    model_config = STRICT
    format: Literal["ragsc-teacher-store/1"]
    teacher: StoreTeacher
    recipe: DataRecipe
    labels: list[str]
    shards: list[StoreShard]
    complete: bool
    items: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> StoreManifest:
        files = [s.file for s in self.shards]
        if len(set(files)) != len(files):
            raise ValueError(f"shards lists a file twice: {files}")
        if self.items != sum(s.count for s in self.shards):
            raise ValueError(f"items ({self.items}) must be the shards' counts added up "
                             f"({sum(s.count for s in self.shards)})")
        if self.complete and not self.shards:
            raise ValueError("a complete store holds at least one shard")
        return self


def read_manifest(path: Path) -> dict | None:
    """The validated manifest of the store at ``path`` (a plain dict, as on disk), or ``None`` if it has none.

    Raises
    ------
    InputError
        The manifest is not JSON, not a teacher store's, or fails :class:`StoreManifest` (each bad field
        named: ``shards.0.file: must name a shard file inside the store ...``).
    """
    f = path / MANIFEST
    if not f.is_file():
        return None
    try:
        m = json.loads(f.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{f}: not a teacher-store manifest: {exc}") from None
    if not isinstance(m, dict) or m.get("format") != STORE_FORMAT:
        raise InputError(f"{f}: not a teacher-store manifest (format {STORE_FORMAT!r})")
    try:
        StoreManifest.model_validate(m)
    except ValidationError as exc:
        raise InputError(f"{f}: invalid teacher-store manifest: {join(problems(exc))}") from None
    return m


def write_manifest(path: Path, data: dict) -> None:
    """Replace ``path / manifest.json`` with ``data`` (write a temporary file, then rename)."""
    f = path / MANIFEST
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(f)
