"""A knowledge base's folder on disk: its manifest, generation folders, paths and checksums.

Layout::

    NAME/
      manifest.json         schema version, encoder spec + fingerprint, dim, metric, factory, counts,
                            checksums, and which generation is current
      gen-000007/index.faiss   the committed FAISS index (IndexIDMap2; ids = metadata row ids)
      gen-000007/meta.sqlite   one row per item (see :mod:`ragsc.kb.items`); ingestion progress
      writer.lock           held (flock) by the one writer; its pid is written inside

``manifest.json`` is the one thing readers trust, so it is validated by a schema
(:class:`Manifest`) before any path in it is used: the generation must be a ``gen-NNNNNN`` folder
of this KB (not ``../other-kb/gen-000002``, not an absolute path, not a link out of the folder)
and the checksums must name exactly the generation's two files. It is replaced atomically (write +
fsync + rename), which is the moment a commit becomes visible.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragsc.errors import InputError, KBError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
LOCK = "writer.lock"
DATA_FILES = ("index.faiss", "meta.sqlite")  # what a generation folder holds, and what is checksummed
Scope = Literal["local", "global"]

# six digits, more once past 999,999 commits; at most 18 (a quintillion commits), so a name always fits the
# file system's limit on a file name and its number an int64
_GENERATION = re.compile(r"gen-\d{6,18}")
_SHA256 = r"^[0-9a-f]{64}$"


# ---------------------------------------------------------------------------------------- the schema
class _Strict(BaseModel):
    # strict: a manifest is machine-written JSON, so a wrong type ("dim": "8") means damage, not a
    # value to coerce
    model_config = ConfigDict(extra="forbid", strict=True)


class EncoderRef(_Strict):
    """The encoder a KB was built by: its spec (to load it again) and fingerprint (to recognise it)."""

    spec: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)


class Counts(_Strict):
    items: int = Field(ge=0)


class Manifest(_Strict):
    """``manifest.json`` as committed (see the module docstring)."""

    schema_version: Literal[1]
    scope: Scope
    dim: int = Field(gt=0)
    metric: Literal["inner_product"] = "inner_product"
    encoder: EncoderRef
    factory: str = Field(min_length=1)
    factory_auto: bool = False
    generation: str
    counts: Counts
    checksums: dict[str, str]
    created_at: float | None = None
    committed_at: float | None = None

    @field_validator("generation")
    @classmethod
    def _a_generation_folder(cls, v: str) -> str:
        if not is_generation_name(v):
            raise ValueError(f"must name a generation folder inside the knowledge base (gen- and 6 to 18 "
                             f"digits), got {v!r}")
        return v

    @field_validator("checksums")
    @classmethod
    def _the_generation_files(cls, v: dict[str, str]) -> dict[str, str]:
        if sorted(v) != sorted(DATA_FILES):
            raise ValueError(f"must give the checksums of exactly {' and '.join(DATA_FILES)}, "
                             f"got {sorted(v)}")
        bad = [name for name, digest in v.items() if not re.fullmatch(_SHA256, digest)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: a checksum is 64 lower-case hexadecimal digits (sha256)")
        return v


def validate_manifest(data: object, where: str) -> dict:
    """Check ``data`` (parsed ``manifest.json``) against :class:`Manifest`; returns it unchanged.

    Raises
    ------
    KBError
        Naming every bad field (``generation: must name a generation folder ...``).
    """
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise KBError(f"{where}: not a ragsc manifest of schema version {SCHEMA_VERSION}")
    try:
        Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg'].removeprefix('Value error, ')}"
            + ("" if err["type"] in ("value_error", "missing") or isinstance(err.get("input"), dict)
               else f" (got {err['input']!r})")
            for err in exc.errors())
        raise KBError(f"{where}: invalid manifest: {problems}") from None
    return data


def read_manifest(path: Path) -> dict:
    """The validated manifest of the KB at ``path`` (a plain dict, as on disk).

    Raises
    ------
    KBError
        No manifest, not JSON, or a manifest that fails :func:`validate_manifest`.
    """
    f = path / MANIFEST
    if not f.is_file():
        raise KBError(f"no knowledge base at {path} (no {MANIFEST}); create it with `ragsc kb create`")
    try:
        manifest = json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        raise KBError(f"{f} is not valid JSON: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KBError(f"cannot read {f}: {exc}") from None
    return validate_manifest(manifest, str(f))


# ---------------------------------------------------------------------------------------- generations
def is_generation_name(name: object) -> bool:
    """Whether ``name`` is a generation folder's name (``gen-`` and 6 to 18 digits)."""
    return isinstance(name, str) and _GENERATION.fullmatch(name) is not None


def generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def generation_number(name: str) -> int:
    return int(name.split("-")[1])


def generation_dir(path: Path, name: str) -> Path:
    """The folder of generation ``name`` of the KB at ``path``, refused unless it lies inside it."""
    if not is_generation_name(name):
        raise KBError(f"knowledge base {path}: {name!r} is not a generation folder name (gen-NNNNNN)")
    gen = path / name
    if gen.is_symlink():  # a link could point at another KB's files
        raise KBError(f"knowledge base {path}: {name} is a link, not a generation folder of this knowledge "
                      "base")
    return gen


# ---------------------------------------------------------------------------------------- files
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_fd(fd: int) -> str:
    """sha256 of an open file from its start (``pread``: the descriptor's offset is not moved)."""
    h, offset = hashlib.sha256(), 0
    while chunk := os.pread(fd, 1 << 20, offset):
        h.update(chunk)
        offset += len(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    """Replace ``path`` with ``data`` as JSON: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------- KB paths
def check_path(path: str | os.PathLike) -> Path:
    """Refuse KB paths that are empty, have ``..`` components (a name must not escape its parent folder), or
    are longer than the file system allows (a name, or the whole path with a generation's files in it).

    Raises
    ------
    InputError
        Naming the problem; nothing is read or written.
    """
    if not str(path):
        raise InputError("knowledge-base path must not be empty; give a name or a folder")
    p = Path(path)
    if ".." in p.parts:
        raise InputError(f"knowledge-base path must not contain '..': {path}")
    name_max, path_max = _limits(p)
    for part in p.parts:
        if len(os.fsencode(part)) > name_max:
            raise InputError(f"knowledge-base path has a name too long for the file system "
                             f"({len(os.fsencode(part))} bytes, at most {name_max}): {part[:40]}...")
    full = len(os.fsencode(str(p.absolute()))) + _INSIDE
    if full > path_max:
        raise InputError(f"knowledge-base path is too long for the file system ({full} bytes with a "
                         f"generation's files, at most {path_max}): {str(p)[:60]}...")
    return p


# room for the longest path a KB writes inside its folder (the manifest's temporary name, 53 bytes; a
# generation's files, 35)
_INSIDE = 64


def _limits(path: Path) -> tuple[int, int]:
    """The file system's longest file name and path (bytes) where ``path`` would be created."""
    probe = path.absolute()
    while probe != probe.parent:
        try:
            if probe.exists():
                break
        except OSError:  # a name too long to look up
            pass
        probe = probe.parent
    try:
        return os.pathconf(probe, "PC_NAME_MAX"), os.pathconf(probe, "PC_PATH_MAX")
    except (OSError, ValueError):  # not a POSIX answer here: the common limits
        return 255, 4096


def resolve_path(name: str | os.PathLike) -> Path:
    """A bare NAME lives in ``RAGSC_HOME/kb/NAME``; anything with a '/' (or starting with '.') is a path."""
    from ragsc._assets import home_dir

    name = str(name)
    if not name:  # home_dir() / "kb" / "" would be the folder of all named knowledge bases
        raise InputError("knowledge-base name must not be empty")
    check_path(name)
    return Path(name) if ("/" in name or name.startswith(".")) else check_path(home_dir() / "kb" / name)


def check_new_location(path: Path) -> None:
    """Refuse to create a KB at ``path`` unless it is missing or an empty folder (nothing is written).

    Raises
    ------
    KBError
        ``path`` is a file, already holds a KB, or is a folder with other files in it.
    """
    if (path / MANIFEST).exists():
        raise KBError(f"a knowledge base already exists at {path}")
    if path.exists() and not path.is_dir():
        raise KBError(f"{path} is a file, not a folder; give a new or empty folder for the knowledge base")
    if path.is_dir() and any(path.iterdir()):
        raise KBError(f"{path} exists and is not an empty folder; refusing to create a knowledge base there")
    for parent in path.parents:  # mkdir would fail on a file in the way
        if parent.exists():
            if not parent.is_dir():
                raise KBError(f"cannot create a knowledge base at {path}: {parent} is a file, not a folder")
            break
