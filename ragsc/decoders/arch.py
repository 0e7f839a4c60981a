"""Architecture configs of the decoder networks: what each network is built from, and their JSON form.

Each trained network (:class:`~ragsc.decoders.text.TextGRU`, :class:`~ragsc.decoders.image.ImageDecoderNet`,
:class:`~ragsc.decoders.vqa.AnswerHead`) is built from a small frozen dataclass next to it (like nanoGPT's
``GPTConfig``) and keeps it as ``module.config``. The decoders file stores each config as JSON in its
metadata and rebuilds the networks from them, so nothing reads sizes back out of module internals.
This module holds what the three configs share: field checks and the JSON round trip.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TypeVar

from ragsc.checks import size
from ragsc.config import MAX_WIDTH
from ragsc.errors import ConfigError

C = TypeVar("C")


def check_positive(cfg, *names: str, high: int = MAX_WIDTH) -> None:
    """Raise :class:`ConfigError` unless each named field of ``cfg`` is an integer in ``[1, high]``.

    ``high`` bounds what a saved config may ask for (a layer of any size would otherwise be allocated as
    asked); bool is an int to Python, and a JSON float such as 8.0 must not slip through as a layer size.
    """
    for name in names:
        size(cfg, name, 1, high)


def config_to_json(cfg) -> str:
    """The config as a JSON object of its fields."""
    return json.dumps(dataclasses.asdict(cfg))


def config_from_json(cls: type[C], text: str) -> C:
    """Rebuild a config of class ``cls`` from :func:`config_to_json`'s output.

    Every field must be present and no other: a default filled in for a missing field would silently
    build another architecture than the one the weights were trained in.

    Raises
    ------
    ConfigError
        The text is not a JSON object, a field is missing or unknown, or a value is invalid.
    """
    return cls(**json_fields(cls, text))


def json_fields(cls, text: str) -> dict:
    """The JSON object in ``text``, holding exactly the fields of dataclass ``cls`` (else ConfigError)."""
    try:
        data = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{cls.__name__}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__}: expected a JSON object of fields, got {type(data).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]
    missing = [f for f in fields if f not in data]
    unknown = sorted(set(data) - set(fields))
    if missing or unknown:
        raise ConfigError(f"{cls.__name__}: missing fields {missing}, unknown fields {unknown}; "
                          f"the fields are {', '.join(fields)}")
    return data
