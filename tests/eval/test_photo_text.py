"""Scoring a receiver's captions and answers on the photo development set."""

from types import SimpleNamespace as NS

import pytest
import torch

from ragsc.datasets.photo_questions import DevPhoto, Question
from ragsc.errors import InputError
from ragsc.eval.photo_text import score_outputs


class WordEncoder:
    def encode_texts(self, texts, **_):
        vocab = sorted({w for t in texts for w in t.split()})
        out = torch.zeros(len(texts), len(vocab) + 1)
        for i, t in enumerate(texts):
            out[i, -1] = 1e-3
            for w in t.split():
                out[i, vocab.index(w)] += 1
        return NS(embeddings=out)


PHOTOS = [
    DevPhoto(
        "a",
        "skimage",
        "a.png",
        "a red boat",
        (Question("what is it?", ("boat",)), Question("is it red?", ("yes",))),
    ),
    DevPhoto(
        "b",
        "skimage",
        "b.png",
        "a cat",
        (Question("what animal?", ("cat", "kitten")), Question("is there a dog?", ("no",))),
    ),
]


def test_scores_count_right_answers_by_kind():
    outs = [NS(caption="a red boat", answers=["boat", "no"]), NS(caption="a dog", answers=["kitten", "no"])]
    r = score_outputs(PHOTOS, outs, WordEncoder())
    assert r["n_questions"] == 4 and r["accuracy"] == 0.75
    assert r["accuracy_open"] == 1.0 and r["accuracy_yes_no"] == 0.5
    assert r["caption_cosine"] == pytest.approx((1.0 + 0.5) / 2, abs=1e-3)


def test_a_receiver_that_said_nothing_scores_zero():
    r = score_outputs(PHOTOS, [NS(caption=None, answers=[]), NS(caption="", answers=None)], WordEncoder())
    assert r["accuracy"] == 0.0


def test_outputs_must_match_the_photos():
    with pytest.raises(InputError, match="1 outputs for 2 photos"):
        score_outputs(PHOTOS, [NS(caption="x", answers=[])], WordEncoder())
