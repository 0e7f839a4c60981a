"""Image decoder: the received embedding (and, with RAG, the retrieved neighbours' pixels) -> an image.

:class:`ImageDecoderNet` is a small conv generator trained by ``ragsc decoders train`` on easy-VQA
train images under channel noise: a linear map lifts the embedding to a 4x4 grid, four
upsampling blocks (width halving as resolution doubles) reach 64x64, and a fusion stage mixes in the
context: the best neighbour's pixels, the rank-weighted mean of all neighbours' pixels, a
has-context flag and the best neighbour's retrieval score (a cosine: near 1 when the KB holds the
sent image itself, which the generator then learns to copy). Trained with the context dropped
half the time, so one network serves RAG on and off. :func:`retrieved_image` is the
retrieval-only baseline (the top neighbour's image as is).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from ragsc import checks
from ragsc.config import MAX_DIM
from ragsc.decoders.arch import check_positive
from ragsc.decoders.context import Context, item_pixels, pooled
from ragsc.errors import ConfigError, InputError


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                         nn.GroupNorm(4, cout), nn.SiLU())


@dataclass(frozen=True)
class ImageDecoderConfig:
    """The architecture of an :class:`ImageDecoderNet` (the defaults are the shipped decoder's).

    Parameters
    ----------
    dim
        Size of the embeddings it reads (the encoder's).
    size
        Side of the images it draws, in pixels; only 64 (four doublings of the 4x4 grid).
    width
        Channels of the last upsampling block; the blocks before have 6, 4 and 2 times as many, the
        4x4 grid 8 times.
    """

    dim: int = 384
    size: int = 64
    width: int = 16

    def __post_init__(self) -> None:
        check_positive(self, "dim", high=MAX_DIM)
        check_positive(self, "size")
        check_positive(self, "width", high=1024)  # the 4x4 grid has 8 * width channels
        if self.size != 64:  # an InputError, as ImageDecoderNet(size=...) raised before configs existed
            raise InputError("the image decoder generates 64x64 images")
        if self.width % 4:  # GroupNorm(4, c) on every block needs channels divisible by 4
            raise ConfigError(f"ImageDecoderConfig.width must be a multiple of 4, got {self.width}")


class ImageDecoderNet(nn.Module):
    """``(z [N, dim], context [N, 6, S, S], has_context [N], top_score [N])`` -> pixels ``[N, 3, S, S]``
    in [0, 1].

    ``context`` = best neighbour's pixels and the neighbours' rank-weighted mean (S = 64). Built from an
    :class:`ImageDecoderConfig`, kept as ``self.config``.
    """

    def __init__(self, config: ImageDecoderConfig) -> None:
        if not isinstance(config, ImageDecoderConfig):
            raise ConfigError(f"ImageDecoderNet is built from an ImageDecoderConfig, "
                              f"got {type(config).__name__}")
        super().__init__()
        self.config = config
        width = config.width
        self.lift = nn.Linear(config.dim, 8 * width * 16)
        self.up = nn.Sequential(_up(8 * width, 6 * width), _up(6 * width, 4 * width),
                                _up(4 * width, 2 * width), _up(2 * width, width))
        self.fuse = nn.Sequential(nn.Conv2d(width + 8, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, 3, 1))

    def forward(self, z: torch.Tensor, context: torch.Tensor, has_context: torch.Tensor,
                top_score: torch.Tensor) -> torch.Tensor:
        width, size = self.config.width, self.config.size
        x = self.up(self.lift(z).view(z.shape[0], 8 * width, 4, 4))
        flag = has_context.view(-1, 1, 1, 1).expand(-1, 1, size, size)
        score = (top_score * has_context).view(-1, 1, 1, 1).expand(-1, 1, size, size)
        return torch.sigmoid(self.fuse(torch.cat([x, context * flag, flag, score], dim=1)))


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """``[N, 3, H, W]`` in [0, 1] -> PIL images."""
    arr = (pixels.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]


def context_pixels(context: Context, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of retrieved image items: ``[N, 6, S, S]`` (best neighbour's pixels, rank-weighted mean),
    has-context ``[N]`` and the best neighbour's score ``[N]``."""
    rows, best, scores = [], [], torch.zeros(len(context.hits))
    for i, hits in enumerate(context.hits):
        found = [(h, p) for h, p in ((h, item_pixels(h.item, size)) for h in hits) if p is not None]
        rows.append(torch.stack([p for _, p in found]) if found else torch.zeros(0, 3, size, size))
        best.append(found[0][1] if found else torch.zeros(3, size, size))
        # the KB's own cosine: a HybridRetriever's fused (RRF) score is not one, it keeps the KB's in kb_score
        top = found[0][0] if found else None
        scores[i] = 0.0 if top is None else float(top.score if top.kb_score is None else top.kb_score)
    mean, has = pooled(rows, (3, size, size))
    return torch.cat([torch.stack(best), mean], dim=1), has, scores


def retrieved_image(context: Context, size: int = 64) -> list[Image.Image | None]:
    """The retrieval-only baseline: each row's best-ranked neighbour that has an image."""
    out = []
    for hits in context.hits:
        pix = next((p for p in (item_pixels(h.item, size) for h in hits) if p is not None), None)
        out.append(None if pix is None else to_pil(pix[None])[0])
    return out


class ImageDecoder:
    """The receiver's image decoder: retrieve or generate.

    Call ``decoder(received [N, D], context=None) -> list[PIL.Image]``. With context, an item whose best
    retrieved image scores at least ``copy_threshold`` (cosine to the received embedding) is shown as
    that image — the KB holds what was sent, or something as close as the link can tell — and the
    generator draws the others. ``copy_threshold=None`` always generates. The default 0.7 maximised mean
    PSNR on a validation split (seed 1, 100 easy-VQA test images, AWGN and Rayleigh at -5..10 dB:
    20.2 dB against 15.8 dB for the generator alone; 0.6 gave 20.1, 0.9 18.9, always copying 19.3).
    """

    def __init__(self, net: ImageDecoderNet, copy_threshold: float | None = 0.7) -> None:
        if copy_threshold is not None:  # a cosine; NaN would silently never copy
            copy_threshold = checks.real(copy_threshold, "copy_threshold", -1.0, 1.0)
        self.net, self.copy_threshold = net.eval(), copy_threshold

    @torch.no_grad()
    def pixels(self, received: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        if received.ndim != 2:
            raise InputError(f"the image decoder takes received embeddings [N, D], "
                             f"got shape {tuple(received.shape)}")
        n, s = received.shape[0], self.net.config.size
        if context is None:
            ctx, has, score = torch.zeros(n, 6, s, s), torch.zeros(n), torch.zeros(n)
        else:
            context.check(n)
            ctx, has, score = context_pixels(context, s)
        out = self.net(received.float(), ctx, has, score)
        if self.copy_threshold is not None:
            copy = (has > 0) & (score >= self.copy_threshold)
            out[copy] = ctx[copy, :3]
        return out

    def __call__(self, received: torch.Tensor, context: Context | None = None) -> list[Image.Image]:
        return to_pil(self.pixels(received, context))
