"""Stored teacher outputs: the teacher runs once over a dataset, every student run reads the result.

LAI's "pre-stored compression mechanism": distillation needs the teacher's outputs for every training
item (and for each augmented view of it), and recomputing them each epoch costs more than the
student's own training. :func:`build_store` computes them once and writes safetensors shards::

    <dir>/manifest.json            teacher (spec, fingerprint, dim), data recipe, label names, shards
    <dir>/shard-00000.safetensors  image [n, D], text [n, D], has_image / has_text [n], label [n],
                                   views [n, V, D] (augmented views), patch tokens [n, T, d] (optional);
                                   the items' content hashes in the file's metadata ("keys")

Items are keyed by content hash (the image's bytes or pixels, the text), in the source's stream order.
A run that is killed resumes at the first shard the manifest does not list; a run against an existing
store whose teacher or recipe differs is refused before anything is written. :class:`TeacherStore`
reads a store back (its manifest validated first: :mod:`ragsc.distill.store_manifest`), and
:meth:`TeacherStore.inputs` re-reads the source items in the same order, checking each against its
stored key, so a student trains on exactly the inputs the teacher saw.

Sources (``DataRecipe.source``): every KB ingestion format (:mod:`ragsc.kb.sources`: a folder of
images with captions, jsonl, text, paragraphs, COCO, VQA, ``easy-vqa`` train/test) and
``fashion-mnist:train`` / ``fashion-mnist:test`` (Debian's ``dataset-fashion-mnist``), and ``corpus``
(the shipped text corpus: fortunes and easy-VQA captions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ragsc.distill.store_manifest import MANIFEST, STORE_FORMAT, DataRecipe, read_manifest, write_manifest
from ragsc.errors import InputError

__all__ = ["MANIFEST", "STORE_FORMAT", "DataRecipe", "StoreItem", "TeacherStore", "augmented", "build_store",
           "image_array", "source_items"]

@dataclass
class StoreItem:
    """One item of a source: an image and / or a text, its label (-1: none) and its content key."""

    key: str
    image: Image.Image | None
    text: str | None
    label: int = -1


# ----------------------------------------------------------------------------------------- sources
def _key(kind: str, data: bytes) -> str:
    return hashlib.sha256(kind.encode() + b"\0" + data).hexdigest()


def source_items(recipe: DataRecipe) -> tuple[Iterator[StoreItem], list[str]]:
    """The recipe's items in stream order, and the label names (index = label)."""
    src = recipe.source
    if src.startswith("fashion-mnist"):
        from ragsc.datasets.fashion_mnist import CLASSES, load_fashion_mnist

        split = src.partition(":")[2] or "train"
        x, y = load_fashion_mnist(split, n=recipe.n)  # type: ignore[arg-type]

        def fashion() -> Iterator[StoreItem]:
            for img, label in zip(x, y):
                yield StoreItem(_key("pixels", img.tobytes()), Image.fromarray(img).convert("RGB"), None,
                                int(label))

        return fashion(), list(CLASSES)
    if src == "corpus":  # the shipped text corpus: fortunes and easy-VQA captions
        from ragsc.datasets.corpus import text_corpus

        texts = text_corpus()[: recipe.n]
        return (StoreItem(_key("text", t.encode()), None, t) for t in texts), []
    from ragsc.kb.sources import records

    stream = records(src, recipe.format)
    labels: list[str] = []
    if recipe.label_field == "shape" and recipe.format in (None, "easy-vqa") and src in ("train", "test"):
        from ragsc.datasets import SHAPES

        labels = list(SHAPES)
    elif recipe.label_field == "color" and src in ("train", "test"):
        from ragsc.datasets import COLORS

        labels = list(COLORS)

    def kb_items() -> Iterator[StoreItem]:
        for i, rec in enumerate(stream):
            if recipe.n is not None and i >= recipe.n:
                return
            label = -1
            if recipe.label_field:
                value = rec.extra.get(recipe.label_field)
                if value is None:
                    raise InputError(f"{rec.source_uri}: no field {recipe.label_field!r} to label it with")
                if str(value) not in labels:
                    labels.append(str(value))  # first appearance order: fixed by the stream's order
                label = labels.index(str(value))
            if rec.path is not None:
                try:
                    raw = rec.path.read_bytes()
                    img = Image.open(rec.path)
                    img.load()
                except (OSError, Image.DecompressionBombError) as exc:
                    raise InputError(f"{rec.path}: not a readable image: {exc}") from None
                yield StoreItem(_key("image", raw), img.convert("RGB"), rec.text, label)
            elif rec.text:
                yield StoreItem(_key("text", rec.text.encode()), None, rec.text, label)

    return kb_items(), labels


def augmented(image: Image.Image, key: str, view: int, seed: int, size: int | None = None) -> Image.Image:
    """View ``view`` of an image: a random resized crop (60-100 % of the area) and a horizontal flip,
    drawn from ``(seed, key, view)`` alone, so a resumed or repeated run sees the same views."""
    from torchvision.transforms import v2

    size = size or min(image.size)
    aug = v2.Compose([v2.RandomResizedCrop(size, scale=(0.6, 1.0), antialias=True),
                      v2.RandomHorizontalFlip()])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed((int(key[:12], 16) + 1_000_003 * view + 7919 * seed) % (2 ** 63))
        return aug(image)


# ----------------------------------------------------------------------------------------- writing
def _teacher_info(teacher) -> dict:
    return {"spec": teacher.spec, "fingerprint": teacher.fingerprint, "dim": teacher.dim}


def build_store(path: str | Path, teacher, recipe: DataRecipe, shard_size: int = 512,
                progress: bool = False) -> TeacherStore:
    """Compute the teacher's outputs over ``recipe``'s items into ``path`` (resuming a killed run).

    Raises :class:`InputError` when ``path`` holds a store of another teacher or recipe (nothing is
    written), or when the source is empty or unreadable.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    path = Path(path)
    if shard_size < 1:
        raise InputError(f"shard_size must be >= 1, got {shard_size}")
    info = _teacher_info(teacher)
    manifest = read_manifest(path) if path.is_dir() else None
    if manifest is not None:
        _check_same(path, manifest, info, recipe)
        if manifest["complete"]:
            return TeacherStore(path)
    items, labels = source_items(recipe)
    path.mkdir(parents=True, exist_ok=True)
    manifest = manifest or {"format": STORE_FORMAT, "teacher": info, "recipe": recipe.model_dump(),
                            "labels": [], "shards": [], "complete": False, "items": 0}
    done = len(manifest["shards"])
    bar = tqdm(desc="teacher store", unit="item", disable=not progress)
    for s, shard in enumerate(_batched(items, shard_size)):
        if s < done:  # listed in the manifest: written by an earlier run
            bar.update(len(shard))
            continue
        tensors, keys = _encode_shard(teacher, shard, recipe)
        name = f"shard-{s:05d}.safetensors"
        tmp = path / (name + ".tmp")
        save_file(tensors, str(tmp), metadata={"keys": json.dumps(keys)})
        tmp.replace(path / name)
        manifest["shards"].append({"file": name, "count": len(keys)})
        manifest["items"] += len(keys)
        manifest["labels"] = list(labels)
        write_manifest(path, manifest)
        bar.update(len(shard))
    bar.close()
    if manifest["items"] == 0:
        raise InputError(f"{recipe.source}: no items to compute the teacher's outputs for")
    manifest["labels"] = list(labels)
    manifest["complete"] = True
    write_manifest(path, manifest)
    return TeacherStore(path)


def _check_same(path: Path, manifest: dict, info: dict, recipe: DataRecipe) -> None:
    if manifest["teacher"]["fingerprint"] != info["fingerprint"]:
        raise InputError(f"{path} holds the outputs of another teacher ({manifest['teacher']['spec']}, "
                         f"fingerprint {manifest['teacher']['fingerprint']}), not of {info['spec']} "
                         f"({info['fingerprint']}); use another folder")
    if manifest["recipe"] != recipe.model_dump():
        diff = {k: (manifest["recipe"].get(k), v) for k, v in recipe.model_dump().items()
                if manifest["recipe"].get(k) != v}
        raise InputError(f"{path} was computed from another data recipe (stored, asked): {diff}; "
                         "use another folder")


def _batched(items: Iterator[StoreItem], size: int) -> Iterator[list[StoreItem]]:
    shard: list[StoreItem] = []
    for item in items:
        shard.append(item)
        if len(shard) == size:
            yield shard
            shard = []
    if shard:
        yield shard


def _encode_shard(teacher, shard: list[StoreItem], recipe: DataRecipe) -> tuple[dict, list[str]]:
    n, d = len(shard), teacher.dim
    out = {"image": torch.zeros(n, d), "text": torch.zeros(n, d),
           "has_image": torch.zeros(n, dtype=torch.uint8), "has_text": torch.zeros(n, dtype=torch.uint8),
           "label": torch.tensor([x.label for x in shard], dtype=torch.int64)}
    img_rows = [i for i, x in enumerate(shard) if x.image is not None]
    txt_rows = [i for i, x in enumerate(shard) if x.text]
    if img_rows:
        enc = teacher.encode_images([shard[i].image for i in img_rows], return_tokens=recipe.tokens)
        out["image"][img_rows] = enc.embeddings.float()
        out["has_image"][img_rows] = 1
        if recipe.tokens and enc.tokens is not None:
            tok = torch.zeros(n, *enc.tokens.shape[1:])
            tok[img_rows] = enc.tokens.float()
            out["tokens"] = tok
        if recipe.views:
            views = torch.zeros(n, recipe.views, d)
            for v in range(recipe.views):
                imgs = [augmented(shard[i].image, shard[i].key, v, recipe.seed) for i in img_rows]
                views[img_rows, v] = teacher.encode_images(imgs).embeddings.float()
            out["views"] = views
    if txt_rows:
        out["text"][txt_rows] = teacher.encode_texts([shard[i].text for i in txt_rows]).embeddings.float()
        out["has_text"][txt_rows] = 1
    return {k: v.contiguous() for k, v in out.items()}, [x.key for x in shard]


# ----------------------------------------------------------------------------------------- reading
class TeacherStore:
    """A finished store: its manifest, its tensors (concatenated over shards) and its inputs."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        manifest = read_manifest(self.path)
        if manifest is None:
            raise InputError(f"{self.path}: no teacher store here (no {MANIFEST}); build one with "
                             "`ragsc distill cache`")
        if not manifest["complete"]:
            raise InputError(f"{self.path}: an unfinished teacher store ({manifest['items']} items so far); "
                             "run `ragsc distill cache` again to finish it")
        self.manifest = manifest
        self.recipe = DataRecipe(**manifest["recipe"])
        self.labels: list[str] = manifest["labels"]
        self._tensors: dict[str, torch.Tensor] | None = None
        self._keys: list[str] | None = None

    @property
    def teacher(self) -> dict:
        """``{"spec", "fingerprint", "dim"}`` of the teacher that computed the store."""
        return self.manifest["teacher"]

    def __len__(self) -> int:
        return int(self.manifest["items"])

    @property
    def keys(self) -> list[str]:
        self._load()
        return self._keys  # type: ignore[return-value]

    def tensors(self) -> dict[str, torch.Tensor]:
        """``image``, ``text`` ``[N, D]``, ``has_image``, ``has_text`` (bool), ``label`` ``[N]``, and
        ``views`` ``[N, V, D]`` / ``tokens`` when stored."""
        self._load()
        return self._tensors  # type: ignore[return-value]

    def check_teacher(self, teacher) -> None:
        """Raise :class:`InputError` unless ``teacher`` is the model that computed this store."""
        if teacher.fingerprint != self.teacher["fingerprint"]:
            raise InputError(f"{self.path} holds the outputs of {self.teacher['spec']} "
                             f"({self.teacher['fingerprint']}), not of {teacher.spec} "
                             f"({teacher.fingerprint})")

    def inputs(self) -> list[StoreItem]:
        """The source's items again, in store order, each checked against its stored key (a source that
        changed since the store was built is refused)."""
        items, _ = source_items(self.recipe)
        out = list(items)
        if [x.key for x in out] != self.keys:
            raise InputError(f"{self.recipe.source} no longer holds the items {self.path} was computed from; "
                             "rebuild the store")
        return out

    def _load(self) -> None:
        if self._tensors is not None:
            return
        from safetensors import SafetensorError, safe_open

        parts: dict[str, list[torch.Tensor]] = {}
        keys: list[str] = []
        for shard in self.manifest["shards"]:
            f = self.path / shard["file"]  # a plain shard-NNNNN.safetensors name (read_manifest checked it)
            if f.is_symlink():  # a link could point at another store's files, or anywhere
                raise InputError(f"{f}: a link, not a shard of the teacher store")
            try:
                with safe_open(str(f), framework="pt") as h:
                    meta = h.metadata() or {}
                    shard_keys = json.loads(meta.get("keys", "[]"))
                    for name in h.keys():
                        parts.setdefault(name, []).append(h.get_tensor(name))
            except (OSError, ValueError, SafetensorError) as exc:
                raise InputError(f"{f}: a missing or corrupt shard of the teacher store: {exc}") from None
            if len(shard_keys) != shard["count"]:
                raise InputError(f"{f}: {len(shard_keys)} items, the manifest says {shard['count']}")
            keys += shard_keys
        t = {k: torch.cat(v) for k, v in parts.items()}
        for flag in ("has_image", "has_text"):
            t[flag] = t[flag].bool()
        self._tensors, self._keys = t, keys


def image_array(items: list[StoreItem], size: int, channels: int = 3) -> torch.Tensor:
    """``[N, channels, size, size]`` float in [0, 1] of the items' images (a student's input)."""
    out = np.zeros((len(items), size, size, channels), dtype=np.float32)
    for i, x in enumerate(items):
        if x.image is None:
            raise InputError(f"item {i} ({x.key[:12]}) has no image")
        img = x.image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
        a = np.asarray(img, dtype=np.float32) / 255.0
        out[i] = a[..., None] if channels == 1 else a
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
