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
from ragsc.registry import ENCODERS


def load_encoder(spec: str = "embedded", *, device: str = "cpu", batch_size: int = 64) -> MultimodalEncoder:
    """Build the encoder a spec string names (its prefix's loader in :data:`ragsc.registry.ENCODERS`).

    Parameters
    ----------
    spec
        ``"embedded"``, ``"open_clip:..."``, ``"hf:..."``, ``"student:..."``, ``"compressed:..."`` (see the
        module docstring) or a prefix registered with :meth:`ragsc.registry.Registry.register`.
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
    entry, rest = ENCODERS.split(spec)
    return entry.load()(rest, spec=spec.strip(), device=device, batch_size=batch_size)


def backends() -> dict[str, str]:
    """Every encoder prefix and how a spec of it is written."""
    return {e.prefix: e.help for e in ENCODERS.entries()}


__all__ = ["Encoded", "MultimodalEncoder", "backends", "load_encoder"]
