"""Task metrics from the field's libraries: BLEU (sacrebleu), PSNR / SSIM (scikit-image), and the
simple ones (accuracy, recall@k, embedding cosine for sentence similarity).

Every metric takes a batch and returns per-item values as a numpy array (averaging is the caller's
choice), and checks its inputs: mismatched lengths or shapes raise :class:`~ragsc.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ragsc.errors import InputError


def _same_length(a: Sequence, b: Sequence, what: str) -> None:
    if len(a) != len(b):
        raise InputError(f"{what}: {len(a)} hypotheses but {len(b)} references")


def bleu(hypotheses: Sequence[str], references: Sequence[str], max_order: int = 4) -> np.ndarray:
    """Sentence BLEU-``max_order`` in [0, 1] per pair (sacrebleu, effective order for short sentences)."""
    from sacrebleu.metrics import BLEU

    _same_length(hypotheses, references, "bleu")
    metric = BLEU(max_ngram_order=max_order, effective_order=True)
    return np.array([metric.sentence_score(h, [r]).score / 100.0 for h, r in zip(hypotheses, references)])


def sentence_similarity(hypotheses: Sequence[str], references: Sequence[str], encoder=None) -> np.ndarray:
    """Cosine of sentence embeddings per pair (default: the embedded encoder's MiniLM text tower).

    An empty hypothesis (e.g. the digital baseline's fallback after a failed CRC) scores 0.
    """
    _same_length(hypotheses, references, "sentence_similarity")
    if encoder is None:
        from ragsc.encoders import load_encoder

        encoder = load_encoder("embedded")
    out = np.zeros(len(hypotheses))
    keep = [i for i, h in enumerate(hypotheses) if isinstance(h, str) and h.strip()]
    if keep:
        h = encoder.encode_texts([hypotheses[i] for i in keep]).embeddings
        r = encoder.encode_texts([references[i] for i in keep]).embeddings
        out[keep] = (h * r).sum(-1).numpy()
    return out


def _pixels(im) -> np.ndarray:
    arr = np.asarray(im.convert("RGB") if isinstance(im, Image.Image) else im)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise InputError(f"images must be PIL images or uint8 arrays HxW[x3], got {arr.dtype} {arr.shape}")
    return arr


def _image_pairs(decoded: Sequence, originals: Sequence, what: str):
    _same_length(decoded, originals, what)
    for d, o in zip(decoded, originals):
        a, b = _pixels(d), _pixels(o)
        if a.shape != b.shape:
            raise InputError(f"{what}: decoded image {a.shape} and original {b.shape} differ in size")
        yield a, b


def psnr(decoded: Sequence, originals: Sequence) -> np.ndarray:
    """PSNR in dB per image pair (8-bit range); identical images give ``inf``."""
    from skimage.metrics import peak_signal_noise_ratio

    out = []
    for a, b in _image_pairs(decoded, originals, "psnr"):
        out.append(np.inf if np.array_equal(a, b) else peak_signal_noise_ratio(b, a, data_range=255))
    return np.array(out)


def ssim(decoded: Sequence, originals: Sequence) -> np.ndarray:
    """SSIM per image pair (scikit-image, colour images over channels; window shrinks for tiny images)."""
    from skimage.metrics import structural_similarity

    out = []
    for a, b in _image_pairs(decoded, originals, "ssim"):
        side = min(7, *a.shape[:2])
        if side < 3:
            raise InputError(f"ssim needs images of at least 3x3 pixels, got {a.shape[:2]}")
        win = side if side % 2 else side - 1  # the largest odd window that fits
        out.append(structural_similarity(b, a, data_range=255, win_size=win,
                                         channel_axis=-1 if a.ndim == 3 else None))
    return np.array(out)


def ms_ssim(decoded: Sequence, originals: Sequence) -> np.ndarray:
    """MS-SSIM per image pair (``pytorch-msssim``: five scales, Gaussian window, 8-bit range).

    The window is 11 pixels where the image's smaller side exceeds 160 (the standard setting); a smaller
    image gets the largest odd window its four downsamplings leave room for (at least 3, so sides over 32),
    a side of 11..32 pixels is scored by single-scale SSIM (11-pixel window), and a smaller one is ``nan``.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim
    from pytorch_msssim import ssim as _ssim

    out = []
    for a, b in _image_pairs(decoded, originals, "ms_ssim"):
        side = min(a.shape[:2])
        x, y = (torch.from_numpy(np.atleast_3d(v).astype(np.float32)).permute(2, 0, 1)[None] for v in (a, b))
        win = min(11, (side - 1) // 16 + 1)  # the largest window with (win - 1) * 16 < side ...
        win -= 1 - win % 2  # ... that is odd
        if side > 32 and win >= 3:
            out.append(float(_ms_ssim(x, y, data_range=255, win_size=win)))
        elif side >= 11:
            out.append(float(_ssim(x, y, data_range=255)))
        else:
            out.append(float("nan"))
    return np.array(out)


def accuracy(predictions: Sequence, targets: Sequence) -> np.ndarray:
    """1.0 where the prediction equals the target (strings compared case- and space-insensitively)."""
    _same_length(predictions, targets, "accuracy")
    norm = lambda x: " ".join(x.lower().split()) if isinstance(x, str) else x  # noqa: E731
    return np.array([float(norm(p) == norm(t)) for p, t in zip(predictions, targets)])


def recall_at_k(retrieved: Sequence[Sequence], relevant: Sequence, k: int) -> np.ndarray:
    """1.0 where the relevant item (or any of a set of relevant items) is among the first ``k`` retrieved."""
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    _same_length(retrieved, relevant, "recall_at_k")
    out = []
    for got, rel in zip(retrieved, relevant):
        rel_set = set(rel) if isinstance(rel, (set, frozenset, list, tuple)) else {rel}
        out.append(float(bool(rel_set & set(list(got)[:k]))))
    return np.array(out)
