from collections import Counter

from ragsc.datasets import COLORS, SHAPES, load_easy_vqa, load_photos
from ragsc.datasets.easy_vqa import _attributes


def test_attributes_from_questions():
    assert _attributes([("what color is the triangle?", "red")]) == ("red", "triangle")
    assert _attributes([("what shape is present?", "circle"),
                        ("what is the color of the shape?", "teal")]) == ("teal", "circle")
    # negations: "is no yellow shape present?" yes means NOT yellow
    assert _attributes([("what shape does the image contain?", "circle"),
                        ("is no yellow shape present?", "yes")]) == (None, "circle")
    assert _attributes([("is there not a blue shape?", "no"),
                        ("is a circle present?", "yes")]) == ("blue", "circle")
    # elimination: two shapes ruled out leaves the third
    assert _attributes([("is there a circle?", "no"), ("is a rectangle present?", "no")])[1] == "triangle"


def test_splits_complete_and_balanced():
    train, test = load_easy_vqa("train"), load_easy_vqa("test")
    assert len(train) == 3578 and len(test) == 888
    for split in (train, test):
        assert all(x.color in COLORS and x.shape in SHAPES and x.path.is_file() for x in split)
        assert len(Counter(x.caption for x in split)) == 24


def test_photos():
    photos = load_photos()
    assert len(photos) >= 20
    assert len({p.caption for p in photos}) == len(photos)
    assert all(p.pixels.dtype.name == "uint8" and p.pixels.ndim in (2, 3) for p in photos)
