"""``ragsc decoders train`` pieces on a tiny synthetic data set: the three trainers, the channel, neighbours,
config."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ragsc.channel import PCAOrdering
from ragsc.decoders import (
    AnswerHead,
    AnswerHeadConfig,
    Decoders,
    ImageDecoderConfig,
    ImageDecoderNet,
    TextGRU,
    TextGRUConfig,
    Vocab,
    load_decoders,
    save_decoders,
)
from ragsc.decoders.train import (
    NoisyChannel,
    TrainDecodersConfig,
    neighbours,
    train_decoders,
    train_image,
    train_text,
    train_vqa,
)
from ragsc.errors import ConfigError

DIM = 384
SENTENCES = ["a red triangle", "a picture of a blue circle", "Trust, but verify.", "the cat sat on the mat",
             "a green rectangle on a white background", "It's a test."]
CAPTIONS = ["a red triangle", "a blue circle", "a green rectangle", "a red circle"] * 2


def _unit(n: int, gen: torch.Generator) -> torch.Tensor:
    return F.normalize(torch.randn(n, DIM, generator=gen), dim=-1)


def _text_embed(texts: list[str]) -> torch.Tensor:
    """Deterministic stand-in for a text tower."""
    seeds = [sum(map(ord, t)) + 7 * len(t) for t in texts]
    return torch.stack([_unit(1, torch.Generator().manual_seed(s))[0] for s in seeds])


@pytest.fixture(scope="module")
def data() -> dict:
    gen = torch.Generator().manual_seed(0)
    qa = [(0, "what color is the shape?", "red"), (1, "what shape is this?", "circle"),
          (2, "is there a triangle?", "no"), (3, "what color is the shape?", "red"),
          (4, "is there a triangle?", "yes"), (5, "what shape is this?", "circle")]
    return {
        "train": [SimpleNamespace(caption=c) for c in CAPTIONS],
        "images": _unit(8, gen),
        "pixels": torch.rand(8, 3, 64, 64, generator=gen),
        "sentences": SENTENCES,
        "texts": _text_embed(SENTENCES),
        "qa": qa,
    }


@pytest.fixture(scope="module")
def cfg() -> TrainDecodersConfig:
    return TrainDecodersConfig(text_steps=5, image_steps=3, vqa_steps=5, batch_size=4)


@pytest.fixture(scope="module")
def pca(data) -> PCAOrdering:
    return PCAOrdering.fit(torch.cat([data["images"], data["texts"]]))


def test_config_defaults_and_validation():
    cfg = TrainDecodersConfig()
    assert cfg.encoder == "embedded" and cfg.context_k == 4 and cfg.context_dropout == 0.5
    with pytest.raises(ConfigError, match="text_stpes"):
        TrainDecodersConfig(text_stpes=5)
    with pytest.raises(ConfigError, match="text_steps"):
        TrainDecodersConfig(text_steps=0)
    with pytest.raises(ConfigError, match="batch_size"):
        TrainDecodersConfig(batch_size=1)
    with pytest.raises(ConfigError, match="context_dropout"):
        TrainDecodersConfig(context_dropout=1.5)
    with pytest.raises(ConfigError, match="held_fraction"):
        TrainDecodersConfig(held_fraction=-0.1)


@pytest.mark.parametrize("parts", [("audio",), (), ("text", "images")])
def test_train_decoders_rejects_unknown_parts(parts, tmp_path):
    with pytest.raises(ConfigError, match="text, image, vqa"):
        train_decoders(tmp_path / "d.safetensors", TrainDecodersConfig(), progress=False, parts=parts)
    assert not (tmp_path / "d.safetensors").exists()


def test_noisy_channel_is_seeded_and_noisy(data, pca, cfg):
    x = data["images"][:4]
    a, b = NoisyChannel(pca, cfg)(x), NoisyChannel(pca, cfg)(x)
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert torch.equal(a, b)  # same seed, same draws
    assert not torch.allclose(a, x, atol=1e-3)
    ch = NoisyChannel(pca, cfg)
    assert not torch.equal(ch(x), ch(x))  # successive draws differ
    other = NoisyChannel(pca, cfg.model_copy(update={"seed": 1}))(x)
    assert not torch.equal(a, other)


def test_noisy_channel_high_snr_is_nearly_clean(data, pca):
    cfg = TrainDecodersConfig(snr_min_db=60, snr_max_db=60, k_symbols=(DIM // 2,))
    rx = NoisyChannel(pca, cfg)(data["images"])
    assert F.cosine_similarity(rx, data["images"]).min() > 0.99


def test_neighbours_by_inner_product_and_exclude():
    gen = torch.Generator().manual_seed(1)
    pool = _unit(10, gen)
    q = pool[[2, 7, 2]]
    nb = neighbours(q, pool, 3)
    assert nb.shape == (3, 3) and nb[:, 0].tolist() == [2, 7, 2]  # each row is its own nearest
    expected = (q @ pool.T).argsort(dim=1, descending=True)[:, :3]
    assert torch.equal(nb, expected)
    exclude = [2, 7, 5]
    ex = neighbours(q, pool, 3, exclude=torch.tensor(exclude))
    order = (q @ pool.T).argsort(dim=1, descending=True).tolist()
    assert ex.tolist() == [[j for j in row if j != e][:3] for row, e in zip(order, exclude)]
    assert ex[0, 0] != 2 and ex[1, 0] != 7 and ex[2, 0] == 2  # the row itself is skipped only when excluded
    # -1: nothing excluded for that row (the KB holds the item itself)
    mixed = neighbours(q, pool, 3, exclude=torch.tensor([-1, 7, -1]))
    assert mixed[0].tolist() == order[0][:3] and mixed[2].tolist() == order[2][:3]
    assert mixed[1].tolist() == [j for j in order[1] if j != 7][:3]
    assert torch.equal(neighbours(q, pool, 3, exclude=torch.full((3,), -1)), nb)
    all_but = neighbours(q[:1], pool, 9, exclude=torch.tensor([2]))
    assert sorted(all_but[0].tolist()) == [i for i in range(10) if i != 2]


def test_train_text(data, pca, cfg):
    net, vocab, info = train_text(data, NoisyChannel(pca, cfg), cfg, progress=False)
    assert isinstance(net, TextGRU) and isinstance(vocab, Vocab) and not net.training
    assert {"red", "triangle", "Trust", ",", "It's"} <= set(vocab.words)
    assert net.config == TextGRUConfig(vocab_size=len(vocab), dim=DIM)  # the default architecture
    assert net.init[0].in_features == DIM and net.out.out_features == len(vocab) == info["vocab"]
    # five small steps: the figure is a token cross-entropy still near a uniform guess's log(vocabulary size)
    # (not a perplexity or a sum over tokens)
    assert isinstance(info["text_final_loss"], float)
    uniform = math.log(len(vocab))
    assert 0.5 * uniform < info["text_final_loss"] < uniform + 0.5, (info, len(vocab))
    gen = net.generate(data["texts"][:2])
    assert gen.shape == (2, net.config.max_len)


def test_train_text_learns(data, pca):
    """A few more steps on six sentences bring the loss well down (the trainer actually optimises)."""
    cfg = TrainDecodersConfig(text_steps=20, batch_size=6, snr_min_db=30, snr_max_db=30, lr=1e-2)
    torch.manual_seed(0)
    net, vocab, info = train_text(data, NoisyChannel(pca, cfg), cfg, progress=False)
    targets = vocab.batch(SENTENCES, net.config.max_len)
    first = TextGRU(TextGRUConfig(len(vocab), DIM)).loss(data["texts"], targets).item()
    last = net.loss(data["texts"], targets).item()
    assert first > 2.0 and info["text_final_loss"] < 0.5 * first and last < 0.3 * first, (info, first, last)


def test_train_image(data, pca, cfg):
    net, info = train_image(data, NoisyChannel(pca, cfg), cfg, progress=False)
    assert isinstance(net, ImageDecoderNet) and not net.training
    assert net.config == ImageDecoderConfig(dim=DIM)  # the default architecture
    assert net.lift.in_features == DIM
    ctx = torch.cat([data["pixels"][:2], data["pixels"][2:4]], dim=1)
    out = net(data["images"][:2], ctx, torch.tensor([1.0, 0.0]), torch.tensor([0.9, 0.0]))
    assert out.shape == (2, 3, 64, 64)
    # three small steps on uniform random pixels: the figure is a pixel MSE near a constant guess's 1/12
    # (not a PSNR, a sum or a root)
    assert abs(info["image_final_mse"] - 1 / 12) < 0.03, info


def test_train_image_learns(pca):
    """Eight images of saturated flat colours: a short training learns to use the retrieved image (the sent
    one, which the KB holds) and, less, to draw the colour from the embedding alone. A constant guess (the
    mean colour, grey) gains nothing here, so the drop is conditioning, not a bias."""
    gen = torch.Generator().manual_seed(0)
    emb = _unit(8, gen)
    colours = torch.tensor(list(itertools.product([0.0, 1.0], repeat=3)))  # the 8 corners of the RGB cube
    pix = colours.view(8, 3, 1, 1).expand(8, 3, 64, 64).contiguous()
    cfg = TrainDecodersConfig(image_steps=80, batch_size=8, snr_min_db=30, snr_max_db=30, lr=2e-2,
                              held_fraction=1.0)
    arch = ImageDecoderConfig(dim=DIM, width=4)  # a tiny generator: a few seconds
    sent, on, off = torch.cat([pix, pix], dim=1), torch.ones(8), torch.zeros(8)

    def mse(net, with_context: bool) -> float:
        with torch.no_grad():
            out = net(emb, sent, on, on) if with_context else net(emb, torch.zeros_like(sent), off, off)
        return F.mse_loss(out, pix).item()

    torch.manual_seed(0)
    untrained = ImageDecoderNet(arch).eval()
    first_on, first_off = mse(untrained, True), mse(untrained, False)
    torch.manual_seed(0)
    net, info = train_image({"images": emb, "pixels": pix}, NoisyChannel(pca, cfg), cfg, progress=False,
                            arch=arch)
    assert net.config == arch
    last_on, last_off = mse(net, True), mse(net, False)
    figures = (info, first_on, first_off, last_on, last_off)
    assert first_on > 0.2 and first_off > 0.2, figures
    assert last_on < 0.35 * first_on and info["image_final_mse"] < 0.6 * first_on, figures
    assert last_off < 0.85 * first_off, figures
    assert last_on < 0.5 * last_off, figures  # the retrieved image is used


def test_train_image_arch_must_read_the_data(data, pca, cfg):
    with pytest.raises(ConfigError, match=f"reads 16-d embeddings, the data are {DIM}-d"):
        train_image(data, NoisyChannel(pca, cfg), cfg, progress=False,
                    arch=ImageDecoderConfig(dim=16, width=4))


def test_train_vqa_learns(pca):
    """Eight images, three questions each: a short training answers them all, from the image alone (RAG
    off)."""
    colours = ["red", "blue", "green", "red", "blue", "green", "red", "blue"]
    shapes = ["circle", "triangle", "rectangle", "triangle", "circle", "rectangle", "rectangle", "circle"]
    qa = [(i, q, a) for i, (c, s) in enumerate(zip(colours, shapes))
          for q, a in (("what color is the shape?", c), ("what shape is this?", s),
                       ("is there a triangle?", "yes" if s == "triangle" else "no"))]
    emb = _unit(8, torch.Generator().manual_seed(0))
    captions = [SimpleNamespace(caption=f"a {c} {s}") for c, s in zip(colours, shapes)]
    data = {"train": captions, "images": emb, "qa": qa}
    cfg = TrainDecodersConfig(vqa_steps=30, batch_size=8, snr_min_db=30, snr_max_db=30)
    answers = sorted({a for *_, a in qa})
    image, question = emb[[i for i, _, _ in qa]], _text_embed([q for _, q, _ in qa])
    target = torch.tensor([answers.index(a) for *_, a in qa])

    def score(head) -> tuple[float, float]:
        with torch.no_grad():
            logits = head(image, question, torch.zeros(len(qa), DIM), torch.zeros(len(qa)))
        return F.cross_entropy(logits, target).item(), (logits.argmax(-1) == target).float().mean().item()

    torch.manual_seed(0)
    first_loss, first_acc = score(AnswerHead(AnswerHeadConfig(answers, dim=DIM)).eval())
    torch.manual_seed(0)
    head, info = train_vqa(data, NoisyChannel(pca, cfg), _text_embed, cfg, progress=False)
    last_loss, last_acc = score(head)
    figures = (info, first_loss, first_acc, last_loss, last_acc)
    assert head.answers == answers and first_acc < 0.4, figures
    assert last_acc >= 0.9 and last_loss < 0.3 * first_loss, figures
    assert info["vqa_final_loss"] < 0.3 * first_loss, figures


def test_train_vqa(data, pca, cfg):
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return _text_embed(texts)

    head, info = train_vqa(data, NoisyChannel(pca, cfg), embed, cfg, progress=False)
    assert isinstance(head, AnswerHead) and not head.training
    assert head.answers == ["circle", "no", "red", "yes"] and info["answers"] == 4
    assert head.config == AnswerHeadConfig(["circle", "no", "red", "yes"], dim=DIM)  # the default arch.
    assert head.mlp[0].in_features == 5 * DIM + 1
    # the questions and the distinct captions are embedded once each
    assert sorted(calls[0]) == sorted({q for _, q, _ in data["qa"]})
    assert sorted(calls[1]) == sorted(set(CAPTIONS))
    question = _text_embed(["what shape is this?"] * 3)
    logits = head(data["images"][:3], question, torch.zeros(3, DIM), torch.zeros(3))
    assert logits.shape == (3, 4)
    # five small steps: the figure is still about the cross-entropy of a uniform guess over 4 answers
    assert abs(info["vqa_final_loss"] - math.log(4)) < 0.5, info


def test_trained_parts_make_a_bundle(data, pca, cfg, tmp_path):
    ch = NoisyChannel(pca, cfg)
    text, vocab, info = train_text(data, ch, cfg, progress=False)
    image, _ = train_image(data, ch, cfg, progress=False)
    head, _ = train_vqa(data, ch, _text_embed, cfg, progress=False)
    save_decoders(Decoders(text, vocab, image, head, pca, "fp-synthetic", info), tmp_path / "d.safetensors")
    back = load_decoders(tmp_path / "d.safetensors")
    assert back.vocab.words == vocab.words and back.vqa.answers == head.answers
    assert back.encoder_fingerprint == "fp-synthetic" and back.info == info
    assert torch.equal(back.text.generate(data["texts"]), text.generate(data["texts"]))
