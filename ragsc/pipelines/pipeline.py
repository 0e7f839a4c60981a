"""Task pipelines: encoder -> link -> retrieval from the receiver's KBs -> decoders.

``Pipeline.from_config("pipelines/multitask.yaml")`` builds one from a spec. Then

* ``tx = pipe.transmit(items, snr_db=..., channel=...)`` encodes the items and sends each one's
  semantic embedding through the analog link (``k_symbols`` complex symbols per item, PCA basis);
* ``outputs = pipe.receive(tx, rag=None)`` retrieves context near each received embedding from the
  local + global KBs and decodes: a sentence (text), an image and its caption / class (image),
  answers (VQA); ``rag=False`` decodes from the received embedding alone;
* ``pipe.run(items, ...)`` does both.

Items are parsed by :mod:`ragsc.pipelines.items` (sentences, images, ``{"image": ..., "questions":
[...]}``). A multitask pipeline serves every task from one transmission: texts are reconstructed,
images reconstructed, captioned and questioned. Batches are the unit everywhere; batch 1 runs the
same code, and :class:`~ragsc.types.SemanticTokens` carry the batch end to end, with each row's
modality. ``pipe.decode(tokens, messages)`` decodes received tokens from any path (the digital
baselines use it). Stage timings of the last call are in ``pipe.timings`` (seconds: encode,
channel, retrieve, decode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ragsc.channel import Link, Received
from ragsc.config import PipelineSpec, load_pipeline_spec, validate
from ragsc.decoders import Context, ImageDecoder, TextDecoder, VQADecoder, load_decoders
from ragsc.errors import ConfigError, InputError, KBError
from ragsc.pipelines.items import Message, parse_items
from ragsc.types import SemanticTokens

# what a pipeline's receiver produces for an image item (a text pipeline has none)
IMAGE_TASKS = {"text": (), "image": ("image", "caption"), "vqa": ("vqa",),
               "multitask": ("image", "caption", "vqa")}


@dataclass
class Transmission:
    """What reached the receiver, plus the bookkeeping an evaluation needs.

    ``received.tokens`` (embeddings ``[N, D]`` and each row's modality, the per-item header) is all
    the receiver decodes from; ``messages`` keep what was sent (for scoring; the receiver reads only
    the questions the receiver itself asks about images).
    """

    messages: list[Message]
    received: Received
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def snr_db(self) -> float:
        """The SNR it was sent at (``inf`` for the noiseless bound)."""
        return self.received.snr_db

    @property
    def channel(self) -> str:
        """The channel it crossed (``"none"`` for the noiseless bound)."""
        return self.received.channel

    @property
    def kinds(self) -> list[str]:
        """Each item's modality, as the received header says."""
        return list(self.received.tokens.modalities)

    @property
    def channel_uses(self) -> int:
        """Complex symbols per item."""
        return self.received.channel_uses

    def __len__(self) -> int:
        return len(self.messages)


@dataclass
class Output:
    """What the receiver produced for one item.

    ``text``: the decoded sentence (text items); ``image``: the decoded image, ``caption`` the caption
    of the best retrieved neighbour (RAG) or the text decoder's reading of the embedding (no RAG),
    ``label`` its class attributes when the KB has them; ``answers``: one per question;
    ``context``: the retrieved hits (``None`` without RAG), with their provenance.
    """

    kind: str
    text: str | None = None
    image: Image.Image | None = None
    caption: str | None = None
    label: dict | None = None
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    context: list | None = None


class Pipeline:
    """A task pipeline built from a :class:`~ragsc.config.PipelineSpec` (see the module docstring).

    Parameters
    ----------
    spec
        The validated spec.
    encoder, local, global_, decoders, lm
        Already-built parts to use instead of building them from the spec (tests, notebooks and
        sweeps share one encoder and KB this way).
    """

    def __init__(self, spec: PipelineSpec, *, encoder=None, local=None, global_=None, decoders=None,
                 lm=None) -> None:
        from ragsc.encoders import load_encoder
        from ragsc.kb import HybridRetriever

        self.spec = spec
        self.encoder = encoder or load_encoder(spec.encoder.spec, batch_size=spec.encoder.batch_size,
                                               device=spec.encoder.device)
        self.decoders = decoders or load_decoders(spec.decoder.weights)
        self.decoders.check_encoder(self.encoder)
        # k must fit the basis: fail before encoding
        self.link().k_symbols_for(self.decoders.pca.components.shape[1])
        kbs = {"local": local, "global": global_}
        for ref in spec.knowledge_bases:
            if kbs[ref.scope] is None:
                kbs[ref.scope] = _open_kb(ref, self.encoder)
        self.retriever = None
        if kbs["local"] is not None or kbs["global"] is not None:
            self.retriever = HybridRetriever(kbs["local"], kbs["global"], fusion=spec.decoder.fusion,
                                             encoder=self.encoder)
        elif spec.decoder.rag:
            raise ConfigError(f"pipeline {spec.name!r}: decoder.rag is on but no knowledge base is "
                              "configured (add knowledge_bases or set decoder.rag: false)")
        d = self.decoders
        lm = lm or spec.decoder.lm  # a spec string is loaded on first use, once for both decoders
        self.text_decoder = TextDecoder(d.text, d.vocab, spec.decoder.text, lm=lm)
        self.image_decoder = ImageDecoder(d.image, spec.decoder.image_copy_threshold)
        self.vqa_decoder = VQADecoder(d.vqa, self.encoder, spec.decoder.vqa, lm=lm)
        self.timings: dict[str, float] = {}

    @classmethod
    def from_config(cls, config: str | Path | dict | PipelineSpec, **parts) -> Pipeline:
        """Build from a YAML path, a dict or a :class:`PipelineSpec`; ``parts`` as in the constructor."""
        if isinstance(config, PipelineSpec):
            spec = config
        elif isinstance(config, dict):
            spec = validate(PipelineSpec, config, "pipeline spec")
        else:
            spec = load_pipeline_spec(config)
        return cls(spec, **parts)

    def __repr__(self) -> str:
        return f"Pipeline({self.spec.name!r}, task={self.spec.task!r}, encoder={self.encoder.spec!r})"

    @property
    def task(self) -> str:
        return self.spec.task

    # ------------------------------------------------------------------------- transmitter
    def messages(self, items) -> list[Message]:
        """Validate items for this task (see :mod:`ragsc.pipelines.items`) without encoding them."""
        return parse_items(items, self.task)

    def encode(self, messages: list[Message]) -> SemanticTokens:
        """The messages' :class:`SemanticTokens`, in order, each row with its modality (images and texts are
        batched separately)."""
        emb = torch.zeros(len(messages), self.encoder.dim)
        meta: dict = {}
        for kind in ("image", "text"):
            idx = [i for i, m in enumerate(messages) if m.kind == kind]
            if idx:
                contents = [messages[i].content for i in idx]
                enc = (self.encoder.encode_images(contents) if kind == "image"
                       else self.encoder.encode_texts(contents))
                emb[idx] = enc.embeddings.float().cpu()
                meta = {**enc.meta, **meta}
        meta.pop("truncated", None)  # per-modality row numbers: they do not index this batch
        return SemanticTokens(emb, [m.kind for m in messages], meta=meta)

    def link(self, channel: str | None = None, seed: int | None = None) -> Link:
        """The analog link of this pipeline: the spec's channel (``channel`` overrides its kind), seeded with
        the spec's seed (or ``seed``), sending ``k_symbols`` PCA coefficients of the decoders' basis."""
        update = {"seed": self.spec.seed if seed is None else seed}
        if channel is not None:
            update["channel"] = channel
        return Link(self.spec.channel, transform=self.decoders.pca, **update)

    def transmit(self, items, *, snr_db: float | None = None, channel: str | None = None,
                 seed: int | None = None, noiseless: bool = False) -> Transmission:
        """Encode and send ``items``; ``noiseless`` sends the same ``k_symbols`` without noise (the bound)."""
        link = self.link(channel, seed)  # validates channel and k before any encoding
        if not noiseless:
            link.snr(snr_db)  # and the SNR
        messages = self.messages(items)
        t0 = time.perf_counter()
        tokens = self.encode(messages)
        encode_s = time.perf_counter() - t0
        tx = self.send(messages, tokens, snr_db=snr_db, link=link, noiseless=noiseless)
        tx.timings = self.timings = {"encode": encode_s, **tx.timings}
        return tx

    def send(self, messages: list[Message], tokens: SemanticTokens, *, snr_db: float | None = None,
             channel: str | None = None, seed: int | None = None, noiseless: bool = False,
             link: Link | None = None) -> Transmission:
        """Send already-encoded messages (sweeps encode once and send at every SNR)."""
        link = link or self.link(channel, seed)
        if not isinstance(tokens, SemanticTokens):
            raise InputError(f"send() takes the SemanticTokens of encode(), got {type(tokens).__name__}")
        if tokens.embeddings.shape != (len(messages), self.encoder.dim):
            raise InputError(f"embeddings {tuple(tokens.embeddings.shape)} do not match "
                             f"{len(messages)} messages of dim {self.encoder.dim}")
        if list(tokens.modalities) != [m.kind for m in messages]:
            raise InputError("the tokens' modalities do not match the messages' kinds "
                             "(encode them with encode())")
        t0 = time.perf_counter()
        rx = link(tokens, snr_db, noiseless=noiseless)
        self.timings = {"channel": time.perf_counter() - t0}
        return Transmission(messages, rx, dict(self.timings))

    # ------------------------------------------------------------------------- receiver
    def retrieve(self, received: torch.Tensor, kinds: list[str]) -> list[list]:
        """Hits per received item: text items search text items, image items image items."""
        if self.retriever is None:
            raise ConfigError(f"pipeline {self.spec.name!r} has no knowledge base to retrieve from")
        hits: list[list] = [[] for _ in kinds]
        for kind in ("text", "image"):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            if idx:
                for i, row in zip(idx, self.retriever.search(received[idx], self.spec.decoder.k,
                                                             modality=kind)):
                    hits[i] = row
        return hits

    def receive(self, tx: Transmission, *, rag: bool | None = None,
                tasks: tuple[str, ...] | None = None) -> list[Output]:
        """Decode a transmission (``rag`` overrides the spec; ``tasks`` limits what image items yield:
        any of ``"image"``, ``"caption"``, ``"vqa"``)."""
        if not isinstance(tx, Transmission):
            raise InputError(f"receive() takes a Transmission from transmit(), got {type(tx).__name__}")
        outputs = self.decode(tx.received.tokens, tx.messages, rag=rag, tasks=tasks)
        self.timings = {**tx.timings, **self.timings}
        return outputs

    def decode(self, tokens: SemanticTokens, messages: list[Message], *, rag: bool | None = None,
               tasks: tuple[str, ...] | None = None) -> list[Output]:
        """Decode received ``tokens`` (from any path: the analog link, a digital baseline's re-encoded
        content, ...); ``messages`` give the questions the receiver asks about images (their content is
        never read). ``rag`` and ``tasks`` as in :meth:`receive`."""
        if not isinstance(tokens, SemanticTokens):
            raise InputError(f"decode() takes received SemanticTokens, got {type(tokens).__name__}")
        if len(tokens) != len(messages):
            raise InputError(f"{len(tokens)} received items for {len(messages)} messages")
        rag = self.spec.decoder.rag if rag is None else rag
        if rag and self.retriever is None:
            raise ConfigError(f"pipeline {self.spec.name!r}: RAG needs a knowledge base")
        tasks = tasks or IMAGE_TASKS[self.task]
        received = tokens.embeddings.float()
        kinds = list(tokens.modalities)
        t0 = time.perf_counter()
        hits = self.retrieve(received, kinds) if rag else None
        t1 = time.perf_counter()
        outputs = [Output(k, questions=list(m.questions), context=hits[i] if hits else None)
                   for i, (k, m) in enumerate(zip(kinds, messages))]
        self._decode_texts(received, kinds, hits, outputs)
        self._decode_images(received, kinds, hits, outputs, tasks)
        t2 = time.perf_counter()
        self.timings = {"retrieve": t1 - t0, "decode": t2 - t1}
        return outputs

    def run(self, items, *, snr_db: float | None = None, channel: str | None = None, rag: bool | None = None,
            seed: int | None = None) -> list[Output]:
        """``receive(transmit(items))``."""
        return self.receive(self.transmit(items, snr_db=snr_db, channel=channel, seed=seed), rag=rag)

    def _decode_texts(self, received, kinds, hits, outputs) -> None:
        idx = [i for i, k in enumerate(kinds) if k == "text"]
        if not idx:
            return
        ctx = Context([hits[i] for i in idx]) if hits else None
        for i, text in zip(idx, self.text_decoder(received[idx], ctx)):
            outputs[i].text = text

    def _decode_images(self, received, kinds, hits, outputs, tasks) -> None:
        idx = [i for i, k in enumerate(kinds) if k == "image"]
        if not idx:
            return
        ctx = Context([hits[i] for i in idx]) if hits else None
        z = received[idx]
        if "image" in tasks:
            for i, im in zip(idx, self.image_decoder(z, ctx)):
                outputs[i].image = im
        if "caption" in tasks:
            if ctx is not None:
                for i, row in zip(idx, ctx.hits):
                    outputs[i].caption = row[0].item.text if row else None
                    outputs[i].label = _label(row[0].item.extra) if row else None
            else:  # no KB: the text decoder reads the image embedding (the two spaces are aligned)
                for i, text in zip(idx, self.text_decoder.draft(z)):
                    outputs[i].caption = text
        if "vqa" in tasks:
            questions = [outputs[i].questions for i in idx]
            if any(questions):
                for i, answers in zip(idx, self.vqa_decoder(z, questions, ctx)):
                    outputs[i].answers = answers


def _label(extra: dict) -> dict | None:
    keep = {k: extra[k] for k in ("color", "shape", "label", "class") if k in extra}
    return keep or None


def _open_kb(ref, encoder):
    from ragsc.kb import KnowledgeBase
    from ragsc.kb.manifest import resolve_path

    path = resolve_path(ref.path)
    if ref.build == "default":  # built on first use, then kept in line with the recipe
        from ragsc.kb.default import build_default_kb

        return build_default_kb(path, encoder, ref.scope, progress=True)
    if (path / "manifest.json").is_file():
        return KnowledgeBase.open(path, encoder=encoder)
    raise KBError(f"knowledge base {ref.path!r} ({ref.scope}) not found at {path}; "
                  "build it with `ragsc kb create` and `ragsc kb ingest`, "
                  "or set `build: default` in the spec for the embedded default's corpora")
