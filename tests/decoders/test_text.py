"""Text decoders: the word vocabulary, the GRU, and TextDecoder's fast (re-ranked retrieval) and LM modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ragsc.datasets.corpus import kb_only_fortunes
from ragsc.decoders import TextDecoder, TextGRU, TextGRUConfig, Vocab, retrieve
from ragsc.decoders.text import _WORD, BOS, EOS, FEW_SHOT_DRAFT, FEW_SHOT_RAG, PAD, SPECIALS, UNK, detokenize
from ragsc.errors import ConfigError, InputError

from ._fakes import FakeLM, hits, item, text_context

SENTENCES = ["Hello, world!", "It's a test.", "the cat sat on the mat", "Never trust a smiling cat."]


# ----------------------------------------------------------------------------- Vocab


def test_vocab_specials_first_and_not_duplicated():
    v = Vocab(["<unk>", "cat", "<pad>", "dog"])
    assert v.words[:4] == list(SPECIALS)
    assert v.words[4:] == ["cat", "dog"]
    assert len(v) == 6 and v.index["cat"] == 4
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)


def test_vocab_build_by_frequency_and_max_size():
    v = Vocab.build(["b a a", "c a b"], max_size=6)
    assert v.words[4:] == ["a", "b"]  # most common first, capped at max_size words in all
    assert len(v) == 6 and "c" not in v.index


def test_vocab_round_trip_reattaches_punctuation():
    v = Vocab.build(SENTENCES)
    for s in SENTENCES:
        ids = v.encode(s, max_len=24)
        assert ids[-1] == EOS and UNK not in ids
        assert v.decode(ids) == s
    # punctuation is tokenised on its own, apostrophes stay inside words
    assert v.encode("Hello, world!", 24) == [v.index[w] for w in ("Hello", ",", "world", "!")] + [EOS]
    assert "It's" in v.index


@pytest.mark.parametrize("sentence", [
    'He said "never again" and left.',
    '"Quoted at the start," she wrote.',
    "A note (in brackets) and [another one].",
    "Wait... what?! It's late, isn't it?",
])
def test_detokenize_inverts_the_tokenizer(sentence):
    assert detokenize(_WORD.findall(sentence)) == sentence


def test_vocab_unknown_words_eos_and_specials_in_decode():
    v = Vocab.build(SENTENCES)
    ids = v.encode("Hello, Mars!", 24)
    assert ids == [v.index["Hello"], v.index[","], UNK, v.index["!"], EOS]
    assert v.decode(ids) == "Hello,!"  # UNK dropped
    # decoding stops at the first EOS; PAD / BOS / UNK are never written out
    cat, mat = v.index["cat"], v.index["mat"]
    assert v.decode([BOS, cat, PAD, UNK, mat, EOS, cat, cat]) == "cat mat"
    assert v.decode([EOS, cat]) == ""
    assert v.decode([]) == ""


def test_vocab_max_len_truncates_and_batch_pads():
    v = Vocab.build(SENTENCES)
    ids = v.encode("the cat sat on the mat", max_len=4)
    assert len(ids) == 4 and ids[-1] == EOS
    assert v.decode(ids) == "the cat sat"
    assert v.encode("", 4) == [EOS]
    b = v.batch(["the cat sat on the mat", "cat"], max_len=5)
    assert b.shape == (2, 5) and b.dtype == torch.long
    assert b[0].tolist() == v.encode("the cat sat on the mat", 5)
    assert b[1].tolist() == [v.index["cat"], EOS, PAD, PAD, PAD]


# ----------------------------------------------------------------------------- TextGRU


def _tiny_gru(vocab: Vocab, dim: int = 16, max_len: int = 10) -> TextGRU:
    torch.manual_seed(0)
    return TextGRU(TextGRUConfig(len(vocab), dim=dim, emb=32, hidden=64, max_len=max_len))


def test_text_gru_config_defaults_and_validation():
    cfg = TextGRUConfig(100)
    assert (cfg.vocab_size, cfg.dim, cfg.emb, cfg.hidden, cfg.max_len) == (100, 384, 256, 384, 24)
    net = TextGRU(TextGRUConfig(10, dim=16, emb=8, hidden=12, max_len=5))
    assert net.config == TextGRUConfig(10, dim=16, emb=8, hidden=12, max_len=5)
    assert net.init[0].in_features == 16 and net.cond.out_features == 8 and net.gru.hidden_size == 12
    assert net.embed.num_embeddings == 10 == net.out.out_features
    with pytest.raises(ConfigError, match="TextGRUConfig.hidden must be an integer >= 1, got 0"):
        TextGRUConfig(10, hidden=0)
    with pytest.raises(ConfigError, match="TextGRUConfig.max_len"):
        TextGRUConfig(10, max_len=2.5)
    with pytest.raises(ConfigError, match="special tokens"):
        TextGRUConfig(len(SPECIALS) - 1)
    with pytest.raises(ConfigError, match="built from a TextGRUConfig"):
        TextGRU(10)


def test_text_gru_shapes():
    v = Vocab.build(SENTENCES)
    net = _tiny_gru(v).eval()
    z = F.normalize(torch.randn(3, 16), dim=-1)
    max_len = net.config.max_len
    targets = v.batch(SENTENCES[:3], max_len)
    logits = net(z, targets)
    assert logits.shape == (3, max_len, len(v))
    loss = net.loss(z, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # the mean log-probability of a sentence's tokens (padding excluded) is minus its cross-entropy
    ll = net.log_likelihood(z, targets)
    assert ll.shape == (3,)
    for i in range(3):
        assert ll[i].item() == pytest.approx(-net.loss(z[i:i + 1], targets[i:i + 1]).item(), abs=1e-5)
    gen = net.generate(z)
    assert gen.shape == (3, max_len) and gen.dtype == torch.long
    # greedy: fed its own output as the targets, each generated token is the argmax of its step's logits
    assert torch.equal(net(z, gen).argmax(-1), gen)


def test_text_gru_log_likelihood_ignores_padding():
    v = Vocab.build(SENTENCES)
    net = _tiny_gru(v).eval()
    z = F.normalize(torch.randn(1, 16), dim=-1)
    short, long_ = v.batch(["cat"], 4), v.batch(["cat"], 10)
    assert torch.allclose(net.log_likelihood(z, short), net.log_likelihood(z, long_), atol=1e-5)


def test_text_gru_overfits_eight_sentences():
    sentences = ["a red triangle", "a blue circle", "the cat sat on the mat", "Never trust a smiling cat.",
                 "a green rectangle on a white background", "Trust, but verify.", "a teal circle",
                 "It's a long way to the top."]
    v = Vocab.build(sentences)
    net = _tiny_gru(v)
    gen = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(8, 16, generator=gen), dim=-1)
    targets = v.batch(sentences, net.config.max_len)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = net.loss(z, targets).item()
    for _ in range(100):
        loss = net.loss(z, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = net.loss(z, targets).item()
    assert first > 2.0 and last < 0.1 * first, (first, last)
    net.eval()
    decoded = [v.decode(row) for row in net.generate(z).tolist()]
    assert sum(d == s for d, s in zip(decoded, sentences)) >= 7, decoded
    # the embedding conditions the output: the right sentence is the most likely one for its z
    ll = torch.stack([net.log_likelihood(z, targets[j:j + 1].expand(8, -1)) for j in range(8)], dim=1)
    assert (ll.argmax(1) == torch.arange(8)).float().mean() >= 0.75


# ----------------------------------------------------------------------------- TextDecoder, fast mode


@pytest.fixture(scope="module")
def text_decoder(decoders):
    return TextDecoder(decoders.text, decoders.vocab)


def test_fast_without_context_returns_gru_drafts(text_decoder, embedded):
    sentences = ["a red triangle", "a picture of a blue circle", "a yellow rectangle on a white background"]
    emb = embedded.encode_texts(sentences).embeddings
    out = text_decoder(emb)
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(s, str) for s in out)
    assert out == text_decoder.draft(emb)
    # the trained GRU reads short caption sentences back from clean embeddings
    assert sum(o == s for o, s in zip(out, sentences)) >= 2, out
    assert text_decoder(emb[:1]) == out[:1]  # batch size 1 is the same path


def _kb_sentences(n_fortunes: int = 2) -> list[str]:
    quotes = list(kb_only_fortunes())[:n_fortunes]  # stored in the global KB, never seen by the GRU
    return ["a red triangle", "a picture of a green circle"] + quotes


def test_fast_with_kb_context_recovers_stored_sentences(text_decoder, embedded, default_kbs):
    _, global_ = default_kbs
    sentences = _kb_sentences()
    emb = embedded.encode_texts(sentences).embeddings
    ctx = retrieve(global_, emb, k=4, modality="text")
    assert [row[0].item.text for row in ctx.hits] == sentences
    assert text_decoder(emb, ctx) == sentences


def test_fast_with_kb_context_and_noise(text_decoder, embedded, default_kbs):
    """Mildly noisy received vectors still retrieve and re-rank to the sent sentence."""
    _, global_ = default_kbs
    sentences = _kb_sentences()
    emb = embedded.encode_texts(sentences).embeddings
    gen = torch.Generator().manual_seed(0)
    rx = emb + 0.02 * torch.randn(emb.shape, generator=gen)
    ctx = retrieve(global_, rx, k=4, modality="text")
    assert text_decoder(rx, ctx) == sentences


def test_rerank_weight_zero_returns_top_hit(decoders, embedded):
    emb = embedded.encode_texts(["a red triangle", "a blue circle"]).embeddings
    ctx = text_context([["a blue circle", "a red triangle", "a teal square"],
                        ["a red triangle", "a blue circle"]])
    top1 = TextDecoder(decoders.text, decoders.vocab, rerank_weight=0.0)
    assert top1(emb, ctx) == ["a blue circle", "a red triangle"]
    # retrieval top-1 is the default (the GRU favours sentences it was trained on)
    assert TextDecoder(decoders.text, decoders.vocab).rerank_weight == 0
    assert TextDecoder(decoders.text, decoders.vocab)(emb, ctx) == ["a blue circle", "a red triangle"]
    # with the re-ranker on, the GRU's likelihood of two sentences it knows overrules a wrong first rank
    reranked = TextDecoder(decoders.text, decoders.vocab, rerank_weight=1.0)
    assert reranked(emb, ctx) == ["a red triangle", "a blue circle"]
    assert reranked.rerank(emb, [["a red triangle"], []]) == ["a red triangle", ""]


def test_empty_rows_fall_back_to_the_gru(text_decoder, embedded):
    emb = embedded.encode_texts(["a red triangle", "a picture of a blue circle", "a teal circle"]).embeddings
    drafts = text_decoder.draft(emb)
    # row 0: nothing retrieved; row 1: a hit but it carries no text; row 2: a text hit
    ctx_rows = [[], hits([item("image", None, "/nonexistent.png")]), hits([item("text", "a teal circle")])]
    from ragsc.decoders import Context

    out = text_decoder(emb, Context(ctx_rows))
    assert out == [drafts[0], drafts[1], "a teal circle"]
    assert text_decoder(emb[:2], Context([[], []])) == drafts[:2]


def test_rerank_all_empty_gives_empty_strings(text_decoder, embedded):
    emb = embedded.encode_texts(["a red triangle", "a blue circle"]).embeddings
    assert text_decoder.rerank(emb, [[], []]) == ["", ""]


def test_text_decoder_validation(decoders, text_decoder, embedded):
    emb = embedded.encode_texts(["a red triangle", "a blue circle"]).embeddings
    with pytest.raises(InputError, match=r"\[N, D\]"):
        text_decoder(emb[0])
    with pytest.raises(InputError, match=r"\[N, D\]"):
        text_decoder(emb[None])
    with pytest.raises(InputError, match="mode"):
        TextDecoder(decoders.text, decoders.vocab, mode="slow")
    for weight in (float("nan"), float("inf"), -1.0):  # NaN scores silently kept retrieval's top-1
        with pytest.raises(ConfigError, match="rerank_weight must be a finite number >= 0"):
            TextDecoder(decoders.text, decoders.vocab, rerank_weight=weight)
    with pytest.raises(InputError, match="1 rows for 2"):
        text_decoder(emb, text_context([["a red triangle"]]))
    with pytest.raises(InputError, match="3 rows for 2"):
        TextDecoder(decoders.text, decoders.vocab, mode="lm", lm=FakeLM("x"))(emb, text_context([["a"]] * 3))


# ----------------------------------------------------------------------------- TextDecoder, LM mode


def test_lm_mode_prompts_list_the_retrieved_texts(decoders, embedded):
    lm = FakeLM("a red triangle", "the written message")
    dec = TextDecoder(decoders.text, decoders.vocab, mode="lm", lm=lm)
    assert dec.lm is lm  # a given LM is used, SmolLM2 is not loaded
    emb = embedded.encode_texts(["a red triangle", "Trust, but verify."]).embeddings
    rows = [["a red triangle", "a picture of a red triangle", "a red circle"],
            ["Trust, but verify.", "Trust me."]]
    out = dec(emb, text_context(rows))
    assert out == ["a red triangle", "the written message"]
    assert lm.prompts == [FEW_SHOT_RAG.format(context=" | ".join(r)) for r in rows]
    assert lm.prompts[0].endswith("Memory: a red triangle | a picture of a red triangle | a red circle\n"
                                  "Message:")
    assert "Memory: Trust, but verify. | Trust me.\nMessage:" in lm.prompts[1]


def test_lm_mode_empty_output_or_context_falls_back_to_the_draft(decoders, embedded):
    emb = embedded.encode_texts(["a red triangle", "a picture of a blue circle"]).embeddings
    drafts = TextDecoder(decoders.text, decoders.vocab).draft(emb)
    dec = TextDecoder(decoders.text, decoders.vocab, mode="lm", lm=FakeLM(""))
    assert dec(emb, text_context([["a red triangle"], ["a blue circle"]])) == drafts
    dec = TextDecoder(decoders.text, decoders.vocab, mode="lm", lm=FakeLM("from the lm"))
    assert dec(emb, text_context([[], ["a blue circle"]])) == [drafts[0], "from the lm"]


def test_lm_mode_without_context_cleans_up_drafts(decoders, embedded):
    emb = embedded.encode_texts(["a red triangle", "a picture of a blue circle"]).embeddings
    drafts = TextDecoder(decoders.text, decoders.vocab).draft(emb)
    lm = FakeLM("cleaned", "")
    out = TextDecoder(decoders.text, decoders.vocab, mode="lm", lm=lm)(emb)
    assert out == ["cleaned", drafts[1]]
    assert lm.prompts == [FEW_SHOT_DRAFT.format(draft=d) for d in drafts]
    assert all(p.endswith(f"Decoded: {d}\nMessage:") for p, d in zip(lm.prompts, drafts))
