"""transformers backend: ``hf:<local dir or hub id>`` for CLIP and SigLIP dual encoders.

With ``HF_HUB_OFFLINE=1`` (ragsc's default) a hub id only resolves from the local cache. transformers
v5 returns an output object from ``get_image_features`` / ``get_text_features``; the pooled,
projected embedding is its ``pooler_output`` (v4 returned the tensor itself: both are handled).
Tokens are the towers' last hidden states, passed through the model's projection when it has one.
"""

from __future__ import annotations

import torch

from ragsc.encoders.base import Encoded, MultimodalEncoder
from ragsc.errors import ModelLoadError


def _pooled(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class HFEncoder(MultimodalEncoder):
    """A transformers CLIP / SigLIP model behind the ragsc encoder interface."""

    def __init__(self, spec: str, target: str, batch_size: int = 64, device: str = "cpu") -> None:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        if not target:
            raise ModelLoadError("hf spec needs a model: 'hf:/path/to/dir' or 'hf:org/model'")
        try:
            model = AutoModel.from_pretrained(target)
            self.image_processor = AutoImageProcessor.from_pretrained(target)
            self.tokenizer = AutoTokenizer.from_pretrained(target)
        except Exception as exc:  # OSError for missing files / offline hub, ValueError for bad configs
            raise ModelLoadError(
                f"cannot load transformers model from {target!r}: {exc}. ragsc runs with HF_HUB_OFFLINE=1 by "
                "default: pass a local folder, or set HF_HUB_OFFLINE=0 to allow downloads"
            ) from exc
        if len(self.tokenizer) <= len(set(self.tokenizer.all_special_ids)) + 1:
            # transformers v5 builds an empty tokenizer when the folder has no vocabulary files
            raise ModelLoadError(f"{target!r} has no tokenizer vocabulary (every text would encode the same)")
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelLoadError(f"{target!r} is a {type(model).__name__}, not a CLIP-style dual encoder")
        self.model = model.to(device).eval().requires_grad_(False)
        cfg = model.config
        dim = getattr(cfg, "projection_dim", None) or cfg.text_config.hidden_size
        self.is_siglip = "siglip" in cfg.model_type
        self.max_length = min(int(getattr(cfg.text_config, "max_position_embeddings", 77)),
                              int(getattr(self.tokenizer, "model_max_length", 10**6)))
        super().__init__(spec, dim, batch_size, device)

    def _encode_image_batch(self, images: list, return_tokens: bool) -> Encoded:
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        emb = _pooled(self.model.get_image_features(pixel_values=pixels))
        if not return_tokens:
            return Encoded(emb)
        hidden = self.model.vision_model(pixel_values=pixels).last_hidden_state
        if hasattr(self.model.vision_model, "post_layernorm") and not self.is_siglip:
            # CLIP applies it to the pooled token only
            hidden = self.model.vision_model.post_layernorm(hidden)
        proj = getattr(self.model, "visual_projection", None)
        return Encoded(emb, proj(hidden) if proj is not None else hidden)

    def _encode_text_batch(self, texts: list[str], return_tokens: bool) -> Encoded:
        # SigLIP was trained on max_length padding; CLIP on dynamic padding with a causal mask.
        padding = "max_length" if self.is_siglip else True
        batch = self.tokenizer(texts, padding=padding, truncation=True, max_length=self.max_length,
                               return_attention_mask=True, return_tensors="pt").to(self.device)
        mask = batch["attention_mask"]
        full = torch.nonzero(mask.sum(1) >= self.max_length).flatten().tolist()  # only full rows can be cut
        truncated = tuple(i for i in full
                          if len(self.tokenizer(texts[i], truncation=False)["input_ids"]) > self.max_length)
        # SigLIP's text tower takes input_ids only: pass what the tokenizer declares as model inputs
        inputs = {k: v for k, v in batch.items()
                  if k in ("input_ids", "attention_mask") and k in self.tokenizer.model_input_names}
        emb = _pooled(self.model.get_text_features(**inputs))
        if not return_tokens:
            return Encoded(emb, truncated=truncated)
        hidden = self.model.text_model(**inputs).last_hidden_state
        proj = getattr(self.model, "text_projection", None)
        tokens = proj(hidden) if proj is not None else hidden
        return Encoded(emb, tokens, mask.bool(), truncated)

    def _modality_weights(self) -> dict[str, list[torch.Tensor]]:
        named = dict(self.model.named_parameters())
        image, text = ("vision_model.", "visual_projection."), ("text_model.", "text_projection.")
        return {"image": [p for n, p in named.items() if n.startswith(image)],
                "text": [p for n, p in named.items() if n.startswith(text)]}

    def _weights(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def _fingerprint_name(self) -> str:
        return f"hf:{type(self.model).__name__}"


def load(target: str, *, spec: str, device: str = "cpu", batch_size: int = 64) -> HFEncoder:
    """The registry's loader (:data:`ragsc.registry.ENCODERS`): ``spec`` whole, ``target`` its rest."""
    return HFEncoder(spec, target, batch_size=batch_size, device=device)
