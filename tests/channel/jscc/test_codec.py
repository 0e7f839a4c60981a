"""JSCCCodec: shapes, the ordered code, SNR conditioning, the symbol layout, the saved folder, side
information."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.channel.jscc import JSCCCodec, JSCCConfig
from ragsc.channel.jscc.codec import from_symbols, to_symbols
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.saved import Saved, save
from ragsc.saved import load as load_saved

from .conftest import TINY, tiny_codec


def _pixels(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("h", "w"), [(8, 8), (24, 40), (56, 16)])
@pytest.mark.parametrize("level", [2, 8])
def test_shapes(codec, h, w, level):
    x = _pixels(2, h, w)
    with torch.no_grad():
        z = codec.encode(x, 10.0, level)
        assert z.shape == (2, level, h // 8, w // 8)
        x_hat = codec.decode(z, torch.tensor([0.0, 20.0]))
    assert x_hat.shape == (2, 3, h, w)
    assert 0 <= float(x_hat.min()) and float(x_hat.max()) <= 1


@pytest.mark.parametrize("x", [torch.rand(1, 3, 12, 16), torch.rand(1, 3, 16, 20), torch.rand(1, 1, 16, 16),
                               torch.rand(3, 16, 16), torch.zeros(1, 3, 16, 16, dtype=torch.uint8)])
def test_encode_refuses_pixels_that_are_not_padded_rgb(codec, x):
    with pytest.raises(InputError, match="pixels"):
        codec.encode(x, 10.0, 8)


def test_a_level_the_codec_does_not_send_is_a_config_error(codec):
    with pytest.raises(ConfigError, match=r"this codec sends \(2, 8\) channels, not 4"):
        codec.encode(_pixels(1, 16, 16), 10.0, 4)
    with pytest.raises(ConfigError, match="not 6"):
        codec.decode(torch.zeros(1, 6, 2, 2), 10.0)


def test_each_level_is_a_prefix_of_the_code_map(codec):
    """A level sends the first channels of the map; the encoder is also told the level (its attention-feature
    modules see the sent share): with that input cut, level 2 is exactly the first 2 channels of level 8."""
    x = _pixels(3, 32, 24, seed=1)
    blind = tiny_codec()
    with torch.no_grad():
        for af in blind.enc_af:
            af.mlp[0].weight[:, -1] = 0  # the level's column of the conditioning [snr, level]
        z2, z8 = blind.encode(x, 5.0, 2), blind.encode(x, 5.0, 8)
        assert torch.equal(z2, z8[:, :2])
        assert not torch.equal(z8, blind.encode(x, 15.0, 8))  # the SNR is told
        told2, told8 = codec.encode(x, 5.0, 2), codec.encode(x, 5.0, 8)
    assert told2.shape == (3, 2, 4, 3) and not torch.equal(told2, told8[:, :2])  # the level is told


def test_the_snr_told_is_clamped_to_the_training_range_and_per_item(codec):
    x = _pixels(2, 16, 16, seed=2)
    with torch.no_grad():
        hi, above = codec.encode(x, 25.0, 8), codec.encode(x, 60.0, 8)  # range (-5, 25)
        both = codec.encode(x, torch.tensor([0.0, 20.0]), 8)
        one = [codec.encode(x[i : i + 1], s, 8) for i, s in enumerate((0.0, 20.0))]
    assert torch.equal(hi, above)
    torch.testing.assert_close(both, torch.cat(one))


def test_to_symbols_unit_power_layout_and_inverse():
    scales = torch.tensor([0.1, 1, 7])[:, None, None, None]  # items of very different power
    z = torch.randn(3, 8, 2, 5, generator=torch.Generator().manual_seed(0)) * scales
    s = to_symbols(z)
    assert s.shape == (3, 4 * 2 * 5) and s.is_complex()
    torch.testing.assert_close(s.abs().square().mean(dim=1), torch.ones(3))
    rms = z.square().flatten(1).mean(1).mul(2).sqrt()  # a symbol holds two real values
    # channel pair (2i, 2i+1) of a position is one symbol: pair 0 at position (0, 0) comes first
    torch.testing.assert_close(s[:, 0], torch.complex(z[:, 0, 0, 0], z[:, 1, 0, 0]) / rms)
    torch.testing.assert_close(from_symbols(s, tuple(z.shape)), z / rms[:, None, None, None])
    torch.testing.assert_close(from_symbols(to_symbols(z) * 1, tuple(z.shape)) * rms[:, None, None, None], z)


def test_save_load_round_trip_gives_identical_outputs(codec, tmp_path):
    codec.info = {"note": "a test"}
    try:
        folder = codec.save(tmp_path / "jscc")
    finally:
        del codec.info
    header = json.loads((folder / "config.json").read_text())
    assert header["kind"] == "image-jscc" and header["config"]["levels"] == [2, 8]
    back = JSCCCodec.load(folder)
    assert back.config == codec.config and back.info == {"note": "a test"} and not back.training
    assert isinstance(load_saved(folder), JSCCCodec)
    x = _pixels(2, 24, 16, seed=3)
    with torch.no_grad():
        z = codec.encode(x, 3.0, 8)
        assert torch.equal(back.encode(x, 3.0, 8), z)
        assert torch.equal(back.decode(z, 3.0), codec.decode(z, 3.0))
    with pytest.raises(Exception, match="already holds a saved model"):
        codec.save(folder)
    codec.save(folder, overwrite=True)


def test_loading_another_kind_is_a_model_load_error(tmp_path):
    save(Saved("cat-codec", 1, {}, {"w": torch.zeros(2)}), tmp_path / "cat")
    with pytest.raises(ModelLoadError, match="holds a 'cat-codec', not a 'image-jscc'"):
        JSCCCodec.load(tmp_path / "cat")
    with pytest.raises(ModelLoadError, match="no config.json"):
        JSCCCodec.load(tmp_path)


@pytest.mark.parametrize(("change", "message"), [
    (dict(widths=[8, 8, 16]), "has shape"),
    (dict(side_info=True), r"tensor '(fuse|side)\..*' is missing \(and \d+ more\)"),
    (dict(blocks=[0, 2]), "is missing"),
    (dict(max_channels=9, levels=[9]), "not a valid image JSCC config: .*max_channels must be even"),
    (dict(levels=[2, 4]), "not a valid image JSCC config"),
])
def test_a_config_the_weights_do_not_fit_is_a_model_load_error(codec, tmp_path, change, message):
    folder = codec.save(tmp_path / "jscc")
    path = folder / "config.json"
    header = json.loads(path.read_text())
    header["config"].update(change)
    path.write_text(json.dumps(header))
    with pytest.raises(ModelLoadError, match=message):
        JSCCCodec.load(folder)


def test_a_codec_without_side_info_refuses_side_input(codec):
    x = _pixels(1, 16, 16)
    with torch.no_grad():
        z = codec.encode(x, 10.0, 8)
    with pytest.raises(ConfigError, match="no side-information branch"):
        codec.decode(z, 10.0, side=x)
    with pytest.raises(ConfigError, match="no side-information branch"):
        codec.side_features(x)


def test_zero_initialised_fusion_gives_exactly_the_plain_decode(side_codec):
    x, nb = _pixels(2, 24, 32, seed=4), _pixels(2, 24, 32, seed=5)
    with torch.no_grad():
        z = side_codec.encode(x, 10.0, 2)
        plain = side_codec.decode(z, 10.0)
        assert torch.equal(side_codec.decode(z, 10.0, side=nb), plain)
        assert torch.equal(side_codec.decode(z, 10.0, side=torch.stack([nb, x], dim=1)), plain)  # K = 2
    feats = side_codec.side_features(torch.stack([nb, x], dim=1))
    assert [tuple(f.shape) for f in feats] == [(2, 8, 3, 4), (2, 8, 6, 8), (2, 8, 12, 16)]  # 1/8, 1/4, 1/2
    assert side_codec.num_parameters() > tiny_codec().num_parameters()


def test_a_trained_fusion_uses_the_side_photos_and_the_plain_path_is_the_plain_codec():
    side = tiny_codec(seed=1, side_info=True)
    plain = JSCCCodec(JSCCConfig(**TINY)).eval()
    plain.load_state_dict({k: v for k, v in side.state_dict().items()
                           if not k.startswith(("side.", "fuse."))})
    with torch.no_grad():
        for conv in side.fuse:
            conv.weight.normal_(0, 0.5)
        x, nb = _pixels(1, 16, 16, seed=6), _pixels(1, 16, 16, seed=7)
        z = side.encode(x, 0.0, 8)
        assert torch.equal(plain.encode(x, 0.0, 8), z)
        assert torch.equal(plain.decode(z, 0.0), side.decode(z, 0.0))
        assert not torch.allclose(side.decode(z, 0.0, side=nb), side.decode(z, 0.0))
        assert not torch.allclose(side.decode(z, 0.0, side=nb), side.decode(z, 0.0, side=x))
