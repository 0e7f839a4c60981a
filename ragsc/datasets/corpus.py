"""Text corpora: one-line fortunes from Debian's ``fortunes`` package, and easy-VQA caption sentences.

``fortunes`` installs plain-text files under ``/usr/share/games/fortunes`` (``make demo`` / ``make test``
install it with apt when they can). Entries are separated by ``%`` lines; we keep single-line
entries of a sane length, which read like the short messages a text link carries. Without the
package the corpus is the caption sentences alone, and :func:`load_fortunes` says how to get it.
"""

from __future__ import annotations

import os
import random
from functools import lru_cache
from pathlib import Path

from ragsc.datasets.easy_vqa import CAPTION_TEMPLATES, COLORS, SHAPES, caption_for
from ragsc.errors import InputError

FORTUNES_DIR = Path(os.environ.get("RAGSC_FORTUNES_DIR", "/usr/share/games/fortunes"))
# The global KB (and the decoders' training corpus) phrase captions in the first five templates; the
# sixth ("{color} {shape}") is held out, so some sent captions are phrasings the receiver never stored.
KB_TEMPLATES = CAPTION_TEMPLATES[:-1]
FORTUNE_FILES = ("fortunes", "cookie", "people", "wisdom", "work", "education", "food", "science")


@lru_cache(maxsize=4)
def load_fortunes(max_chars: int = 100, min_words: int = 4, folder: str | None = None) -> tuple[str, ...]:
    """One-line fortunes (deduplicated, in file order). Raises :class:`InputError` when none are installed."""
    root = Path(folder) if folder else FORTUNES_DIR
    if not root.is_dir():
        raise InputError(f"no fortunes at {root}: install Debian's package (`apt-get install fortunes`) "
                         "or set RAGSC_FORTUNES_DIR")
    seen: dict[str, None] = {}
    for name in FORTUNE_FILES:
        path = root / name
        if not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln.strip() for ln in entry.strip().splitlines() if ln.strip() and ln.strip() != "%"]
            if len(lines) == 1 and len(lines[0]) <= max_chars and len(lines[0].split()) >= min_words:
                seen.setdefault(" ".join(lines[0].split()), None)
    if not seen:
        raise InputError(f"{root} has no usable one-line fortunes in {', '.join(FORTUNE_FILES)}")
    return tuple(seen)


def kb_only_fortunes() -> tuple[str, ...]:
    """Every fourth fortune: held by the global KB but never shown to the decoders in training.

    The text test set quotes these, so the text task measures what RAG is for: knowledge the
    receiver's KB has and its decoder's weights do not.
    """
    try:
        return load_fortunes()[3::4]
    except InputError:
        return ()


def caption_sentences(templates: tuple[str, ...] = CAPTION_TEMPLATES) -> tuple[str, ...]:
    """Every easy-VQA caption sentence: each colour x shape in each template."""
    return tuple(caption_for(c, s, t) for t in templates for c in COLORS for s in SHAPES)


def text_corpus(fortunes: bool = True) -> tuple[str, ...]:
    """The embedded default's text corpus: caption sentences (KB templates), then fortunes when installed."""
    texts = caption_sentences(KB_TEMPLATES)
    if fortunes:
        try:
            texts += load_fortunes()
        except InputError:
            pass
    return texts


def decoder_corpus() -> tuple[str, ...]:
    """What the text decoder is trained on: :func:`text_corpus` without :func:`kb_only_fortunes`."""
    held = set(kb_only_fortunes())
    return tuple(t for t in text_corpus() if t not in held)


def text_test_set(n: int, seed: int = 0, fortunes: bool = True) -> list[str]:
    """Sentences to send in the text task (reproducible).

    Half are easy-VQA test captions in a random one of the six templates (one in six is the
    phrasing the KB does not hold, see :data:`KB_TEMPLATES`); half are fortunes the global KB holds
    but the decoders never saw (:func:`kb_only_fortunes`; the sender quotes a corpus the receiver
    shares).
    """
    from ragsc.datasets.easy_vqa import load_easy_vqa

    rng = random.Random(seed)
    test = load_easy_vqa("test")
    captions = [caption_for(x.color, x.shape, rng.choice(CAPTION_TEMPLATES))
                for x in rng.sample(test, min(n, len(test)))]
    quotes = list(kb_only_fortunes()) if fortunes else []
    n_quotes = min(n // 2, len(quotes))
    out = captions[: n - n_quotes] + rng.sample(quotes, n_quotes)
    rng.shuffle(out)
    return out
