"""ragsc.eval.sets: the items an evaluation sends, with their references."""

import numpy as np
import pytest
from PIL import Image

from ragsc.errors import ConfigError
from ragsc.eval.sets import SUBSETS, evaluation_set


@pytest.mark.parametrize("task, n_items", [("text", 3), ("image", 3), ("vqa", 3), ("multitask", 6)])
def test_evaluation_set_sizes(task, n_items):
    ev = evaluation_set(task, 3, seed=0)
    assert len(ev.items) == len(ev.texts) == len(ev.images) == len(ev.labels) == len(ev.answers) == n_items
    for item, text, image, label, answers in zip(ev.items, ev.texts, ev.images, ev.labels, ev.answers):
        if isinstance(item, str):
            assert text == item and image is None and label is None and answers == []
        else:
            assert text is None and isinstance(image, Image.Image) and image.mode == "RGB"
            assert item["image"] is image and len(item["questions"]) == len(answers) == 3
            assert all(isinstance(q, str) and q for q in item["questions"])
            assert len(label) == 2
    kinds = [isinstance(i, str) for i in ev.items]
    assert sum(kinds) == (3 if task in ("text", "multitask") else 0)
    again = evaluation_set(task, 3, seed=0)
    assert [t for t in again.texts] == ev.texts and again.answers == ev.answers
    with pytest.raises(ConfigError, match="n=0"):
        evaluation_set(task, 0)
    with pytest.raises(ConfigError, match="subset"):
        evaluation_set(task, 3, subset="some")


def test_evaluation_set_unknown_task():
    with pytest.raises(ConfigError, match="task must be one of text, image, vqa, multitask, got 'audio'"):
        evaluation_set("audio", 3)


def test_evaluation_set_subsets_split_re_sent_from_novel_images():
    from ragsc.datasets import load_easy_vqa
    from ragsc.kb.default import LOCAL_TEST_IMAGES

    test = load_easy_vqa("test")
    local = {f"easy-vqa:test/{x.image_id}" for x in test[:LOCAL_TEST_IMAGES]}
    by_uri = {f"easy-vqa:test/{x.image_id}": x for x in test}
    held, novel, both = (evaluation_set("image", 6, seed=2, subset=s) for s in ("held", "novel", "all"))
    assert all(u in local for u in held.sources) and not any(u in local for u in novel.sources)
    assert sum(u in local for u in both.sources) == 3 and len(set(both.sources)) == 6
    for uri, image in zip(both.sources, both.images):  # each source is the image that was sent
        with Image.open(by_uri[uri].path) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(image))
    assert evaluation_set("text", 2).sources == [None, None]
    assert SUBSETS == ("all", "held", "novel")


def test_evaluation_set_questions_per_image():
    ev = evaluation_set("vqa", 2, seed=1, questions_per_image=1)
    assert [len(a) for a in ev.answers] == [1, 1]


def test_evaluation_set_sentences_held_by_the_kbs_and_novel():
    from ragsc.datasets.corpus import caption_sentences, text_corpus
    from ragsc.datasets.easy_vqa import CAPTION_TEMPLATES
    from ragsc.datasets.heldout import wordnet_examples

    try:
        wordnet_examples(1)
    except Exception:
        pytest.skip("Debian's wordnet-base is not installed")
    kb = set(text_corpus())
    shared = kb | set(caption_sentences(CAPTION_TEMPLATES))  # captions in any phrasing, the KB's fortunes
    held, novel, both = (evaluation_set("text", 6, seed=2, subset=s).texts for s in ("held", "novel", "all"))
    assert all(t in shared for t in held) and not any(t in shared for t in novel)
    assert sum(t in shared for t in both) == 3 and len(both) == 6
    ev = evaluation_set("multitask", 4, seed=2)
    part = ev.select([5, 0])
    assert part.items == [ev.items[5], ev.items[0]] and part.texts == [ev.texts[5], ev.texts[0]]
    assert part.images == [ev.images[5], ev.images[0]] and part.answers == [ev.answers[5], ev.answers[0]]
