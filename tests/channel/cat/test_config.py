"""CATConfig and CATCalibration (ragsc/channel/cat/config.py): JSON round trip, defaults, bad fields named."""

from __future__ import annotations

import json

import pytest

from ragsc.channel import CATCodec, CATConfig
from ragsc.errors import ConfigError

from ._util import TABLE, TINY


def test_config_json_round_trip():
    cfg = CATConfig(**TINY, calibration=TABLE)
    assert CATConfig(**json.loads(cfg.model_dump_json())) == cfg
    assert CATConfig(token_dim=384, target_dim=384).levels == (8, 16, 32, 48, 64)  # the paper-sized default


@pytest.mark.parametrize(
    ("bad", "names"),
    [(dict(heads=3), "divisible by heads"), (dict(levels=(4, 2, 8)), "strictly increasing"),
     (dict(levels=(2, 4)), "end at max_symbols"), (dict(channels=("awgn", "fog")), "channels"),
     (dict(channels=("awgn", "awgn")), "distinct"), (dict(snr_range_db=(20.0, -5.0)), "snr_range_db"),
     (dict(snr_range_db=(-40.0, 0.0)), "snr_range_db"), (dict(token_dim=0), "token_dim"),
     (dict(token_dim=8.0), "token_dim"), (dict(extra=1), "extra"), (dict(rician_k=-1.0), "rician_k"),
     (dict(calibration=dict(snrs_db=(0.0, 10.0), quality={"awgn": ((0.1, 0.2, 0.3),)}, n_items=3)), "rows"),
     (dict(calibration=dict(snrs_db=(10.0, 0.0), quality={}, n_items=3)), "increasing"),
     (dict(channels=("awgn",), calibration={**TABLE.model_dump(), "quality": {"rician": ((0.5,) * 3,) * 3}}),
      "not trained on"),
     (dict(calibration={**TABLE.model_dump(), "quality": {"awgn": ((0.5, 0.6),) * 3}}), "quality per level"),
     (dict(model_dim=2048, max_symbols=128, levels=(128,)), "read-out size; at most 268,435,456"),
     (dict(token_dim=2 ** 17), "token_dim"), (dict(max_tokens=2 ** 17), "max_tokens")],
)
def test_config_rejects_bad_fields_naming_them(bad, names):
    with pytest.raises(ConfigError, match=names):
        CATConfig(**{**TINY, **bad})
    with pytest.raises(ConfigError, match=names):
        CATCodec({**TINY, **bad})
