"""Compact students: small image and text towers that map into a teacher's embedding space.

A student is saved as every model is (:mod:`ragsc.saved`, kind ``student``: its :class:`StudentConfig` in
``config.json``, both towers' weights in ``model.safetensors`` under ``image.`` / ``text.``) and loads as an
ordinary encoder, ``load_encoder("student:<dir>")`` (:class:`StudentEncoder`). It *declares the teacher it
serves* (spec and fingerprint): KBs and decoders built for that teacher accept it
(:meth:`StudentEncoder.serves`), since it was trained to put its outputs where the teacher puts them.

The towers' configs and networks (a plain CNN or a searched DARTS network for images, a small transformer
for texts; a projection or an information-bottleneck head) are in :mod:`ragsc.distill.student_nets`; this
module makes them an encoder: :class:`StudentConfig` (the teacher served and each tower's config),
:class:`StudentEncoder`, its folder (:func:`save_student`, :func:`read_config`) and its towers for
compression (:meth:`StudentEncoder.towers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from pydantic import Field, model_validator
from torch import nn

from ragsc.config import MAX_DIM, Config
from ragsc.distill.student_nets import (
    ImageStudent,
    ImageStudentConfig,
    TextStudent,
    TextStudentConfig,
    image_transform,
    load_tokenizer,
    tokenize,
)
from ragsc.encoders.base import Encoded, MultimodalEncoder
from ragsc.encoders.towers import Inputs, Tower, load_images
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, build, parse_config, read, read_header, require, save


class TeacherRef(Config):
    """The teacher a student serves: its spec, fingerprint and embedding dimension."""

    spec: str = Field(min_length=1)
    fingerprint: str = Field(min_length=1)
    dim: int = Field(ge=1, le=MAX_DIM)


class StudentConfig(Config):
    """A student: the teacher served and each tower's config (None: no such tower); ``info`` is stored as
    the saved folder's ``info``."""

    teacher: TeacherRef
    image: ImageStudentConfig | None = None
    text: TextStudentConfig | None = None
    info: dict = Field(default_factory=dict, description="how it was trained (command, data, figures)")

    @model_validator(mode="after")
    def _in_the_teachers_space(self) -> StudentConfig:
        for name, tower in (("image", self.image), ("text", self.text)):
            if tower is not None and tower.out_dim != self.teacher.dim:
                raise ValueError(f"the {name} tower maps into {tower.out_dim}-d, but the teacher it serves "
                                 f"({self.teacher.spec}) is {self.teacher.dim}-d")
        return self


# ----------------------------------------------------------------------------------------- encoder
class StudentEncoder(MultimodalEncoder):
    """``load_encoder("student:<dir>")``: a distilled student, in its teacher's embedding space."""

    kind, format_version = "student", 1

    def __init__(self, folder: str | Path, batch_size: int = 64, device: str = "cpu", *,
                 saved: Saved | None = None) -> None:
        self.folder = Path(folder)
        saved = saved if saved is not None else _read(self.folder)
        self.config = _config(saved.config, saved.info, self.folder)
        super().__init__(f"student:{folder}", self.config.teacher.dim, batch_size, device)
        self.image_net = self.text_net = None
        where, image, text = str(self.folder), self.config.image, self.config.text
        if image is not None:  # each tower's shapes checked against the file before it is built
            self.image_net = _frozen(build(lambda: ImageStudent(image), saved.tensors, where, "image."))
            self.transform = image_transform(image.image_size)
        if text is not None:
            self.tokenizer = load_tokenizer(text.tokenizer)
            vocab = len(self.tokenizer)
            self.text_net = _frozen(build(lambda: TextStudent(text, vocab), saved.tensors, where, "text."))
        for net in (self.image_net, self.text_net):
            if net is not None:
                net.to(self.device)

    @classmethod
    def from_saved(cls, saved: Saved, batch_size: int = 64, device: str = "cpu") -> StudentEncoder:
        """The student of a :class:`~ragsc.saved.Saved` folder (what ``ragsc.saved.load`` calls)."""
        return cls(saved.folder, batch_size, device, saved=saved)

    def to_saved(self) -> Saved:
        return _saved(self.config, self.image_net, self.text_net)

    @property
    def teacher(self) -> TeacherRef:
        return self.config.teacher

    def serves(self, fingerprint: str) -> bool:
        """A student serves its own fingerprint and its teacher's (the KBs and decoders built for it)."""
        return fingerprint in (self.fingerprint, self.config.teacher.fingerprint)

    def towers(self) -> dict[str, Tower]:
        """The towers this student has (a text-only student has no image tower)."""
        out: dict[str, Tower] = {}
        if self.text_net is not None:
            out["text"] = StudentTextTower(self)
        if self.image_net is not None:
            out["image"] = StudentImageTower(self)
        return out

    def _modality_weights(self) -> dict[str, list[torch.Tensor]]:
        return {"image": list(self.image_net.parameters()) if self.image_net is not None else [],
                "text": list(self.text_net.parameters()) if self.text_net is not None else []}

    def _encode_image_batch(self, images: list, return_tokens: bool) -> Encoded:
        if self.image_net is None:
            raise ConfigError(f"{self.folder}: this student has no image tower")
        x = torch.stack([self.transform(im) for im in images]).to(self.device)
        return Encoded(self.image_net(x)[0])

    def _encode_text_batch(self, texts: list[str], return_tokens: bool) -> Encoded:
        if self.text_net is None:
            raise ConfigError(f"{self.folder}: this student has no text tower")
        ids, mask, truncated = tokenize(self.tokenizer, texts, self.config.text.max_tokens)
        return Encoded(self.text_net(ids.to(self.device), mask.to(self.device))[0], truncated=truncated)

    def _weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for name, net in (("image", self.image_net), ("text", self.text_net)):
            if net is not None:
                out.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        return out

    def _fingerprint_name(self) -> str:
        return f"StudentEncoder<{self.config.teacher.fingerprint}>"


def is_student(folder: str | Path) -> bool:
    """Whether ``folder`` holds a saved student (to add a tower to, or to refuse)."""
    try:
        return read_header(folder)["kind"] == StudentEncoder.kind
    except ModelLoadError:
        return False


def read_config(folder: str | Path) -> StudentConfig:
    """The :class:`StudentConfig` of a saved student (its ``info`` included), weights not read.

    Raises :class:`ModelLoadError` when ``folder`` holds no student or an invalid one."""
    header = _header(folder)
    return _config(header["config"], header["info"], folder)


def _header(folder: str | Path) -> dict:
    return require(folder, StudentEncoder.kind, "student", "distil one with `ragsc distill train`")


def _read(folder: Path) -> Saved:
    _header(folder)
    return read(folder)


def _config(config: dict, info: dict, folder: str | Path | None) -> StudentConfig:
    # the folder's info is the config's (a config.json "config" that holds one of its own is overruled)
    return parse_config(StudentConfig, {**config, "info": info}, folder, "student")


def _frozen(net: nn.Module) -> nn.Module:
    return net.eval().requires_grad_(False)


def _saved(config: StudentConfig, image: nn.Module | None, text: nn.Module | None) -> Saved:
    tensors = {f"{name}.{k}": v for name, net in (("image", image), ("text", text)) if net is not None
               for k, v in net.state_dict().items()}
    return Saved(StudentEncoder.kind, StudentEncoder.format_version,
                 config.model_dump(mode="json", exclude={"info"}), tensors, info=config.info)


def save_student(folder: str | Path, config: StudentConfig, image: ImageStudent | None = None,
                 text: TextStudent | None = None) -> Path:
    """Save a student into ``folder`` (:mod:`ragsc.saved`; a student already there is replaced whole, e.g. by
    itself with one more tower); the towers given must match the config's.

    Raises
    ------
    ConfigError
        The towers given are not those the config declares.
    InputError
        ``folder`` is a file, or holds something other than a student.
    """
    if (config.image is None) != (image is None) or (config.text is None) != (text is None):
        raise ConfigError("the towers given must be those the student config declares")
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not is_student(folder):
        raise InputError(f"{folder} holds something other than a student: save it into a new folder")
    return save(_saved(config, image, text), folder, overwrite=True)



class StudentTextTower(Tower):
    """A student's :class:`TextStudent`, heads included."""

    modality = "text"

    @property
    def unit(self) -> nn.Module:
        return self.encoder.text_net

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.text_net = unit

    def prepare(self, items: Sequence) -> Inputs:
        from ragsc.encoders.inputs import check_texts

        ids, mask, _ = tokenize(self.encoder.tokenizer, check_texts(list(items)),
                                self.encoder.config.text.max_tokens)
        return Inputs(args=(ids, mask), size=len(items))


class StudentImageTower(Tower):
    """A student's :class:`ImageStudent`, heads included."""

    modality = "image"
    prunable = True

    @property
    def unit(self) -> nn.Module:
        return self.encoder.image_net

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.image_net = unit

    def prepare(self, items: Sequence) -> Inputs:
        pixels = torch.stack([self.encoder.transform(im) for im in load_images(items)])
        return Inputs(args=(pixels,), size=len(items))

    def keep(self, unit: nn.Module) -> list[nn.Module]:
        # what projects onto the teacher's space (a cnn's head, a searched net's own projection) keeps
        # its size
        out_dim = self.encoder.config.image.out_dim
        head = list(unit.head.modules())
        return head + [m for m in unit.modules() if isinstance(m, nn.Linear) and m.out_features == out_dim]

    def output_sum(self, out) -> torch.Tensor:
        return out[0].sum()

    def embed(self, unit: nn.Module, inputs: Inputs) -> torch.Tensor:
        return inputs.call(unit)[0]

def load(folder: str, *, spec: str = "", device: str = "cpu", batch_size: int = 64) -> StudentEncoder:
    """The registry's loader for ``student:<dir>`` and ``student:embedded`` (the shipped students)."""
    from ragsc._assets import asset_dir

    if not folder:
        raise ConfigError("a student spec names its folder: student:<dir> or student:embedded")
    path = asset_dir("encoders") / "student-embedded" if folder == "embedded" else folder
    return StudentEncoder(path, batch_size=batch_size, device=device)
