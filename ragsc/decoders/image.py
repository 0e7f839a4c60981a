"""Image decoder: the received embedding (and, with RAG, the retrieved neighbours' pixels) -> an image.

:class:`ImageDecoderNet` is a small conv generator trained by ``ragsc decoders train`` on easy-VQA
train images under channel noise: a linear map lifts the embedding to a 4x4 grid, four
upsampling blocks (width halving as resolution doubles) reach 64x64, and a fusion stage mixes in the context image (the rank-weighted
mean of the retrieved neighbours' pixels) with a has-context flag. Trained with the context dropped
half the time, so one network serves RAG on and off. :func:`retrieved_image` is the
retrieval-only baseline (the top neighbour's image as is).
"""

from __future__ import annotations

import torch
from PIL import Image
from torch import nn

from ragsc.decoders.context import Context, item_pixels, pooled
from ragsc.errors import InputError


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1),
                         nn.GroupNorm(4, cout), nn.SiLU())


class ImageDecoderNet(nn.Module):
    """``(z [N, dim], context [N, 3, S, S], has_context [N]) -> pixels [N, 3, S, S]`` in [0, 1] (S = 64)."""

    def __init__(self, dim: int = 384, size: int = 64, width: int = 16) -> None:
        super().__init__()
        if size != 64:
            raise InputError("the image decoder generates 64x64 images")
        self.size, self.width = size, width
        self.lift = nn.Linear(dim, 8 * width * 16)
        self.up = nn.Sequential(_up(8 * width, 6 * width), _up(6 * width, 4 * width), _up(4 * width, 2 * width),
                                _up(2 * width, width))
        self.fuse = nn.Sequential(nn.Conv2d(width + 4, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.SiLU(), nn.Conv2d(width, 3, 1))

    def forward(self, z: torch.Tensor, context: torch.Tensor, has_context: torch.Tensor) -> torch.Tensor:
        x = self.up(self.lift(z).view(z.shape[0], 8 * self.width, 4, 4))
        flag = has_context.view(-1, 1, 1, 1).expand(-1, 1, self.size, self.size)
        return torch.sigmoid(self.fuse(torch.cat([x, context * flag, flag], dim=1)))


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """``[N, 3, H, W]`` in [0, 1] -> PIL images."""
    arr = (pixels.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]


def context_pixels(context: Context, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-weighted mean pixels of each row's retrieved image items ``[N, 3, S, S]`` and has-context ``[N]``."""
    rows = []
    for hits in context.hits:
        pix = [p for p in (item_pixels(h.item, size) for h in hits) if p is not None]
        rows.append(torch.stack(pix) if pix else torch.zeros(0, 3, size, size))
    return pooled(rows, (3, size, size))


def retrieved_image(context: Context, size: int = 64) -> list[Image.Image | None]:
    """The retrieval-only baseline: each row's best-ranked neighbour that has an image."""
    out = []
    for hits in context.hits:
        pix = next((p for p in (item_pixels(h.item, size) for h in hits) if p is not None), None)
        out.append(None if pix is None else to_pil(pix[None])[0])
    return out


class ImageDecoder:
    """The receiver's image decoder. Call ``decoder(received [N, D], context=None) -> list[PIL.Image]``."""

    def __init__(self, net: ImageDecoderNet) -> None:
        self.net = net.eval()

    @torch.no_grad()
    def pixels(self, received: torch.Tensor, context: Context | None = None) -> torch.Tensor:
        if received.ndim != 2:
            raise InputError(f"the image decoder takes received embeddings [N, D], got shape {tuple(received.shape)}")
        n, s = received.shape[0], self.net.size
        if context is None:
            ctx, has = torch.zeros(n, 3, s, s), torch.zeros(n)
        else:
            context.check(n)
            ctx, has = context_pixels(context, s)
        return self.net(received.float(), ctx, has)

    def __call__(self, received: torch.Tensor, context: Context | None = None) -> list[Image.Image]:
        return to_pil(self.pixels(received, context))
