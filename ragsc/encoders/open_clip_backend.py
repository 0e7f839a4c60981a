"""open_clip backend: ``open_clip:<model>/<pretrained tag or checkpoint>`` or ``open_clip:local-dir:<dir>``.

Weights are loaded by open_clip itself (``weights_only=True`` for ``.pt`` files). Patch tokens, when
asked for, are the vision transformer's output tokens in its own width (``d`` = vision width, not
``dim``); open_clip exposes no word tokens, so text ``tokens`` are ``None``.
"""

from __future__ import annotations

import torch

from ragsc.encoders.base import Encoded, MultimodalEncoder
from ragsc.errors import ConfigError, ModelLoadError


def parse_open_clip_target(target: str) -> tuple[str, str | None]:
    """``"ViT-B-32/laion2b_s34b_b79k"`` -> ``("ViT-B-32", "laion2b_s34b_b79k")``; local-dir passes through."""
    if target.startswith("local-dir:"):
        return target, None
    name, _, pretrained = target.partition("/")
    if not name:
        raise ConfigError(
            "open_clip spec needs a model name: 'open_clip:<model>/<pretrained>' or "
            f"'open_clip:local-dir:<dir>', got {target!r}"
        )
    return name, pretrained or None


class OpenClipEncoder(MultimodalEncoder):
    """An open_clip model behind the ragsc encoder interface."""

    def __init__(self, spec: str, target: str, batch_size: int = 64, device: str = "cpu") -> None:
        import open_clip

        name, pretrained = parse_open_clip_target(target)
        try:
            # require_pretrained: open_clip would otherwise only log a warning and hand back random weights
            model, _, preprocess = open_clip.create_model_and_transforms(
                name, pretrained=pretrained, device=device, require_pretrained=True
            )
            tokenizer = open_clip.get_tokenizer(name)
        except Exception as exc:
            # open_clip raises RuntimeError / ValueError / FileNotFoundError / hub errors
            raise ModelLoadError(f"cannot load open_clip model from spec {spec!r}: {exc}") from exc
        self.model = model.eval().requires_grad_(False)
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.context_length = getattr(tokenizer, "context_length", None)
        with torch.inference_mode():
            dim = self.model.encode_text(tokenizer(["a"]).to(device)).shape[-1]
        super().__init__(spec, dim, batch_size, device)

    def _encode_image_batch(self, images: list, return_tokens: bool) -> Encoded:
        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device)
        visual = self.model.visual
        if not return_tokens or not hasattr(visual, "output_tokens"):
            return Encoded(self.model.encode_image(pixels))
        visual.output_tokens = True
        try:
            pooled, tokens = visual(pixels)
        finally:
            visual.output_tokens = False
        return Encoded(pooled, tokens)

    def _encode_text_batch(self, texts: list[str], return_tokens: bool) -> Encoded:
        ids = self.tokenizer(texts).to(self.device)
        truncated: tuple[int, ...] = ()
        if self.context_length and hasattr(self.tokenizer, "encode"):  # SimpleTokenizer: <sot> ... <eot>
            truncated = tuple(i for i, t in enumerate(texts)
                              if len(self.tokenizer.encode(t)) + 2 > self.context_length)
        return Encoded(self.model.encode_text(ids), truncated=truncated)

    def _modality_weights(self) -> dict[str, list[torch.Tensor]]:
        # open_clip: the image tower is `visual`; the rest but the logit scale / bias is the text tower
        named = dict(self.model.named_parameters())
        image = [p for n, p in named.items() if n.startswith("visual.")]
        text = [p for n, p in named.items() if not n.startswith(("visual.", "logit_"))]
        return {"image": image, "text": text}

    def _weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def _fingerprint_name(self) -> str:
        return f"open_clip:{type(self.model).__name__}"


def load(target: str, *, spec: str, device: str = "cpu", batch_size: int = 64) -> OpenClipEncoder:
    """The registry's loader (:data:`ragsc.registry.ENCODERS`): ``spec`` whole, ``target`` its rest."""
    return OpenClipEncoder(spec, target, batch_size=batch_size, device=device)
