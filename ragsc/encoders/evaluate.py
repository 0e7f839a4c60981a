"""Retrieval scores of an encoder: image->caption and caption->image recall@1.

Captions may repeat (easy-VQA has 24 distinct captions for ~900 test images), so retrieval is scored
by meaning: image->caption ranks the *distinct* captions and is right when the top one is the image's
caption; caption->image ranks all images for each distinct caption and is right when the top image
carries that caption. With distinct captions (the photo set) this is the usual R@1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ragsc.encoders.base import MultimodalEncoder


def recall_at_1(image_emb: torch.Tensor, caption_emb: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """R@1 both ways from embeddings.

    Parameters
    ----------
    image_emb
        ``[N, dim]`` normalised image embeddings.
    caption_emb
        ``[C, dim]`` normalised embeddings of the distinct captions.
    labels
        ``[N]`` index into ``caption_emb`` of each image's caption.
    """
    sim = image_emb @ caption_emb.T  # [N, C]
    i2t = (sim.argmax(1) == labels).float().mean().item()
    present = torch.unique(labels)
    t2i = (labels[sim[:, present].argmax(0)] == present).float().mean().item()
    return {"image_to_caption_r1": i2t, "caption_to_image_r1": t2i, "n_images": len(labels),
            "n_captions": len(present), "chance_i2t": 1.0 / caption_emb.shape[0]}


def caption_retrieval(encoder: MultimodalEncoder, images: Sequence,
                      captions: Sequence[str]) -> dict[str, float]:
    """Encode ``images`` and their ``captions`` and return :func:`recall_at_1`."""
    distinct = sorted(set(captions))
    labels = torch.tensor([distinct.index(c) for c in captions])
    img = encoder.encode_images(list(images), progress=True).embeddings
    txt = encoder.encode_texts(distinct).embeddings
    return recall_at_1(img, txt, labels)


def standard_suite(encoder: MultimodalEncoder,
                   easy_vqa_limit: int | None = None) -> dict[str, dict[str, float]]:
    """The scores on the encoder card: easy-VQA test split and the captioned sample photos."""
    from ragsc.datasets import load_easy_vqa, load_photos

    test = load_easy_vqa("test")[:easy_vqa_limit]
    photos = load_photos()
    return {
        "easy_vqa_test": caption_retrieval(encoder, [x.path for x in test], [x.caption for x in test]),
        "photos": caption_retrieval(encoder, [p.pixels for p in photos], [p.caption for p in photos]),
    }
