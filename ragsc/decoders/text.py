"""Text decoders: the received sentence embedding -> a sentence, with or without retrieved context.

* :class:`TextGRU` — a learned embedding-to-text decoder (a GRU language model whose state starts
  from the embedding), trained by ``ragsc decoders train`` on the default text corpus under channel
  noise. It is the decoder "without RAG": all it has is the received vector.
* :class:`TextDecoder` — the receiver's text decoder, ``mode="fast"`` or ``"lm"``:

  - fast, RAG on: the best retrieved sentence (the KBs rank by cosine to the received embedding).
    Optionally re-ranked by ``log(rank weight) + rerank_weight * GRU log-likelihood`` of each
    candidate; off by default: the GRU favours the sentences it was trained on, so on a validation
    set (seed 1, 100 sentences, 8 channel/SNR points) re-ranking with weight 0.5-2 lowered the mean
    sentence similarity from 0.90 to 0.70. RAG off: the GRU's greedy sentence;
  - lm, RAG on: a causal LM (SmolLM2-135M by default) completes a few-shot prompt that lists the
    retrieved sentences; RAG off: the same LM cleans up the GRU's draft.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ragsc import checks
from ragsc.config import MAX_CLASSES, MAX_DIM
from ragsc.decoders.arch import check_positive
from ragsc.decoders.context import Context, rank_weights
from ragsc.errors import ConfigError, InputError

_WORD = re.compile(r"[\w']+|[^\w\s]")
PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


def detokenize(tokens: Sequence[str]) -> str:
    """Join word / punctuation tokens as written: punctuation sticks to the word before it, an opening
    bracket to the word after it, and double quotes alternate between opening and closing."""
    out, quote_open = "", False
    for t in tokens:
        glue_left = bool(re.fullmatch(r"[^\w\s'(\[{\"]", t)) or (t == '"' and quote_open)
        glue_right = out.endswith(("(", "[", "{")) or (out.endswith('"') and quote_open)
        out += t if not out or glue_left or glue_right else " " + t
        quote_open ^= t == '"'
    return out


class Vocab:
    """Word-level vocabulary (case kept; punctuation as tokens)."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, sentences: Sequence[str], max_size: int = 8000) -> Vocab:
        counts = Counter(w for s in sentences for w in _WORD.findall(s))
        return cls([w for w, _ in counts.most_common(max_size - len(SPECIALS))])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, sentence: str, max_len: int) -> list[int]:
        return [self.index.get(w, UNK) for w in _WORD.findall(sentence)][: max_len - 1] + [EOS]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            if i == EOS:
                break
            if i > UNK:
                out.append(self.words[i])
        return detokenize(out)

    def batch(self, sentences: Sequence[str], max_len: int) -> torch.Tensor:
        """``[N, max_len]`` target ids (EOS-terminated, PAD after)."""
        out = torch.full((len(sentences), max_len), PAD, dtype=torch.long)
        for i, s in enumerate(sentences):
            ids = self.encode(s, max_len)
            out[i, : len(ids)] = torch.tensor(ids)
        return out


@dataclass(frozen=True)
class TextGRUConfig:
    """The architecture of a :class:`TextGRU` (the defaults are the shipped decoder's).

    Parameters
    ----------
    vocab_size
        Number of word ids, the :class:`Vocab`'s length (specials included).
    dim
        Size of the embeddings it reads (the encoder's).
    emb
        Size of the word embeddings.
    hidden
        GRU state size.
    max_len
        Longest sentence in tokens, EOS included (targets are cut there; generation stops there).
    """

    vocab_size: int
    dim: int = 384
    emb: int = 256
    hidden: int = 384
    max_len: int = 24

    def __post_init__(self) -> None:
        check_positive(self, "emb", "hidden")  # at most MAX_WIDTH
        check_positive(self, "vocab_size", high=MAX_CLASSES)
        check_positive(self, "dim", high=MAX_DIM)
        check_positive(self, "max_len", high=1024)
        if self.vocab_size <= UNK:
            raise ConfigError(f"TextGRUConfig.vocab_size must count the {len(SPECIALS)} special tokens, "
                              f"got {self.vocab_size}")


class TextGRU(nn.Module):
    """Embedding ``[N, dim]`` -> word logits, a GRU whose initial state is a projection of the embedding.

    Built from a :class:`TextGRUConfig`, kept as ``self.config``.
    """

    def __init__(self, config: TextGRUConfig) -> None:
        if not isinstance(config, TextGRUConfig):
            raise ConfigError(f"TextGRU is built from a TextGRUConfig, got {type(config).__name__}")
        super().__init__()
        self.config = c = config
        self.init = nn.Sequential(nn.Linear(c.dim, c.hidden), nn.Tanh())
        self.cond = nn.Linear(c.dim, c.emb)
        self.embed = nn.Embedding(c.vocab_size, c.emb, padding_idx=PAD)
        self.gru = nn.GRU(c.emb, c.hidden, batch_first=True)
        self.out = nn.Linear(c.hidden, c.vocab_size)

    def forward(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``[N, L, V]`` for ``targets [N, L]``."""
        inputs = torch.cat([torch.full_like(targets[:, :1], BOS), targets[:, :-1]], dim=1)
        x = self.embed(inputs) + self.cond(z)[:, None]
        y, _ = self.gru(x, self.init(z)[None])
        return self.out(y)

    def loss(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self(z, targets)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD)

    @torch.no_grad()
    def log_likelihood(self, z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean per-token log-probability ``[N]`` of ``targets`` given ``z``."""
        logp = self(z, targets).log_softmax(-1).gather(-1, targets[..., None])[..., 0]
        mask = targets != PAD
        return (logp * mask).sum(1) / mask.sum(1).clamp_min(1)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Greedy ids ``[N, max_len]``."""
        h = self.init(z)[None]
        cond = self.cond(z)
        tok = torch.full((z.shape[0],), BOS, dtype=torch.long)
        out = []
        for _ in range(self.config.max_len):
            y, h = self.gru((self.embed(tok) + cond)[:, None], h)
            tok = self.out(y[:, 0]).argmax(-1)
            out.append(tok)
        return torch.stack(out, dim=1)


FEW_SHOT_RAG = (
    "Each message was sent over a noisy radio link. The receiver looked up similar sentences in its memory, "
    "closest first, and wrote down the message.\n\n"
    "Memory: the cat sat on the mat | a cat sat on a mat | the dog sat on the mat\n"
    "Message: the cat sat on the mat\n\n"
    "Memory: Never trust a smiling cat. | Never trust a man who smiles. | Trust, but verify.\n"
    "Message: Never trust a smiling cat.\n\n"
    "Memory: {context}\nMessage:"
)
FEW_SHOT_DRAFT = (
    "Each message was sent over a noisy radio link and decoded with errors. "
    "Write the message as it was meant.\n\n"
    "Decoded: the cat sat on on mat\nMessage: the cat sat on the mat\n\n"
    "Decoded: Never trust a smiling the cat.\nMessage: Never trust a smiling cat.\n\n"
    "Decoded: {draft}\nMessage:"
)


class TextDecoder:
    """The receiver's text decoder (see the module docstring).

    Parameters
    ----------
    net, vocab
        The trained :class:`TextGRU` and its :class:`Vocab`.
    mode
        ``"fast"`` (GRU / re-ranked retrieval) or ``"lm"`` (a causal LM writes the sentence).
    lm
        A :class:`~ragsc.decoders.lm.CausalLM` for ``mode="lm"``, or an LM spec loaded on first use
        (default SmolLM2).
    rerank_weight
        Weight of the GRU log-likelihood against the log rank prior when re-ranking (0, the default:
        retrieval top-1; see the module docstring).

    Notes
    -----
    Call ``decoder(received [N, D], context=None) -> list[str]``.
    """

    def __init__(self, net: TextGRU, vocab: Vocab, mode: str = "fast", lm="smollm2",
                 rerank_weight: float = 0.0) -> None:
        if mode not in ("fast", "lm"):
            raise InputError(f"text decoder mode must be 'fast' or 'lm', got {mode!r}")
        self.net, self.vocab, self.mode = net.eval(), vocab, mode
        self._lm, self.rerank_weight = lm, checks.real(rerank_weight, "rerank_weight", 0.0)

    @property
    def lm(self):
        from ragsc.decoders.lm import as_lm

        self._lm = as_lm(self._lm)  # a spec string is loaded on first use
        return self._lm

    def draft(self, received: torch.Tensor) -> list[str]:
        """The GRU's sentences from the received embeddings alone."""
        return [self.vocab.decode(row) for row in self.net.generate(received.float()).tolist()]

    def rerank(self, received: torch.Tensor, candidates: list[list[str]]) -> list[str]:
        """Best candidate per row: ``log rank weight + rerank_weight * GRU log-likelihood``."""
        flat = [(i, r, c) for i, row in enumerate(candidates) for r, c in enumerate(row)]
        if not flat:
            return [""] * len(candidates)
        if self.rerank_weight == 0:
            return [row[0] if row else "" for row in candidates]
        idx = torch.tensor([i for i, _, _ in flat])
        targets = self.vocab.batch([c for *_, c in flat], self.net.config.max_len)
        ll = self.net.log_likelihood(received.float()[idx], targets)
        best: dict[int, tuple[float, str]] = {}
        for (i, r, c), score in zip(flat, ll.tolist()):
            s = float(rank_weights(len(candidates[i]))[r].log()) + self.rerank_weight * score
            if i not in best or s > best[i][0]:
                best[i] = (s, c)
        return [best[i][1] if i in best else "" for i in range(len(candidates))]

    def __call__(self, received: torch.Tensor, context: Context | None = None) -> list[str]:
        if received.ndim != 2:
            raise InputError(f"the text decoder takes received embeddings [N, D], "
                             f"got shape {tuple(received.shape)}")
        if context is not None:
            context.check(received.shape[0])
            texts = context.texts
            if self.mode == "fast":
                out = self.rerank(received, texts)
            else:
                out = self.lm([FEW_SHOT_RAG.format(context=" | ".join(t)) for t in texts])
            drafts = None
            for i, (o, t) in enumerate(zip(out, texts)):  # nothing retrieved: fall back on the GRU
                if not t or not o:
                    drafts = drafts or self.draft(received)
                    out[i] = drafts[i]
            return out
        drafts = self.draft(received)
        if self.mode == "fast":
            return drafts
        return [o or d for o, d in zip(self.lm([FEW_SHOT_DRAFT.format(draft=d) for d in drafts]), drafts)]
