"""ragsc.decoders.token_decoder: beam search by channel likelihood + LM prior, on a tiny LM built here."""

from __future__ import annotations

import pytest
import torch

from ragsc.channel import ChannelConfig
from ragsc.channel.token_link import TokenCodebook, TokenCodebookConfig, TokenLink
from ragsc.decoders.token_decoder import ChannelLMDecoder, KBSentences
from ragsc.errors import ConfigError, InputError

from ._tiny_lm import CORPUS, tiny_lm

SENTENCES = ["Zoë paid €12.50 at 9:45! 🙂", "the cat sat on the mat", "O'Brien & Søn: 3 × 4 = 12?",
             "日本語 テキスト", ""]


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


@pytest.fixture(scope="module")
def trained_lm():
    """The tiny LM trained on its corpus for a few seconds: it knows those sentences."""
    m = tiny_lm(seed=1)
    tok = m.tokenizer
    ids = [[tok.bos_token_id] + tok(s, add_special_tokens=False)["input_ids"] for s in sorted(set(CORPUS))]
    width = max(map(len, ids))
    batch = torch.tensor([x + [tok.eos_token_id] * (width - len(x)) for x in ids])
    opt = torch.optim.Adam(m.model.parameters(), lr=1e-2)
    m.model.train()
    for _ in range(150):
        loss = m.model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.model.eval()
    assert loss.item() < 0.5  # it learned the corpus (guards the test below against an untrained prior)
    return m


def decoder(lm, k=4, **kw):
    return ChannelLMDecoder(lm, TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), k)), **kw)


def test_any_sentence_survives_a_clean_link_exactly(lm):
    dec = decoder(lm)
    ids = dec.token_ids(SENTENCES)
    assert ids[-1] == [] and all(ids[:-1])
    rx = TokenLink(ChannelConfig(snr_db=40.0), dec.codebook)(ids)
    assert dec(rx.content) == SENTENCES  # non-ASCII, digits, emoji, punctuation: byte-level tokens


def test_without_the_prior_it_is_per_token_maximum_likelihood(lm):
    dec = decoder(lm, beam=1, lm_weight=0.0, length_candidates=1)
    ids = dec.token_ids(SENTENCES[:3])
    rx = TokenLink(ChannelConfig(snr_db=0.0, seed=3), dec.codebook)(ids)
    ml = [dec.codebook.log_likelihood(o.symbols, o.no_eff).argmax(1).tolist() for o in rx.content]
    assert dec.decode_ids(rx.content) == ml
    assert ml != [ids[i][:len(m)] for i, m in enumerate(ml)]  # 0 dB, 4 symbols/token: the channel errs


def naive_beam(dec, obs, steps):
    """The same search without a KV cache: every step re-runs the LM on each whole hypothesis."""
    v, b = len(dec.codebook), dec.beam
    hyps = [([], 0.0)]
    for t in range(steps):
        cand = []
        ll = dec.codebook.log_likelihood(obs.symbols[t:t + 1], obs.no_eff[t:t + 1])[0]
        for seq, score in hyps:
            logits = dec.lm.model(input_ids=torch.tensor([dec.start_ids + seq])).logits[0, -1, :v]
            total = score + dec.lm_weight * torch.log_softmax(logits.float(), -1) + ll
            top = total.topk(b)
            cand += [(seq + [int(i)], float(s)) for s, i in zip(top.values, top.indices)]
        hyps = sorted(cand, key=lambda c: -c[1])[:b]
    return hyps[0][0]


@torch.inference_mode()
def test_cached_batched_beam_search_equals_the_naive_search(lm):
    # a strong prior, so the LM's scores decide ties; the header's length trusted (the beam alone)
    dec = decoder(lm, k=2, beam=3, lm_weight=3.0, length_candidates=1)
    ids = dec.token_ids(["the ship is safe in the harbour", "a red triangle", "numbers like 12"])
    rx = TokenLink(ChannelConfig(snr_db=-2.0, seed=5), dec.codebook)(ids)
    got = dec.decode_ids(rx.content)  # batched: three sentences of different lengths together
    for obs, g in zip(rx.content, got):
        assert g == naive_beam(dec, obs, obs.length)


def test_readings_are_searched_in_groups_of_similar_length(lm, monkeypatch):
    # one long sentence among short ones: the short ones must not run as many LM steps as it does
    dec = decoder(lm, k=2, beam=2, length_candidates=1)
    texts = ["a red triangle", "numbers like 12", "the cat sat", "ship " * 30]
    rx = TokenLink(ChannelConfig(snr_db=3.0, seed=2), dec.codebook)(dec.token_ids(texts))
    batches = []
    search = dec._search
    monkeypatch.setattr(dec, "_search", lambda v, p: batches.append([o.length for o in v]) or search(v, p))
    got = dec.decode_ids(rx.content)
    assert len(batches) == 2 and max(batches[0]) < 10 and batches[1] == [rx.content[3].length]
    assert got == [search([o], [dec.start_ids])[0][0] for o in rx.content]  # as if each were alone


def test_the_lm_prior_repairs_channel_errors(trained_lm):
    sentences = sorted(set(CORPUS))
    # the LM was trained on BOS + sentence: start from BOS alone
    plain = decoder(trained_lm, k=2, lm_weight=0.0, prompt="")
    prior = decoder(trained_lm, k=2, lm_weight=1.0, prompt="")
    ids = plain.token_ids(sentences)
    rx = TokenLink(ChannelConfig(snr_db=0.0, seed=11), plain.codebook)(ids * 4)

    def token_accuracy(decoded):
        pairs = [(a, b) for d, s in zip(decoded, ids * 4) for a, b in zip(d, s)]
        return sum(a == b for a, b in pairs) / sum(map(len, ids * 4))

    acc_plain = token_accuracy(plain.decode_ids(rx.content))
    acc_prior = token_accuracy(prior.decode_ids(rx.content))
    print(f"token accuracy: channel alone {acc_plain:.3f}, with the prior {acc_prior:.3f}")
    assert acc_plain < 0.9 and acc_prior > acc_plain + 0.1


def test_lengths_the_header_doubts_are_decided_with_the_tokens(trained_lm):
    sentences = sorted(set(CORPUS))
    trusting = decoder(trained_lm, k=4, prompt="", length_candidates=1)
    joint = decoder(trained_lm, k=4, prompt="", length_candidates=3)
    ids = trusting.token_ids(sentences) * 4
    # a 4-symbol header at 3 dB often decodes the wrong length; the token symbols say otherwise
    rx = TokenLink(ChannelConfig(snr_db=3.0, seed=2), trusting.codebook, header_symbols=4)(ids)
    wrong = [o.length != len(x) for o, x in zip(rx.content, ids)]
    got_trusting, got_joint = trusting.decode_ids(rx.content), joint.decode_ids(rx.content)
    right_trusting = sum(len(g) == len(x) for g, x in zip(got_trusting, ids))
    right_joint = sum(len(g) == len(x) for g, x in zip(got_joint, ids))
    print(f"header length errors {sum(wrong)}/{len(ids)}; right lengths: trusting {right_trusting}, "
          f"joint {right_joint}")
    assert sum(wrong) >= 3 and right_trusting == len(ids) - sum(wrong)
    assert right_joint >= right_trusting + sum(wrong) // 3
    with pytest.raises(ConfigError, match="length_candidates"):
        decoder(trained_lm, length_candidates=0)


def test_the_prompt_is_what_the_lm_reads_first(lm):
    assert decoder(lm, prompt="").start_ids == [lm.tokenizer.bos_token_id]
    dec = decoder(lm, prompt="the cat\n")
    assert dec.start_ids == lm.tokenizer("the cat\n", add_special_tokens=False)["input_ids"]
    rx = TokenLink(ChannelConfig(snr_db=40.0), dec.codebook)(dec.token_ids(SENTENCES))
    assert dec(rx.content) == SENTENCES


def test_bad_settings_and_input(lm):
    cb = TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), 4))
    with pytest.raises(ConfigError, match="beam"):
        ChannelLMDecoder(lm, cb, beam=0)
    with pytest.raises(ConfigError, match="lm_weight"):
        ChannelLMDecoder(lm, cb, lm_weight=-1.0)
    with pytest.raises(ConfigError, match="scores"):
        ChannelLMDecoder(lm, TokenCodebook(TokenCodebookConfig(len(lm.tokenizer) + 10_000, 4)))
    with pytest.raises(InputError, match="list of strings"):
        ChannelLMDecoder(lm, cb).token_ids("one sentence")
    assert ChannelLMDecoder(lm, cb)([]) == []


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("name, value", [("lm_weight", NAN), ("lm_weight", INF), ("rag_prior", NAN),
                                         ("beam", NAN), ("beam", INF), ("beam", 2.5), ("beam", 4.0),
                                         ("length_candidates", NAN), ("length_candidates", 1.5),
                                         ("rag_neighbours", NAN), ("rag_neighbours", INF),
                                         ("max_rows", 0), ("max_rows", NAN)])
def test_settings_that_are_not_finite_numbers_of_their_kind_are_refused(lm, name, value):
    # lm_weight=nan used to decode '</s></s></s>' for any sentence; a nan beam a TypeError mid-search
    cb = TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), 4))
    with pytest.raises(ConfigError, match=f"{name} must be an? (finite number|integer).*got {value!r}"):
        ChannelLMDecoder(lm, cb, **{name: value})


@pytest.mark.parametrize("z", [NAN, INF, 0.0, -1.0])
def test_kb_sentences_need_a_finite_positive_threshold(lm, z):
    with pytest.raises(ConfigError, match="z must be a finite number > 0"):
        KBSentences(["the cat sat"], [[1, 2, 3]], z=z)


def test_a_batch_is_searched_at_most_max_rows_lm_rows_at_a_time(lm, monkeypatch):
    # twelve frames at beam 2: six rows per pass are three frames per pass, each decoded as if alone
    dec = decoder(lm, k=2, beam=2, max_rows=6)
    texts = ["a red triangle", "numbers like 12", "the cat sat", "the ship is safe"] * 3
    rx = TokenLink(ChannelConfig(snr_db=3.0, seed=2), dec.codebook)(dec.token_ids(texts))
    passes = []
    search = dec._search
    monkeypatch.setattr(dec, "_search", lambda v, p: passes.append(len(v)) or search(v, p))
    got = dec.decode_ids(rx.content)
    assert sum(passes) == 12 and max(passes) == 3
    assert got == [search([o], [dec.start_ids])[0][0] for o in rx.content]


@pytest.mark.slow
def test_smollm2_decodes_typed_sentences_over_awgn():
    """The real receiver: SmolLM2's tokenizer and prior, 8 symbols per token, sentences typed here."""
    from ragsc.decoders.lm import load_lm
    from ragsc.eval.metrics import bleu

    typed = ["Please send the updated map of the harbour before noon.",
             "A red bicycle is parked next to the library entrance.",
             "The meeting moved to Thursday at 3 pm, room 214.",
             "Ships are safe in harbor, but they were never meant to stay there."]
    lm = load_lm("smollm2")
    dec = ChannelLMDecoder(lm, TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), 8)), beam=4)
    rx = TokenLink(ChannelConfig(snr_db=10.0, seed=0), dec.codebook)(dec.token_ids(typed))
    out = dec(rx.content)
    assert bleu(out, typed, 1).mean() >= 0.9, out


# ----------------------------------------------------------------------------- RAG


KB = ["the cat sat on the mat", "please send the map before noon", "the ship is safe in the harbour",
      "a red triangle is next to a blue circle"]


def test_kb_sentences_consistent_with_the_received_symbols(lm):
    dec = decoder(lm, k=4)
    kb = dec.sentences(KB)
    rx = TokenLink(ChannelConfig(snr_db=10.0, seed=2), dec.codebook)(dec.token_ids(KB[:2] + ["the dog ran"]))
    assert kb.consistent(rx.content[0], dec.codebook, 3) == [0]  # itself, and no other KB sentence
    assert kb.consistent(rx.content[1], dec.codebook, 3) == [1]
    assert kb.consistent(rx.content[2], dec.codebook, 3) == []  # a novel sentence has no KB neighbour


def test_rag_recovers_kb_sentences_at_low_snr_and_leaves_novel_ones_alone(lm):
    dec = decoder(lm, k=4)
    kb = dec.sentences(KB)
    novel = ["numbers like 12, 3.5 and 2026 matter", "Zoë paid €12.50 at 9:45!"]
    sent = KB * 3 + novel
    # a long header: this is about RAG, not about length errors (a wrong length has no KB neighbour)
    rx = TokenLink(ChannelConfig(snr_db=-2.0, seed=4), dec.codebook, header_symbols=32)(dec.token_ids(sent))
    off, on = dec(rx.content), dec(rx.content, kb)
    assert all(s in near for s, near in zip(KB, dec.last_rag))  # each KB sentence finds itself
    exact = [a == b for a, b in zip(on, sent)]
    assert sum(exact[:12]) >= 10 and sum(a == b for a, b in zip(off[:12], sent)) <= 6, (off, on)
    assert dec.last_rag[12:] == [[], []] and on[12:] == off[12:]  # no consistent neighbour: RAG is a no-op


def test_a_kb_sentence_is_only_a_hypothesis_the_channel_must_favour(lm):
    dec = decoder(lm, k=4, rag_neighbours=1)
    kb = dec.sentences(["the cat sat on the mat"])
    sent = kb.ids[0][:-1] + [(kb.ids[0][-1] + 1) % len(dec.codebook)]  # one token away from it
    rx = TokenLink(ChannelConfig(snr_db=20.0, seed=0), dec.codebook)([sent] * 4)
    assert dec.decode_ids(rx.content, kb) == [sent] * 4  # the received symbols reject the KB sentence
    with pytest.raises(ConfigError, match="rag_prior"):
        decoder(lm, rag_prior=1.0)
