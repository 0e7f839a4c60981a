"""Held-out English: the example sentences of WordNet (Debian's ``wordnet-base``), for open-domain text.

Nothing in ragsc trains on them and no KB holds them, so they measure what a text link does with
sentences nobody here wrote. WordNet's ``data.{noun,verb,adj,adv}`` files give each synset a gloss
followed by example sentences in double quotes (``... ; "I can breathe better when the air is
clean"``); :func:`wordnet_examples` collects those (about 25,000), deduplicated, in a fixed order, and
draws a seeded sample. ``make test`` / ``make demo`` install the package with apt when they can.
"""

from __future__ import annotations

import os
import random
import re
from functools import lru_cache
from pathlib import Path

from ragsc.errors import InputError

WORDNET_DIR = Path(os.environ.get("RAGSC_WORDNET_DIR", "/usr/share/wordnet"))
PARTS = ("noun", "verb", "adj", "adv")
_QUOTED = re.compile(r'"([^"]+)"')


@lru_cache(maxsize=4)
def _all_examples(folder: str) -> tuple[str, ...]:
    root = Path(folder)
    files = [root / f"data.{p}" for p in PARTS if (root / f"data.{p}").is_file()]
    if not files:
        raise InputError(f"no WordNet data files in {root}; install Debian's wordnet-base "
                         "(apt-get install wordnet-base) or set RAGSC_WORDNET_DIR")
    seen: dict[str, None] = {}
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  "):  # the licence header
                continue
            gloss = line.partition(" | ")[2]
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
