"""The token-level text receiver: beam search over tokens by channel likelihood and a causal LM's prior.

For a sentence received through a :class:`~ragsc.channel.token_link.TokenLink`, each hypothesis
``v_1..v_t`` is scored by

    sum_s [ log p(y_s | v_s) + lm_weight * log p_LM(v_s | v_<s) ]

where ``log p(y_s | v_s)`` is the Gaussian channel log-likelihood of the token's codeword (exact, given
the effective noise the link reports) and ``p_LM`` any transformers causal LM (SmolLM2-135M by
default). With ``lm_weight = 1`` this is the MAP sequence decision the beam approximates; the LM
prior repairs what the channel garbles, the channel keeps the LM from writing its own sentence.
The search is batched over sentences and beams, with the LM's KV cache reordered as beams are kept,
so each step costs one forward pass of one token per beam.
"""

from __future__ import annotations

import inspect
import time

import torch

from ragsc.channel.token_link import TokenCodebook, TokenObservation
from ragsc.errors import ConfigError, InputError

DEFAULT_PROMPT = "Here is a sentence:\n"


class ChannelLMDecoder:
    """Decode :class:`TokenObservation` s to token ids and text.

    Parameters
    ----------
    lm
        A :class:`~ragsc.decoders.lm.CausalLM` or an LM spec for :func:`~ragsc.decoders.lm.load_lm`
        (``"smollm2"``, ``"hf:<dir>"``); its tokenizer is the one the transmitter used.
    codebook
        The transmitter's :class:`TokenCodebook` (its vocabulary is the LM's first ``V`` logits).
    beam
        Hypotheses kept per sentence.
    lm_weight
        Weight of the LM's log-prior (0: per-token maximum likelihood, the channel alone).
    prompt
        Text the LM reads before the sentence, so that its prior is that of a plain English sentence
        (an instruct model's BOS alone expects chat markup). It should end where a sentence starts (a
        newline), since the sentence's first token carries no leading space. ``""``: the BOS token.
    """

    def __init__(self, lm, codebook: TokenCodebook, beam: int = 4, lm_weight: float = 1.0,
                 prompt: str = DEFAULT_PROMPT) -> None:
        if isinstance(lm, str):
            from ragsc.decoders.lm import load_lm

            lm = load_lm(lm)
        if beam < 1:
            raise ConfigError(f"beam must be >= 1, got {beam}")
        if lm_weight < 0:
            raise ConfigError(f"lm_weight must be >= 0, got {lm_weight}")
        n_logits = lm.model.get_output_embeddings().weight.shape[0]
        if len(codebook) > n_logits:
            raise ConfigError(f"the codebook has {len(codebook)} tokens but the LM {lm.name!r} "
                              f"scores {n_logits}")
        self.lm, self.codebook, self.beam, self.lm_weight = lm, codebook, beam, lm_weight
        tok = lm.tokenizer
        self.prompt = prompt
        self.start_ids = tok(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        if not self.start_ids:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            if start is None:
                raise ConfigError(f"the LM {lm.name!r} has neither a BOS nor an EOS token to start a "
                                  "sentence from: give a prompt")
            self.start_ids = [int(start)]
        # transformers 5 names the KV cache `cache`; 4.x named it `past_key_values`
        params = inspect.signature(lm.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.timings: dict[str, float] = {}  # of the last decode: total and LM seconds

    def _step(self, input_ids: torch.Tensor, cache) -> tuple[torch.Tensor, object]:
        """Next-token logits ``[rows, vocab]`` after ``input_ids`` ``[rows, T]``, and the grown KV cache."""
        t0 = time.perf_counter()
        kw = {} if cache is None else {self._cache_kw: cache}
        out = self.lm.model(input_ids=input_ids, use_cache=True, **kw)
        cache = out.get("cache")
        self.timings["lm"] = self.timings.get("lm", 0.0) + time.perf_counter() - t0
        return out.logits[:, -1], out.past_key_values if cache is None else cache

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The transmitter's side: each text as the LM tokenizer's ids (no special tokens)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError("token_ids() takes a list of strings")
        return [self.lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def __call__(self, observations: list[TokenObservation]) -> list[str]:
        """The decoded sentences."""
        return [self.lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
                for ids in self.decode_ids(observations)]

    @torch.inference_mode()
    def decode_ids(self, observations: list[TokenObservation]) -> list[list[int]]:
        """The best hypothesis of each sentence, as token ids (``length`` of them, as the header said);
        ``self.timings`` then holds the seconds spent in all (``total``) and in the LM (``lm``)."""
        t0 = time.perf_counter()
        self.timings = {"lm": 0.0}
        ids = self._search(observations)
        self.timings["total"] = time.perf_counter() - t0
        return ids

    def _search(self, observations: list[TokenObservation]) -> list[list[int]]:
        n, b, v = len(observations), self.beam, len(self.codebook)
        lengths = [o.length for o in observations]
        steps = max(lengths, default=0)
        if steps == 0:
            return [[] for _ in observations]
        logits, cache = self._step(torch.tensor([self.start_ids] * (n * b)), None)
        scores = torch.full((n, b), float("-inf"))
        scores[:, 0] = 0.0  # all beams start as the same empty hypothesis: keep one
        seqs = torch.zeros(n, b, 0, dtype=torch.long)
        for t in range(steps):
            logp = torch.log_softmax(logits[:, :v].float(), dim=-1).view(n, b, v)
            active = torch.tensor([t < length for length in lengths])
            cand = scores[:, :, None] + self.lm_weight * logp
            cand += self._channel(observations, t, active)[:, None, :]
            # a finished sentence keeps its beams as they are: one filler candidate per beam, same score
            cand[~active] = float("-inf")
            cand[~active, :, 0] = scores[~active]
            scores, flat = cand.view(n, b * v).topk(b, dim=1)
            beam_idx, token = flat // v, flat % v
            kept = seqs.gather(1, beam_idx[..., None].expand(-1, -1, t))
            seqs = torch.cat([kept, token[..., None]], dim=2)
            if t + 1 < steps:
                cache.reorder_cache((torch.arange(n)[:, None] * b + beam_idx).reshape(-1))
                logits, cache = self._step(token.reshape(-1, 1), cache)
        return [seqs[i, 0, :length].tolist() for i, length in enumerate(lengths)]

    def _channel(self, observations: list[TokenObservation], t: int, active: torch.Tensor) -> torch.Tensor:
        """``[N, V]`` channel log-likelihood of every token at position ``t`` (0 for finished sentences)."""
        ll = torch.zeros(len(observations), len(self.codebook))
        idx = active.nonzero().flatten().tolist()
        if idx:
            sym = torch.stack([observations[i].symbols[t] for i in idx])
            no = torch.stack([observations[i].no_eff[t] for i in idx])
            ll[idx] = self.codebook.log_likelihood(sym, no)
        return ll
