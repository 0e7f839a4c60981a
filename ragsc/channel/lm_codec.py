"""A causal language model as a text source coder: arithmetic coding over the LM's next-token distribution.

:class:`LMTextCodec` has :class:`~ragsc.channel.codecs.DeflateTextCodec`'s budget interface
(``encode(text, max_bits) -> bytes | None``, ``decode(bytes) -> str``), so the digital baselines can send
texts with it (``SeparateCoding(cfg, text_codec=LMTextCodec(lm))``). A token the LM finds likely costs
few bits: the payload is about ``-sum_t log2 p_LM(token_t | prompt, tokens_<t)`` bits, the best a separate
source coder can do with that LM as its model, and a fair digital peer for the token-level text link.

How it codes
------------
* The text is split into the tokenizer's ids (no special tokens added, special-token strings split into
  plain bytes). The LM reads ``prompt`` first (or its BOS / EOS token when the prompt tokenises to nothing).
* At each step the LM's next-token probabilities are quantised to integer frequencies (every token at
  least 1, so any token is codable; about ``2 ** precision`` in all) and a binary arithmetic coder
  (Witten, Neal and Cleary's, with pending "follow" bits, on Python integers) narrows its interval to the
  token's share.
* Encoder and decoder must compute identical frequency tables, so both run the *same* procedure: the
  prompt in one forward pass, then one token per forward pass with the KV cache, batch 1, float32
  softmax, under ``torch.inference_mode``. (A teacher-forced forward over the whole text is faster but
  not bit-identical to incremental decoding.) Both ends must hold the same LM weights on the same software
  stack, as they do in a simulation.

Termination
-----------
The message ends with the LM's EOS token, coded with the LM's probability pooled with that of
``terminator`` (default ``"\\n"``): after ``"Here is a sentence:\\n"`` and a finished sentence an LM
expects a line break more than its EOS (SmolLM2-135M: ``"\\n"`` 0.3-0.8 bits, EOS 1.6-5.7 bits on four
ordinary sentences). Pooling means the end event gets ``f(EOS) + f(terminator)`` while a literal
terminator in the text keeps its own frequency, so every text stays codable; the price is that each
other token pays ``log2(1 + p(terminator))`` bits (~0.001 bit mid-sentence). So the whole cost of
knowing where the message ends is about ``-log2 p(end | sentence)``, below a bit for an ordinary
sentence; no length field and nothing out of band. ``terminator=None`` codes the EOS alone.

The coder's own overhead is at most about two bits (the final point is the one with the most trailing
zeros in the final interval; trailing zeros are not sent, the decoder reads missing bits as zeros), and
the payload is whole bytes: ``ceil(n_bits / 8)`` of them, a text fits a budget iff ``8 * ceil(n_bits / 8)
<= max_bits``.

Costs: one LM forward per token, to encode and to decode; both are memoised per input (texts repeat
across the SNR points of a sweep). A text longer than ``max_tokens`` tokens is cut by words like an
over-budget one: the longest prefix of whole words within ``max_tokens`` is found by bisection (a
handful of tokenisations, assuming a prefix never has fewer tokens than a shorter one, as with
whitespace-split BPE), then shortened word by word until its code fits the budget. A text of more than
``limits.text_chars`` characters is refused (:class:`~ragsc.errors.InputError`) before it is tokenised.

Measured (SmolLM2-135M, the default prompt, four ordinary 9-13-token English sentences): 39-76 bits of
LM code against 344-472 bits of UTF-8 + deflate (deflate does not pay on short texts: the raw UTF-8
behind its 16-bit header), i.e. 6-9x fewer; about 45 ms per token to encode and as much to decode,
batch 1 on 2 CPU cores.
"""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from dataclasses import dataclass

import torch

from ragsc import checks
from ragsc.channel.arithmetic import ArithmeticDecoder, arithmetic_encode, pack_bits
from ragsc.config import LIMITS, Limits
from ragsc.errors import ConfigError, InputError

DEFAULT_PROMPT = "Here is a sentence:\n"  # also the token decoder's (ragsc.decoders.token_decoder imports it)

# ----------------------------------------------------------------------------- the LM codec


@dataclass(frozen=True)
class _Trace:
    """The coder's view of one token sequence: per position ``t`` (0..n) the frequency ``total``, the end
    event's interval and (for ``t < n``) the token's interval."""

    ids: tuple[int, ...]
    tokens: tuple[tuple[int, int], ...]  # [n] (lo, hi)
    ends: tuple[tuple[int, int], ...]  # [n + 1] (lo, hi)
    totals: tuple[int, ...]  # [n + 1]

    def intervals(self, n: int) -> list[tuple[int, int, int]]:
        """The first ``n`` tokens, then the end event."""
        body = [(lo, hi, total) for (lo, hi), total in zip(self.tokens[:n], self.totals)]
        return body + [(*self.ends[n], self.totals[n])]


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class LMTextCodec:
    """Text source codec: arithmetic coding with a causal LM as the probability model.

    Same interface as :class:`~ragsc.channel.codecs.DeflateTextCodec`: ``encode(text, max_bits) ->
    bytes | None`` (whole words dropped from the end until the payload fits; ``None`` when not even the first
    word fits) and ``decode(data) -> str``; :meth:`n_bits` gives the exact code length of a whole text.
    See the module docstring for the coding, the termination and their costs.

    Parameters
    ----------
    lm
        A causal LM: any object with ``.model`` (a transformers causal LM), ``.tokenizer`` and ``.name``,
        e.g. :func:`ragsc.decoders.lm.load_lm`'s (the channel layer does not import the decoders).
    prompt
        Text the LM reads before the message (both ends use it; it is not sent). ``""``: the BOS token
        (or EOS when there is no BOS).
    precision
        The frequency tables total about ``2 ** precision``; every token gets at least 1, so it must
        exceed the vocabulary comfortably (their floor costs ``V / 2 ** precision`` of the mass).
    terminator
        A string that tokenises to one token whose probability is pooled with the EOS token's to code
        the end of the message (``None``: EOS alone).
    max_tokens
        The most tokens one message may have: longer texts are cut by words, and :meth:`decode` stops
        after this many tokens without an end (:class:`~ragsc.errors.InputError`).
    cache_size
        Memoised traces, encodings and decodings kept (least recently used dropped first).
    limits
        ``limits.text_chars``: the longest text :meth:`encode` and :meth:`n_bits` take
        (:class:`~ragsc.config.Limits`).
    """

    def __init__(self, lm, prompt: str = DEFAULT_PROMPT, precision: int = 32, terminator: str | None = "\n",
                 max_tokens: int = 256, cache_size: int = 4096, limits: Limits = LIMITS) -> None:
        for attr in ("model", "tokenizer", "name"):
            if not hasattr(lm, attr):
                raise ConfigError(f"LMTextCodec needs an LM with .model, .tokenizer and .name (a CausalLM), "
                                  f"got {type(lm).__name__} without .{attr}")
        max_tokens = checks.integer(max_tokens, "max_tokens")
        cache_size = checks.integer(cache_size, "cache_size")
        self.lm, self.prompt, self.max_tokens, self.limits = lm, prompt, max_tokens, limits
        tok = lm.tokenizer
        self.vocab = min(lm.n_logits, len(tok))
        precision = checks.integer(precision, f"precision (bits, for a vocabulary of {self.vocab} tokens)",
                                   (self.vocab + 1).bit_length() + 1, 48)
        self.precision = precision
        self.state_bits = precision + 18  # total <= 2 ** (precision + 1) stays far below the quarter range
        self._scale = float(2**precision - self.vocab)
        if tok.eos_token_id is None or not 0 <= tok.eos_token_id < self.vocab:
            raise ConfigError(f"the LM {lm.name!r} has no EOS token to end a message with")
        self.eos = int(tok.eos_token_id)
        self.terminator = terminator
        self._pooled = None
        if terminator is not None:
            ids = self._tokenize(terminator)
            if len(ids) != 1 or ids[0] == self.eos:
                raise ConfigError(f"the terminator {terminator!r} must be one token other than EOS for the "
                                  f"LM {lm.name!r}; it is {ids}")
            self._pooled = ids[0]
        self.start_ids = self._tokenize(prompt) if prompt else []
        if not self.start_ids:
            start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
            self.start_ids = [int(start)]
        # transformers 5 names the KV cache `cache`; 4.x named it `past_key_values`
        params = inspect.signature(lm.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._traces, self._encoded, self._decoded = _LRU(cache_size), _LRU(cache_size), _LRU(cache_size)

    def __repr__(self) -> str:
        return f"LMTextCodec({self.lm.name!r}, prompt={self.prompt!r}, precision={self.precision})"

    # -- the probability model: the one procedure both ends run

    def _tokenize(self, text: str) -> list[int]:
        return self.lm.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def _forward(self, input_ids: list[int], cache) -> tuple[torch.Tensor, object]:
        """Integer cumulative frequencies ``[V]`` of the next token after ``input_ids``, and the cache."""
        kw = {} if cache is None else {self._cache_kw: cache}
        out = self.lm.model(input_ids=torch.tensor([input_ids]), use_cache=True, **kw)
        new_cache = out.get("cache")
        cache = out.past_key_values if new_cache is None else new_cache
        p = torch.softmax(out.logits[0, -1, : self.vocab].float(), dim=-1)
        freq = (p.double() * self._scale).floor().long() + 1
        if self._pooled is not None:
            freq[self.eos] += freq[self._pooled]
        return torch.cumsum(freq, 0), cache

    @staticmethod
    def _interval(cum: torch.Tensor, token: int) -> tuple[int, int]:
        return (int(cum[token - 1]) if token else 0), int(cum[token])

    @torch.inference_mode()
    def _trace(self, ids: list[int]) -> _Trace:
        key = tuple(ids)
        hit = self._traces.get(key)
        if hit is not None:
            return hit
        tokens, ends, totals = [], [], []
        cum, cache = self._forward(self.start_ids, None)
        for token in key:
            tokens.append(self._interval(cum, token))
            ends.append(self._interval(cum, self.eos))
            totals.append(int(cum[-1]))
            cum, cache = self._forward([token], cache)
        ends.append(self._interval(cum, self.eos))
        totals.append(int(cum[-1]))
        trace = _Trace(key, tuple(tokens), tuple(ends), tuple(totals))
        self._traces.put(key, trace)
        return trace

    # -- the codec

    def _ids(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise InputError(f"LMTextCodec codes a str, got {type(text).__name__}")
        checks.text_chars(text, 0, self.limits, "text")
        ids = self._tokenize(text)
        if self.lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False) != text:
            raise InputError(f"the tokenizer of {self.lm.name!r} does not reproduce {text[:40]!r} from its "
                             "tokens, so the LM code cannot carry it exactly")
        return ids

    def _bits(self, ids: list[int], trace: _Trace | None = None) -> list[int]:
        if trace is None or trace.ids[: len(ids)] != tuple(ids):
            trace = self._trace(ids)
        return arithmetic_encode(trace.intervals(len(ids)), self.state_bits)

    def n_bits(self, text: str) -> int:
        """Exact code length in bits of the whole ``text`` (end included; :meth:`encode` sends
        ``ceil(n_bits / 8)`` bytes when the budget allows the whole text)."""
        ids = self._ids(text)
        if len(ids) > self.max_tokens:
            raise InputError(f"the text has {len(ids)} tokens, more than max_tokens={self.max_tokens}")
        return len(self._bits(ids))

    def encode(self, text: str, max_bits: int) -> bytes | None:
        """The LM code of ``text``, or of its longest prefix of whole words whose code fits ``max_bits``
        (and ``max_tokens``); ``None`` when not even the first word fits."""
        key = (text, max_bits)
        if key in self._encoded:
            return self._encoded.get(key)
        full = self._ids(text)
        words = text.split(" ")
        trace = self._trace(full[: self.max_tokens])
        data = None
        for n in range(self._most_words(words, len(full)), 0, -1):
            ids = full if n == len(words) else self._ids(" ".join(words[:n]))
            if len(ids) > self.max_tokens:
                continue
            bits = self._bits(ids, trace)
            if 8 * math.ceil(len(bits) / 8) <= max_bits:
                data = pack_bits(bits)
                break
        self._encoded.put(key, data)
        return data

    def _most_words(self, words: list[str], n_full: int) -> int:
        """The most leading ``words`` whose text has at most ``max_tokens`` tokens (bisection; all of them
        when the whole text fits, 1 when not even the first does: the caller then finds none)."""
        if n_full <= self.max_tokens:
            return len(words)
        lo, hi = 1, len(words) - 1  # the whole text does not fit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if len(self._tokenize(" ".join(words[:mid]))) <= self.max_tokens:
                lo = mid
            else:
                hi = mid - 1
        return lo

    @torch.inference_mode()
    def decode(self, data: bytes) -> str:
        """The text coded in ``data`` (trailing zero bytes, e.g. the PHY's padding, are ignored).

        Raises
        ------
        InputError
            When no end is decoded within ``max_tokens`` tokens: ``data`` is not an LM code of this codec
            (any bit string decodes to *some* tokens, so this is how garbage shows).
        """
        data = bytes(data).rstrip(b"\0")
        hit = self._decoded.get(data)
        if hit is not None:
            return hit
        coder = ArithmeticDecoder(data, self.state_bits)
        ids: list[int] = []
        cum, cache = self._forward(self.start_ids, None)
        while True:
            total = int(cum[-1])
            token = int(torch.searchsorted(cum, coder.target(total), right=True))
            coder.consume(*self._interval(cum, token), total)
            if token == self.eos:
                break
            if len(ids) == self.max_tokens:
                raise InputError(f"no end of message within max_tokens={self.max_tokens} tokens: the payload "
                                 f"is not an LM code of {self.lm.name!r} with this prompt")
            ids.append(token)
            cum, cache = self._forward([token], cache)
        text = self.lm.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        self._decoded.put(data, text)
        return text
