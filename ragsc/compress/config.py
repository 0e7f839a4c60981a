"""What to compress and how, and the device budget a compression must fit.

* :class:`CompressionConfig`: the base encoder (its spec), the tower (``text`` or ``image``), the methods
  applied in order (``prune`` first, then at most one precision method), the pruning target and the
  fine-tune after pruning (:class:`FinetuneConfig`);
* :class:`LMCompressionConfig`: a generative decoder's causal LM (its spec) and one method of
  :data:`LM_METHODS` (:mod:`ragsc.compress.lm`);
* :class:`Budget`: the most megabytes, milliseconds (at one batch size) and parameters a device allows;
  ``None`` leaves a figure free.

Methods (:data:`COMPRESSION_METHODS`):

==================  ==========================================================================================
``none``            the float tower as it is (the reference point of a front)
``prune``           structured pruning (``torch-pruning``) of a conv tower to ``prune_keep`` of its MACs or
                    parameters, then a short KD fine-tune against the unpruned tower
``int8-dynamic``    int8 weights of every Linear (activations quantised on the fly) and of every Embedding
``int8-static``     int8 Linear / Conv2d with activation scales calibrated on sample inputs (eager mode)
``fp16``            the tower in half precision (inputs and outputs cast at its boundary)
``bf16``            the tower in bfloat16 (inputs and outputs cast at its boundary)
==================  ==========================================================================================

Whether int8 or half precision is faster on a given CPU is not assumed: :func:`ragsc.compress.pareto`
measures it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ragsc.config import Config
from ragsc.errors import ConfigError

Method = Literal["none", "prune", "int8-dynamic", "int8-static", "fp16", "bf16"]
COMPRESSION_METHODS: tuple[str, ...] = ("none", "prune", "int8-dynamic", "int8-static", "fp16", "bf16")
PRECISIONS: tuple[str, ...] = ("int8-dynamic", "int8-static", "fp16", "bf16")
Tower = Literal["text", "image"]
LMMethod = Literal["none", "int8-dynamic", "fp16", "bf16"]
LM_METHODS: tuple[str, ...] = ("none", "int8-dynamic", "fp16", "bf16")


class FinetuneConfig(Config):
    """The KD fine-tune after pruning: the pruned tower learns the unpruned one's embeddings again (or the
    teacher's, from a teacher store)."""

    epochs: int = Field(2, ge=0, description="passes over the fine-tune images (0: no fine-tune)")
    lr: float = Field(5e-4, gt=0, le=1.0)
    batch_size: int = Field(32, ge=1, le=4096)
    images: int = Field(512, ge=1, description="easy-VQA train images when no store is given")
    store: str | None = Field(None, description="a teacher store (`ragsc distill cache`) of a teacher the "
                              "encoder serves: its images and stored embeddings are the fine-tune data")
    seed: int = 0


class CompressionConfig(Config):
    """One compression of one tower of an encoder.

    ``methods`` run in order: ``("prune", "int8-static")`` prunes, fine-tunes, then quantises. A front
    evaluates several configs (:func:`ragsc.compress.pareto`).
    """

    encoder: str = Field("embedded", description="the base encoder's spec (load_encoder)")
    tower: Tower = "text"
    methods: tuple[Method, ...] = Field(("int8-dynamic",), min_length=1, max_length=2)
    prune_keep: float = Field(0.5, gt=0.0, lt=1.0, description="share of the tower's MACs (or parameters) "
                              "the pruned network keeps")
    prune_by: Literal["macs", "params"] = "macs"
    calibration: int = Field(64, ge=1, le=4096, description="int8-static: items whose activations set the "
                             "scales")
    finetune: FinetuneConfig = FinetuneConfig()

    @field_validator("methods")
    @classmethod
    def _order(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        if "none" in methods and len(methods) > 1:
            raise ValueError("'none' cannot be combined with another method")
        if len(methods) == 2 and (methods[0] != "prune" or methods[1] not in PRECISIONS):
            raise ValueError(f"two methods are 'prune' then one of {', '.join(PRECISIONS)}, got "
                             f"{'+'.join(methods)}")
        return methods

    @model_validator(mode="after")
    def _prunable(self) -> CompressionConfig:
        if self.pruned and self.tower != "image":
            raise ValueError("prune applies to image towers (conv nets); a text tower compresses by "
                             f"{', '.join(PRECISIONS)}")
        return self

    @property
    def name(self) -> str:
        """``prune50%+int8-static``: the methods as a front's row names them."""
        parts = [f"prune{round(self.prune_keep * 100)}%{'' if self.prune_by == 'macs' else '-params'}"
                 if m == "prune" else m for m in self.methods]
        return "+".join(parts)

    @property
    def pruned(self) -> bool:
        return "prune" in self.methods

    @property
    def precision(self) -> str | None:
        """The precision method (``int8-dynamic`` ...), or None."""
        return next((m for m in self.methods if m in PRECISIONS), None)


def parse_methods(text: str) -> list[tuple[str, ...]]:
    """``"none,int8-dynamic,prune+int8-static"`` -> one method tuple per candidate.

    Raises :class:`ConfigError` naming an unknown method and the known ones.
    """
    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        methods = tuple(m.strip() for m in part.split("+"))
        unknown = [m for m in methods if m not in COMPRESSION_METHODS]
        if unknown:
            raise ConfigError(f"unknown compression method {unknown[0]!r} in {part!r}; known: "
                              f"{', '.join(COMPRESSION_METHODS)} (combine as prune+<precision>)")
        out.append(methods)
    if not out:
        raise ConfigError(f"no compression method given; known: {', '.join(COMPRESSION_METHODS)}")
    return out


class LMCompressionConfig(Config):
    """One compression of a decoder's causal LM: the whole model by one method of :data:`LM_METHODS`
    (``int8-dynamic``: int8 Linear layers and uint8 embedding rows; ``fp16`` / ``bf16``: the model cast)."""

    lm: str = Field("smollm2", description="the base LM's spec (load_lm: smollm2, hf:<dir>)")
    method: LMMethod = "int8-dynamic"
    keep_float: tuple[str, ...] = Field((), description="int8-dynamic: layers left in float32, by the last "
                                        "part of their name (down_proj, lm_head, embed_tokens) or their "
                                        "full name (model.layers.0.mlp.down_proj)")

    @model_validator(mode="after")
    def _keep_float(self) -> LMCompressionConfig:
        if self.keep_float and self.method != "int8-dynamic":
            raise ValueError(f"keep_float applies to int8-dynamic, not {self.method}")
        return self

    @property
    def name(self) -> str:
        """``int8-dynamic`` or ``int8-dynamic[float:down_proj,lm_head]``."""
        return f"{self.method}[float:{','.join(self.keep_float)}]" if self.keep_float else self.method


def parse_lm_methods(text: str) -> list[str]:
    """``"none,int8-dynamic,bf16"`` -> the LM methods; :class:`ConfigError` naming an unknown one."""
    out = [m.strip() for m in str(text).split(",") if m.strip()]
    unknown = [m for m in out if m not in LM_METHODS]
    if unknown or not out:
        what = f"unknown LM compression method {unknown[0]!r}" if unknown else "no LM compression method"
        raise ConfigError(f"{what}; an LM compresses by {', '.join(LM_METHODS)} (prune and int8-static "
                          "apply to encoder towers)")
    return out


class Budget(Config):
    """What a device allows: at most ``max_mb`` megabytes of weights (10^6 bytes), ``max_ms`` milliseconds
    per forward pass at ``batch`` items, ``max_params`` parameters of the tower. ``None``: unconstrained."""

    max_mb: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_ms: float | None = Field(None, gt=0, allow_inf_nan=False)
    max_params: int | None = Field(None, ge=1)
    batch: int = Field(1, ge=1, le=4096, description="the batch size max_ms is measured at")

    def describe(self) -> str:
        parts = [f"size <= {self.max_mb:g} MB" if self.max_mb is not None else "",
                 f"latency <= {self.max_ms:g} ms at batch {self.batch}" if self.max_ms is not None else "",
                 f"parameters <= {self.max_params:,}" if self.max_params is not None else ""]
        return ", ".join(p for p in parts if p) or "no constraint"
