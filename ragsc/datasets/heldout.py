"""Held-out English: the example sentences of WordNet (Debian's ``wordnet-base``), for open-domain text.

Nothing in ragsc trains on them and no KB holds them, so they measure what a text link does with
sentences nobody here wrote. WordNet's ``data.{noun,verb,adj,adv}`` files give each synset a gloss
followed by example sentences in double quotes (``... ; "I can breathe better when the air is
clean"``); :func:`wordnet_examples` collects those (about 25,000), deduplicated, in a fixed order, and
draws a seeded sample. :func:`wordnet_gloss_pairs` keeps each synset's definition with one of its own
examples: a retrieval task (definition -> example sentence) that a good text encoder solves well short of
always. ``make test`` / ``make demo`` install the package with apt when they can.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from ragsc.errors import InputError

WORDNET_DIR = Path(os.environ.get("RAGSC_WORDNET_DIR", "/usr/share/wordnet"))
PARTS = ("noun", "verb", "adj", "adv")
_QUOTED = re.compile(r'"([^"]+)"')


def _synsets(folder: str) -> Iterator[tuple[str, str]]:
    """``(line, gloss)`` of every synset in the data files under ``folder`` (InputError without any)."""
    root = Path(folder)
    files = [root / f"data.{p}" for p in PARTS if (root / f"data.{p}").is_file()]
    if not files:
        raise InputError(f"no WordNet data files in {root}; install Debian's wordnet-base "
                         "(apt-get install wordnet-base) or set RAGSC_WORDNET_DIR")
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.startswith("  "):  # the licence header
                yield line, line.partition(" | ")[2]


@lru_cache(maxsize=4)
def _all_examples(folder: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for _, gloss in _synsets(folder):
        for m in _QUOTED.finditer(gloss):
            s = " ".join(m.group(1).split())
            seen.setdefault(s, None)
    return tuple(seen)


def wordnet_examples(n: int | None = None, seed: int = 0, min_words: int = 4, max_words: int = 30,
                     folder: str | os.PathLike | None = None) -> list[str]:
    """WordNet's example sentences of ``min_words..max_words`` words: a seeded sample of ``n`` (None: all).

    Raises :class:`InputError` when WordNet is not installed, or fewer than ``n`` sentences qualify.
    """
    pool = [s for s in _all_examples(str(folder or WORDNET_DIR)) if min_words <= len(s.split()) <= max_words]
    if n is None:
        return pool
    if not 0 < n <= len(pool):
        raise InputError(f"asked for {n} WordNet examples, {len(pool)} have {min_words}..{max_words} words")
    return random.Random(seed).sample(pool, n)


class GlossPair(NamedTuple):
    """One synset's definition and one of its example sentences (``synset``: ``"<offset>-<type>"``)."""

    synset: str
    gloss: str
    example: str


@lru_cache(maxsize=4)
def _all_pairs(folder: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    out = []
    for line, gloss in _synsets(folder):
        # "definition; "example"; "example"": the few glosses written otherwise (a quote inside the
        # definition, a comma or colon before the examples) are skipped rather than guessed at
        definition, sep, rest = gloss.partition('; "')
        definition = " ".join(definition.split())
        if not sep or not definition or '"' in definition:
            continue
        fields = line.split()
        examples = tuple(" ".join(m.group(1).split()) for m in _QUOTED.finditer('"' + rest))
        out.append((f"{fields[0]}-{fields[2]}", definition, examples))
    return tuple(out)


def wordnet_gloss_pairs(n: int | None = None, seed: int = 0, min_words: int = 4, max_words: int = 30,
                        folder: str | os.PathLike | None = None) -> list[GlossPair]:
    """WordNet definitions with an example sentence of the same synset: a seeded sample of ``n`` (None: all).

    Each synset gives its definition (the gloss before the quoted examples) and its first example of
    ``min_words..max_words`` words that differs from the definition. A definition or an example that a
    pair earlier in WordNet's order already holds is skipped, so among the pairs each query has one right
    answer: retrieving ``example`` by ``gloss`` among the drawn pairs has a single correct hit.

    Raises :class:`InputError` when WordNet is not installed, or fewer than ``n`` pairs qualify.
    """
    pool, glosses, examples = [], set(), set()
    for synset, gloss, candidates in _all_pairs(str(folder or WORDNET_DIR)):
        example = next((e for e in candidates if min_words <= len(e.split()) <= max_words
                        and e.casefold() != gloss.casefold()), None)
        if example is None or gloss in glosses or example in examples:
            continue
        glosses.add(gloss), examples.add(example)
        pool.append(GlossPair(synset, gloss, example))
    if n is None:
        return pool
    if not 0 < n <= len(pool):
        raise InputError(f"asked for {n} WordNet gloss pairs, {len(pool)} have an example of "
                         f"{min_words}..{max_words} words")
    return random.Random(seed).sample(pool, n)
