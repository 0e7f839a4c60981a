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

RAG (``decoder(observations, kb)``, ``kb = decoder.sentences(texts)`` from the local and global KBs):
the KB sentences the received symbols cannot rule out are retrieved in the channel's own metric
(:class:`KBSentences`), written in the LM's prompt, and the nearest is one more hypothesis under a
mixture prior, scored by the same channel likelihood as the beam's: never pasted in against the
channel's evidence. Measured with SmolLM2, 4 symbols per token, AWGN, 32 sentences each: fortunes
held in the KB are recovered exactly in 94 % of cases at 0 dB (0 % without RAG) and 72 % at -5 dB;
held-out WordNet sentences decode exactly as without RAG from 0 dB.
"""

from __future__ import annotations

import inspect
import math
import time

import torch

from ragsc.channel.token_link import TokenCodebook, TokenObservation
from ragsc.errors import ConfigError, InputError

DEFAULT_PROMPT = "Here is a sentence:\n"
# what the LM reads before the prompt when KB neighbours are consistent with the received symbols
RAG_PROMPT = "Here are some sentences:\n{sentences}\n"


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
    rag_neighbours
        With RAG, at most this many consistent KB sentences in the LM's prompt.
    rag_prior
        With RAG, the receiver's prior probability that a message is one of its KB sentences.
    prompt
        Text the LM reads before the sentence, so that its prior is that of a plain English sentence
        (an instruct model's BOS alone expects chat markup). It should end where a sentence starts (a
        newline), since the sentence's first token carries no leading space. ``""``: the BOS token.
    """

    def __init__(self, lm, codebook: TokenCodebook, beam: int = 4, lm_weight: float = 1.0,
                 prompt: str = DEFAULT_PROMPT, rag_neighbours: int = 3, rag_prior: float = 0.5) -> None:
        if isinstance(lm, str):
            from ragsc.decoders.lm import load_lm

            lm = load_lm(lm)
        if beam < 1:
            raise ConfigError(f"beam must be >= 1, got {beam}")
        if rag_neighbours < 1:
            raise ConfigError(f"rag_neighbours must be >= 1, got {rag_neighbours}")
        if not 0.0 < rag_prior < 1.0:
            raise ConfigError(f"rag_prior must be in (0, 1), got {rag_prior}")
        if lm_weight < 0:
            raise ConfigError(f"lm_weight must be >= 0, got {lm_weight}")
        n_logits = lm.model.get_output_embeddings().weight.shape[0]
        if len(codebook) > n_logits:
            raise ConfigError(f"the codebook has {len(codebook)} tokens but the LM {lm.name!r} "
                              f"scores {n_logits}")
        self.lm, self.codebook, self.beam, self.lm_weight = lm, codebook, beam, lm_weight
        self.rag_neighbours, self.rag_prior = rag_neighbours, rag_prior
        self.last_rag: list[list[str]] = []
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

    def _step(self, input_ids: torch.Tensor, cache, mask: torch.Tensor,
              positions: torch.Tensor) -> tuple[torch.Tensor, object]:
        """Next-token logits ``[rows, vocab]`` after ``input_ids`` ``[rows, T]``, and the grown KV cache.

        ``mask`` ``[rows, past + T]`` marks real tokens (prompts are left-padded to one width) and
        ``positions`` ``[rows, T]`` their positions, so a padded row reads as if it were not padded.
        """
        t0 = time.perf_counter()
        kw = {} if cache is None else {self._cache_kw: cache}
        out = self.lm.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            use_cache=True, **kw)
        cache = out.get("cache")
        self.timings["lm"] = self.timings.get("lm", 0.0) + time.perf_counter() - t0
        return out.logits[:, -1], out.past_key_values if cache is None else cache

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """The transmitter's side: each text as the LM tokenizer's ids (no special tokens)."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise InputError("token_ids() takes a list of strings")
        return [self.lm.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def sentences(self, texts: list[str]) -> KBSentences:
        """The receiver's KB sentences as channel hypotheses (tokenised once; pass to every decode)."""
        return KBSentences(texts, self.token_ids(list(texts)))

    def __call__(self, observations: list[TokenObservation], kb: KBSentences | None = None) -> list[str]:
        """The decoded sentences (``kb``: RAG with those sentences, see :meth:`decode_ids`)."""
        return [self.lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
                for ids in self.decode_ids(observations, kb)]

    @torch.inference_mode()
    def decode_ids(self, observations: list[TokenObservation],
                   kb: KBSentences | None = None) -> list[list[int]]:
        """The best hypothesis of each sentence, as token ids (``length`` of them, as the header said).

        With ``kb`` (RAG), the KB sentences of the received length that the channel cannot tell apart
        from what was sent (:meth:`KBSentences.consistent`) are written in the LM's prompt before
        the sentence, and the nearest is one more hypothesis. The prior is then a mixture: a KB
        sentence with probability ``rag_prior`` (uniform over the KB), else the LM's sentence, so the
        KB hypothesis scores ``log p(y|s) + lm_weight * log(rag_prior / |KB| + (1 - rag_prior) p_LM(s))``
        against the beam's ``log p(y|s') + lm_weight * log((1 - rag_prior) p_LM(s'))``: it wins only
        where the received symbols favour it. A sentence with no consistent KB neighbour is decoded
        exactly as without RAG.

        ``self.timings`` then holds the seconds spent in all (``total``) and in the LM (``lm``), and
        ``self.last_rag`` per sentence the KB neighbours that were used (``[]``: none).
        """
        t0 = time.perf_counter()
        self.timings = {"lm": 0.0}
        neighbours = ([kb.consistent(o, self.codebook, self.rag_neighbours) for o in observations]
                      if kb is not None else [[] for _ in observations])
        prompts = [self._prompt_ids([kb.texts[j] for j in nb]) if nb else self.start_ids for nb in neighbours]
        ids, scores = self._search(observations, prompts)
        for i, nb in enumerate(neighbours):
            if nb:  # the nearest KB sentence, one more hypothesis under the mixture prior (see class doc)
                cand = kb.ids[nb[0]]
                channel, lm_logp = self._score(observations[i], prompts[i], cand)
                prior = torch.logaddexp(torch.tensor(math.log(self.rag_prior / len(kb))),
                                        torch.tensor(math.log1p(-self.rag_prior) + lm_logp))
                beam_prior = math.log1p(-self.rag_prior)  # the beam's hypothesis is not a KB sentence
                if channel + self.lm_weight * float(prior) > scores[i] + self.lm_weight * beam_prior:
                    ids[i] = list(cand)
        self.last_rag = [[kb.texts[j] for j in nb] for nb in neighbours] if kb is not None else []
        self.timings["total"] = time.perf_counter() - t0
        return ids

    def _prompt_ids(self, neighbours: list[str]) -> list[int]:
        text = RAG_PROMPT.format(sentences="".join(f"{n}\n" for n in neighbours)) + self.prompt
        return self.lm.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _score(self, obs: TokenObservation, prompt: list[int], ids: list[int]) -> tuple[float, float]:
        """Channel log-likelihood and LM log-prior (after ``prompt``) of one hypothesis."""
        t0 = time.perf_counter()
        logits = self.lm.model(input_ids=torch.tensor([prompt + list(ids)])).logits[0]
        self.timings["lm"] += time.perf_counter() - t0
        v, n = len(self.codebook), len(ids)
        logp = torch.log_softmax(logits[len(prompt) - 1:len(prompt) - 1 + n, :v].float(), -1)
        at = torch.arange(n), torch.tensor(ids, dtype=torch.long)
        ll = self.codebook.log_likelihood(obs.symbols[:n], obs.no_eff[:n])
        return float(ll[at].sum()), float(logp[at].sum())

    def _search(self, observations: list[TokenObservation],
                prompts: list[list[int]]) -> tuple[list[list[int]], list[float]]:
        n, b, v = len(observations), self.beam, len(self.codebook)
        lengths = [o.length for o in observations]
        steps = max(lengths, default=0)
        if steps == 0:
            return [[] for _ in observations], [0.0] * n
        # prompts left-padded to one width; each sentence's b beams share its prompt (so its mask)
        width = max(map(len, prompts))
        pad = self.start_ids[0]
        rows = torch.tensor([[pad] * (width - len(p)) + p for p in prompts for _ in range(b)])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts for _ in range(b)])
        pos = (mask.cumsum(1) - 1).clamp_min(0)
        logits, cache = self._step(rows, None, mask, pos)
        pos = pos[:, -1:]
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
                mask = torch.cat([mask, torch.ones(n * b, 1, dtype=mask.dtype)], dim=1)
                pos = pos + 1
                logits, cache = self._step(token.reshape(-1, 1), cache, mask, pos)
        return ([seqs[i, 0, :length].tolist() for i, length in enumerate(lengths)],
                scores[:, 0].tolist())

    def _channel(self, observations: list[TokenObservation], t: int, active: torch.Tensor) -> torch.Tensor:
        """``[N, V]`` channel log-likelihood of every token at position ``t`` (0 for finished sentences)."""
        ll = torch.zeros(len(observations), len(self.codebook))
        idx = active.nonzero().flatten().tolist()
        if idx:
            sym = torch.stack([observations[i].symbols[t] for i in idx])
            no = torch.stack([observations[i].no_eff[t] for i in idx])
            ll[idx] = self.codebook.log_likelihood(sym, no)
        return ll


class KBSentences:
    """The receiver's KB sentences, tokenised, as hypotheses for a received token sequence.

    Which KB sentences the channel cannot tell apart from what was sent: for a hypothesis ``x`` of the
    received length, the normalised distance ``d = sum |y - x|^2 / no_eff`` over the ``n`` received
    symbols is a sum of ``n`` unit-mean exponentials (Gamma(n, 1)) if ``x`` was sent, and grows by
    about ``|x' - x|^2 / no_eff`` per symbol if not. A KB sentence is *consistent* when ``d`` is
    below ``n + z sqrt(n)`` (``z = 3``, a false-rejection rate of about 0.2 %); ranking them by ``d``
    is a maximum-likelihood search over the KB (an inner product of the received symbols with each
    sentence's codewords), so retrieval happens in the channel's own metric, on what was received.
    """

    def __init__(self, texts: list[str], ids: list[list[int]], z: float = 3.0) -> None:
        self.texts, self.ids, self.z = list(texts), [list(x) for x in ids], z
        self._by_length: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        groups: dict[int, list[int]] = {}
        for j, x in enumerate(self.ids):
            if x:
                groups.setdefault(len(x), []).append(j)
        for length, js in groups.items():
            self._by_length[length] = (torch.tensor(js), torch.tensor([self.ids[j] for j in js]))

    def __len__(self) -> int:
        return len(self.texts)

    def consistent(self, obs: TokenObservation, codebook: TokenCodebook, limit: int) -> list[int]:
        """Indices of up to ``limit`` consistent KB sentences of ``obs.length`` tokens, nearest first."""
        group = self._by_length.get(obs.length)
        if group is None or obs.length == 0:
            return []
        js, ids = group
        ll = codebook.log_likelihood(obs.symbols, obs.no_eff)  # [L, V]: -sum_k |y_tk - c_vk|^2 / no_tk
        d = -ll.gather(1, ids.T).sum(0)  # [M]
        n = obs.symbols.numel()
        ok = (d <= n + self.z * n ** 0.5).nonzero().flatten()
        order = ok[d[ok].argsort()][:limit]
        return js[order].tolist()
