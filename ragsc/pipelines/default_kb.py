"""The embedded default's knowledge bases, built on demand (``build: default`` in a pipeline spec).

* global: the easy-VQA train images with their captions (3,578) and the text corpus — caption
  sentences in five of the six templates and the one-line fortunes of Debian's ``fortunes``
  (1,444 when installed);
* local: what a user's device recently saw — the first ``local_images`` (200) easy-VQA *test*
  images with their captions, standing in for recently shared photos (as in ``kb/easy_vqa_local.yaml``),
  and the last ``local_texts`` sentences of the corpus; time-stamped now.

No decoder was trained on test images. The evaluation sends half its images from the local KB's
recent ones (content sent again) and half from test images no KB holds (novel content), see
:func:`ragsc.eval.sweep.evaluation_set`. Embeddings are computed once per encoder and cached
(see :mod:`ragsc.encoders.cache`).

Building is a sync, so a KB built by an older recipe follows the current one, in one commit: the
recipe's items the KB lacks are added, and items the recipe stored once but no longer holds are
deleted. Items are matched by content hash (a change of an item's metadata alone is not synced);
an item counts as the recipe's when its source URI is a default one (``easy-vqa:``,
``corpus:default``) and its hash is the one the recipe gives it, so items a user ingested (image
hashes are of the bytes) are never touched. Sentences are not deleted while Debian's ``fortunes``
is missing (the corpus is then incomplete, not changed), and a KB that holds items but none of the
recipe's is refused: ``build: default`` is pointing at someone else's KB.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ragsc.errors import ConfigError, KBError

log = logging.getLogger("ragsc.kb")

LOCAL_TEST_IMAGES = 200  # the local KB holds the first 200 easy-VQA test images
DEFAULT_SOURCES = ("easy-vqa:", "corpus:default")  # source URIs of the recipe's items


@dataclass
class _Part:
    """One batch of a recipe: the items and what to embed for them (image paths or sentences)."""

    name: str  # embedding cache key
    kind: str  # "image" | "text"
    contents: list
    items: list
    complete: bool = True  # False: an optional source is missing, so absent items are not stale

    def embeddings(self, encoder, progress: bool):
        from ragsc.encoders.cache import cached_embeddings

        if self.kind == "image":
            return cached_embeddings(encoder, self.name,
                                     lambda: encoder.encode_images(self.contents, progress=progress).embeddings)
        return cached_embeddings(encoder, self.name, lambda: encoder.encode_texts(self.contents).embeddings)


def _recipe(scope: str, images: int | None, local_images: int, local_texts: int) -> list[_Part]:
    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_corpus
    from ragsc.encoders.cache import corpus_key
    from ragsc.kb import NewItem

    if scope not in ("global", "local"):
        raise KBError(f"scope must be 'global' or 'local', got {scope!r}")
    counts = {"images": images, "local_images": local_images, "local_texts": local_texts}
    bad = {k: v for k, v in counts.items() if v is not None and (not isinstance(v, int) or v < 0)}
    if bad:
        raise ConfigError(f"default KB sizes must be integers >= 0, got {bad}")
    corpus = list(text_corpus())
    with_fortunes = len(corpus) > len(text_corpus(fortunes=False))
    if scope == "global":
        split, photos = "train", load_easy_vqa("train")
        photos, sentences, created = photos[: len(photos) if images is None else images], corpus, None
    else:  # recent content, time-stamped now
        split, photos = "test", load_easy_vqa("test")[:local_images]
        sentences, created = corpus[max(0, len(corpus) - local_texts):] if local_texts else [], time.time()
    image_items = [NewItem("image", x.caption, f"easy-vqa:{split}/{x.image_id}", created_at=created,
                           extra={"color": x.color, "shape": x.shape, "image_id": x.image_id}) for x in photos]
    text_items = [NewItem("text", s, "corpus:default", created_at=created) for s in sentences]
    return [_Part(f"easyvqa-{split}-{len(photos)}", "image", [x.path for x in photos], image_items),
            _Part("texts-" + corpus_key(sentences), "text", sentences, text_items, complete=with_fortunes)]


def _owned(item) -> bool:
    """Whether the recipe stored this item (see the module docstring)."""
    from ragsc.kb import NewItem

    return ((item.source_uri or "").startswith(DEFAULT_SOURCES)
            and NewItem(item.modality, item.text, item.source_uri).hash() == item.content_hash)


def build_default_kb(path: str | Path, encoder, scope: str = "global", images: int | None = None,
                     local_images: int = LOCAL_TEST_IMAGES, local_texts: int = 200, progress: bool = False):
    """Create the default KB of ``scope`` at ``path``, or bring an existing one in line with the recipe
    (see the module docstring); returns the open KB.

    ``images`` limits the global KB to the first n train images (tests, notebooks)."""
    from ragsc.kb import KnowledgeBase

    parts = _recipe(scope, images, local_images, local_texts)
    kb = KnowledgeBase.create(path, encoder, scope=scope, exist_ok=True)
    if kb.scope != scope:  # syncing would replace the other scope's content with this recipe's
        raise KBError(f"the knowledge base at {kb.path} is a {kb.scope} KB, not the {scope} one asked for; "
                      "point the spec's path at the right folder")
    stored = {it.content_hash: it for it in kb.items()}
    owned = [it for it in stored.values() if _owned(it)]
    if stored and not owned:
        raise KBError(f"the knowledge base at {kb.path} holds {len(stored)} items and none of the embedded default's; "
                      "`build: default` only builds and syncs the default KBs: point the path elsewhere or drop it")
    wanted = {it.hash() for part in parts for it in part.items}
    final = {part.kind for part in parts if part.complete}  # modalities whose recipe is whole
    stale = [it.id for it in owned if it.content_hash not in wanted and it.modality in final]
    missing = [(part, [j for j, it in enumerate(part.items) if it.hash() not in stored]) for part in parts]
    missing = [(part, rows) for part, rows in missing if rows]
    if not stale and not missing:
        return kb
    additions = [(part.embeddings(encoder, progress)[rows], [part.items[j] for j in rows]) for part, rows in missing]
    # one commit: a reader sees the old content or the new, never half; a concurrent sync may hold the
    # lock for a moment (what it wrote first is deduplicated, what it deleted is gone already)
    with kb.writer(wait_s=60.0) as w:
        if stale:
            w.delete(stale)
        for emb, items in additions:
            w.add(emb, items)
    added = sum(len(items) for _, items in additions)
    if stored:  # an existing KB changed under the user: say so
        log.warning(f"synced the default {scope} KB at {kb.path} with the recipe: {added} items added, "
                    f"{len(stale)} deleted")
    else:
        log.info(f"built the default {scope} KB at {kb.path}: {added} items")
    return kb
