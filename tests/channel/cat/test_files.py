"""A CAT codec's folder (ragsc.saved, kind cat-codec): save / load round trip, load errors naming the file."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.channel import CATCodec, Channel
from ragsc.errors import ModelLoadError

from .._util import unit_symbols
from ._util import TABLE, tokens


def test_save_load_round_trip(calibrated, tmp_path):
    calibrated.save(tmp_path / "cat")
    assert sorted(p.name for p in (tmp_path / "cat").iterdir()) == ["config.json", "model.safetensors"]
    back = CATCodec.load(tmp_path / "cat")
    assert back.config == calibrated.config and back.config.calibration == TABLE and not back.training
    x, y = tokens(7), unit_symbols(7, 4, seed=9)
    assert torch.equal(back.encode(x, 3.0, "rayleigh", 8), calibrated.encode(x, 3.0, "rayleigh", 8))
    assert torch.equal(back.decode(y, 0.2, 3.0, "awgn"), calibrated.decode(y, 0.2, 3.0, "awgn"))
    with torch.no_grad():
        a = back(x, 3.0, "rayleigh", 4, sim=Channel("rayleigh", seed=1))
        b = calibrated(x, 3.0, "rayleigh", 4, sim=Channel("rayleigh", seed=1))
    assert torch.equal(a, b)
    assert back.choose_length(15.0, "awgn", 0.89) == calibrated.choose_length(15.0, "awgn", 0.89) == 4


def test_load_errors_name_the_file(codec, tmp_path):
    folder = codec.save(tmp_path / "cat")
    cfg, weights = folder / "config.json", folder / "model.safetensors"
    good_cfg, good_weights = cfg.read_text(), weights.read_bytes()

    def fails(match: str) -> None:
        with pytest.raises(ModelLoadError, match=match):
            CATCodec.load(folder)
        cfg.write_text(good_cfg)
        weights.write_bytes(good_weights)

    header = json.loads(good_cfg)
    assert header["kind"] == "cat-codec" and header["format_version"] == 1

    def with_config(**changes):
        return json.dumps({**header, "config": {**header["config"], **changes}})

    with pytest.raises(ModelLoadError, match="no config.json"):
        CATCodec.load(tmp_path / "nowhere")
    weights.unlink()
    fails("model.safetensors: missing")
    cfg.unlink()
    fails("no config.json")
    cfg.write_text("{not json")
    fails("config.json: not valid JSON")
    cfg.write_text(with_config(heads=3))
    fails("invalid CAT codec config.*divisible")
    cfg.write_text(with_config(model_dim=32))
    fails("has shape")
    weights.write_bytes(b"garbage")
    fails("model.safetensors: missing or corrupt")
    cfg.write_text(json.dumps({**header, "kind": "darts-network"}))
    fails("holds a 'darts-network', not a 'cat-codec'")
    assert torch.equal(CATCodec.load(folder).tx_slots, codec.tx_slots)  # restored: loads again


@pytest.mark.parametrize(("changes", "match"), [
    ({"model_dim": 2 ** 20, "max_tokens": 1}, r"model_dim: Input should be less than or equal to 8192"),
    ({"max_symbols": 2 ** 17, "levels": [2 ** 17]}, r"max_symbols: Input should be less than or equal to "
                                                     r"65536"),
    ({"layers": 49}, r"layers: Input should be less than or equal to 48"),
    ({"heads": 2 ** 20}, r"heads: Input should be less than or equal to 64"),
    ({"token_dim": -1}, r"token_dim: Input should be greater than or equal to 1"),
])
def test_sizes_beyond_the_bounds_are_refused_by_name(codec, tmp_path, changes, match):
    """A config.json that asks for sizes of 2^20 is a load error naming the field, never an allocation."""
    folder = codec.save(tmp_path / "cat")
    header = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**header, "config": {**header["config"], **changes}}))
    with pytest.raises(ModelLoadError, match="invalid CAT codec config: .*" + match):
        CATCodec.load(folder)
