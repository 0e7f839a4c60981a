"""VQA decoders: the answer head, VQADecoder's head mode (RAG on/off) and LM mode, input validation."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from ragsc.datasets import load_easy_vqa
from ragsc.decoders import AnswerHead, AnswerHeadConfig, VQADecoder, retrieve
from ragsc.decoders.vqa import FEW_SHOT_VQA
from ragsc.errors import ConfigError, InputError

from ._fakes import FakeLM, text_context

ANSWERS = ["circle", "no", "red", "yes"]


class StubTextEncoder:
    """Text tower stand-in: hash-seeded unit vectors; counts the texts it encodes."""

    dim = 8

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode_texts(self, texts):
        self.encoded.extend(texts)
        rows = [torch.randn(self.dim, generator=torch.Generator().manual_seed(
            int(hashlib.sha256(t.encode()).hexdigest()[:8], 16))) for t in texts]
        return SimpleNamespace(embeddings=F.normalize(torch.stack(rows), dim=-1))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    enc = StubTextEncoder()
    return VQADecoder(AnswerHead(AnswerHeadConfig(ANSWERS, dim=enc.dim, hidden=16)), enc), enc


def test_answer_head_config_holds_the_answers():
    cfg = AnswerHeadConfig(ANSWERS)
    assert cfg.answers == tuple(ANSWERS) and (cfg.dim, cfg.hidden) == (384, 512)
    assert cfg == AnswerHeadConfig(tuple(ANSWERS))  # a list (as from JSON) and a tuple make the same config
    head = AnswerHead(AnswerHeadConfig(ANSWERS, dim=8, hidden=16))
    assert head.answers == ANSWERS
    assert head.mlp[-1].out_features == len(ANSWERS) and head.mlp[0].out_features == 16
    head.answers.append("maybe")  # a copy: the head's answers stay those of its config
    assert head.answers == ANSWERS


@pytest.mark.parametrize("answers, problem", [
    ([], "at least one"), (["yes", "no", "yes"], "distinct"), (["yes", ""], "non-empty strings"),
    ("yes", "non-empty strings"), (["yes", 3], "non-empty strings"),
])
def test_answer_head_config_rejects_bad_answers(answers, problem):
    with pytest.raises(ConfigError, match=problem):
        AnswerHeadConfig(answers)


def test_answer_head_config_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="AnswerHeadConfig.hidden must be an integer >= 1, got 0"):
        AnswerHeadConfig(ANSWERS, hidden=0)
    with pytest.raises(ConfigError, match="built from an AnswerHeadConfig"):
        AnswerHead(ANSWERS)


def test_answer_head_logits_shape():
    head = AnswerHead(AnswerHeadConfig(ANSWERS, dim=8, hidden=16)).eval()
    x = [F.normalize(torch.randn(3, 8), dim=-1) for _ in range(3)]
    logits = head(*x, torch.tensor([1.0, 0.0, 1.0]))
    assert logits.shape == (3, len(ANSWERS)) and torch.isfinite(logits).all()
    assert head.answers == ANSWERS and head.answers is not ANSWERS
    assert head.mlp[0].in_features == 5 * 8 + 1


def test_answer_head_ignores_context_when_flag_is_off():
    head = AnswerHead(AnswerHeadConfig(ANSWERS, dim=8, hidden=16)).eval()
    img, q = torch.randn(2, 8), torch.randn(2, 8)
    off = torch.zeros(2)
    assert torch.allclose(head(img, q, torch.randn(2, 8), off), head(img, q, torch.randn(2, 8), off))
    on = torch.ones(2)
    assert not torch.allclose(head(img, q, torch.randn(2, 8), on), head(img, q, torch.randn(2, 8), on))


def test_answers_come_from_the_vocabulary_grouped_per_image(tiny):
    dec, _ = tiny
    rx = F.normalize(torch.randn(3, 8), dim=-1)
    out = dec(rx, [["is it red?", "what shape?"], [], ["is there a circle?"]])
    assert [len(a) for a in out] == [2, 0, 1]
    # each answer is the head's argmax for its own image and question, RAG off
    qs = dec.embed_texts(["is it red?", "what shape?", "is there a circle?"])
    logits = dec.head(rx[[0, 0, 2]], qs, torch.zeros(3, 8), torch.zeros(3))
    expected = [ANSWERS[i] for i in logits.argmax(-1).tolist()]
    assert out == [expected[:2], [], expected[2:]]
    with_ctx = dec(rx, [["is it red?"], [], ["what shape?"]],
                   text_context([["a red circle"], [], ["x", "y"]]))
    assert [len(a) for a in with_ctx] == [1, 0, 1]


def test_empty_question_lists_give_empty_answers(tiny):
    dec, enc = tiny
    rx = F.normalize(torch.randn(2, 8), dim=-1)
    assert dec(rx, [[], []]) == [[], []]
    assert dec(rx, [[], []], text_context([["a"], ["b"]])) == [[], []]
    assert dec(rx[:0], []) == []
    assert enc.encoded == []  # nothing to answer, nothing encoded


def test_embed_texts_caches(tiny):
    dec, enc = tiny
    a = dec.embed_texts(["what shape?", "is it red?", "what shape?"])
    assert a.shape == (3, 8) and torch.equal(a[0], a[2])
    assert enc.encoded == ["what shape?", "is it red?"]  # each distinct text once
    b = dec.embed_texts(["is it red?"])
    assert enc.encoded == ["what shape?", "is it red?"] and torch.equal(b[0], a[1])
    assert dec.embed_texts([]).shape == (0, 8)


def test_context_embedding_pools_captions(tiny):
    dec, _ = tiny
    ctx, has = dec.context_embedding(text_context([["a red circle", "a red square"], []]))
    assert has.tolist() == [1.0, 0.0] and ctx.shape == (2, 8)
    e = dec.embed_texts(["a red circle", "a red square"])
    assert torch.allclose(ctx[0], 2 / 3 * e[0] + 1 / 3 * e[1], atol=1e-6)
    assert not ctx[1].any()


def test_validation(tiny):
    dec, _ = tiny
    rx = F.normalize(torch.randn(2, 8), dim=-1)
    with pytest.raises(InputError, match="1 question lists for 2"):
        dec(rx, [["what shape?"]])
    with pytest.raises(InputError, match="non-empty strings"):
        dec(rx, [["what shape?"], [""]])
    with pytest.raises(InputError, match="non-empty strings"):
        dec(rx, [["what shape?"], ["   "]])
    with pytest.raises(InputError, match="non-empty strings"):
        dec(rx, [["what shape?"], [3]])
    with pytest.raises(InputError, match="non-empty strings"):
        dec(rx, ["what shape?", "is it red?"])  # a bare string per image, not a list
    with pytest.raises(InputError, match=r"\[N, D\]"):
        dec(rx[0], [["what shape?"]])
    with pytest.raises(InputError, match=r"\[N, D\]"):
        dec(rx[None], [["what shape?"]])
    with pytest.raises(InputError, match="1 rows for 2"):
        dec(rx, [["what shape?"], ["is it red?"]], text_context([["a"]]))
    with pytest.raises(InputError, match="mode"):
        VQADecoder(dec.head, dec.encoder, mode="open")


def test_lm_mode_prompts_with_the_retrieved_captions(tiny):
    dec, enc = tiny
    lm = FakeLM("red", "circle", "no")
    lm_dec = VQADecoder(dec.head, enc, mode="lm", lm=lm)
    assert lm_dec.lm is lm
    rx = F.normalize(torch.randn(2, 8), dim=-1)
    questions = [["what color is the shape?", "what shape is this?"], ["is there a triangle?"]]
    ctx = text_context([["a red circle", "a picture of a red circle"], []])
    out = lm_dec(rx, questions, ctx)
    assert out == [["red", "circle"], ["no"]]
    assert lm.prompts == [
        FEW_SHOT_VQA.format(context="a red circle | a picture of a red circle",
                            question="what color is the shape?"),
        FEW_SHOT_VQA.format(context="a red circle | a picture of a red circle",
                            question="what shape is this?"),
        FEW_SHOT_VQA.format(context="(nothing)", question="is there a triangle?"),
    ]
    assert lm.prompts[0].endswith("Facts: a red circle | a picture of a red circle\n"
                                  "Question: what color is the shape?\nAnswer:")
    assert lm.kwargs == [{"max_new_tokens": 8}]  # one batched call, short answers


def test_lm_mode_without_context_uses_the_head(tiny):
    dec, enc = tiny
    lm = FakeLM("should not be used")
    lm_dec = VQADecoder(dec.head, enc, mode="lm", lm=lm)
    rx = F.normalize(torch.randn(2, 8), dim=-1)
    questions = [["is it red?"], ["what shape?", "is it red?"]]
    out = lm_dec(rx, questions)
    assert out == dec(rx, questions)
    assert lm.prompts == []


# ----------------------------------------------------------------------------- the shipped head


def _accuracy(answers, images) -> float:
    pairs = [(p, a) for row, x in zip(answers, images) for p, (_, a) in zip(row, x.questions)]
    assert len(pairs) == sum(len(x.questions) for x in images)
    return sum(p == a for p, a in pairs) / len(pairs)


@pytest.fixture(scope="module")
def test_images(embedded):
    images = load_easy_vqa("test")[:20]
    return images, embedded.encode_images([x.path for x in images]).embeddings


def test_shipped_head_answers_easy_vqa(decoders, embedded, test_images):
    images, emb = test_images
    dec = VQADecoder(decoders.vqa, embedded)
    questions = [[q for q, _ in x.questions] for x in images]
    assert "what color is the shape?" in {q for qs in questions for q in qs}
    answers = dec(emb, questions)
    assert all(a in decoders.vqa.answers for row in answers for a in row)
    assert _accuracy(answers, images) >= 0.8
    # the open questions ("what color is the shape?", "what shape does the image contain?") are answered
    # with the image's own colour and shape, not only the yes/no ones
    open_ = [(p, a) for row, x in zip(answers, images) for p, (_, a) in zip(row, x.questions)
             if a not in ("yes", "no")]
    assert len(open_) >= 20 and sum(p == a for p, a in open_) >= 0.8 * len(open_)
    said = {a for _, a in open_}
    assert said & {"red", "blue", "green"} and said & {"circle", "triangle", "rectangle"}


def test_shipped_head_with_kb_context(decoders, embedded, default_kbs, test_images):
    _, global_ = default_kbs
    images, emb = test_images
    dec = VQADecoder(decoders.vqa, embedded)
    ctx = retrieve(global_, emb, k=4, modality="image")
    answers = dec(emb, [[q for q, _ in x.questions] for x in images], ctx)
    assert _accuracy(answers, images) >= 0.8
