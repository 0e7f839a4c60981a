"""Architecture configs: the shared field checks and the JSON round trip every decoder config goes through."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from ragsc.decoders import AnswerHeadConfig, ImageDecoderConfig, TextGRUConfig
from ragsc.decoders.arch import check_positive, config_from_json, config_to_json
from ragsc.errors import ConfigError


@dataclass(frozen=True)
class Sizes:
    n: int = 1

    def __post_init__(self) -> None:
        check_positive(self, "n")


@pytest.mark.parametrize("value", [0, -2, 1.5, 3.0, True, "4", None])
def test_check_positive_rejects_what_is_not_a_positive_int(value):
    with pytest.raises(ConfigError, match=f"Sizes.n must be an integer >= 1, got {value!r}"):
        Sizes(value)


def test_check_positive_accepts_positive_ints():
    assert Sizes(1).n == 1 and Sizes(4096).n == 4096


@pytest.mark.parametrize("cfg", [
    TextGRUConfig(50, dim=16, emb=8, hidden=12, max_len=7),
    ImageDecoderConfig(dim=16, width=4),
    AnswerHeadConfig(["circle", "no", "yes"], dim=16, hidden=10),
])
def test_json_round_trip(cfg):
    text = config_to_json(cfg)
    assert isinstance(json.loads(text), dict)
    back = config_from_json(type(cfg), text)
    assert back == cfg and type(back) is type(cfg)


def test_from_json_wants_every_field_and_no_other():
    full = json.loads(config_to_json(ImageDecoderConfig()))
    with pytest.raises(ConfigError,
                       match=r"ImageDecoderConfig: missing fields \['width'\], unknown fields \[\]"):
        config_from_json(ImageDecoderConfig, json.dumps({k: v for k, v in full.items() if k != "width"}))
    with pytest.raises(ConfigError, match=r"unknown fields \['blocks'\]; the fields are dim, size, width"):
        config_from_json(ImageDecoderConfig, json.dumps({**full, "blocks": 5}))


@pytest.mark.parametrize("text, problem", [("{not json", "not valid JSON"), ("[1, 2]", "got list"),
                                           (None, "not valid JSON")])
def test_from_json_rejects_what_is_not_an_object(text, problem):
    with pytest.raises(ConfigError, match=f"TextGRUConfig: .*{problem}"):
        config_from_json(TextGRUConfig, text)


def test_from_json_validates_the_values():
    with pytest.raises(ConfigError, match="TextGRUConfig.emb must be an integer >= 1, got 8.5"):
        config_from_json(TextGRUConfig, json.dumps({"vocab_size": 50, "dim": 16, "emb": 8.5, "hidden": 12,
                                                    "max_len": 7}))
