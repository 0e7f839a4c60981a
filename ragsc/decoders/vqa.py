"""VQA decoders: answer questions about a received image from its embedding, the question and the context.

* :class:`AnswerHead` — a trained classifier over a closed answer vocabulary (easy-VQA's 13 answers):
  an MLP on ``[image, question, image*question, context, context*question, has_context]``, where the
  context is the rank-weighted mean of the retrieved neighbours' text embeddings (their captions)
  and is dropped half the time in training, so one head serves RAG on and off.
* :class:`VQADecoder` ``mode="lm"``: open answers; a causal LM answers a few-shot prompt built from
  the retrieved captions. An LM cannot read the received vector, so with RAG off the LM mode falls
  back on the answer head (said in the output's meta by the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ragsc.config import MAX_DIM
from ragsc.decoders.arch import check_positive
from ragsc.decoders.context import Context, pooled
from ragsc.errors import ConfigError, InputError


@dataclass(frozen=True)
class AnswerHeadConfig:
    """The architecture of an :class:`AnswerHead` (the defaults are the shipped head's), answers included.

    Parameters
    ----------
    answers
        The closed answer vocabulary, in logit order (distinct non-empty strings; a list is stored as a
        tuple).
    dim
        Size of the embeddings it reads (the encoder's).
    hidden
        Width of the MLP's two hidden layers.
    """

    answers: tuple[str, ...]
    dim: int = 384
    hidden: int = 512

    def __post_init__(self) -> None:
        answers = self.answers
        if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) and a.strip()
                                                             for a in answers):
            raise ConfigError(f"AnswerHeadConfig.answers must be a list of non-empty strings, "
                              f"got {answers!r}")
        object.__setattr__(self, "answers", tuple(self.answers))  # frozen: a list from JSON becomes a tuple
        if not self.answers or len(set(self.answers)) != len(self.answers):
            raise ConfigError(f"AnswerHeadConfig.answers must be distinct and at least one, "
                              f"got {list(self.answers)}")
        check_positive(self, "dim", high=MAX_DIM)
        check_positive(self, "hidden")  # at most MAX_WIDTH


class AnswerHead(nn.Module):
    """``(image [N, D], question [N, D], context [N, D], has_context [N]) -> logits [N, A]``.

    Built from an :class:`AnswerHeadConfig`, kept as ``self.config``; ``answers`` names the logits.
    """

    def __init__(self, config: AnswerHeadConfig) -> None:
        if not isinstance(config, AnswerHeadConfig):
            raise ConfigError(f"AnswerHead is built from an AnswerHeadConfig, got {type(config).__name__}")
        super().__init__()
        self.config = c = config
        self.mlp = nn.Sequential(nn.Linear(5 * c.dim + 1, c.hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(c.hidden, c.hidden), nn.GELU(),
                                 nn.Linear(c.hidden, len(c.answers)))

    @property
    def answers(self) -> list[str]:
        """The answer of each logit (a copy of the config's)."""
        return list(self.config.answers)

    def forward(self, image: torch.Tensor, question: torch.Tensor, context: torch.Tensor,
                has_context: torch.Tensor) -> torch.Tensor:
        ctx = context * has_context[:, None]
        x = torch.cat([image, question, image * question, ctx, ctx * question, has_context[:, None]], dim=1)
        return self.mlp(x)


FEW_SHOT_VQA = (
    "Answer each question about an image from the facts the receiver retrieved.\n\n"
    "Facts: a green circle | a picture of a green circle\n"
    "Question: what shape is in the image?\nAnswer: circle\n\n"
    "Facts: a black rectangle | a black rectangle on a white background\n"
    "Question: is there a triangle?\nAnswer: no\n\n"
    "Facts: {context}\nQuestion: {question}\nAnswer:"
)


class VQADecoder:
    """The receiver's VQA decoder.

    Parameters
    ----------
    head
        The trained :class:`AnswerHead`.
    encoder
        The text tower for questions and retrieved captions (the pipeline's encoder).
    mode
        ``"head"`` (closed vocabulary) or ``"lm"`` (open answers from a causal LM over the context).
    lm
        A :class:`~ragsc.decoders.lm.CausalLM`, or an LM spec loaded on first use (default SmolLM2).

    Notes
    -----
    Call ``decoder(received [N, D], questions, context=None) -> list[list[str]]`` where
    ``questions[i]`` are the questions asked about item ``i``.
    """

    def __init__(self, head: AnswerHead, encoder, mode: str = "head", lm="smollm2") -> None:
        if mode not in ("head", "lm"):
            raise InputError(f"VQA decoder mode must be 'head' or 'lm', got {mode!r}")
        self.head, self.encoder, self.mode, self._lm = head.eval(), encoder, mode, lm
        self._cache: dict[str, torch.Tensor] = {}

    @property
    def lm(self):
        from ragsc.decoders.lm import as_lm

        self._lm = as_lm(self._lm)  # a spec string is loaded on first use
        return self._lm

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """Text-tower embeddings ``[len(texts), D]``, cached (questions and captions repeat)."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for t, e in zip(todo, self.encoder.encode_texts(todo).embeddings.float()):
                self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, self.encoder.dim)

    def context_embedding(self, context: Context) -> tuple[torch.Tensor, torch.Tensor]:
        texts = context.texts
        flat = self.embed_texts([t for row in texts for t in row])
        rows, start = [], 0
        for row in texts:
            rows.append(flat[start:start + len(row)])
            start += len(row)
        return pooled(rows, (self.encoder.dim,))

    @torch.no_grad()
    def __call__(self, received: torch.Tensor, questions: list[list[str]],
                 context: Context | None = None) -> list[list[str]]:
        if received.ndim != 2:
            raise InputError(f"the VQA decoder takes received embeddings [N, D], "
                             f"got shape {tuple(received.shape)}")
        if len(questions) != received.shape[0]:
            raise InputError(f"{len(questions)} question lists for {received.shape[0]} received images")
        for qs in questions:
            if isinstance(qs, str) or not all(isinstance(q, str) and q.strip() for q in qs):
                raise InputError("questions must be, per image, a list of non-empty strings")
        flat = [(i, q) for i, qs in enumerate(questions) for q in qs]
        if not flat:
            return [[] for _ in questions]
        if context is not None:
            context.check(received.shape[0])
        if self.mode == "lm" and context is not None:
            texts = context.texts
            answers = self.lm([FEW_SHOT_VQA.format(context=" | ".join(texts[i]) or "(nothing)", question=q)
                               for i, q in flat], max_new_tokens=8)
        else:
            idx = torch.tensor([i for i, _ in flat])
            n, d = received.shape
            if context is not None:
                ctx, has = self.context_embedding(context)
            else:
                ctx, has = torch.zeros(n, d), torch.zeros(n)
            questions_emb = self.embed_texts([q for _, q in flat])
            logits = self.head(received.float()[idx], questions_emb, ctx[idx], has[idx])
            names = self.head.config.answers
            answers = [names[a] for a in logits.argmax(-1).tolist()]
        out: list[list[str]] = [[] for _ in questions]
        for (i, _), a in zip(flat, answers):
            out[i].append(a)
        return out
