"""JSCCLink: photos of any size and mode through a tiny untrained codec; channel uses, tiles, refusals, exact
recognition of photos the receiver holds, side information, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.channel.jscc import JSCCLink
from ragsc.channel.jscc.link import HEADER_SYMBOLS, consistency, symbols_for, tile_boxes, to_tensor
from ragsc.errors import ConfigError, InputError

from .conftest import photo, tiny_codec


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


@pytest.mark.parametrize(("width", "height", "tile"), [(1, 1, 1024), (37, 21, 1024), (21, 37, 64),
                                                       (500, 300, 64), (64, 64, 64), (65, 64, 64)])
def test_any_size_comes_back_at_its_size_and_costs_what_channel_uses_says(codec, width, height, tile):
    link = JSCCLink(codec, ratio="1/48", tile=tile)
    im = photo(height, width)
    rx = link([im, photo(16, 24, seed=1)], snr_db=10.0)
    assert [p.size for p in rx.content] == [(width, height), (24, 16)]
    assert all(p.mode == "RGB" for p in rx.content) and rx.ok.tolist() == [True, True]
    uses = rx.meta["channel_uses_per_item"]
    assert uses == [link.channel_uses(height, width), link.channel_uses(16, 24)]
    assert rx.channel_uses == round(sum(uses) / 2)
    assert uses[1] == 2 * 3 * 4 + HEADER_SYMBOLS  # 2 x 3 positions at 1/8, 4 complex symbols each
    # the padding is paid for: the ratio spent is at least the nominal one
    assert uses[0] - HEADER_SYMBOLS >= 3 * width * height / 48
    assert len(link.encode(to_tensor(im), 10.0)) == uses[0] - HEADER_SYMBOLS
    assert rx.meta["path"] == "jscc" and rx.meta["ratio"] == "1/48" and rx.meta["tile"] == tile


def test_channel_uses_count_the_padded_tiles_and_grow_with_the_ratio(codec):
    low, high = JSCCLink(codec, ratio="1/192", tile=64), JSCCLink(codec, ratio="1/48", tile=64)
    assert low.channel_uses(1, 1) == 1 + HEADER_SYMBOLS and high.channel_uses(1, 1) == 4 + HEADER_SYMBOLS
    assert high.channel_uses(300, 500) == 38 * 63 * 4 + HEADER_SYMBOLS  # tiles of 64 (multiples of 8)
    assert high.channel_uses(64, 64) == 3 * 64 * 64 // 48 + HEADER_SYMBOLS  # exactly the nominal ratio
    for h, w in [(1, 1), (37, 21), (300, 500)]:
        assert low.channel_uses(h, w) < high.channel_uses(h, w)
    assert symbols_for(300, 500, 64, 8) == sum(math.ceil(h / 8) * math.ceil(w / 8) * 4
                                               for _, _, h, w in tile_boxes(300, 500, 64).boxes)


@pytest.mark.parametrize(("height", "width", "tile", "n"), [
    (64, 64, 64, 1), (1, 4096, 64, 1), (65, 64, 64, 2), (300, 500, 64, 5 * 8), (130, 70, 64, 3 * 2)])
def test_tiles_cover_the_photo_once(height, width, tile, n):
    boxes = tile_boxes(height, width, tile).boxes
    assert len(boxes) == n
    seen = np.zeros((height, width), int)
    for t, s, h, w in boxes:
        assert 1 <= h <= tile and 1 <= w <= tile or n == 1
        seen[t : t + h, s : s + w] += 1
    assert (seen == 1).all()


def test_a_ratio_the_codec_does_not_send_names_its_ratios(codec):
    with pytest.raises(ConfigError, match=r"sends bandwidth ratios 1/192, 1/48, not 1/12"):
        JSCCLink(codec, ratio="1/12")
    with pytest.raises(ConfigError, match="bandwidth ratio must be a fraction"):
        JSCCLink(codec, ratio="fast")


def test_a_channel_the_codec_was_not_trained_on_is_refused():
    awgn_only = tiny_codec(channels=("awgn",))
    JSCCLink(awgn_only, ratio="1/48", channel="awgn")
    with pytest.raises(ConfigError, match="this image codec was trained on awgn, not 'rayleigh'"):
        JSCCLink(awgn_only, ratio="1/48", channel="rayleigh")


@pytest.mark.parametrize(("settings", "message"), [
    (dict(csi="none"), "perfect CSI over block fading; the channel has csi='none', fading='block'"),
    (dict(fading="fast"), "csi='perfect', fading='fast'"),
    (dict(tile=60), "tile must be a multiple of 8 in 64..4096 pixels, got 60"),
    (dict(tile=8192), "got 8192"),
    (dict(tile=True), "got True"),
    (dict(tile=128.0), "got 128.0"),
    (dict(modulation=4), r"unknown setting\(s\) \['modulation'\]"),
    (dict(channel="fading"), "channel"),
])
def test_settings_the_link_cannot_use_are_config_errors(codec, settings, message):
    with pytest.raises(ConfigError, match=message):
        JSCCLink(codec, ratio="1/48", **settings)


def test_modes_are_converted_to_rgb(codec, tmp_path):
    link = JSCCLink(codec, ratio="1/48")
    rgb = photo(21, 30)
    grey = rgb.convert("L")
    rgba = rgb.convert("RGBA")
    sixteen = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    assert sixteen.mode == "I;16"
    palette = rgb.convert("P")
    array = np.asarray(rgb)  # one array is one photo (not a batch of rows)
    rx = link([grey, rgba, sixteen, palette, array], snr_db=10.0)
    assert [p.size for p in rx.content] == [(30, 21)] * 5 and {p.mode for p in rx.content} == {"RGB"}
    one = link(array, snr_db=10.0)
    assert len(one.content) == 1 and one.content[0].size == (30, 21)
    # 16-bit values are scaled by 1/257: the same photo as the 8-bit grey one
    assert link([sixteen], 10.0, known=[[grey]]).meta["recognised"] == [0]


def test_an_exif_rotated_jpeg_comes_out_as_it_is_shown(codec, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to show
    path = tmp_path / "rotated.jpg"
    photo(20, 48).save(path, exif=exif)
    assert Image.open(path).size == (48, 20)
    link = JSCCLink(codec, ratio="1/48")
    rx = link([path, str(path)], snr_db=10.0)
    assert [p.size for p in rx.content] == [(20, 48), (20, 48)]
    assert rx.meta["channel_uses_per_item"] == [link.channel_uses(48, 20)] * 2


def test_unreadable_files_are_input_errors_naming_them(codec, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    link = JSCCLink(codec, ratio="1/48")
    with pytest.raises(InputError, match=r"image 1: cannot read image file .*broken\.png"):
        link([photo(16, 16), bad], 10.0)
    with pytest.raises(InputError, match=r"image 0: file not found: .*missing\.jpg"):
        link([tmp_path / "missing.jpg"], 10.0)
    with pytest.raises(InputError, match="known must be a list with one entry"):
        link([photo(16, 16)], 10.0, known=[[photo(16, 16)], None])


@pytest.mark.parametrize("channel", ["awgn", "rayleigh"])
def test_a_known_photo_is_recognised_and_returned_exactly(codec, channel):
    link = JSCCLink(codec, ratio="1/48", channel=channel, seed=1)
    im, other, small = photo(40, 56, seed=0), photo(40, 56, seed=2), photo(32, 56, seed=0)
    rx = link([im, im], 20.0, known=[[small, other, im], None])
    assert _same(rx.content[0], im)
    assert rx.meta["recognised"] == [2, None] and rx.meta["consistency"][1] is None
    n = link.channel_uses(40, 56) - HEADER_SYMBOLS
    assert abs(rx.meta["consistency"][0] - 1) < 6 / math.sqrt(n)
    plain = link([im], 20.0)
    assert plain.meta["recognised"] == [None] and not _same(plain.content[0], im)  # a lossy decode otherwise


def test_another_photo_of_the_same_size_is_not_recognised(codec):
    link = JSCCLink(codec, ratio="1/48", seed=0)
    im = photo(40, 56, seed=0)
    other = Image.fromarray(255 - np.asarray(im))  # the negative: same size, another code
    rx = link([im], 20.0, known=[[other]])
    assert rx.meta["recognised"] == [None] and rx.meta["consistency"][0] > 2
    assert not _same(rx.content[0], other)
    # a candidate of another size is not even compared
    rx = link([im], 20.0, known=[[photo(48, 56)]])
    assert rx.meta["recognised"] == [None] and rx.meta["consistency"] == [None]


def test_consistency_is_about_one_for_the_sent_symbols_and_larger_for_others():
    g = torch.Generator().manual_seed(0)
    n, no = 20_000, 0.1

    def cn(scale: float) -> torch.Tensor:
        return torch.complex(torch.randn(n, generator=g), torch.randn(n, generator=g)) * math.sqrt(scale / 2)

    sent, other = cn(1.0), cn(1.0)
    y = sent + cn(no)
    assert abs(consistency(y, sent, no) - 1) < 0.05
    expected = 1 + float((sent - other).abs().square().mean()) / no
    assert consistency(y, other, no) == pytest.approx(expected, rel=0.05)
    assert consistency(y, sent, torch.full((n,), no)) == pytest.approx(consistency(y, sent, no))


def test_a_fixed_seed_is_deterministic(codec):
    im = photo(24, 32)
    a = JSCCLink(codec, ratio="1/48", channel="rayleigh", seed=3)([im, im], 0.0).content
    b = JSCCLink(codec, ratio="1/48", channel="rayleigh", seed=3)([im, im], 0.0).content
    c = JSCCLink(codec, ratio="1/48", channel="rayleigh", seed=4)([im, im], 0.0).content
    assert all(_same(x, y) for x, y in zip(a, b))
    assert not _same(a[0], c[0]) and not _same(a[0], a[1])  # fresh noise per photo and per seed


def test_side_information_with_zero_initialised_fusion_changes_nothing(side_codec):
    link = JSCCLink(side_codec, ratio="1/192", seed=0)
    im, nb = photo(24, 40, seed=0), photo(30, 30, seed=1)  # a neighbour of another size is resized
    plain = JSCCLink(side_codec, ratio="1/192", seed=0)([im], 5.0)
    rx = link([im], 5.0, side=[[nb]])
    assert rx.meta["side_used"] == [False] and _same(rx.content[0], plain.content[0])
    with pytest.raises(ConfigError, match="no side-information branch"):
        JSCCLink(tiny_codec(), ratio="1/192")([im], 5.0, side=[[nb]])


def test_the_fused_decode_is_kept_only_when_it_explains_the_symbols_better():
    codec = tiny_codec(seed=2, side_info=True)
    with torch.no_grad():
        for conv in codec.fuse:
            conv.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    link = JSCCLink(codec, ratio="1/48", seed=0)
    im = photo(24, 40, seed=0)
    choices = []
    for nb in (im, photo(24, 40, seed=3), Image.fromarray(255 - np.asarray(im))):
        (a,) = link.transmit([im], 5.0)
        plain = link.decode(a.y_mmse, a.snr_eff_db, a.size)
        fused = link.decode(a.y_mmse, a.snr_eff_db, a.size, to_tensor(nb))
        assert not torch.equal(plain, fused)
        assert plain.dtype == fused.dtype == torch.uint8  # what the receiver outputs: 8-bit pixels
        c_plain, c_fused = (consistency(a.y_zf, link.encode(x, a.snr_db), a.no_eff) for x in (plain, fused))
        out, meta = link.receive([a], side=[[nb]])
        chose = c_fused < c_plain
        assert meta["side_used"] == [chose]
        expected = fused if chose else plain
        assert np.array_equal(np.asarray(out[0]), expected[0].permute(1, 2, 0).numpy())
        choices.append(chose)
    assert set(choices) == {True, False}  # both branches met (seeded)


def test_noiseless_is_the_bound(codec):
    link = JSCCLink(codec, ratio="1/48")
    im = photo(16, 24)
    rx = link([im], noiseless=True, known=[[im]])
    assert rx.snr_db == math.inf and rx.channel == "none"
    assert rx.meta["recognised"] == [0] and rx.meta["consistency"] == [0.0] and _same(rx.content[0], im)
    a, b = link([im], noiseless=True).content[0], link([im], noiseless=True).content[0]
    assert _same(a, b)  # no noise: the same decode every time
