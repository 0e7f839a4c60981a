"""PhotoDescriber with a bag-of-words fake encoder and a fake LM: recognition, evidence, captions, answers."""

import re
from types import SimpleNamespace as NS

import pytest
import torch
import torch.nn.functional as F

from ragsc.decoders import Context
from ragsc.decoders.photo_text import DescriberSettings, PhotoDescriber
from ragsc.errors import InputError

WORDS = [
    "cat",
    "dog",
    "water",
    "lake",
    "tower",
    "blue",
    "red",
    "boat",
    "sky",
    "grass",
    "circle",
    "colour",
    "shape",
    "animal",
]
KIND = {
    "red": "colour",
    "blue": "colour",
    "circle": "shape",
    "cat": "animal",
    "dog": "animal",
}  # what a word is
STOP = {"a", "an", "the", "of", "photo", "is", "there", "what", "this", "in", "colour", "color"}


class BagEncoder:
    """Texts -> normalised counts of a few content words (plus a constant so no vector is zero)."""

    dim = len(WORDS) + 1

    def vec(self, text: str) -> torch.Tensor:
        v = torch.zeros(self.dim)
        v[-1] = 0.3
        for w in re.findall(r"[a-z]+", text.lower()):
            w = w if w in WORDS else w.rstrip("s")
            if w in WORDS:
                v[WORDS.index(w)] += 1.0
            if w in KIND:
                v[WORDS.index(KIND[w])] += 0.7
        return F.normalize(v, dim=0)

    def encode_texts(self, texts, **_):
        return NS(embeddings=torch.stack([self.vec(t) for t in texts]))


class FakeLM:
    """Completes every prompt with ``draft``; scores every continuation the same (the encoder decides)."""

    def __init__(self, draft="a cat near the water"):
        self.draft, self.prompts, self.favourite = draft, [], None

    def __call__(self, prompts, max_new_tokens=32):
        self.prompts += prompts
        return [self.draft] * len(prompts)

    def score(self, prompts, continuations):
        """Zeros, or a large log-probability for ``favourite``'s continuation (the LM's vote counts)."""
        self.prompts += prompts
        return torch.tensor([100.0 if c.strip() == self.favourite else 0.0 for c in continuations])


@pytest.fixture
def describer(monkeypatch):
    d = PhotoDescriber(
        BagEncoder(), FakeLM(), DescriberSettings(n_labels=2, yes_rank=0.7, yes_weight=10.0)
    )
    d._vocab = WORDS[:11]  # the test's vocabulary instead of ImageNet's
    return d


def photo(*words):
    return BagEncoder().vec(" ".join(words))[None]


def hit(text, title=None, modality="image"):
    return NS(item=NS(text=text, modality=modality, extra={"title": title} if title else {}), score=0.9)


def test_recognise_ranks_what_the_photo_shows(describer):
    top = describer.recognise(photo("cat", "cat", "water"))[0]
    assert top[0][0] == "cat" and top[1][0] == "water"


def test_evidence_keeps_captions_near_the_photo_and_drops_hubs(describer):
    ctx = Context([[hit("a tower", "tower"), hit("a cat by a lake", "cat")]])
    sim = describer.similar(photo("cat", "lake"), ctx)
    assert sim == [["a cat by a lake"]]  # "a tower" is further than the recognised names


def test_captions_labels_and_lm(describer):
    assert describer.settings.caption == "lm"  # the default
    describer.settings.caption = "labels"
    assert describer.caption(photo("boat", "boat", "lake")) == ["a photo of boat and lake"]
    ctx = Context([[hit("a boat on a lake", "boat")]])
    assert describer.caption(photo("boat", "lake"), ctx) == ["a boat on a lake"]
    describer.settings.caption = "lm"
    assert describer.caption(photo("cat", "water")) == ["a cat near the water"]
    describer._lm.draft = "zebra stripes"  # none of the evidence's words: the names' caption instead
    assert describer.caption(photo("cat", "water")) == ["a photo of cat and water"]


def test_open_answers_follow_the_photo_and_the_question(describer):
    z = torch.cat([photo("red", "boat", "lake"), photo("cat", "grass")])
    answers = describer.answer(
        z, [["what colour is the boat?"], ["what animal is this?", "is it a cat or a dog?"]]
    )
    assert answers[0] == ["red"]
    assert answers[1][0] == "cat" and answers[1][1] == "cat"


def test_yes_no_answers_read_the_subject(describer):
    z = photo("cat", "water")
    assert describer.answer(z, [["is there a cat?", "is there a tower?", "is there water?"]]) == [
        ["yes", "no", "yes"]
    ]


def test_retrieved_words_become_candidates(describer):
    describer._vocab = ["dog"]
    ctx = Context([[hit("a blue circle", None)]])
    assert describer.answer(photo("blue", "circle"), [["what shape is it?"]], ctx) == [["circle"]]


def test_bad_input(describer):
    with pytest.raises(InputError, match="embeddings"):
        describer.caption(torch.zeros(3))
    with pytest.raises(InputError, match="question lists"):
        describer.answer(photo("cat"), [["a?"], ["b?"]])
    with pytest.raises(InputError, match="non-empty strings"):
        describer.answer(photo("cat"), ["what is this?"])
    describer.settings.caption = "poem"
    with pytest.raises(InputError, match="caption mode"):
        describer.caption(photo("cat"))


def test_the_lm_votes_on_open_and_yes_no_answers(describer):
    z = photo("cat", "water")
    assert describer.answer(z, [["what animal is this?"]]) == [["cat"]]
    describer._lm.favourite = "dog"  # the LM is sure: a re-ranked candidate wins
    assert describer.answer(z, [["what animal is this?"]]) == [["dog"]]
    describer._lm.favourite = "no"  # and outweighs the encoder on a yes/no question
    assert describer.answer(z, [["is there a cat?"]]) == [["no"]]
    describer.settings.lm_weight = 0.0  # off: the encoder alone
    describer._lm.favourite = "dog"
    assert describer.answer(z, [["what animal is this?"]]) == [["cat"]]


@pytest.mark.parametrize(
    "question, options",
    [
        ("is it day or night?", ["day", "night"]),
        ("is it a cat or a dog?", ["cat", "dog"]),
        ("is this a red car or a blue car?", ["red car", "blue car"]),
        ("is it black, white or grey?", ["black", "white", "grey"]),
        ("is the sky blue or not?", []),
        ("what is he holding or carrying?", []),
    ],
)
def test_choice_questions(question, options):
    from ragsc.decoders.photo_text import _options

    assert _options(question) == options


def test_settings_and_context_are_checked(describer):
    describer.settings.n_rerank = 0
    with pytest.raises(InputError, match="n_rerank must be an integer >= 1"):
        describer.answer(photo("cat"), [["what is it?"]])
    describer.settings.n_rerank = 5
    with pytest.raises(InputError, match="context has 1 rows for 2"):
        describer.caption(torch.cat([photo("cat"), photo("dog")]), Context([[hit("a cat")]]))


def test_the_vocabulary_matrix_is_stacked_once_and_follows_the_vocabulary(describer):
    vocab = describer.vocabulary
    first = describer._names(vocab)
    assert describer._names(list(vocab)) is first  # reused, not stacked again
    both = describer._names([*vocab, "tower"])
    assert torch.equal(both[: len(vocab)], first) and torch.equal(both[-1], describer._names(["tower"])[0])
    describer._vocab = ["cat", "dog"]
    assert describer._names(["cat", "dog"]).shape[0] == 2
