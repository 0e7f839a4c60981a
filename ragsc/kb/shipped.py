"""The default KBs' image embeddings, shipped with the assets so a first build encodes no image.

Encoding the default KBs' 3,778 easy-VQA images (:mod:`ragsc.kb.default`: the 3,578 train images of the
global KB, the first 200 test images of the local one) takes minutes on a laptop's CPU; their embeddings
are a 3 MB file, ``kb/embeddings.safetensors`` (a wheel carries it as ``ragsc/_assets/kb/``):

* one float16 tensor per split, ``easy-vqa-train`` ``[3578, dim]`` and ``easy-vqa-test`` ``[200, dim]``,
  row i the i-th image of the split (:func:`ragsc.datasets.load_easy_vqa`'s order);
* its metadata, the fingerprint they are valid for: ``encoder``, the encoder's fingerprint (the digest of
  its weights, :func:`ragsc.encoders.base.weights_digest`), and for each tensor ``<name>.digest``, the
  sha256 of its images' bytes in order (:func:`images_digest`).

:func:`shipped_embeddings` hands out the rows of a build's first n images when the fingerprint matches
(the same encoder weights, the same image files) and ``None`` otherwise, and the build then encodes as
before. The shipped vectors are a fresh encoding rounded to float16 (a relative error of about 1e-3 per
component), L2-normalised again on load.

Rebuild the file after retraining the embedded encoder, or when easy-VQA's images change::

    python -m ragsc.kb.shipped            # writes kb/embeddings.safetensors (about 6 minutes on 2 cores)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

log = logging.getLogger("ragsc.kb")

SHIPPED_FILE = "embeddings.safetensors"
SHIPPED_ENCODER = "embedded"  # the encoder whose vectors are shipped
# what is shipped: the tensor name -> (easy-VQA split, first n images; None: all), from the recipes
SHIPPED_PARTS = {"easy-vqa-train": ("train", None), "easy-vqa-test": ("test", 200)}


def images_digest(paths: Sequence[str | Path]) -> str:
    """sha256 (32 hex digits) of the images' bytes, in order (each length-prefixed)."""
    h = hashlib.sha256()
    for p in paths:
        data = Path(p).read_bytes()
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:32]


def shipped_path() -> Path:
    """Where the shipped embeddings are (``kb/embeddings.safetensors`` in the assets)."""
    from ragsc._assets import asset_dir

    return asset_dir("kb") / SHIPPED_FILE


def _split_paths(split: str, first: int | None) -> list[Path]:
    from ragsc.datasets import load_easy_vqa

    photos = load_easy_vqa(split)
    return [x.path for x in photos[: len(photos) if first is None else first]]


def shipped_embeddings(encoder, split: str, paths: Sequence[str | Path],
                       file: str | Path | None = None) -> torch.Tensor | None:
    """The shipped embeddings ``[len(paths), dim]`` (float32, unit norm) of ``split``'s first images, or
    ``None`` when they do not apply.

    Parameters
    ----------
    encoder
        The encoder the KB is built by; the vectors apply only if its fingerprint is the shipped one.
    split
        The easy-VQA split (``"train"`` or ``"test"``).
    paths
        The images to embed: they must be the split's first ``len(paths)`` images, at most the shipped
        number, and the shipped images' bytes must hash to the shipped digest.
    file
        The safetensors file (default: :func:`shipped_path`).

    Returns
    -------
    torch.Tensor or None
        ``None`` when the file is missing, the encoder or the images differ, or more images are asked for
        than shipped: the caller encodes them.
    """
    from safetensors import safe_open

    path = Path(file) if file is not None else shipped_path()
    if not path.is_file():
        return None
    name = f"easy-vqa-{split}"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if name not in f.keys() or meta.get("encoder") != encoder.fingerprint:
            return None
        rows = f.get_slice(name).get_shape()[0]
        if len(paths) > rows:
            return None
        shipped = _split_paths(split, rows)
        if [str(p) for p in paths] != [str(p) for p in shipped[: len(paths)]]:
            return None
        if images_digest(shipped) != meta.get(f"{name}.digest"):
            log.info(f"{path}: the easy-VQA {split} images differ from the shipped ones; encoding them")
            return None
        x = f.get_tensor(name)[: len(paths)]
    return torch.nn.functional.normalize(x.float(), dim=-1)


def write_shipped(file: str | Path | None = None, encoder=None, parts: dict | None = None,
                  progress: bool = True) -> Path:
    """Encode the shipped images with ``encoder`` (default: the embedded one) and write the file.

    Parameters
    ----------
    file
        Where to write (default: :func:`shipped_path`, the repository's ``kb/`` folder).
    encoder
        The encoder (its fingerprint goes into the metadata).
    parts
        Tensor name -> (split, first n images or None), default :data:`SHIPPED_PARTS` (tests: fewer).
    progress
        Show a progress bar while encoding.

    Returns
    -------
    Path
        The file written (atomically: a killed run leaves the old one).
    """
    from safetensors.torch import save_file

    from ragsc.encoders import load_encoder

    encoder = encoder if encoder is not None else load_encoder(SHIPPED_ENCODER)
    path = Path(file) if file is not None else shipped_path()
    tensors, meta = {}, {"encoder": encoder.fingerprint, "encoder_spec": encoder.spec,
                         "recipe": "python -m ragsc.kb.shipped (ragsc.kb.shipped.write_shipped)"}
    for name, (split, first) in (SHIPPED_PARTS if parts is None else parts).items():
        paths = _split_paths(split, first)
        emb = encoder.encode_images(paths, progress=progress).embeddings
        tensors[name] = emb.to(torch.float16).contiguous()
        meta[f"{name}.digest"] = images_digest(paths)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


if __name__ == "__main__":
    print(f"wrote {write_shipped()}")
