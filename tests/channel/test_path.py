"""The link protocol (ragsc/channel/path.py): one ChannelConfig in every path, one call, one SNR default."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ragsc.channel import (
    AnalogLink,
    CATCodec,
    CATConfig,
    CATLink,
    ChannelConfig,
    CodingConfig,
    DigitalLink,
    IdealDigital,
    Received,
    SeparateCoding,
    TransmissionPath,
)
from ragsc.errors import ConfigError, InputError
from ragsc.types import SemanticTokens

from ._util import gaussian_features

Z = F.normalize(gaussian_features(6, 64, seed=1), dim=-1)
CAT = CATCodec(CATConfig(token_dim=64, target_dim=64, model_dim=16, layers=1, heads=2, max_symbols=8,
                         levels=(4, 8))).eval()  # untrained: the protocol, not the quality
CFG = ChannelConfig(channel="rayleigh", snr_db=3.0, k_symbols=24, seed=5)


def token_paths(config: ChannelConfig) -> dict:
    return {"analog": AnalogLink(config), "cat": CATLink(CAT, config, n_symbols=8),
            "digital": DigitalLink(config), "ideal": IdealDigital(config)}


@pytest.mark.parametrize("name", ["analog", "cat", "digital", "ideal"])
def test_every_token_path_holds_the_config_and_defaults_to_its_snr(name):
    a = token_paths(CFG)[name]
    assert isinstance(a, TransmissionPath) and a.config == CFG
    by_default = a(Z)  # no SNR: the config's
    explicit = token_paths(CFG)[name](Z, snr_db=CFG.snr_db)  # fresh path, same seed
    assert isinstance(by_default, Received) and by_default.snr_db == explicit.snr_db == 3.0
    assert torch.equal(by_default.tokens.embeddings, explicit.tokens.embeddings)
    other = token_paths(CFG)[name](Z, snr_db=20.0)
    assert other.snr_db == 20.0 and by_default.meta["path"] and by_default.channel == "rayleigh"
    assert not torch.equal(other.tokens.embeddings, by_default.tokens.embeddings)


@pytest.mark.parametrize("name", ["analog", "cat", "digital", "ideal"])
def test_every_token_path_keeps_each_rows_modality(name):
    st = SemanticTokens(Z, ["image", "text"] * 3)
    rx = token_paths(CFG)[name](st, snr_db=10.0)
    assert rx.tokens.modalities == st.modalities


@pytest.mark.parametrize("snr_db", [float("nan"), 61.0, -31.0])
def test_every_path_resolves_and_checks_the_snr_the_same_way(snr_db):
    for path in (*token_paths(CFG).values(), SeparateCoding(CFG)):
        with pytest.raises(InputError, match="snr_db"):
            path(Z if not isinstance(path, SeparateCoding) else ["a text"], snr_db=snr_db)
        assert CFG.resolve_snr(None) == 3.0


def test_content_paths_return_received_with_content():
    texts = ["a red triangle", "hello"]
    settings = {"snr_db": 30.0, "channel": "awgn", "k_symbols": 256}
    for path in (SeparateCoding(CFG, **settings), IdealDigital(CFG, **settings)):
        rx = path(texts)
        assert isinstance(rx, Received) and rx.tokens is None and rx.content == texts
        assert rx.ok.tolist() == [True, True] and rx.channel_uses == 256 and rx.channel == "awgn"
        assert len(rx.meta["bits_used"]) == 2 and rx.meta["budget_bits"][0] >= rx.meta["bits_used"][0] > 0


def test_overrides_go_to_the_config_that_declares_them():
    d = DigitalLink(CFG, modulation=16, k_symbols=96, quant_bits=4)
    assert (d.config == CFG.model_copy(update={"k_symbols": 96})
            and d.coding == CodingConfig(modulation=16, quant_bits=4))
    assert AnalogLink(CFG, snr_db=7.0).config.snr_db == 7.0 and CFG.snr_db == 3.0  # CFG is not changed
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['modulation'\]"):
        AnalogLink(CFG, modulation=16)  # the analog link has no modulation
    with pytest.raises(ConfigError, match="k_symbols must be set"):
        DigitalLink(k_symbols=None)
