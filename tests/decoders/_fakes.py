"""Hand-made KB hits and a fake causal LM for the decoder tests."""

from __future__ import annotations

import itertools

from ragsc.decoders.context import Context
from ragsc.kb.items import Hit, Item

_ids = itertools.count(1)


def item(modality: str = "text", text: str | None = None, source_uri: str | None = None) -> Item:
    i = next(_ids)
    return Item(i, modality, text, source_uri, f"hash-{i}", 0.0)


def hits(items: list[Item], provenance: str = "local") -> list[Hit]:
    """Hits for one query, best first, with decreasing scores."""
    table = {it.id: it for it in items}
    return [Hit(it.id, 1.0 - 0.1 * r, table, provenance) for r, it in enumerate(items)]


def text_context(rows: list[list[str]]) -> Context:
    """A Context whose row ``i`` retrieved the text items ``rows[i]`` (best first)."""
    return Context([hits([item("text", t) for t in row]) for row in rows])


class FakeLM:
    """Stands in for a CausalLM: records the prompts, answers with ``replies`` (cycled)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies) or [""]
        self.prompts: list[str] = []
        self.kwargs: list[dict] = []

    def __call__(self, prompts: list[str], **kwargs) -> list[str]:
        self.prompts.extend(prompts)
        self.kwargs.append(kwargs)
        return [self.replies[i % len(self.replies)] for i in range(len(prompts))]
