"""ragsc.compress.config: methods, their combinations and the budget, validated with clear errors."""

from __future__ import annotations

import pytest

from ragsc.compress.config import Budget, CompressionConfig, parse_methods
from ragsc.config import validate
from ragsc.errors import ConfigError


def test_methods_combine_as_prune_then_one_precision():
    assert CompressionConfig(tower="image", methods=("prune", "int8-static")).name == "prune50%+int8-static"
    cfg = CompressionConfig(tower="image", methods=("prune",), prune_keep=0.25, prune_by="params")
    assert cfg.name == "prune25%-params" and cfg.pruned and cfg.precision is None
    assert CompressionConfig(methods=("fp16",)).precision == "fp16"
    for bad in [("int8-dynamic", "prune"), ("fp16", "bf16"), ("none", "prune"), ("prune", "prune")]:
        with pytest.raises(ConfigError, match="methods"):
            validate(CompressionConfig, {"tower": "image", "methods": bad}, "test")
    with pytest.raises(ConfigError, match="prune applies to image towers"):
        validate(CompressionConfig, {"tower": "text", "methods": ["prune"]}, "test")


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ConfigError, match="methods.0.*'int8-dynamic'"):
        validate(CompressionConfig, {"methods": ["int4"]}, "test")
    with pytest.raises(ConfigError, match="unknown compression method 'int4'.*known: none, prune"):
        parse_methods("none,int4")
    with pytest.raises(ConfigError, match="unknown compression method 'magic'"):
        parse_methods("prune+magic")
    with pytest.raises(ConfigError, match="no compression method"):
        parse_methods(" , ")
    assert parse_methods("none, prune+int8-static") == [("none",), ("prune", "int8-static")]


def test_budget_fields_and_description():
    assert Budget().describe() == "no constraint"
    b = Budget(max_mb=10, max_ms=5.5, max_params=1000, batch=64)
    assert b.describe() == "size <= 10 MB, latency <= 5.5 ms at batch 64, parameters <= 1,000"
    for field, value in [("max_mb", -1), ("max_ms", 0), ("max_params", 0), ("batch", 0), ("max_mb", "inf")]:
        with pytest.raises(ConfigError, match=field):
            validate(Budget, {field: value}, "test")
    with pytest.raises(ConfigError, match="prune_keep"):
        validate(CompressionConfig, {"prune_keep": 1.0}, "test")
