"""ragsc.pipelines.sentences: a pipeline's sentences on the token link, decoded by the channel-guided LM.

The pipelines here use the real receiver (SmolLM2-135M, loaded once per session) on sentences typed here,
not from any corpus or KB, and on KB-held ones for RAG.
"""

import os
from pathlib import Path

import pytest
import torch
import yaml

from ragsc._assets import asset_dir
from ragsc.errors import ConfigError, InputError, ModelLoadError
from ragsc.eval.metrics import bleu
from ragsc.pipelines import Pipeline

SPECS = asset_dir("pipelines")
TYPED = ["Please send the updated map of the harbour before noon.",
         "My sister's bike has a flat tyre again, so she'll be late.",
         "The meeting moved to Thursday at 3 pm, room 214."]


def spec(task="text", **text) -> dict:
    return {**yaml.safe_load((SPECS / f"{task}.yaml").read_text()), "text": text}


@pytest.fixture(scope="module")
def text(parts):
    return Pipeline.from_config(SPECS / "text.yaml", **parts)


@pytest.fixture(scope="module")
def kb_sentences(default_kbs):
    texts = sorted({it.text for it in default_kbs[1].items() if it.modality == "text"})
    return [t for t in texts if len(t.split()) >= 5][:6] or texts[:6]


def test_token_link_is_the_text_path_by_default(text):
    assert text.spec.text.link == "token" and text.sentence_path is not None
    tx = text.transmit(TYPED, snr_db=10)
    assert tx.received is None and tx.token_rows == [0, 1, 2] and tx.analog_rows == []
    ids = text.sentence_path.decoder.token_ids(TYPED)
    # grows with the sentence: header 16 + frame gain 2 + 4 per token
    assert tx.channel_uses_per_item == [18 + 4 * len(x) for x in ids]
    assert tx.channel_uses_per_item == [o.meta["channel_uses"] for o in text.receive(tx)]


def test_typed_sentences_cross_at_10_db(text):
    out = [o.text for o in text.run(TYPED, snr_db=10, rag=False)]
    assert bleu(out, TYPED, 1).mean() >= 0.85, out


def test_noiseless_bound_is_exact_for_any_script(text):
    odd = ["Zoë paid €12.50 at 9:45! 🙂", "日本語のテキストも送れる。", "O'Brien & Søn: 3 × 4 = 12?"]
    tx = text.transmit(odd, noiseless=True)
    assert tx.channel == "none" and tx.snr_db == float("inf")
    assert [o.text for o in text.receive(tx)] == odd


def test_same_seed_same_noise_and_the_spec_seed_is_the_default(text):
    a = text.transmit(TYPED[:1], snr_db=0, seed=5).sentences.content[0].symbols
    b = text.transmit(TYPED[:1], snr_db=0, seed=5).sentences.content[0].symbols
    c = text.transmit(TYPED[:1], snr_db=0, seed=6).sentences.content[0].symbols
    d = text.transmit(TYPED[:1], snr_db=0).sentences.content[0].symbols
    e = text.transmit(TYPED[:1], snr_db=0, seed=text.spec.seed).sentences.content[0].symbols
    assert torch.equal(a, b) and not torch.equal(a, c) and torch.equal(d, e)


def test_rag_recovers_kb_sentences_at_0_db_and_leaves_typed_ones_alone(text, kb_sentences):
    tx = text.transmit(kb_sentences + TYPED, snr_db=0, channel="awgn")
    on, off = text.receive(tx, rag=True), text.receive(tx, rag=False)
    n = len(kb_sentences)
    exact_on = sum(o.text == s for o, s in zip(on[:n], kb_sentences))
    exact_off = sum(o.text == s for o, s in zip(off[:n], kb_sentences))
    # a KB sentence is still only a hypothesis: where the channel favours a variant (one token off) it loses
    assert exact_on >= n - 2 and exact_on >= exact_off + 3, ([o.text for o in on[:n]], exact_off)
    assert all(o.meta["rag"] == [] for o in on[n:])  # no KB sentence is consistent with these
    assert [o.text for o in on[n:]] == [o.text for o in off[n:]]
    assert all(o.meta["rag"] is None for o in off)


def test_a_sentence_longer_than_a_frame_is_sent_in_several(parts):
    pipe = Pipeline.from_config(spec(max_tokens=5), **parts)
    tx = pipe.transmit(TYPED[:2], noiseless=True)
    frames = tx.sentences.meta["frames_per_item"]
    ids = pipe.sentence_path.decoder.token_ids(TYPED[:2])
    assert frames == [-(-len(x) // 5) for x in ids] and min(frames) > 1
    assert tx.channel_uses_per_item == [18 * f + 4 * len(x) for f, x in zip(frames, ids)]  # a header each
    out = pipe.receive(tx, rag=False)
    assert [o.text for o in out] == TYPED[:2] and [o.meta["frames"] for o in out] == frames


def test_a_sentence_over_the_token_limit_is_refused_before_anything_is_sent(text, parts, test_images):
    long = "the cat sat on the mat. " * 100  # about 700 tokens, over the default limit of 512
    with pytest.raises(InputError, match=r"item 1: a sentence of [0-9,]+ tokens, more than the limit of 512 "
                                         r"\(limits.text_tokens\)"):
        text.transmit([TYPED[0], long], noiseless=True)
    n = len(text.sentence_path.decoder.token_ids(TYPED[:1])[0])
    # a spec's own limit; in a multitask batch the message names the batch's item, not the sentence's rank
    pipe = Pipeline.from_config({**spec("multitask"), "limits": {"text_tokens": n}}, **parts)
    assert len(pipe.transmit([TYPED[0]], noiseless=True)) == 1
    with pytest.raises(InputError, match=rf"item 2: a sentence of [0-9]+ tokens, more than the limit of {n}"):
        pipe.transmit([TYPED[0], test_images[0].path, TYPED[1]], noiseless=True)


def test_a_batch_over_the_token_limit_is_refused_by_transmit_not_by_a_sweeps_send(parts):
    n = [len(x) for x in Pipeline.from_config(spec(), **parts).sentence_path.decoder.token_ids(TYPED)]
    pipe = Pipeline.from_config({**spec(), "limits": {"batch_tokens": n[0] + n[1] - 1}}, **parts)
    assert len(pipe.transmit(TYPED[1:2], noiseless=True)) == 1
    with pytest.raises(InputError, match=rf"item 1: with it the batch's sentences have {n[0] + n[1]} tokens "
                                         rf"\({sum(n)} in all\), more than the limit of {n[0] + n[1] - 1} "
                                         r"\(limits.batch_tokens\)"):
        pipe.transmit(TYPED, noiseless=True)
    messages = pipe.messages(TYPED)  # a sweep sends its whole evaluation set at once
    assert len(pipe.send(messages, pipe.encode(messages), noiseless=True)) == 3


def test_the_embedding_path_stays_a_choice(parts):
    pipe = Pipeline.from_config(spec(link="embedding"), **parts)
    assert pipe.sentence_path is None
    tx = pipe.transmit(["a red triangle"], snr_db=30)
    assert tx.received is not None and tx.sentences is None and tx.channel_uses == 48
    with pytest.raises(ConfigError, match="no sentences on the token link"):
        pipe.decode_sentences(tx.received)


def test_decode_sentences_refuses_another_paths_reception(text, parts):
    from ragsc.errors import InputError

    analog = Pipeline.from_config(spec(link="embedding"), **parts).transmit(["a red triangle"], snr_db=10)
    with pytest.raises(InputError, match="token link"):
        text.decode_sentences(analog.received)


def test_bad_text_settings_name_the_field(parts):
    for bad in ({"symbols_per_token": 0}, {"symbols_per_token": -2}, {"header_symbols": 0},
                {"max_tokens": 0}, {"link": "bits"}):
        field = next(iter(bad))
        with pytest.raises(ConfigError, match=rf"text\.{field}"):
            Pipeline.from_config(spec(**bad), **parts)


def test_an_lm_that_cannot_be_found_names_the_spec_and_the_fix(parts, tmp_path):
    before = set(Path(os.environ["RAGSC_HOME"]).rglob("*"))
    pipe = Pipeline.from_config({**spec(), "decoder": {"lm": f"hf:{tmp_path / 'no-such-lm'}"}}, **parts)
    with pytest.raises(ModelLoadError, match=r"decoder\.lm = 'hf:.*no-such-lm'.*text\.link: embedding"):
        pipe.transmit(["a red triangle"], snr_db=10)
    assert set(Path(os.environ["RAGSC_HOME"]).rglob("*")) == before


def test_a_tokenizer_without_byte_fallback_is_refused_by_name():
    """An LM whose tokenizer maps unknown characters to <unk> cannot carry every sentence exactly."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from ragsc.config import ChannelConfig, TextLinkConfig
    from ragsc.errors import InputError
    from ragsc.pipelines.sentences import SentencePath

    from ..decoders._tiny_lm import tiny_lm

    lm = tiny_lm()
    words = {"<unk>": 0, "the": 1, "cat": 2, "sat": 3}
    tk = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    lm.tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<unk>")
    path = SentencePath(TextLinkConfig(), ChannelConfig(), lm)
    with pytest.raises(InputError, match=r"sentence 1 \('the dog'\).*cannot represent it exactly"):
        path.send(["the cat sat", "the dog"], 10.0)
