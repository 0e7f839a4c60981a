"""The embedded default's knowledge bases, built on demand from the recipes in the top-level ``kb/`` folder.

``kb/easy_vqa_global.yaml`` and ``kb/easy_vqa_local.yaml`` are the single source of what is built
(a wheel carries them as ``ragsc/_assets/kb``); each validates into a :class:`Recipe` and is chosen
by its scope (``build: default`` in a pipeline spec, :func:`build_default_kb`):

* global: the easy-VQA train images with their captions (3,578), the text corpus — caption
  sentences in five of the six templates and the one-line fortunes of Debian's ``fortunes``
  (1,444 when installed) — and 246 real captioned photos from Debian's ``gcompris-qt-data`` (monuments,
  animals, fishes, tools, energy, objects; :mod:`ragsc.datasets.gcompris`, when installed);
* local: what a user's device recently saw — the first 200 easy-VQA *test* images with their
  captions, standing in for recently shared photos, and the last 200 sentences of the corpus;
  time-stamped now.

No decoder was trained on test images. The evaluation sends half its images from the local KB's
recent ones (content sent again) and half from test images no KB holds (novel content), see
:func:`ragsc.eval.evaluation_set`. The images' embeddings by the embedded encoder ship with the
recipes (:mod:`ragsc.kb.shipped`, used when the encoder's and the images' fingerprint match); others
are computed once per encoder and cached (see :mod:`ragsc.encoders.cache`).

Building is a sync, so a KB built by an older recipe follows the current one, in one commit: the
recipe's items the KB lacks are added, and items the recipe stored once but no longer holds are
deleted. Items are matched by content hash (a change of an item's metadata alone is not synced);
an item counts as the recipe's when its source URI is a default one (``easy-vqa:``,
``corpus:default``, ``gcompris:``) and its hash is the one the recipe gives it, so items a user ingested
(image
hashes are of the bytes) are never touched. Sentences are not deleted while Debian's ``fortunes``
is missing, nor photos while ``gcompris-qt-data`` is (the corpus is then incomplete, not changed), and
a KB that holds items but none of the recipe's is refused: ``build: default`` is pointing at someone
else's KB.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ragsc.errors import ConfigError, InputError, KBError

log = logging.getLogger("ragsc.kb")

DEFAULT_SOURCES = ("easy-vqa:", "corpus:default", "gcompris:")  # source URIs of the recipes' items


# ---------------------------------------------------------------------------------------- recipes
class _RecipeModel(BaseModel):
    # strict: a count written "200" or 2.5 in a recipe is a mistake to report, not a value to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ImageSource(_RecipeModel):
    """Images with their captions (and colour, shape, image id) from a dataset split."""

    source: Literal["easy-vqa"]
    split: Literal["train", "test"]
    first: int | None = Field(None, ge=0, description="the first n images of the split; null: all")


class TextSource(_RecipeModel):
    """Sentences of the text corpus (:func:`ragsc.datasets.corpus.text_corpus`)."""

    source: Literal["corpus"]
    last: int | None = Field(None, ge=0, description="the last n sentences of the corpus; null: all")


class PhotoSource(_RecipeModel):
    """Real captioned photos (:mod:`ragsc.datasets.gcompris`, Debian's ``gcompris-qt-data``), each stored
    with its caption, title and category; skipped with a warning while the package is missing."""

    source: Literal["gcompris"]


class Recipe(_RecipeModel):
    """One ``kb/*.yaml`` recipe: which KB, of which scope, holds what."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="the KB's name in RAGSC_HOME/kb/")
    scope: Literal["local", "global"]
    index: str | None = Field(None, description="FAISS factory string; null: chosen by size")
    images: ImageSource
    texts: TextSource
    photos: PhotoSource | None = None


def load_recipes(folder: str | Path | None = None) -> dict[str, Recipe]:
    """The recipes of ``folder`` (default: the ``kb`` assets), one per scope.

    Parameters
    ----------
    folder
        A folder of ``*.yaml`` recipes.

    Returns
    -------
    dict[str, Recipe]
        By scope (``"local"``, ``"global"``).

    Raises
    ------
    ConfigError
        A recipe is not valid YAML or not a valid :class:`Recipe` (the message names the file and
        the field), or two recipes have the same scope.
    """
    from ragsc._assets import asset_dir
    from ragsc.config import load_yaml

    if folder is None:
        try:
            folder = asset_dir("kb")
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from None
    recipes: dict[str, Recipe] = {}
    files: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        recipe = load_yaml(path, Recipe, "KB recipe")
        if recipe.scope in recipes:
            raise ConfigError(f"two KB recipes of scope {recipe.scope!r}: {files[recipe.scope]} and {path}; "
                              "keep one per scope")
        recipes[recipe.scope], files[recipe.scope] = recipe, path
    return recipes


def load_recipe(scope: str, folder: str | Path | None = None) -> Recipe:
    """The recipe of ``scope`` (see :func:`load_recipes`)."""
    recipes = load_recipes(folder)
    if scope not in recipes:
        raise ConfigError(f"no KB recipe of scope {scope!r} in {folder or 'the kb/ assets'}")
    return recipes[scope]


def __getattr__(name: str):
    # LOCAL_TEST_IMAGES: how many easy-VQA test images the local KB holds, read from its recipe
    # (lazily, so importing this module reads no file)
    if name == "LOCAL_TEST_IMAGES":
        return load_recipe("local").images.first
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------- building
@dataclass
class _Part:
    """One batch of a recipe: the items and what to embed for them (image paths or sentences)."""

    name: str  # embedding cache key
    kind: str  # "image" | "text"
    source: str  # the source URI prefix of its items (which stored items it owns)
    contents: list
    items: list
    complete: bool = True  # False: an optional source is missing, so absent items are not stale
    split: str | None = None  # images: the easy-VQA split (their shipped embeddings, ragsc.kb.shipped)

    def embeddings(self, encoder, progress: bool):
        from ragsc.encoders.cache import cached_embeddings
        from ragsc.kb.shipped import shipped_embeddings

        if self.kind == "image":
            shipped = shipped_embeddings(encoder, self.split, self.contents) if self.split else None
            if shipped is not None:  # the embedded encoder on the shipped images: nothing to encode
                return shipped
            encode = lambda: encoder.encode_images(self.contents, progress=progress).embeddings  # noqa: E731
            return cached_embeddings(encoder, self.name, encode)
        return cached_embeddings(encoder, self.name, lambda: encoder.encode_texts(self.contents).embeddings)


def _parts(recipe: Recipe, first: int | None, last: int | None) -> list[_Part]:
    """The items of ``recipe`` with ``first`` images and the ``last`` sentences (``None``: all)."""
    from ragsc.datasets import load_easy_vqa
    from ragsc.datasets.corpus import text_corpus
    from ragsc.encoders.cache import corpus_key
    from ragsc.kb.items import NewItem

    split = recipe.images.split
    photos = load_easy_vqa(split)
    photos = photos[: len(photos) if first is None else first]
    corpus = list(text_corpus())
    with_fortunes = len(corpus) > len(text_corpus(fortunes=False))
    sentences = corpus if last is None else corpus[max(0, len(corpus) - last):] if last else []
    created = time.time() if recipe.scope == "local" else None  # local: recent content, time-stamped now
    image_items = [NewItem("image", x.caption, f"easy-vqa:{split}/{x.image_id}", created_at=created,
                           extra={"color": x.color, "shape": x.shape, "image_id": x.image_id})
                   for x in photos]
    text_items = [NewItem("text", s, "corpus:default", created_at=created) for s in sentences]
    parts = [_Part(f"easyvqa-{split}-{len(photos)}", "image", "easy-vqa:", [x.path for x in photos],
                   image_items, split=split),
             _Part("texts-" + corpus_key(sentences), "text", "corpus:default", sentences, text_items,
                   complete=with_fortunes)]
    parts.append(_photo_part(created) if recipe.photos is not None
                 else _Part("gcompris", "image", "gcompris:", [], []))  # none: stored ones go
    return parts


def _photo_part(created: float | None) -> _Part:
    """The captioned photos of Debian's ``gcompris-qt-data`` (an incomplete, empty part while it is missing:
    the photos a KB holds are then kept)."""
    from ragsc.datasets import gcompris
    from ragsc.encoders.cache import corpus_key
    from ragsc.kb.items import NewItem

    missing = _Part("gcompris", "image", gcompris.URI_PREFIX, [], [], complete=False)
    if not gcompris.available():
        log.warning(f"the default KB's captioned photos need Debian's {gcompris.PACKAGE} "
                    f"(make photos); building without them")
        return missing
    try:
        photos = gcompris.captioned_photos()
        paths = [gcompris.photo_file(p.uri) for p in photos]
    except InputError as exc:  # a damaged package: the KB is built without them, and keeps what it has
        log.warning(f"the default KB's captioned photos cannot be read ({exc}); building without them")
        return missing
    items = [NewItem("image", p.caption, p.uri, created_at=created,
                     extra={"title": p.title, "category": p.category}) for p in photos]
    # the cache key follows the photos' bytes (a package upgrade re-encodes them)
    key = "gcompris-" + corpus_key([f"{p.uri}:{path.stat().st_size}" for p, path in zip(photos, paths)])
    paths = [str(path) for path in paths]
    return _Part(key, "image", gcompris.URI_PREFIX, paths, items)


def _owned(item) -> bool:
    """Whether the recipe stored this item (see the module docstring)."""
    from ragsc.kb.items import NewItem

    return ((item.source_uri or "").startswith(DEFAULT_SOURCES)
            and NewItem(item.modality, item.text, item.source_uri).hash() == item.content_hash)


def build_default_kb(path: str | Path, encoder, scope: str = "global", images: int | None = None,
                     local_images: int | None = None, local_texts: int | None = None, progress: bool = False):
    """Create the default KB of ``scope`` at ``path`` from its recipe, or bring an existing one in line
    with it (see the module docstring).

    Parameters
    ----------
    path
        The KB folder.
    encoder
        The encoder the KB is built by (a KB built by another one is refused).
    scope
        ``"global"`` or ``"local"``: which recipe.
    images
        Global KB only: the first n train images instead of the recipe's (tests, notebooks).
    local_images, local_texts
        Local KB only: the first n test images, the last n sentences, instead of the recipe's.
    progress
        Show a progress bar while images are encoded.

    Returns
    -------
    KnowledgeBase
        The KB, open.
    """
    from ragsc.kb.store import KnowledgeBase

    if scope not in ("global", "local"):
        raise KBError(f"scope must be 'global' or 'local', got {scope!r}")
    counts = {"images": images, "local_images": local_images, "local_texts": local_texts}
    bad = {k: v for k, v in counts.items() if v is not None and (not isinstance(v, int) or v < 0)}
    if bad:
        raise ConfigError(f"default KB sizes must be integers >= 0, got {bad}")
    recipe = load_recipe(scope)
    if scope == "global":
        first, last = recipe.images.first if images is None else images, recipe.texts.last
    else:
        first = recipe.images.first if local_images is None else local_images
        last = recipe.texts.last if local_texts is None else local_texts
    parts = _parts(recipe, first, last)
    kb = KnowledgeBase.create(path, encoder, scope=scope, index=recipe.index, exist_ok=True)
    if kb.scope != scope:  # syncing would replace the other scope's content with this recipe's
        raise KBError(f"the knowledge base at {kb.path} is a {kb.scope} KB, not the {scope} one asked for; "
                      "point the spec's path at the right folder")
    stored = {it.content_hash: it for it in kb.items()}
    owned = [it for it in stored.values() if _owned(it)]
    if stored and not owned:
        raise KBError(f"the knowledge base at {kb.path} holds {len(stored)} items and none of the embedded "
                      "default's; `build: default` only builds and syncs the default KBs: point the path "
                      "elsewhere or drop it")
    wanted = {it.hash() for part in parts for it in part.items}
    final = tuple(part.source for part in parts if part.complete)  # sources whose recipe part is whole
    stale = [it.id for it in owned
             if it.content_hash not in wanted and (it.source_uri or "").startswith(final)]
    missing = [(part, [j for j, it in enumerate(part.items) if it.hash() not in stored]) for part in parts]
    missing = [(part, rows) for part, rows in missing if rows]
    if not stale and not missing:
        return kb
    additions = [(part.embeddings(encoder, progress)[rows], [part.items[j] for j in rows])
                 for part, rows in missing]
    # one commit: a reader sees the old content or the new, never half; a concurrent sync may hold the
    # lock for a moment (what it wrote first is deduplicated, what it deleted is gone already)
    with kb.writer(wait_s=60.0) as w:
        if stale:
            w.delete(stale)
        for emb, items in additions:
            w.add(emb, items)
    added = sum(len(items) for _, items in additions)
    if stored:  # an existing KB changed under the user: say so
        log.warning(f"synced the default {scope} KB ({recipe.name} recipe) at {kb.path}: {added} items "
                    f"added, {len(stale)} deleted")
    else:
        log.info(f"built the default {scope} KB ({recipe.name} recipe) at {kb.path}: {added} items")
    return kb
