"""ragsc.channel.lm_codec: the LM text codec on a tiny random LM."""

from __future__ import annotations

import math
import random

import pytest
import torch

from ragsc.channel.codecs import DeflateTextCodec
from ragsc.channel.lm_codec import LMTextCodec
from ragsc.errors import ConfigError, InputError

from ..decoders._tiny_lm import tiny_lm

TEXTS = ["the cat sat on the mat", "Zoë paid €12.50 at 9:45!", "🙂", "", "two\nlines end\n",
         "a literal </s> inside", "numbers like 12, 3.5 and 2026 matter"]


@pytest.fixture(scope="module")
def lm():
    return tiny_lm()


@pytest.fixture(scope="module")
def codec(lm):
    return LMTextCodec(lm)


def _count_forwards(codec: LMTextCodec) -> list[int]:
    calls, forward = [], codec._forward

    def counted(ids, cache):
        calls.append(len(ids))
        return forward(ids, cache)

    codec._forward = counted
    return calls


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact(codec, text):
    data = codec.encode(text, 10_000)
    assert data is not None and codec.decode(data) == text
    # the PHY pads the payload with zero bytes up to its budget: the same text
    assert codec.decode(data + bytes(20)) == text


@pytest.mark.parametrize("text", TEXTS)
def test_n_bits_is_the_payload_without_padding(codec, text):
    n = codec.n_bits(text)
    data = codec.encode(text, 10_000)
    assert len(data) == math.ceil(n / 8)
    bits = [(b >> (7 - i)) & 1 for b in data for i in range(8)]
    assert bits[n:] == [0] * (8 * len(data) - n) and (n == 0 or bits[n - 1] == 1)


def _ideal_bits(codec: LMTextCodec, text: str) -> float:
    """-log2 of the text's probability under the codec's model (teacher-forced, float64): the LM's
    next-token probabilities with the end event's pooled with the terminator's."""
    lm, start = codec.lm, codec.start_ids
    ids = codec._tokenize(text)
    with torch.inference_mode():
        p = torch.softmax(lm.model(input_ids=torch.tensor([start + ids])).logits[0].double(), dim=-1)
    p = p[len(start) - 1 :]
    term = p[:, codec._pooled]
    bits = -sum(math.log2(p[t, i] / (1 + term[t])) for t, i in enumerate(ids))
    return bits - math.log2((p[len(ids), codec.eos] + term[len(ids)]) / (1 + term[len(ids)]))


def test_code_length_is_the_lm_information(codec):
    gaps = []
    for text in TEXTS:
        ideal, n = _ideal_bits(codec, text), codec.n_bits(text)
        # at most ~2 bits of coder overhead (the final point); fewer when the interval happens to hold a
        # point with many trailing zeros
        assert ideal - 8 <= n <= ideal + 2.5, (text, n, ideal)
        gaps.append(n - ideal)
    assert abs(sum(gaps) / len(gaps)) < 2.0


def test_over_budget_drops_whole_words(codec):
    text = "numbers like 12, 3.5 and 2026 matter"
    words = text.split(" ")
    budget = 8 * math.ceil(codec.n_bits(" ".join(words[:3])) / 8)
    data = codec.encode(text, budget)
    assert data is not None and 8 * len(data) <= budget
    out = codec.decode(data)
    n = len(out.split(" "))
    assert out == " ".join(words[:n]) and n >= 3
    # the longest prefix that fits: every longer one is over the budget
    longer = [" ".join(words[:m]) for m in range(n + 1, len(words))]
    assert all(8 * math.ceil(codec.n_bits(t) / 8) > budget for t in longer)


def test_none_when_not_even_one_word_fits(codec):
    text = "Zoë paid €12.50 at 9:45!"
    first = 8 * math.ceil(codec.n_bits("Zoë") / 8)
    assert codec.encode(text, first - 8) is None
    assert codec.decode(codec.encode(text, first)) == "Zoë"
    assert codec.encode(text, 0) is None


def test_max_tokens_bounds_the_message(lm):
    short = LMTextCodec(lm, max_tokens=4)
    text = "the cat sat on the mat"
    assert len(short._tokenize(text)) > 4
    out = short.decode(short.encode(text, 10_000))
    assert text.startswith(out) and len(short._tokenize(out)) <= 4
    with pytest.raises(InputError, match="max_tokens"):
        short.n_bits(text)
    # a message longer than the decoder allows: a clear error, not a runaway decode
    data = LMTextCodec(lm).encode(text, 10_000)
    with pytest.raises(InputError, match="max_tokens"):
        LMTextCodec(lm, max_tokens=2).decode(data)


def test_two_instances_and_two_builds_of_the_lm_agree(lm, codec):
    other = LMTextCodec(tiny_lm())  # the same seed: the same weights and tokenizer, built anew
    for text in TEXTS:
        data = codec.encode(text, 10_000)
        assert LMTextCodec(lm).encode(text, 10_000) == data == other.encode(text, 10_000)
        assert other.decode(data) == text


def test_encode_and_decode_are_memoised(lm):
    codec = LMTextCodec(lm)
    calls = _count_forwards(codec)
    text = "the cat sat on the mat"
    data = codec.encode(text, 10_000)
    assert len(calls) == len(codec._tokenize(text)) + 1  # the prompt, then one forward per token
    calls.clear()
    assert codec.encode(text, 10_000) == data and codec.encode(text, 40) is not None
    assert codec.n_bits(text) == codec.n_bits(text)
    assert calls == []  # another budget, or the length, reuses the LM's trace of the text
    codec.decode(data)
    n = len(calls)
    codec.decode(data)
    assert len(calls) == n


def test_garbage_does_not_hang(lm):
    codec = LMTextCodec(lm, max_tokens=16)
    calls = _count_forwards(codec)
    rng = random.Random(0)
    for _ in range(20):
        calls.clear()
        data = bytes(rng.randrange(256) for _ in range(12))
        try:
            assert isinstance(codec.decode(data), str)
        except InputError:
            pass
        assert len(calls) <= 17


def test_empty_prompt_starts_from_bos(lm):
    codec = LMTextCodec(lm, prompt="")
    assert codec.start_ids == [lm.tokenizer.bos_token_id]
    assert codec.decode(codec.encode("Zoë paid €12.50 at 9:45!", 10_000)) == "Zoë paid €12.50 at 9:45!"


def test_no_terminator_codes_eos_alone(lm):
    codec = LMTextCodec(lm, terminator=None)
    for text in TEXTS[:4]:
        assert codec.decode(codec.encode(text, 10_000)) == text


@pytest.mark.parametrize("kwargs", [dict(precision=8), dict(precision=64), dict(terminator="the cat"),
                                    dict(terminator="</s>"), dict(max_tokens=0), dict(max_tokens=2.5),
                                    dict(max_tokens=float("nan")), dict(max_tokens=float("inf")),
                                    dict(cache_size=float("nan")), dict(cache_size=-1),
                                    dict(precision=float("nan")), dict(precision=24.0)])
def test_bad_settings_are_config_errors(lm, kwargs):
    with pytest.raises(ConfigError):
        LMTextCodec(lm, **kwargs)


def test_a_text_over_the_character_limit_is_refused_before_tokenising(lm):
    from ragsc.config import Limits

    codec = LMTextCodec(lm, limits=Limits(text_chars=50))
    calls = []
    codec._tokenize = lambda text, f=codec._tokenize: calls.append(text) or f(text)
    with pytest.raises(InputError, match=r"text 0: a text of 62 characters.*limit of 50.*limits.text_chars"):
        codec.encode("the cat sat on the mat " * 2 + "the ship is safe", 10_000)
    assert calls == []


def test_a_long_text_is_cut_with_a_bounded_number_of_tokenisations(lm):
    codec = LMTextCodec(lm, max_tokens=12)
    text = " ".join(["the cat sat on the mat"] * 400)  # 2,400 words, far over max_tokens
    calls = []
    codec._tokenize = lambda t, f=codec._tokenize: calls.append(t) or f(t)
    data = codec.encode(text, 10_000)
    got = codec.decode(data)
    assert text.startswith(got) and len(codec._ids(got)) <= 12
    longer = " ".join(text.split(" ")[:len(got.split(" ")) + 1])
    assert len(codec._ids(longer)) > 12  # the longest prefix of whole words that fits
    assert len(calls) < 40, len(calls)  # bisection: not one tokenisation per word dropped (2,400)


def test_not_an_lm_is_a_config_error():
    with pytest.raises(ConfigError, match="tokenizer"):
        LMTextCodec(object())


def test_not_a_string_is_an_input_error(codec):
    with pytest.raises(InputError):
        codec.encode(b"bytes", 1000)


@pytest.mark.slow
def test_smollm2_codes_english_in_fewer_bits_than_deflate():
    from ragsc.decoders.lm import load_lm

    codec = LMTextCodec(load_lm("smollm2"))
    text = "Please send the updated map of the harbour before noon."
    data = codec.encode(text, 10_000)
    assert codec.decode(data) == text
    lm_bits, deflate_bits = 8 * len(data), 8 * len(DeflateTextCodec().encode(text, 10_000))
    assert lm_bits < deflate_bits / 3, f"LM code {lm_bits} bits, UTF-8 + deflate {deflate_bits} bits"
