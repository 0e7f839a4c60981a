"""``ragsc decoders train``: train the text GRU, the image generator and the VQA answer head.

Everything is trained behind one encoder (default ``embedded``) on the default corpora, under the
channel the pipelines use: each batch goes through a real :class:`~ragsc.channel.AnalogLink` (AWGN or
Rayleigh, SNR uniform in ``[snr_min_db, snr_max_db]``, a random number of complex symbols) in the
PCA basis fitted on the global KB's content (train images and the whole text corpus). The text
decoder is trained on the corpus without the KB-only fortunes (see
:func:`ragsc.datasets.corpus.kb_only_fortunes`). The RAG context is computed the way the receiver
does it — nearest neighbours of the *received* embedding among the KB's items of the same
modality, rank-weighted — and dropped for half of each batch so one network serves RAG on and off.
For half of the images the item itself stays in the pool (the receiver's local KB holds recently
shared content, which may be sent again: the decoder learns to use an exact match when retrieval
finds one); for the other half it is excluded (novel content).
Embeddings are cached under ``RAGSC_HOME/cache``. About 13 minutes on 2 idle CPU cores.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field

from ragsc.channel import AnalogLink, PCAOrdering
from ragsc.config import Config
from ragsc.decoders.bundle import PARTS, Decoders, save_decoders
from ragsc.decoders.context import rank_weights
from ragsc.decoders.image import ImageDecoderConfig, ImageDecoderNet
from ragsc.decoders.text import TextGRU, TextGRUConfig, Vocab
from ragsc.decoders.train_data import enough_data, training_data, user_data
from ragsc.decoders.vqa import AnswerHead, AnswerHeadConfig
from ragsc.errors import ConfigError, InputError


class TrainDecodersConfig(Config):
    model_config = ConfigDict(frozen=False)

    encoder: str = "embedded"
    seed: int = 0
    text_steps: int = Field(2000, ge=1)
    image_steps: int = Field(1200, ge=1)
    vqa_steps: int = Field(2500, ge=1)
    batch_size: int = Field(64, ge=2)
    snr_min_db: float = -10.0
    snr_max_db: float = 20.0
    k_symbols: tuple[int, ...] = (24, 48, 96)
    context_k: int = Field(4, ge=1)
    context_dropout: float = Field(0.5, ge=0.0, le=1.0)
    held_fraction: float = Field(0.5, ge=0.0, le=1.0,
                                 description="share of images whose KB holds the image itself")
    lr: float = 2e-3


class NoisyChannel:
    """Random channel draws for training: AWGN / Rayleigh, uniform SNR, a random k (seeded)."""

    def __init__(self, pca: PCAOrdering, cfg: TrainDecodersConfig) -> None:
        self.pca, self.cfg, self.rng = pca, cfg, random.Random(cfg.seed)

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        link = AnalogLink(channel=self.rng.choice(["awgn", "rayleigh"]),
                          k_symbols=self.rng.choice(c.k_symbols), transform=self.pca,
                          seed=self.rng.randrange(2**31))
        return link(emb, self.rng.uniform(c.snr_min_db, c.snr_max_db)).tokens.embeddings


def neighbours(received: torch.Tensor, pool: torch.Tensor, k: int,
               exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Indices ``[N, k]`` of the nearest pool rows by inner product (``exclude[i]``: a row to skip, -1:
    none)."""
    scores = received @ pool.T
    if exclude is not None:
        rows = torch.nonzero(exclude >= 0)[:, 0]
        scores[rows, exclude[rows]] = -float("inf")
    return scores.topk(k, dim=1).indices


def _held(idx: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """``exclude`` for :func:`neighbours`: the item itself, except for a fraction ``p`` of rows whose
    item the KB already holds (recent content re-sent: retrieval may find the item itself)."""
    return torch.where(torch.rand(len(idx), generator=gen) < p, torch.full_like(idx, -1), idx)


def _drop(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=gen) >= p).float()


# ----------------------------------------------------------------------------- the three trainers


def _optimise(module: torch.nn.Module, steps: int, lr: float, batch_loss, desc: str, progress: bool,
              clip: float | None = None) -> float:
    """AdamW (weight decay 0.01) with a one-cycle schedule over ``batch_loss()``; returns the last loss."""
    from tqdm.auto import tqdm

    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    module.train()
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for _ in bar:
        loss = batch_loss()
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    module.eval()
    return loss.item()


def train_text(data: dict, channel: NoisyChannel, cfg: TrainDecodersConfig,
               progress: bool) -> tuple[TextGRU, Vocab, dict]:
    """Train a text GRU (the default architecture, :class:`TextGRUConfig`) on ``data["sentences"]``.

    Parameters
    ----------
    data
        ``sentences`` and their embeddings ``texts [N, D]`` (as :func:`training_data` returns them).
    channel
        The noisy link every batch of embeddings goes through.
    cfg
        Steps, batch size, learning rate, seed.
    progress
        Show a progress bar.

    Returns
    -------
    tuple
        The trained network (eval mode), the vocabulary built from the sentences, and the figures
        ``text_final_loss`` (token cross-entropy of the last batch) and ``vocab`` (its size).
    """
    vocab = Vocab.build(data["sentences"])
    net = TextGRU(TextGRUConfig(vocab_size=len(vocab), dim=data["texts"].shape[1]))
    targets = vocab.batch(data["sentences"], net.config.max_len)
    gen = torch.Generator().manual_seed(cfg.seed)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(len(targets), (cfg.batch_size,), generator=gen)
        return net.loss(channel(data["texts"][idx]), targets[idx])

    loss = _optimise(net, cfg.text_steps, cfg.lr, batch_loss, "text GRU", progress, clip=1.0)
    return net, vocab, {"text_final_loss": round(loss, 4), "vocab": len(vocab)}


def train_image(data: dict, channel: NoisyChannel, cfg: TrainDecodersConfig, progress: bool,
                arch: ImageDecoderConfig | None = None) -> tuple[ImageDecoderNet, dict]:
    """Train the image generator on ``data["images"]`` (embeddings ``[N, D]``) -> ``data["pixels"]``.

    Parameters
    ----------
    data
        ``images [N, D]`` and their ``pixels [N, 3, 64, 64]`` in [0, 1] (as :func:`training_data` returns
        them).
    channel
        The noisy link every batch of embeddings goes through.
    cfg
        Steps, batch size, learning rate, context size and dropout, held fraction, seed.
    progress
        Show a progress bar.
    arch
        The generator's architecture (default: :class:`ImageDecoderConfig`'s at the data's embedding size).

    Returns
    -------
    tuple
        The trained network (eval mode) and the figure ``image_final_mse`` (pixel MSE of the last batch).

    Raises
    ------
    ConfigError
        ``arch`` reads embeddings of another size than the data's.
    """
    emb, pix = data["images"], data["pixels"]
    arch = arch if arch is not None else ImageDecoderConfig(dim=emb.shape[1])
    if arch.dim != emb.shape[1]:
        raise ConfigError(f"the image decoder's architecture reads {arch.dim}-d embeddings, the data are "
                          f"{emb.shape[1]}-d")
    net = ImageDecoderNet(arch)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    w = rank_weights(cfg.context_k).view(1, -1, 1, 1, 1)

    def batch_loss() -> torch.Tensor:
        idx = torch.randint(len(emb), (cfg.batch_size,), generator=gen)
        rx = channel(emb[idx])
        nb = neighbours(rx, emb, cfg.context_k, exclude=_held(idx, cfg.held_fraction, gen))
        ctx = torch.cat([pix[nb[:, 0]], (w * pix[nb]).sum(1)], dim=1)
        top_score = (rx * emb[nb[:, 0]]).sum(-1)
        return F.mse_loss(net(rx, ctx, _drop(len(idx), cfg.context_dropout, gen), top_score), pix[idx])

    loss = _optimise(net, cfg.image_steps, cfg.lr, batch_loss, "image decoder", progress)
    return net, {"image_final_mse": round(loss, 5)}


def train_vqa(data: dict, channel: NoisyChannel, text_embed, cfg: TrainDecodersConfig,
              progress: bool) -> tuple[AnswerHead, dict]:
    """Train an answer head (the default architecture, :class:`AnswerHeadConfig`) on ``data["qa"]``.

    Parameters
    ----------
    data
        ``qa`` (image index, question, answer) triples, the image embeddings ``images [N, D]`` and the
        ``train`` items whose captions are the retrieved context (as :func:`training_data` returns them).
    channel
        The noisy link every batch of image embeddings goes through.
    text_embed
        ``list[str] -> [len, D]`` text-tower embeddings of the questions and the captions.
    cfg
        Steps, batch size (times 4 questions), learning rate, context size and dropout, held fraction, seed.
    progress
        Show a progress bar.

    Returns
    -------
    tuple
        The trained head (eval mode; its answers: the data's, sorted) and the figures ``vqa_final_loss``
        (answer cross-entropy of the last batch) and ``answers`` (how many).
    """
    qa, emb = data["qa"], data["images"]
    answers = sorted({a for _, _, a in qa})
    questions = sorted({q for _, q, _ in qa})
    q_emb = text_embed(questions)
    q_index = {q: i for i, q in enumerate(questions)}
    # the receiver retrieves image items for an image (their captions are the context)
    captions = [x.caption for x in data["train"]]
    caption_set = sorted(set(captions))
    pool_ctx = text_embed(caption_set)[[caption_set.index(c) for c in captions]]
    img_i = torch.tensor([i for i, _, _ in qa])
    q_i = torch.tensor([q_index[q] for _, q, _ in qa])
    a_i = torch.tensor([answers.index(a) for _, _, a in qa])
    head = AnswerHead(AnswerHeadConfig(answers=tuple(answers), dim=emb.shape[1]))
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    w = rank_weights(cfg.context_k).view(1, -1, 1)

    def batch_loss() -> torch.Tensor:
        b = torch.randint(len(qa), (4 * cfg.batch_size,), generator=gen)
        rx = channel(emb[img_i[b]])
        nb = neighbours(rx, emb, cfg.context_k, exclude=_held(img_i[b], cfg.held_fraction, gen))
        ctx = (w * pool_ctx[nb]).sum(1)
        return F.cross_entropy(head(rx, q_emb[q_i[b]], ctx, _drop(len(b), cfg.context_dropout, gen)), a_i[b])

    loss = _optimise(head, cfg.vqa_steps, cfg.lr, batch_loss, "VQA head", progress)
    return head, {"vqa_final_loss": round(loss, 4), "answers": len(answers)}


def train_decoders(out: str | Path, cfg: TrainDecodersConfig | None = None, progress: bool = True,
                   parts: tuple[str, ...] = PARTS, base: str | Path | None = None, data: str | None = None,
                   data_format: str | None = None) -> dict:
    """Train the decoders and the PCA basis, save them into the folder ``out``; returns the training figures.

    ``cfg`` defaults to ``TrainDecodersConfig()``. ``parts`` retrains only some decoders: the others (and
    the PCA basis they were trained in) are taken from the bundle at ``base`` (default: ``out``), so they
    stay consistent. ``out`` may be new, empty, or a decoders folder (replaced whole when the new bundle is
    complete); anything else is refused before any training. ``data`` trains the text and image decoders on
    your own content instead of the default corpora (:func:`user_data`; ``data_format`` as ``ragsc kb
    ingest --format``); the answer head is not trained on it.
    """
    from ragsc.decoders.bundle import load_decoders
    from ragsc.encoders import load_encoder
    from ragsc.saved import check_target, read_header

    cfg = cfg if cfg is not None else TrainDecodersConfig()
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ConfigError(f"parts must be some of {', '.join(PARTS)}, got {list(parts)}")
    if data is not None and "vqa" in parts:
        raise ConfigError("the VQA answer head is trained on easy-VQA's questions only; --data trains the "
                          "text and image decoders (--only text,image; photos are answered by "
                          "decoder.vqa: open)")
    kind = read_header(out)["kind"] if Path(out, "config.json").is_file() else None
    replace = kind is not None
    if replace and kind != Decoders.kind:
        raise InputError(f"{out} holds a {kind!r}, not decoders: write them into a new folder")
    check_target(out, overwrite=replace)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    encoder = load_encoder(cfg.encoder)
    kept = None
    if set(parts) != set(PARTS):
        kept = load_decoders(base or out, skip=parts)
        kept.check_encoder(encoder)
    data = (training_data(encoder, progress) if data is None
            else enough_data(user_data(encoder, data, data_format, progress), parts, cfg))
    pca = kept.pca if kept is not None else PCAOrdering.fit(torch.cat([data["images"], data["kb_texts"]]))
    channel = NoisyChannel(pca, cfg)
    info = dict(kept.info) if kept is not None else {}
    text, vocab = (kept.text, kept.vocab) if kept is not None else (None, None)
    image = kept.image if kept is not None else None
    vqa = kept.vqa if kept is not None else None
    if "text" in parts:
        text, vocab, part_info = train_text(data, channel, cfg, progress)
        info.update(part_info)
    if "image" in parts:
        image, part_info = train_image(data, channel, cfg, progress)
        info.update(part_info)
    if "vqa" in parts:
        def text_embed(texts: list[str]) -> torch.Tensor:
            return encoder.encode_texts(texts).embeddings.float()

        vqa, part_info = train_vqa(data, channel, text_embed, cfg, progress)
        info.update(part_info)
    info.update({"config": cfg.model_dump(), f"seconds_{'+'.join(parts)}": round(time.perf_counter() - t0, 1),
                 "train_images": len(data["train"]), "train_sentences": len(data["sentences"]),
                 "train_questions": len(data["qa"])})
    save_decoders(Decoders(text, vocab, image, vqa, pca, encoder.fingerprint, info), out, overwrite=replace)
    return info
