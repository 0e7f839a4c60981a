"""One way to save and load a model: a folder of ``config.json`` + ``model.safetensors``.

Every model that training or compression produces (a CAT codec, a derived DARTS network, a student, a
compressed encoder or LM, the decoder bundle, a federated model, ...) is saved as a folder::

    <dir>/config.json         {"kind": "cat-codec", "format_version": 1, "config": {...}, "info": {...},
                               "files": [...]}
    <dir>/model.safetensors   every tensor of the model (safetensors: no pickle, ever)
    <dir>/<extra files>       only where a model needs them (named in "files")

``kind`` names the class that rebuilds it (:data:`KINDS`, resolved lazily by name like the spec prefixes of
:mod:`ragsc.registry`, so this low module imports no model code); ``format_version`` is the layout version of
that kind; ``config`` is the architecture's config (what the network is built from, like Hugging Face's
``config.json``); ``info`` holds provenance and training figures (read, never needed to rebuild).

* :func:`save` writes the whole folder into a temporary sibling and renames it into place: a killed save
  leaves the old folder or none, never half of one.
* :func:`load` reads it back: ``load(folder)`` -> the model, a clear :class:`~ragsc.errors.ModelLoadError`
  for a missing or unknown ``kind``, a ``format_version`` newer than this ragsc reads, a missing file, a
  missing or unexpected tensor, or a tensor of the wrong shape (:func:`load_state`).
* :func:`build` rebuilds a network from a folder: laid out on the ``meta`` device (shapes, no memory) and
  compared with the file's tensors first, so a config the weights do not fit allocates nothing (each kind's
  config also bounds its sizes: :data:`ragsc.config.MAX_DIM` and its siblings). :func:`loading` refuses a
  chain of models built on saved models (``compressed:`` bases) that comes back to a folder.

A class takes part by three members (:class:`Saveable`): ``kind`` and ``format_version`` (class attributes),
``to_saved() -> Saved`` and the classmethod ``from_saved(saved, **options)``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.registry import Registry
from ragsc.targets import check_folder

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"

KINDS = Registry("model kind", "cat-codec")
KINDS.register("embedded-heads", "ragsc.encoders.embedded:EmbeddedHeads",
               "the embedded encoder's trained alignment heads")
KINDS.register("cat-codec", "ragsc.channel.cat.codec:CATCodec", "the CAT codec (channel-aware transmission)")
KINDS.register("image-jscc", "ragsc.channel.jscc.codec:JSCCCodec", "the image JSCC codec (photos to symbols)")
KINDS.register("darts-network", "ragsc.distill.darts.network:DerivedNetwork",
               "a network derived by the KDL-DARTS search")
KINDS.register("student", "ragsc.distill.students:StudentEncoder", "a distilled student encoder")
KINDS.register("compressed-encoder", "ragsc.compress.saved:CompressedEncoder",
               "an encoder with a pruned / quantised tower")
KINDS.register("compressed-lm", "ragsc.compress.lm:CompressedLM", "a quantised / half-precision causal LM")
KINDS.register("federated-adapters", "ragsc.federated.model:Adapters",
               "a federated run's LoRA adapters, transmitter and receiver")
KINDS.register("decoders", "ragsc.decoders.bundle:Decoders",
               "the receiver's trained decoders (text GRU, image generator, VQA head, PCA basis)")


@dataclass
class Saved:
    """A model as it lies in its folder.

    Attributes
    ----------
    kind, format_version
        Which class rebuilds it, and the layout version of that kind it was written in.
    config
        The architecture's config, JSON-able (what the network is built from).
    tensors
        Every tensor of the model, by name (``model.safetensors``).
    info
        Provenance and figures, JSON-able (never needed to rebuild).
    files
        Extra files by name (bytes), only where a model needs them.
    folder
        Where it was read from (``None`` before it is saved).
    """

    kind: str
    format_version: int
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    folder: Path | None = None


class Saveable(Protocol):
    """What :func:`save` and :func:`load` ask of a model class."""

    kind: ClassVar[str]
    format_version: ClassVar[int]

    def to_saved(self) -> Saved: ...

    @classmethod
    def from_saved(cls, saved: Saved, **options) -> Any: ...


def check_target(folder: str | Path, *, overwrite: bool = False, kind: str | None = None,
                 option: str | None = None) -> Path:
    """``folder`` as a :class:`~pathlib.Path` if a model may be saved there, else :class:`InputError`.

    A new path, or an empty folder, may be written; an existing saved-model folder only with
    ``overwrite`` (it is replaced whole), and only one of ``kind`` where that is given; anything else never
    (see :func:`ragsc.targets.check_folder`: a file, a symbolic link, a path under a file, a folder
    holding other files). Call it before the work that produces the model, so a bad target costs nothing.

    Parameters
    ----------
    folder
        The model's folder.
    overwrite
        Whether a saved model already there may be replaced.
    kind
        If given, the only kind of saved model that may be replaced (``"student"``, ``"decoders"``).
    option
        The option that named ``folder`` (``"--out"``), for the message; None for a library call.
    """
    def replace(f: Path) -> str | None:
        if not (f / CONFIG_FILE).is_file():
            return "holds other files, not a saved model; save the model into a new or empty folder"
        if not overwrite:
            return "already holds a saved model; " + ("name a new or empty folder" if option else
                                                        "pass overwrite=True to replace it, or name a new "
                                                        "folder")
        if kind is not None:
            try:
                found = read_header(f)["kind"]
            except ModelLoadError as exc:
                return f"holds an unreadable saved model ({exc}); name a new or empty folder"
            if found != kind:
                return f"holds a {found!r}, not a {kind!r}; name a new or empty folder"
        return None

    return check_folder(folder, option, reuse=replace)


def save(model: Saveable | Saved, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``model`` (or a :class:`Saved`) into ``folder`` atomically; returns ``folder``.

    Raises
    ------
    InputError
        ``folder`` may not be written (see :func:`check_target`); nothing is written then.
    """
    from safetensors.torch import save_file

    folder = check_target(folder, overwrite=overwrite)
    saved = model if isinstance(model, Saved) else model.to_saved()
    bad = [n for n in saved.files
           if Path(n).name != n or n in (CONFIG_FILE, WEIGHTS_FILE) or n.startswith(".")]
    if bad:
        raise InputError(f"extra files must be plain names other than {CONFIG_FILE} and {WEIGHTS_FILE}: "
                         f"{bad}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        tensors = {k: v.detach().cpu().contiguous() for k, v in saved.tensors.items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        for name, data in saved.files.items():
            (tmp / name).write_bytes(data)
        header = {"kind": saved.kind, "format_version": saved.format_version, "config": saved.config,
                  "info": saved.info, "files": sorted(saved.files)}
        (tmp / CONFIG_FILE).write_text(json.dumps(header, indent=1) + "\n")
        if folder.exists():  # an old saved model (check_target allowed it): swap, then drop the old one
            folder.rename(old)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def read(folder: str | Path) -> Saved:
    """The folder's :class:`Saved` (config and tensors read, no class built).

    Raises
    ------
    ModelLoadError
        No such folder, no or an invalid ``config.json``, no or a corrupt ``model.safetensors``, a missing
        extra file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"no saved model at {folder}: not a folder")
    header = read_header(folder)
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, SafetensorError) as exc:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE}: missing or corrupt: {exc}") from None
    files = {}
    for name in header["files"]:
        path = folder / name
        if Path(name).name != name or not path.is_file() or path.is_symlink():
            raise ModelLoadError(f"{folder}: {CONFIG_FILE} names the file {name!r}, which is missing")
        files[name] = path.read_bytes()
    return Saved(header["kind"], header["format_version"], header["config"], tensors, header["info"], files,
                 folder)


def read_header(folder: str | Path) -> dict:
    """``config.json`` of a saved-model folder, its fields checked (kind, format_version, config, info,
    files)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise ModelLoadError(f"no saved model at {folder}: no {CONFIG_FILE}")
    try:
        header = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ModelLoadError(f"{path} names no model kind (a 'kind' string); known kinds: "
                             f"{', '.join(KINDS)}. A folder written by an older ragsc must be saved again")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelLoadError(f"{path}: format_version must be a positive integer, got {version!r}")
    for key, kind in (("config", dict), ("info", dict), ("files", list)):
        header.setdefault(key, kind())
        if not isinstance(header[key], kind):
            raise ModelLoadError(f"{path}: {key!r} must be a JSON {kind.__name__}")
    unknown = sorted(set(header) - {"kind", "format_version", "config", "info", "files"})
    if unknown:
        raise ModelLoadError(f"{path}: unknown fields {unknown} (a saved model's config.json holds kind, "
                             "format_version, config, info and files)")
    if not all(isinstance(n, str) for n in header["files"]):
        raise ModelLoadError(f"{path}: 'files' must list file names")
    return header


def require(folder: str | Path, kind: str, what: str, hint: str = "") -> dict:
    """The header of ``folder`` when it holds a model of ``kind``; else :class:`ModelLoadError` naming
    ``what`` (``"student"``) and ``hint`` (how to make one)."""
    try:
        header = read_header(folder)
    except ModelLoadError as exc:
        raise ModelLoadError(f"no {what} at {folder} ({exc})" + (f"; {hint}" if hint else "")) from None
    if header["kind"] != kind:
        raise ModelLoadError(f"{folder} holds a {header['kind']!r}, not a {what}")
    return header


C = TypeVar("C")


def parse_config(model: Callable[..., C], config: dict[str, Any], where: str | Path | None, what: str) -> C:
    """``config`` (a folder's ``config``) validated by ``model``, a :class:`ragsc.config.Config` class.

    Raises
    ------
    ModelLoadError
        ``"<where>: not a valid <what> config: <each bad field>"``, for the ConfigError ``model`` raises.
    """
    try:
        return model(**config)
    except ConfigError as exc:
        raise ModelLoadError(f"{where}: not a valid {what} config: {exc}") from None


def load(folder: str | Path, *, kind: str | None = None, **options):
    """The model saved in ``folder``: its class (by ``kind``) rebuilt from the folder.

    Parameters
    ----------
    folder
        A folder written by :func:`save`.
    kind
        If given, the kind the caller expects (another one is refused).
    **options
        Passed to the class's ``from_saved`` (e.g. ``device``).

    Raises
    ------
    ModelLoadError
        See :func:`read`; or an unknown or unexpected kind, or a newer ``format_version`` than this ragsc
        reads.
    """
    header = read_header(folder)
    if kind is not None and header["kind"] != kind:
        raise ModelLoadError(f"{folder} holds a {header['kind']!r}, not a {kind!r}")
    if header["kind"] not in KINDS:
        raise ModelLoadError(f"{folder}: unknown model kind {header['kind']!r}; known: {', '.join(KINDS)}")
    cls = KINDS.split(header["kind"])[0].load()
    if header["format_version"] > cls.format_version:
        raise ModelLoadError(f"{folder}: a {header['kind']!r} of format_version {header['format_version']}, "
                             f"written by a newer ragsc; this one reads up to {cls.format_version}: "
                             "upgrade ragsc")
    return cls.from_saved(read(folder), **options)


def load_state(module: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str,
               prefix: str = "") -> torch.nn.Module:
    """Load ``tensors`` (those under ``prefix``, which is stripped) into ``module``, strictly.

    Raises
    ------
    ModelLoadError
        A tensor the module needs is missing, one it does not have is present, or one has another shape; the
        message names the tensor and ``where`` (the folder).
    """
    own = _check_tensors(module.state_dict(), tensors, where, prefix)
    module.load_state_dict(own, strict=True)
    return module


N = TypeVar("N", bound=torch.nn.Module)


def build(factory: Callable[[], N], tensors: dict[str, torch.Tensor], where: str, prefix: str = "") -> N:
    """``factory()`` (``lambda: Net(config)``, the config validated and bounded) with ``tensors`` loaded as
    by :func:`load_state`; it is first called on the ``meta`` device (a tensor has a shape and no memory) and
    compared with ``tensors``, so a config the file does not fit raises :class:`ModelLoadError` (as
    :func:`load_state`) before anything is allocated."""
    with torch.device("meta"):
        layout = factory()
    _check_tensors(layout.state_dict(), tensors, where, prefix)
    return load_state(factory(), tensors, where, prefix)


def _check_tensors(want: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor], where: str,
                   prefix: str) -> dict[str, torch.Tensor]:
    """``tensors`` under ``prefix`` (stripped) when they are exactly ``want``'s names and shapes."""
    own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(want) - set(own))
    unexpected = sorted(set(own) - set(want))
    if missing:
        raise ModelLoadError(f"{where}: tensor {prefix + missing[0]!r} is missing"
                             + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if unexpected:
        raise ModelLoadError(f"{where}: unexpected tensor {prefix + unexpected[0]!r} (the config builds no "
                             "such parameter)")
    for name, t in own.items():
        if tuple(t.shape) != tuple(want[name].shape):
            raise ModelLoadError(f"{where}: tensor {prefix + name!r} has shape {tuple(t.shape)}, the config "
                                 f"builds {tuple(want[name].shape)}")
    return own


MAX_CHAIN = 8  # saved models built on saved models (a compressed encoder's base): at most this deep
_LOADING: ContextVar[tuple[Path, ...]] = ContextVar("ragsc_saved_loading", default=())


@contextmanager
def loading(folder: str | Path | None, what: str) -> Iterator[None]:
    """Mark ``folder`` (``None``: nothing to mark) as being loaded while its model loads the saved model it
    is built on, ``what`` (``"compressed encoder's base"``). A chain that comes back to a folder (a
    ``compressed:`` base naming itself, two naming each other) or is deeper than :data:`MAX_CHAIN` raises
    :class:`ModelLoadError` naming the chain, instead of recursing until ``RecursionError``."""
    if folder is None:
        yield
        return
    key = Path(folder).resolve()
    chain = _LOADING.get()
    if key in chain:
        path = " -> ".join(str(p) for p in (*chain[chain.index(key):], key))
        raise ModelLoadError(f"{folder}: the {what} comes back to a folder already being loaded ({path}); "
                             "a saved model cannot be built on itself")
    if len(chain) >= MAX_CHAIN:
        raise ModelLoadError(f"{folder}: {what}s nested more than {MAX_CHAIN} deep "
                             f"({' -> '.join(str(p) for p in chain)} -> ...)")
    token = _LOADING.set((*chain, key))
    try:
        yield
    finally:
        _LOADING.reset(token)


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str = "opt.") -> dict[str, torch.Tensor]:
    """An optimiser's per-parameter state as named tensors, ``<prefix><param index>.<name>`` (safetensors, not
    pickle: resumable checkpoints keep it this way); :func:`load_optimizer_tensors` reads it back."""
    return {f"{prefix}{i}.{name}": torch.as_tensor(v).detach().clone()
            for i, st in opt.state_dict()["state"].items() for name, v in st.items()}


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           prefix: str = "opt.") -> None:
    """Restore :func:`optimizer_tensors`' output into ``opt`` (other names in ``tensors`` are ignored)."""
    saved = opt.state_dict()
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith(prefix):
            i, name = key[len(prefix):].split(".", 1)
            state.setdefault(int(i), {})[name] = v
    saved["state"] = state
    opt.load_state_dict(saved)
