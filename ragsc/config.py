"""Pydantic v2 configs shared across packages, and the YAML pipeline spec they validate.

Every model forbids unknown fields; a bad value raises :class:`~ragsc.errors.ConfigError` whose
message names the field (``encoder.batch_size``) and what is allowed. The pipeline spec is a
skeleton: the channel, knowledge-base and decoder sections are filled in by later issues, and
until then accept only the fields defined here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ragsc.errors import ConfigError


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderConfig(_Config):
    """Which encoder and how to run it."""

    spec: str = Field("embedded", description="'embedded', 'open_clip:<model>/<tag|ckpt>', 'open_clip:local-dir:<dir>' or 'hf:<dir|id>'")
    device: str = "cpu"
    batch_size: int = Field(64, ge=1, le=4096)
    return_tokens: bool = Field(False, description="also send patch / word tokens, not only the pooled embedding")

    @field_validator("spec")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from ragsc.encoders import BACKENDS

        if v.strip().partition(":")[0] not in BACKENDS:
            raise ValueError(f"unknown encoder backend in {v!r}; allowed prefixes: {', '.join(BACKENDS)}")
        return v.strip()


class ChannelConfig(_Config):
    """The wireless link (filled in by the channel issue)."""

    channel: Literal["awgn", "rayleigh", "rician"] = "awgn"
    snr_db: float = Field(10.0, ge=-30.0, le=60.0)
    seed: int = 0


class KBRef(_Config):
    """A knowledge base a pipeline reads (filled in by the knowledge-base issue)."""

    path: str
    scope: Literal["local", "global"] = "global"


class PipelineSpec(_Config):
    """A pipeline as declared in ``pipelines/<task>.yaml``."""

    name: str
    task: Literal["text", "image", "vqa", "multitask"]
    encoder: EncoderConfig = EncoderConfig()
    channel: ChannelConfig = ChannelConfig()
    knowledge_bases: list[KBRef] = Field(default_factory=list)
    seed: int = 0


def validate(model: type[_Config], data: dict, source: str = "config") -> _Config:
    """Validate ``data`` into ``model``; a failure raises :class:`ConfigError` naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            + (f" (got {err['input']!r})" if not isinstance(err.get("input"), dict) else "")
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: invalid {model.__name__}: {problems}") from None


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    """Read and validate a YAML pipeline spec."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline spec not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a pipeline spec must be a YAML mapping, got {type(data).__name__}")
    return validate(PipelineSpec, data, str(path))
