"""ragsc.pipelines.items: what a pipeline accepts as items, and the size limits checked there (no model)."""

import numpy as np
import pytest
from PIL import Image

from ragsc.config import Limits
from ragsc.errors import InputError
from ragsc.pipelines.items import parse_items
from tests.encoders._images import png_header


@pytest.mark.parametrize("items", [5, 2.5, b"bytes", object()])
def test_what_is_neither_an_item_nor_a_list_of_items_is_an_input_error(items):
    # pipe.run(5) was a TypeError from list(5)
    with pytest.raises(InputError, match=f"an item .* or a list of items, got {type(items).__name__}"):
        parse_items(items, "text")


def test_items_over_their_size_limits_name_the_item_its_size_and_the_limit(tmp_path):
    limits = Limits(text_chars=10, image_pixels=100)
    assert [m.content for m in parse_items(["0123456789"], "text", limits)] == ["0123456789"]
    with pytest.raises(InputError, match=r"item 1: a text of 11 characters, more than the limit of 10 "
                                         r"\(limits.text_chars\)"):
        parse_items(["short", "0123456789a"], "text", limits)
    with pytest.raises(InputError, match=r"item 1: a text of 11 characters"):
        parse_items([Image.new("RGB", (5, 5)), {"text": "0123456789a"}], "multitask", limits)
    with pytest.raises(InputError, match=r"item 2: an image of 11 x 10 = 110 pixels, more than the limit of "
                                         r"100 \(limits.image_pixels\)"):
        parse_items([Image.new("RGB", (10, 10)), "ok", Image.new("RGB", (11, 10))], "multitask", limits)
    with pytest.raises(InputError, match=r"item 0: an image of 20 x 20 = 400 pixels"):
        parse_items([np.zeros((20, 20), np.uint8)], "image", limits)
    # a file's size is read from its header, before anything is decoded
    big = png_header(tmp_path / "big.png", 30_000, 2_000)
    with pytest.raises(InputError, match=r"item 1: .*big.png: an image of 30000 x 2000 = 60,000,000 pixels.*"
                                         r"limit of 40,000,000"):
        parse_items([{"image": Image.new("RGB", (4, 4)), "questions": ["what shape?"]},
                     {"image": str(big), "questions": ["what shape?"]}], "vqa")


def test_a_batch_over_the_limit_is_refused_when_asked():
    limits = Limits(batch_items=3)
    assert len(parse_items(["a", "b", "c", "d"], "text", limits)) == 4  # a sweep's messages: no batch limit
    assert len(parse_items(["a", "b", "c"], "text", limits, batch=True)) == 3
    with pytest.raises(InputError, match=r"item 3: a batch of 4 items, more than the limit of 3 "
                                         r"\(limits.batch_items\)"):
        parse_items(["a", "b", "c", "d"], "text", limits, batch=True)
