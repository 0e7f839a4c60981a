"""The development set for photo captions and answers: its size, splits and the answer matcher."""

import pytest

from ragsc.datasets.photo_questions import Question, dev_photos, is_right, load_dev_image, normalise


def _have_sources() -> bool:
    from pathlib import Path

    return Path("/usr/share/wallpapers/Path").is_dir() and Path("/usr/share/datasets/fashion-mnist").is_dir()


needs_sources = pytest.mark.skipif(
    not _have_sources(), reason="plasma-workspace-wallpapers or dataset-fashion-mnist is not installed"
)


@needs_sources
def test_size_splits_and_balance():
    photos = dev_photos()
    assert len(photos) >= 50 and all(len(p.questions) >= 2 for p in photos)
    val, test = dev_photos("validation"), dev_photos("test")
    assert len(val) + len(test) == len(photos) and not {p.name for p in val} & {p.name for p in test}
    polar = [q.answers[0] for p in photos for q in p.questions if q.answers[0] in ("yes", "no")]
    assert abs(polar.count("yes") - polar.count("no")) <= 2
    # none from the image codec's training packages or the KB's photo corpus
    assert {p.source for p in photos} <= {"skimage", "sklearn", "matplotlib", "plasma", "fashion-mnist"}


@needs_sources
def test_every_photo_loads():
    for p in dev_photos("validation"):
        im = load_dev_image(p)
        assert im.mode == "RGB" and min(im.size) >= 28


def test_unknown_split():
    from ragsc.errors import InputError

    with pytest.raises(InputError, match="split must be"):
        dev_photos("train")


def test_answers_are_matched_after_normalisation():
    q = Question("what animal is this?", ("cat", "tabby cat"))
    assert normalise("  A Cat. ") == "cat"
    assert is_right("The cats", q) and is_right("tabby cat", q) and is_right("CAT!", q)
    assert not is_right("dog", q) and not is_right("", q) and not is_right("cat food", q)
    yes, glass = Question("is it?", ("yes",)), Question("what is it made of?", ("glass",))
    assert not is_right("ye", yes) and not is_right("glas", glass) and is_right("glass", glass)
