"""A tiny causal LM and byte-level BPE tokenizer built in the test (no download): the shape of SmolLM2's."""

from __future__ import annotations

import torch

CORPUS = [
    "the cat sat on the mat", "a red triangle is next to a blue circle", "please send the map before noon",
    "the ship is safe in the harbour", "numbers like 12, 3.5 and 2026 matter", "Zoë paid €12.50 at 9:45!",
] * 20


def tiny_lm(seed: int = 0, vocab_size: int = 400, tie: bool = False):
    """A :class:`~ragsc.decoders.lm.CausalLM` around a 2-layer Llama with random weights (``tie``: the
    output head shares the token embedding, as SmolLM2's does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from ragsc.decoders.lm import CausalLM

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(CORPUS, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=tie)
    return CausalLM(LlamaForCausalLM(cfg), tok, "tiny-llama")
