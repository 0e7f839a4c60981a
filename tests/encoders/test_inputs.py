"""Input handling shared by every backend (no model needed)."""

import numpy as np
import pytest
from PIL import Image

from ragsc.encoders.inputs import as_batch, check_texts, load_image, to_rgb
from ragsc.errors import InputError

from ._images import png_header


def test_grayscale_rgba_palette_become_rgb():
    gray = Image.new("L", (5, 4), 77)
    assert to_rgb(gray).mode == "RGB" and to_rgb(gray).getpixel((0, 0)) == (77, 77, 77)
    rgba = Image.new("RGBA", (3, 3), (255, 0, 0, 0))  # fully transparent red -> white background
    assert to_rgb(rgba).getpixel((1, 1)) == (255, 255, 255)
    opaque = Image.new("RGBA", (3, 3), (255, 0, 0, 255))
    assert to_rgb(opaque).getpixel((1, 1)) == (255, 0, 0)
    assert to_rgb(Image.new("P", (2, 2))).mode == "RGB"


def test_16bit_image_is_scaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    rgb = np.asarray(load_image(path))
    assert rgb.dtype == np.uint8 and rgb[1, 1, 0] == 255 and rgb[0, 0, 0] == 0
    # mid-grey 16-bit maps to mid-grey 8-bit (a plain uint8 cast would clip to 255)
    assert np.asarray(to_rgb(Image.fromarray(np.full((2, 2), 32896, np.uint16))))[0, 0, 0] == 128


def test_arrays_accepted_and_checked():
    assert load_image(np.zeros((4, 4), np.uint8)).size == (4, 4)
    assert load_image(np.ones((4, 4, 3), np.float32)).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(np.zeros((1, 1, 4), np.uint8)).mode == "RGB"
    with pytest.raises(InputError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InputError, match="NaN"):
        load_image(np.full((2, 2), np.nan))


def test_missing_corrupt_and_wrong_type(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_image(tmp_path / "nope.png", index=3)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    with pytest.raises(InputError, match="cannot read image file"):
        load_image(bad)
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)
    with pytest.raises(InputError, match="expected a PIL image"):
        load_image(42)


def test_texts_checked():
    assert check_texts(["a", "b c"]) == ["a", "b c"]
    with pytest.raises(InputError, match="text 1: is empty"):
        check_texts(["fine", "   "])
    with pytest.raises(InputError, match="image was given where a text"):
        check_texts([Image.new("RGB", (2, 2))])
    with pytest.raises(InputError, match="expected a string"):
        check_texts([3])


def test_as_batch_single_and_sequences():
    assert as_batch("one text", "text") == ["one text"]
    assert len(as_batch(np.zeros((3, 3)), "image")) == 1
    assert as_batch([], "text") == []
    with pytest.raises(InputError):
        as_batch(5, "text")


def test_a_decompression_bomb_is_an_input_error_naming_its_size(tmp_path):
    # 20000 x 20000: Pillow raised DecompressionBombError (not a ragsc error) from Image.open
    bomb = png_header(tmp_path / "bomb.png", 20_000, 20_000)
    with pytest.raises(InputError, match=r"image 2: .*bomb.png: 400,000,000 pixels.*limit is 40,000,000"):
        load_image(bomb, index=2)


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    from ragsc.config import LIMITS, Limits

    # 8000 x 6000 = 48 MP, between the default limit (40 MP) and Pillow's own warning (89 MP): the header
    # is all there is, so only a check before decoding can name the size (decoding fails on missing data)
    big = png_header(tmp_path / "big.png", 8000, 6000)
    with pytest.raises(InputError, match=r"image 0: .*big.png: an image of 8000 x 6000 = 48,000,000 pixels, "
                                         r"more than the limit of 40,000,000 \(limits.image_pixels\)"):
        load_image(big)
    assert LIMITS.image_pixels == 40_000_000
    small = Limits(image_pixels=100)
    with pytest.raises(InputError, match=r"image 1: an image of 20 x 10 = 200 pixels.*limit of 100"):
        load_image(Image.new("RGB", (20, 10)), 1, small)
    with pytest.raises(InputError, match=r"image 0: an image of 11 x 10 = 110 pixels.*limit of 100"):
        load_image(np.zeros((10, 11, 3), np.uint8), 0, small)
    assert load_image(Image.new("RGB", (10, 10)), 0, small).size == (10, 10)


def test_a_text_over_the_character_limit_is_refused():
    from ragsc.config import Limits

    assert check_texts(["x" * 100_000]) == ["x" * 100_000]  # the default limit itself is allowed
    with pytest.raises(InputError, match=r"text 1: a text of 100,001 characters, more than the limit of "
                                         r"100,000 \(limits.text_chars\)"):
        check_texts(["fine", "x" * 100_001])
    with pytest.raises(InputError, match="text 0: a text of 6 characters.*limit of 5"):
        check_texts(["abcdef"], Limits(text_chars=5))
