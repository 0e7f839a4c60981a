"""Evaluation sets: the items a sweep sends and what the receiver should give back.

:func:`evaluation_set` draws sentences and easy-VQA *test* images (with their questions) for a task;
:class:`EvalSet` holds them beside their references. ``subset`` (:data:`SUBSETS`) chooses which
sentences and images: re-sent from the KBs, novel (held out of every KB and all training), or half of each.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from PIL import Image

from ragsc.errors import ConfigError
from ragsc.pipelines.items import TASK_KINDS

SUBSETS = ("all", "held", "novel")  # which sentences and images an evaluation sends, see evaluation_set


@dataclass
class EvalSet:
    """Items to send and what the receiver should produce (one entry per item in every list)."""

    items: list  # as Pipeline.messages() accepts them
    texts: list[str | None] = field(default_factory=list)  # reference sentence (text items)
    images: list[Image.Image | None] = field(default_factory=list)  # reference image (image items)
    labels: list[tuple[str, str] | None] = field(default_factory=list)  # (color, shape)
    answers: list[list[str]] = field(default_factory=list)
    # an image's URI as a KB stores it (easy-vqa:test/<id>)
    sources: list[str | None] = field(default_factory=list)

    def select(self, idx: list[int]) -> EvalSet:
        """The items at ``idx``, in that order, with their references."""
        return EvalSet(*([getattr(self, f)[i] for i in idx]
                         for f in ("items", "texts", "images", "labels", "answers", "sources")))


def evaluation_set(task: str, n: int, seed: int = 0, questions_per_image: int = 3,
                   subset: str = "all") -> EvalSet:
    """``n`` items per task kind: sentences and easy-VQA *test* images with their questions.

    Sentences: half KB-held, :func:`ragsc.datasets.corpus.text_test_set` (test captions in six
    phrasings, one of which the KB does not store, and fortunes the global KB holds but no decoder was
    trained on), half novel,
    :func:`ragsc.datasets.heldout.wordnet_examples` (WordNet's example sentences: in no KB, no training
    set; without Debian's wordnet-base, ``"all"`` falls back to KB-held sentences with a warning and
    ``"novel"`` is an error). Images: half from the test images the default local KB holds (recent
    content sent again), half from test images no KB holds (novel content). ``subset="held"`` or
    ``"novel"`` keeps one half (``n`` items of it).

    Parameters
    ----------
    task
        ``"text"`` (sentences), ``"image"`` / ``"vqa"`` (images) or ``"multitask"`` (both).
    n
        Items per kind (>= 1).
    seed
        Seeds the choice of sentences, images and questions.
    questions_per_image
        Questions drawn per image (at most as many as it has).
    subset
        One of :data:`SUBSETS`.

    Returns
    -------
    EvalSet
        Sentences first, then images.
    """
    from ragsc.datasets import load_easy_vqa
    from ragsc.kb.default import LOCAL_TEST_IMAGES

    if task not in TASK_KINDS:
        raise ConfigError(f"task must be one of {', '.join(TASK_KINDS)}, got {task!r}")
    if n < 1:
        raise ConfigError(f"an evaluation needs at least one item per task, got n={n}")
    if subset not in SUBSETS:
        raise ConfigError(f"subset must be 'all', 'held' or 'novel', got {subset!r}")
    rng = random.Random(seed)
    out = EvalSet([])
    if "text" in TASK_KINDS[task]:
        for s in _sentences(n, seed, subset):
            out.items.append(s)
            out.texts.append(s), out.images.append(None), out.labels.append(None), out.answers.append([])
            out.sources.append(None)
    if "image" in TASK_KINDS[task]:
        test = load_easy_vqa("test")
        held, novel = list(test[:LOCAL_TEST_IMAGES]), list(test[LOCAL_TEST_IMAGES:])
        n_held = {"all": n // 2, "held": n, "novel": 0}[subset]
        chosen = rng.sample(held, min(n_held, len(held))) + rng.sample(novel, min(n - n_held, len(novel)))
        for x in chosen:
            qa = rng.sample(list(x.questions), min(questions_per_image, len(x.questions)))
            with Image.open(x.path) as im:
                image = im.convert("RGB")
            out.items.append({"image": image, "questions": [q for q, _ in qa]})
            out.texts.append(None), out.images.append(image), out.labels.append((x.color, x.shape))
            out.answers.append([a for _, a in qa]), out.sources.append(f"easy-vqa:test/{x.image_id}")
    return out


def _sentences(n: int, seed: int, subset: str) -> list[str]:
    """``n`` sentences of ``subset`` (see :func:`evaluation_set`), KB-held ones first."""
    import warnings

    from ragsc.datasets.corpus import text_test_set
    from ragsc.datasets.heldout import wordnet_examples
    from ragsc.errors import InputError

    n_held = {"all": n - n // 2, "held": n, "novel": 0}[subset]
    try:
        novel = wordnet_examples(n - n_held, seed=seed) if n > n_held else []
    except InputError as exc:
        if subset == "novel":
            raise
        warnings.warn(f"{exc}: the evaluation's novel sentences are replaced by KB-held ones", stacklevel=3)
        n_held, novel = n, []
    return text_test_set(n_held, seed) + novel
