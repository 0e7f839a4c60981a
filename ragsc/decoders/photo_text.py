"""Captions and open-vocabulary answers for real photos, from a semantic embedding, the KB and the LM.

:class:`PhotoDescriber` works with any multimodal encoder (it only embeds texts and compares them with the
photo's embedding) and any causal LM:

1. **Recognise** — every name of a label vocabulary (ImageNet's 1,000 classes, a fixed list of common
   scene, colour, season and material words, and the titles of the retrieved KB photos) is embedded as
   "a photo of {name}"; the photo's embedding scores them by cosine. The top names are what the receiver
   recognised.
2. **Retrieve** — the KB photos near the embedding (the pipeline's RAG context) contribute their captions,
   only when the photo is as close to a caption as to its recognised names (a hub that every photo
   retrieves is near none of them).
3. **Caption** — (``caption="lm"``, the default) the LM writes one from a few-shot prompt holding the
   recognised names and the evidence (a draft with none of their words falls back to the names' caption);
   or (``caption="labels"``) the first evidence caption, else "a photo of {first name} and {second name}".
4. **Answer** — yes/no questions: the LM's log-probability of " yes" against " no" after a prompt with the
   evidence, plus the rank of the question's subject among the vocabulary's names by their cosine to the
   photo (weighted, around a rank threshold);
   other questions: candidate answers (the vocabulary, the retrieved evidence's titles and words, or the
   question's own "x or y" options) scored by the encoder, ``cos(photo, answer) + beta * cos(question,
   answer)`` (the second term picks the kind of answer the question asks for: a colour, a season, a thing;
   names made only of the question's own words are left out: "what colour is the boat?" is not answered
   "boat"), the best few re-ranked by the LM's log-probability of each answer after the evidence and the
   question.

The weights (``beta``, ``lm_weight``, ``yes_weight``, ``yes_rank``) were chosen on the validation
split of the development set (:mod:`ragsc.datasets.photo_questions`) with the embedded encoder and
SmolLM2; the figures are reported on its test split (``benchmarks/bench_photo_text.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ragsc.errors import InputError

# common words a photo's answer may need that ImageNet's object classes lack (not taken from any test set)
COMMON_WORDS = (
    "red orange yellow green blue purple pink brown black white grey gold silver "
    "spring summer autumn winter morning day evening dusk night sunset sunrise "
    "wood stone metal glass paper plastic brick sand water ice snow "
    "forest beach lake sea river mountain desert field garden street city road bridge building house "
    "room kitchen office sky clouds space stars moon sun tree trees flower plants grass leaf "
    "person man woman child people face hand animal bird dog cat horse fish insect "
    "car bike boat plane train food drink fruit text writing numbers picture painting toy clothing shoe"
).split()
_STOP = frozenset(
    "a an the of in on at by with and or to is are this that it its photo picture image".split()
)
_POLAR = re.compile(r"^(is|are|was|were|does|do|did|can|could|has|have|will|would|should)\b", re.I)
_SUBJECT = re.compile(
    r"^(is|are|was|were|does|do|did|can|could|has|have|will|would|should)\s+"
    r"(there\s+|this\s+|it\s+|the\s+picture\s+|the\s+photo\s+|the\s+image\s+)?",
    re.I,
)

FEW_SHOT_CAPTION = (
    "Write a short caption for a photo from what was recognised in it.\n\n"
    "Recognised: seashore, sandbar, lakeside\nSimilar photos: (none)\nCaption: a sandy beach by the sea\n\n"
    "Recognised: tabby cat, Egyptian cat, tiger cat\nSimilar photos: a kitten\n"
    "Caption: a close-up of a cat\n\n"
    "Recognised: {labels}\nSimilar photos: {similar}\nCaption:"
)
FEW_SHOT_ANSWER = (
    "Answer the question about a photo from what was recognised in it.\n\n"
    "Recognised: seashore, sandbar, lakeside\nQuestion: is there water?\nAnswer: yes\n\n"
    "Recognised: tabby cat, Egyptian cat, tiger cat\nQuestion: is there a dog?\nAnswer: no\n\n"
    "Recognised: sports car, convertible, car wheel\nQuestion: what vehicle is this?\nAnswer: car\n\n"
    "Recognised: {labels}\nSimilar photos: {similar}\nQuestion: {question}\nAnswer:"
)


@dataclass
class DescriberSettings:
    """The describer's weights (defaults chosen on the development set's validation split)."""

    caption: str = "lm"  # "lm": the LM writes; "labels": the evidence's caption, else the top two names
    n_labels: int = 5  # recognised names shown to the LM (and the bar evidence must clear)
    beta: float = 0.5  # weight of cos(question, answer) in an open answer's score
    n_rerank: int = 5  # open answers the LM re-ranks
    lm_weight: float = 0.1  # weight of the LM's mean log-probability in the re-ranking
    yes_weight: float = 50.0  # weight of the subject's rank in a yes/no answer (the LM's vote is the rest)
    yes_rank: float = 0.9  # the subject's rank among the vocabulary's names (0..1) at which it is neutral

    def check(self) -> None:
        """:class:`InputError` naming a setting out of range (checked at each use: settings are mutable)."""
        if self.caption not in ("labels", "lm"):
            raise InputError(f"caption mode must be 'labels' or 'lm', got {self.caption!r}")
        for name in ("n_labels", "n_rerank"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(f"DescriberSettings.{name} must be an integer >= 1, got {value!r}")


class PhotoDescriber:
    """Captions and answers for photos (see the module docstring).

    Parameters
    ----------
    encoder
        The pipeline's multimodal encoder (its text tower embeds names, questions and answers).
    lm
        A :class:`~ragsc.decoders.lm.CausalLM`, :class:`~ragsc.decoders.lm.SharedLM` or LM spec.
    settings
        :class:`DescriberSettings`.

    Notes
    -----
    ``describer.caption(embeddings [N, D], context=None) -> list[str]`` and
    ``describer.answer(embeddings [N, D], questions, context=None) -> list[list[str]]``.
    """

    def __init__(self, encoder, lm="smollm2", settings: DescriberSettings | None = None) -> None:
        self.encoder, self._lm = encoder, lm
        self.settings = settings or DescriberSettings()
        self._cache: dict[str, torch.Tensor] = {}
        self._vocab: list[str] | None = None
        self._vocab_matrix: tuple[tuple[str, ...], torch.Tensor] | None = None

    @property
    def lm(self):
        from ragsc.decoders.lm import as_lm

        self._lm = as_lm(self._lm)
        return self._lm

    # ------------------------------------------------------------------ evidence
    def embed(self, texts: list[str]) -> torch.Tensor:
        """Normalised text embeddings ``[len(texts), D]``, cached."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(todo), 256):
            chunk = todo[start : start + 256]
            for t, e in zip(chunk, F.normalize(self.encoder.encode_texts(chunk).embeddings.float(), dim=-1)):
                self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts]) if texts else torch.zeros(0, self.encoder.dim)

    @property
    def vocabulary(self) -> list[str]:
        """The label names: ImageNet's classes and :data:`COMMON_WORDS`."""
        if self._vocab is None:
            from ragsc.encoders.train_embedded import imagenet_class_names

            self._vocab = list(dict.fromkeys([*imagenet_class_names(), *COMMON_WORDS]))
        return self._vocab

    def _names(self, names: list[str]) -> torch.Tensor:
        """``[len(names), D]`` embeddings of "a photo of {name}"; a list that starts with the vocabulary
        reuses its matrix (stacked once, not per photo and per question)."""
        vocab = self.vocabulary
        if len(names) >= len(vocab) and names[: len(vocab)] == vocab:
            key = tuple(vocab)
            if self._vocab_matrix is None or self._vocab_matrix[0] != key:
                self._vocab_matrix = (key, self.embed([f"a photo of {n}" for n in vocab]))
            rest = names[len(vocab):]
            return torch.cat([self._vocab_matrix[1], self._names(rest)]) if rest else self._vocab_matrix[1]
        return self.embed([f"a photo of {n}" for n in names])

    def recognise(self, z: torch.Tensor, context=None) -> list[list[tuple[str, float]]]:
        """Per photo, the vocabulary's (and the retrieved photos' titles') names by cosine, best first."""
        z = self._check(z, context)
        out = []
        for i in range(len(z)):
            names = list(dict.fromkeys(self.vocabulary + self._titles(context, i)))
            s = self._names(names) @ z[i]
            top = s.topk(min(20, len(names)))
            out.append([(names[j], float(v)) for v, j in zip(top.values, top.indices)])
        return out

    def similar(self, z: torch.Tensor, context, recognised=None) -> list[list[str]]:
        """Per photo, the captions of the retrieved KB photos that are evidence: a caption counts when the
        photo is at least as close to it as to its ``n_labels``-th recognised name (a hub that every photo
        retrieves is near none of them)."""
        z = self._check(z, context)
        if context is None:
            return [[] for _ in range(len(z))]
        recognised = recognised or self.recognise(z, context)
        out = []
        for i, row in enumerate(context.hits):
            texts = [h.item.text for h in row if h.item.modality == "image" and h.item.text]
            if not texts:
                out.append([])
                continue
            bar = recognised[i][min(self.settings.n_labels, len(recognised[i])) - 1][1]
            cos = self.embed(texts) @ z[i]
            out.append([t for t, c in zip(texts, cos.tolist()) if c >= bar])
        return out

    @staticmethod
    def _titles(context, i: int) -> list[str]:
        if context is None:
            return []
        return [
            h.item.extra["title"]
            for h in context.hits[i]
            if isinstance(getattr(h.item, "extra", None), dict) and h.item.extra.get("title")
        ]

    def _check(self, z: torch.Tensor, context=None) -> torch.Tensor:
        self.settings.check()
        if not torch.is_tensor(z) or z.ndim != 2 or z.shape[1] != self.encoder.dim:
            raise InputError(
                f"the photo describer takes embeddings [N, {self.encoder.dim}], got "
                f"{tuple(z.shape) if torch.is_tensor(z) else type(z).__name__}"
            )
        if context is not None:
            context.check(len(z))
        if not self.vocabulary:
            raise InputError("the photo describer's vocabulary is empty")
        return F.normalize(z.float(), dim=-1)

    # ------------------------------------------------------------------ captions
    @torch.no_grad()
    def caption(self, z: torch.Tensor, context=None) -> list[str]:
        """A short caption per photo."""
        z = self._check(z, context)
        if not len(z):
            return []
        rec = self.recognise(z, context)
        sim = self.similar(z, context, rec)
        names = [
            f"a photo of {r[0][0]} and {r[1][0]}" if len(r) > 1 else f"a photo of {r[0][0]}" for r in rec
        ]
        if self.settings.caption == "labels":
            return [s[0] if s else n for s, n in zip(sim, names)]
        labels = [", ".join(n for n, _ in r[: self.settings.n_labels]) for r in rec]
        similar = [" | ".join(s[:2]) or "(none)" for s in sim]
        drafts = self.lm(
            [FEW_SHOT_CAPTION.format(labels=lab, similar=si) for lab, si in zip(labels, similar)],
            max_new_tokens=16,
        )
        out = []
        for draft, lab, si, name in zip(drafts, labels, similar, names):
            words = set(re.findall(r"[a-z]+", (lab + " " + si).lower())) - _STOP
            out.append(draft if draft and words & set(re.findall(r"[a-z]+", draft.lower())) else name)
        return out

    # ------------------------------------------------------------------ answers
    @torch.no_grad()
    def answer(self, z: torch.Tensor, questions: list[list[str]], context=None) -> list[list[str]]:
        """One answer per question, per photo (``questions[i]`` are photo ``i``'s)."""
        z = self._check(z, context)
        if len(questions) != len(z):
            raise InputError(f"{len(questions)} question lists for {len(z)} photos")
        for qs in questions:
            if isinstance(qs, str) or not all(isinstance(q, str) and q.strip() for q in qs):
                raise InputError("questions must be, per photo, a list of non-empty strings")
        rec = self.recognise(z, context)
        sim = self.similar(z, context, rec)
        labels = [", ".join(n for n, _ in r[: self.settings.n_labels]) for r in rec]
        out: list[list[str]] = []
        for i, qs in enumerate(questions):
            similar = " | ".join(sim[i][:2]) or "(none)"
            prompts = [
                FEW_SHOT_ANSWER.format(labels=labels[i], similar=similar, question=q.strip()) for q in qs
            ]
            extra = self._titles(context, i) + _words(sim[i])  # the retrieved evidence's names and words
            out.append(
                [
                    self._polar(z[i], q, p)
                    if _POLAR.match(q.strip()) and not _options(q)
                    else self._open(z[i], q, p, extra)
                    for q, p in zip(qs, prompts)
                ]
            )
        return out

    def _polar(self, z: torch.Tensor, question: str, prompt: str) -> str:
        s = self.settings
        lp = self.lm.score([prompt, prompt], [" yes", " no"])
        subject = _SUBJECT.sub("", question.strip().rstrip("?")).strip() or question
        cos = self._names([subject])[0] @ z
        # its rank among the vocabulary's names for this photo: calibrated per photo, where a raw cosine
        # threshold is not (some photos are close to every name, others to none)
        rank = float((self._names(self.vocabulary) @ z < cos).float().mean())
        margin = float(lp[0] - lp[1]) + s.yes_weight * (rank - s.yes_rank)
        return "yes" if margin > 0 else "no"

    def _open(self, z: torch.Tensor, question: str, prompt: str, extra: list[str]) -> str:
        s = self.settings
        options = _options(question)
        asked = set(re.findall(r"[a-z]+", question.lower()))  # an answer does not repeat the question's words
        pool = list(dict.fromkeys(self.vocabulary + extra))
        names = options or [n for n in pool if not set(re.findall(r"[a-z]+", n.lower())) <= asked] or pool
        score = self._names(names) @ z + s.beta * (self.embed(names) @ self.embed([question])[0])
        top = score.topk(min(s.n_rerank, len(names)))
        cands = [names[j] for j in top.indices]
        if s.lm_weight and len(cands) > 1:
            lp = self.lm.score([prompt] * len(cands), [" " + c for c in cands])
            best = int((top.values + s.lm_weight * lp).argmax())
        else:
            best = 0
        return cands[best]


def _words(captions: list[str]) -> list[str]:
    """The content words of captions (``["a green circle"]`` -> ``["green", "circle"]``)."""
    words = (w for c in captions for w in re.findall(r"[a-z][a-z-]+", c.lower()))
    return list(dict.fromkeys(w for w in words if w not in _STOP))


_ARTICLE = re.compile(r"^(a|an|the|some)\s+")


def _options(question: str) -> list[str]:
    """The options of a choice question: ``"is it day or night?"`` -> ``["day", "night"]``, ``"is it a red
    car or a blue car?"`` -> ``["red car", "blue car"]``, ``"is it black, white or grey?"`` -> all three.
    Only questions that start like a yes/no question; ``"... or not?"`` is a yes/no question (none)."""
    q = question.strip().lower().rstrip("?").strip()
    m = re.match(r"^(?:is|are|was|were|does|do|did|can|could|will|would|should)\s+(.*)\s+or\s+(.+)$", q)
    if not m or m.group(2).strip() in ("not", "no"):
        return []
    right = _ARTICLE.sub("", m.group(2).strip())
    n = len(right.split())
    items = [x.strip() for x in m.group(1).split(",")]
    last = items[-1].split()
    left = [_ARTICLE.sub("", " ".join(last[-n:]))]  # as many words as the right-hand option
    more = [_ARTICLE.sub("", x) for x in items[:-1] if x] if len(items) > 1 else []
    if more:  # "is it black, white or grey": the first item carries the question's words
        more[0] = more[0].split()[-1]
    return [o for o in (*more, *left, right) if o]
