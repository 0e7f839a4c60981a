"""Multimodal encoders: images and texts -> aligned :class:`~ragsc.types.SemanticTokens`.

Backends are chosen by a spec string (clip-retrieval's convention):

==========================================  ==================================================
``embedded``                                the default, shipped with ragsc (see ``embedded.py``)
``open_clip:ViT-B-32/laion2b_s34b_b79k``    open_clip model name / pretrained tag
``open_clip:ViT-B-32//path/to/ckpt.pt``     open_clip model name / local checkpoint file
``open_clip:local-dir:/path/to/dir``        folder with ``open_clip_config.json`` + weights
``hf:/path/to/dir`` or ``hf:org/model``     transformers CLIP / SigLIP (local folder or cache)
``student:/path/to/dir``                    a distilled student (``ragsc distill train``)
``student:embedded``                        the students of the embedded default, shipped
``compressed:/path/to/dir``                 a pruned / quantised tower (``ragsc compress encoder``)
==========================================  ==================================================
"""

from __future__ import annotations

from ragsc.encoders.base import Encoded, MultimodalEncoder
from ragsc.errors import ConfigError

BACKENDS = {
    "embedded": "EfficientNet-Lite0 + all-MiniLM-L6-v2 aligned by shipped heads (384-d, offline)",
    "open_clip": "open_clip models: open_clip:<model>/<pretrained tag or checkpoint> "
                 "or open_clip:local-dir:<dir>",
    "hf": "transformers CLIP / SigLIP: hf:<local dir or hub id>",
    "student": "a distilled student in its teacher's space: student:<dir> or student:embedded (shipped)",
    "compressed": "an encoder with a pruned / quantised tower: compressed:<dir> (ragsc compress encoder)",
}


def load_encoder(spec: str = "embedded", *, device: str = "cpu", batch_size: int = 64) -> MultimodalEncoder:
    """Build the encoder a spec string names.

    Parameters
    ----------
    spec
        ``"embedded"``, ``"open_clip:..."`` or ``"hf:..."`` (see the module docstring).
    device
        torch device for the towers.
    batch_size
        Images / texts per forward pass.

    Raises
    ------
    ConfigError
        The spec names no known backend or is malformed.
    ModelLoadError
        The backend exists but its weights cannot be loaded from where the spec points.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"encoder spec must be a non-empty string, got {spec!r}; "
                          f"known: {', '.join(BACKENDS)}")
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    if kind == "embedded":
        from ragsc.encoders.embedded import EmbeddedEncoder

        if rest:  # embedded:/path/to/heads.safetensors -> retrained heads
            return EmbeddedEncoder(heads_path=rest, batch_size=batch_size, device=device)
        return EmbeddedEncoder(batch_size=batch_size, device=device)
    if kind == "open_clip":
        from ragsc.encoders.open_clip_backend import OpenClipEncoder

        return OpenClipEncoder(spec, rest, batch_size=batch_size, device=device)
    if kind == "hf":
        from ragsc.encoders.hf_backend import HFEncoder

        return HFEncoder(spec, rest, batch_size=batch_size, device=device)
    if kind == "student":
        from ragsc._assets import asset_dir
        from ragsc.distill.students import StudentEncoder

        if not rest:
            raise ConfigError("a student spec names its folder: student:<dir> or student:embedded")
        folder = asset_dir("encoders") / "student-embedded" if rest == "embedded" else rest
        return StudentEncoder(folder, batch_size=batch_size, device=device)
    if kind == "compressed":
        from ragsc.compress.saved import CompressedEncoder

        if not rest:
            raise ConfigError("a compressed spec names its folder: compressed:<dir>")
        return CompressedEncoder(rest, batch_size=batch_size, device=device)
    raise ConfigError(
        f"unknown encoder spec {spec!r}: it must start with one of "
        + ", ".join(f"'{k}'" for k in BACKENDS)
        + " (e.g. 'embedded', 'open_clip:ViT-B-32/laion2b_s34b_b79k', 'hf:/path/to/clip')"
    )


__all__ = ["BACKENDS", "Encoded", "MultimodalEncoder", "load_encoder"]
