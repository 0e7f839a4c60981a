"""Training crops for the image JSCC: photos decoded once at a few scales, random crops, crops with a
neighbour (another view of the same photo, or an unrelated photo)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.distill.photo_crops import crops_with_neighbours, load_scaled, random_crops
from ragsc.errors import InputError


def _save(path, height: int, width: int, seed: int = 0, **kw):
    px = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(px).save(path, **kw)
    return path


def test_photos_are_kept_at_each_scale_their_patch_allows(tmp_path):
    p = _save(tmp_path / "a.png", 100, 200)
    got = load_scaled([p], (64, 128, 400, 400), 32)
    assert [tuple(t.shape) for t in got] == [(3, 32, 64), (3, 64, 128), (3, 100, 200)]  # 400: full size
    assert all(t.dtype == torch.uint8 for t in got)
    assert np.array_equal(got[2].permute(1, 2, 0).numpy(), np.asarray(Image.open(p)))
    shapes = [tuple(t.shape) for t in load_scaled([p], (64, 128), 48)]
    assert (3, 64, 128) in shapes and (3, 32, 64) not in shapes  # 64 x 32 is smaller than the patch
    # every scale too small for the patch, the photo itself large enough: its full size
    wide = _save(tmp_path / "wide.png", 40, 1000)
    assert [tuple(t.shape) for t in load_scaled([wide], (64,), 32)] == [(3, 40, 1000)]


def test_a_photo_smaller_than_the_patch_is_an_input_error_naming_it(tmp_path):
    small = _save(tmp_path / "small.png", 30, 100)
    with pytest.raises(InputError, match=r"small\.png: 100x30 is smaller than the 32-pixel training patch"):
        load_scaled([_save(tmp_path / "ok.png", 64, 64), small], (64,), 32)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to show
    p = _save(tmp_path / "r.jpg", 40, 64, exif=exif)
    (t,) = load_scaled([p], (1024,), 16)
    assert tuple(t.shape) == (3, 64, 40)


def _colours(n: int, size: int = 48) -> list[torch.Tensor]:
    """``n`` constant-colour photos, photo ``i`` of grey level ``40 i + 20`` (told apart by their colour)."""
    return [torch.full((3, size, size + 8 * i), 40 * i + 20, dtype=torch.uint8) for i in range(n)]


def test_random_crops_are_seeded_crops_of_the_photos():
    ramp = torch.arange(40 * 56, dtype=torch.float32).reshape(1, 40, 56).expand(3, -1, -1)
    im = (ramp % 251).to(torch.uint8)
    a = random_crops([im], 16, 8, torch.Generator().manual_seed(0))
    b = random_crops([im], 16, 8, torch.Generator().manual_seed(0))
    assert a.shape == (16, 3, 8, 8) and a.dtype == torch.float32 and torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    windows = im.float().div(255).unfold(1, 8, 1).unfold(2, 8, 1).permute(1, 2, 0, 3, 4).reshape(-1, 3, 8, 8)
    flips = 0
    for crop in a:  # every crop is a window of the photo, as it is or flipped left-right
        plain = (windows == crop).flatten(1).all(1).any()
        flipped = (windows == crop.flip(2)).flatten(1).all(1).any()
        assert plain or flipped
        flips += int(bool(flipped and not plain))
    assert 0 < flips < 16  # about half are flipped
    colours = {round(float(c.mean()) * 255) for c in random_crops(_colours(3), 30, 16, torch.Generator())}
    assert colours == {20, 60, 100}  # crops come from every photo


def test_neighbours_of_related_items_come_from_the_same_photo():
    images = _colours(4)
    x, nb = crops_with_neighbours(images, 24, 32, torch.Generator().manual_seed(0), unrelated=0.0)
    assert x.shape == nb.shape == (24, 3, 32, 32) and x.dtype == nb.dtype == torch.float32
    torch.testing.assert_close(nb, x, atol=1e-5, rtol=0)  # constant colour: same photo, same colour
    assert len({round(float(c.mean()) * 255) for c in x}) > 1


def test_unrelated_neighbours_come_from_another_photo():
    images = _colours(3)
    x, nb = crops_with_neighbours(images, 24, 32, torch.Generator().manual_seed(1), unrelated=1.0)
    colour = lambda t: t.mean(dim=(1, 2, 3)).mul(255).round()  # noqa: E731
    assert (colour(x) != colour(nb)).all()
    # half and half: some of each
    x, nb = crops_with_neighbours(images, 40, 32, torch.Generator().manual_seed(2), unrelated=0.5)
    same = int((colour(x) == colour(nb)).sum())
    assert 5 < same < 35
    # a single photo has no other one
    x, nb = crops_with_neighbours(images[:1], 4, 32, torch.Generator(), unrelated=1.0)
    torch.testing.assert_close(nb, x, atol=1e-5, rtol=0)


def test_a_related_neighbour_is_a_shifted_rescaled_view():
    ramp = torch.linspace(0, 255, 96).round().to(torch.uint8)
    im = ramp.expand(3, 96, 96).contiguous()  # brightness grows to the right
    x, nb = crops_with_neighbours([im], 32, 32, torch.Generator().manual_seed(3), unrelated=0.0)
    shift = (nb.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))).abs()
    assert float(shift.max()) > 0.01  # a view, not the same crop
    assert float(shift.max()) < 0.25  # within a quarter patch and a scale of 0.8..1.25
