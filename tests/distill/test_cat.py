"""Training and calibrating the CAT codec (ragsc/distill/cat.py) on a tiny synthetic task: targets are a fixed
random linear map of the inputs, 8 -> 8, so 4 complex symbols carry an item without loss at high SNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ragsc.channel import ChannelConfig
from ragsc.channel.cat import CATCodec, CATConfig, CATLink
from ragsc.distill.cat import calibrate, train_cat
from ragsc.errors import ConfigError, InputError

TINY = dict(token_dim=8, target_dim=8, model_dim=16, layers=1, heads=2, max_symbols=8, levels=(2, 4, 8))
CHANNELS = ("awgn", "rayleigh", "rician")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/distill/conftest.py


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 8, generator=g)
    x = F.normalize(torch.randn(3000, 8, generator=g), dim=-1)
    y = F.normalize(x @ w, dim=-1)
    return {"train": (x[:2000], y[:2000]), "val": (x[2000:2500], y[2000:2500]), "test": (x[2500:], y[2500:])}


@pytest.fixture(scope="module")
def trained(data):
    codec = CATCodec(CATConfig(**TINY))
    history = train_cat(codec, *data["train"], epochs=30, batch_size=64, lr=3e-3, seed=0, val=data["val"])
    return codec, history


@pytest.fixture(scope="module")
def calibrated(trained, data, tmp_path_factory):
    """A copy of the trained codec (through save / load), calibrated on the validation split."""
    codec = CATCodec.load(trained[0].save(tmp_path_factory.mktemp("cat")))
    calibrate(codec, *data["val"], snrs=(-5.0, 0.0, 5.0, 10.0, 20.0))
    return codec


def cosine(codec, data, channel: str, snr_db: float, n: int) -> float:
    """Mean cosine to the target of the test split through CATLink (the real Channel) with ``n`` symbols."""
    x, y = data["test"]
    rx = CATLink(codec, ChannelConfig(channel=channel, seed=1), n_symbols=n)(x, snr_db=snr_db)
    return float(F.cosine_similarity(rx.tokens.embeddings, y).mean())


# ----------------------------------------------------------------------------- training


def test_training_lowers_the_loss(trained):
    _, h = trained
    assert len(h["loss"]) == len(h["val_loss"]) == len(h["val_cosine"]) == 30
    assert h["loss"][0] > 0.9 and h["loss"][-1] < 0.3  # 1 - cosine: from chance to a working code
    assert h["val_loss"][-1] < h["val_loss"][0] - 0.6 and h["val_cosine"][-1] > 0.75
    torch.testing.assert_close(torch.tensor(h["val_cosine"]), 1 - torch.tensor(h["val_loss"]))  # no MSE term


@pytest.mark.parametrize("channel", CHANNELS)
def test_trained_codec_beats_an_untrained_one_through_the_real_channel(trained, data, channel):
    untrained = CATCodec(CATConfig(**TINY)).eval()
    good, chance = cosine(trained[0], data, channel, 10.0, 8), cosine(untrained, data, channel, 10.0, 8)
    assert good > 0.85 and abs(chance) < 0.2, (good, chance)


@pytest.mark.parametrize("channel", CHANNELS)
def test_higher_snr_reconstructs_better(trained, data, channel):
    cos = [cosine(trained[0], data, channel, snr, 8) for snr in (-5.0, 0.0, 5.0, 15.0)]
    assert all(b > a + 0.01 for a, b in zip(cos, cos[1:])), cos


@pytest.mark.parametrize("channel", CHANNELS)
def test_longer_prefix_reconstructs_better_at_low_snr(trained, data, channel):
    cos = [cosine(trained[0], data, channel, 0.0, n) for n in (2, 4, 8)]
    assert all(b > a + 0.03 for a, b in zip(cos, cos[1:])), cos


def test_training_is_deterministic_by_seed(data):
    x, y = data["train"][0][:256], data["train"][1][:256]
    runs = []
    for seed in (0, 0, 1):
        codec = CATCodec(CATConfig(**TINY))
        runs.append((train_cat(codec, x, y, epochs=1, batch_size=64, seed=seed, mse_weight=0.5),
                     codec.state_dict()))
    (h0, s0), (h1, s1), (h2, s2) = runs
    assert h0 == h1 and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert h0 != h2 and not all(torch.equal(s0[k], s2[k]) for k in s0)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [((torch.ones(4, 8), torch.ones(3, 8)), {}, InputError, "4 token rows but 3"),
     ((torch.ones(4, 6), torch.ones(4, 8)), {}, InputError, "tokens"),
     ((torch.ones(4, 8), torch.ones(4, 5)), {}, InputError, "targets"),
     ((torch.ones(0, 8), torch.ones(0, 8)), {}, InputError, "empty"),
     ((torch.full((4, 8), float("nan")), torch.ones(4, 8)), {}, InputError, "NaN"),
     ((torch.ones(4, 8), torch.ones(4, 8)), {"val": (torch.ones(2, 8), torch.ones(2, 7))}, InputError,
      "validation"),
     ((torch.ones(4, 8), torch.ones(4, 8)), {"epochs": 0}, ConfigError, "epochs"),
     ((torch.ones(4, 8), torch.ones(4, 8)), {"batch_size": 2.5}, ConfigError, "batch_size"),
     ((torch.ones(4, 8), torch.ones(4, 8)), {"lr": -1e-3}, ConfigError, "lr"),
     ((torch.ones(4, 8), torch.ones(4, 8)), {"mse_weight": float("nan")}, ConfigError, "mse_weight")],
)
def test_train_cat_rejects_bad_input(args, kwargs, error, match):
    codec = CATCodec(CATConfig(**TINY))
    before = {k: v.clone() for k, v in codec.state_dict().items()}
    with pytest.raises(error, match=match):
        train_cat(codec, *args, **kwargs)
    assert all(torch.equal(before[k], v) for k, v in codec.state_dict().items())  # nothing trained


# ----------------------------------------------------------------------------- the rate policy


def test_calibration_table_is_stored_in_the_config(calibrated, trained, tmp_path):
    table = calibrated.config.calibration
    assert table.snrs_db == (-5.0, 0.0, 5.0, 10.0, 20.0) and table.n_items == 500
    assert set(table.quality) == set(CHANNELS)
    assert all(len(rows) == 5 and all(len(r) == 3 for r in rows) for rows in table.quality.values())
    assert trained[0].config.calibration is None  # calibrated a copy
    back = CATCodec.load(calibrated.save(tmp_path / "cat"))
    assert back.config.calibration == table


@pytest.mark.parametrize("channel", CHANNELS)
def test_rate_policy_sends_fewer_symbols_when_the_channel_is_good(calibrated, channel):
    lengths = [calibrated.choose_length(float(s), channel, 0.85) for s in np.arange(-5.0, 20.5, 0.5)]
    assert lengths[-1] < lengths[0] == 8, lengths
    assert all(b <= a for a, b in zip(lengths, lengths[1:])), lengths  # never more symbols at a higher SNR


def test_rate_policy_meets_its_quality_through_the_link(calibrated, data):
    x, y = data["test"]
    link = CATLink(calibrated, ChannelConfig(seed=2), quality=0.85)
    shapes, channel = [], link.channel
    link.channel = lambda sym, no: shapes.append(tuple(sym.shape)) or channel(sym, no)  # what crosses it
    good, poor = link(x, snr_db=20.0), link(x, snr_db=-5.0)
    n_good, n_poor = good.meta["n_symbols"][0], poor.meta["n_symbols"][0]
    assert n_good < n_poor == 8 and shapes == [(500, n_good), (500, 8)]
    assert good.meta["channel_uses_per_item"] == [n_good] * 500
    assert float(F.cosine_similarity(good.tokens.embeddings, y).mean()) > 0.85 - 0.02


def test_calibrate_rejects_bad_settings(trained, data):
    codec = CATCodec(CATConfig(**TINY, channels=("awgn",)))
    with pytest.raises(ConfigError, match="trained on awgn"):
        calibrate(codec, *data["val"], channels=("rayleigh",))
    with pytest.raises(InputError, match="snr_db"):
        calibrate(codec, *data["val"], snrs=(0.0, float("nan")))
    with pytest.raises(ConfigError, match="SNRs"):
        calibrate(codec, *data["val"], snrs=())
    assert codec.config.calibration is None
