"""The items a compression is calibrated, fine-tuned and scored on (all offline, shipped or from apt).

Calibration and fine-tuning read training-side data, scoring reads held-out data, so a compression is
never scored on what tuned it:

================  ====================================================  ================================
use               texts                                                 images
================  ====================================================  ================================
calibrate / tune  the shipped corpus (fortunes, easy-VQA captions)      easy-VQA train
score             WordNet (held out of everything): example sentences,  easy-VQA test, with captions
                  and definitions paired with an example of theirs
================  ====================================================  ================================
"""

from __future__ import annotations

from dataclasses import dataclass, field


def calibration_items(tower: str, n: int) -> list:
    """``n`` items to calibrate int8-static scales (or fine-tune) on."""
    if tower == "text":
        from ragsc.datasets.corpus import text_corpus

        texts = list(text_corpus())
        return [texts[i % len(texts)] for i in range(n)]
    return train_images(n)


def train_images(n: int) -> list:
    """The first ``n`` easy-VQA train images (paths)."""
    from ragsc.datasets import load_easy_vqa

    return [x.path for x in load_easy_vqa("train")[:n]]


@dataclass
class EvalData:
    """What a front scores on: ``texts`` (the text tower's R@1 against float), ``images`` with their
    ``captions`` (the image tower's R@1; caption R@1 of either tower), and ``pairs`` of texts, (query,
    answer), for the text tower's retrieval R@1 (WordNet definition -> example sentence)."""

    texts: list[str] = field(default_factory=list)
    images: list = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def default(cls, sentences: int = 500, images: int = 200, seed: int = 0,
                pairs: int | None = None) -> EvalData:
        """``sentences`` held-out WordNet sentences and ``pairs`` (default: as many) WordNet definitions
        with an example sentence of the same synset (seeded draws; InputError without wordnet-base; 0:
        none), and the first ``images`` easy-VQA test images with their captions."""
        from ragsc.datasets import load_easy_vqa
        from ragsc.datasets.heldout import wordnet_examples, wordnet_gloss_pairs

        texts = wordnet_examples(sentences, seed=seed)
        n_pairs = (len(texts) if sentences is None else sentences) if pairs is None else pairs
        glosses = [(p.gloss, p.example) for p in wordnet_gloss_pairs(n_pairs, seed=seed)] if n_pairs else []
        test = load_easy_vqa("test")[:images]
        return cls(texts, [x.path for x in test], [x.caption for x in test], glosses)
