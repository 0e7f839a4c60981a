"""Task pipelines: encoder -> link -> retrieval from the receiver's KBs -> decoders.

``Pipeline.from_config("multitask")`` builds one from a shipped spec (``pipelines/multitask.yaml``; a
path to a YAML spec or a dict works too). Then

* ``tx = pipe.transmit(items, snr_db=..., channel=...)`` encodes the items and sends each one's
  semantic embedding through the spec's path (``channel.path``): the analog link (``k_symbols`` complex
  symbols per item, PCA basis), or the trained CAT codec (``channel.path: cat``, a length per item from
  its rate policy);
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

A pipeline is its encoder, its paths (the semantic link, and :class:`~ragsc.pipelines.sentences.SentencePath`
for sentences on the token link) and its :class:`~ragsc.pipelines.receiver.Receiver` (KBs, decoders, LM),
built from the spec by :mod:`ragsc.pipelines.factory`; what crosses is in
:mod:`ragsc.pipelines.transmission`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ragsc import checks
from ragsc.channel import AnalogLink, CATCodec, CATLink, JSCCCodec, Received
from ragsc.config import PipelineSpec, validate
from ragsc.errors import ConfigError, InputError
from ragsc.pipelines.factory import build_parts, image_codec, image_link, load_spec, semantic_link
from ragsc.pipelines.items import TASK_KINDS, Message, parse_items
from ragsc.pipelines.receiver import Receiver
from ragsc.pipelines.sentences import SentencePath
from ragsc.pipelines.transmission import Emission, Output, Transmission
from ragsc.types import SemanticTokens


class Pipeline:
    """A task pipeline built from a :class:`~ragsc.config.PipelineSpec` (see the module docstring).

    Parameters
    ----------
    spec
        The validated spec.
    encoder, local, global_, decoders, lm, cat
        Already-built parts to use instead of building them from the spec (tests, notebooks and
        sweeps share one encoder and KB this way); ``cat`` is a :class:`~ragsc.channel.CATCodec` for
        ``channel.path: cat`` (default: loaded from ``channel.cat``), ``jscc`` a
        :class:`~ragsc.channel.JSCCCodec` for ``image.link: jscc`` (default: ``image.codec`` or the shipped
        one).
    """

    def __init__(self, spec: PipelineSpec, *, encoder=None, local=None, global_=None, decoders=None,
                 lm=None, cat: CATCodec | None = None, jscc: JSCCCodec | None = None) -> None:
        parts = build_parts(spec, encoder=encoder, local=local, global_=global_, decoders=decoders, lm=lm,
                            cat=cat)
        self.spec, self.encoder, self.decoders, self.cat = spec, parts.encoder, parts.decoders, parts.cat
        # photos' pixels on the image JSCC (image.link: jscc); checked against the spec's channel now
        self.jscc = image_codec(spec, jscc)
        if self.jscc is not None:
            image_link(spec, self.jscc, self.link().config)
        # sentences on the token link (text.link: token), decoded by the channel-guided LM
        self.sentence_path = None
        if spec.text.link == "token" and "text" in TASK_KINDS[self.task]:
            self.sentence_path = SentencePath(spec.text, spec.channel, parts.lm,
                                              owner=f"pipeline {spec.name!r}", limits=spec.limits)
        self.receiver = Receiver(spec, self.encoder, self.decoders, parts.retriever, parts.lm,
                                 self.sentence_path, self.jscc)
        self.timings: dict[str, float] = {}

    @classmethod
    def from_config(cls, config: str | Path | dict | PipelineSpec, **parts) -> Pipeline:
        """Build from a shipped spec's name (``"multitask"``: ``pipelines/multitask.yaml``), a YAML path, a
        dict or a :class:`PipelineSpec`; ``parts`` as in the constructor. An unknown name is a
        :class:`~ragsc.errors.ConfigError` listing the shipped ones."""
        return cls(load_spec(config), **parts)

    @classmethod
    def transmitter(cls, config: str | Path | dict | PipelineSpec, **parts) -> Pipeline:
        """The transmitting half of a spec (a device): its encoder and paths, no knowledge base, RAG off.
        :meth:`emit` is what it is for; its frames fit the full pipeline's receiver (same spec name, encoder,
        basis and codecs)."""
        spec = load_spec(config)
        data = spec.model_dump()
        data["knowledge_bases"], data["decoder"] = [], {**data["decoder"], "rag": False}
        return cls(validate(PipelineSpec, data, "pipeline spec"), **parts)

    def __repr__(self) -> str:
        return f"Pipeline({self.spec.name!r}, task={self.spec.task!r}, encoder={self.encoder.spec!r})"

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def retriever(self):
        """The receiver's :class:`~ragsc.kb.HybridRetriever` (``None`` without a KB)."""
        return self.receiver.retriever

    @property
    def text_decoder(self):
        """The receiver's :class:`~ragsc.decoders.TextDecoder`."""
        return self.receiver.text_decoder

    @property
    def image_decoder(self):
        """The receiver's :class:`~ragsc.decoders.ImageDecoder`."""
        return self.receiver.image_decoder

    @property
    def vqa_decoder(self):
        """The receiver's :class:`~ragsc.decoders.VQADecoder`."""
        return self.receiver.vqa_decoder

    def with_text_link(self, link: str) -> Pipeline:
        """This pipeline with sentences sent another way (``"token"`` or ``"embedding"``), sharing its
        encoder, KBs, decoders and LM (sweeps compare the two text paths this way)."""
        spec = validate(PipelineSpec, {**self.spec.model_dump(), "text": {**self.spec.text.model_dump(),
                                                                          "link": link}}, "pipeline spec")
        kbs = dict(self.retriever.kbs) if self.retriever is not None else {}
        lm = self.sentence_path.lm if self.sentence_path is not None else None
        return Pipeline(spec, encoder=self.encoder, decoders=self.decoders, local=kbs.get("local"),
                        global_=kbs.get("global"), lm=lm, cat=self.cat, jscc=self.jscc)

    # ------------------------------------------------------------------------- transmitter
    def messages(self, items) -> list[Message]:
        """Validate items for this task (see :mod:`ragsc.pipelines.items`; each item's size against the
        spec's ``limits``) without encoding them."""
        return parse_items(items, self.task, self.spec.limits)

    def encode(self, messages: list[Message]) -> SemanticTokens:
        """The messages' :class:`SemanticTokens`, in order, each row with its modality (images and texts are
        batched separately)."""
        emb = torch.zeros(len(messages), self.encoder.dim)
        meta: dict = {}
        for kind in ("image", "text"):
            idx = [i for i, m in enumerate(messages) if m.kind == kind]
            if idx:
                contents = [messages[i].content for i in idx]
                lim = self.spec.limits
                enc = (self.encoder.encode_images(contents, limits=lim) if kind == "image"
                       else self.encoder.encode_texts(contents, limits=lim))
                emb[idx] = enc.embeddings.float().cpu()
                meta = {**enc.meta, **meta}
        meta.pop("truncated", None)  # per-modality row numbers: they do not index this batch
        return SemanticTokens(emb, [m.kind for m in messages], meta=meta)

    def link(self, channel: str | None = None, seed: int | None = None) -> AnalogLink | CATLink:
        """The semantic path of this pipeline over the spec's channel (``channel`` overrides its kind),
        seeded with the spec's seed (or ``seed``): the analog link sending ``k_symbols`` PCA coefficients
        of the decoders' basis, or (``channel.path: cat``) the CAT link with the spec's rate policy."""
        return semantic_link(self.spec, self.decoders, self.cat, channel, seed)

    def transmit(self, items, *, snr_db: float | None = None, channel: str | None = None,
                 seed: int | None = None, noiseless: bool = False) -> Transmission:
        """Encode and send ``items``; ``noiseless`` sends the same symbols without noise (the bound).

        A batch of more than the spec's ``limits.batch_items`` items, or an item over its size limits, is
        an :class:`~ragsc.errors.InputError` before anything is encoded.
        """
        link, messages, tokens, encode_s = self._encoded(items, snr_db, channel, seed, noiseless)
        tx = self.send(messages, tokens, snr_db=snr_db, link=link, noiseless=noiseless, batch_limits=True)
        tx.timings = self.timings = {"encode": encode_s, **tx.timings}
        return tx

    def send(self, messages: list[Message], tokens: SemanticTokens, *, snr_db: float | None = None,
             channel: str | None = None, seed: int | None = None, noiseless: bool = False,
             link: AnalogLink | CATLink | None = None, batch_limits: bool = False) -> Transmission:
        """Send already-encoded messages (sweeps encode once and send at every SNR).

        Images (and sentences, with ``text.link: embedding``) cross ``link`` (default :meth:`link`: the
        analog link or CAT); sentences on the token link cross the same channel, seed and SNR. Each
        sentence is held to the spec's ``limits.text_tokens``; ``batch_limits`` (as :meth:`transmit`
        asks) also holds the batch's sentences together to ``limits.batch_tokens``.
        """
        link = link or self.link(channel, seed)
        if not isinstance(tokens, SemanticTokens):
            raise InputError(f"send() takes the SemanticTokens of encode(), got {type(tokens).__name__}")
        if tokens.embeddings.shape != (len(messages), self.encoder.dim):
            raise InputError(f"embeddings {tuple(tokens.embeddings.shape)} do not match "
                             f"{len(messages)} messages of dim {self.encoder.dim}")
        if list(tokens.modalities) != [m.kind for m in messages]:
            raise InputError("the tokens' modalities do not match the messages' kinds "
                             "(encode them with encode())")
        analog_rows, token_rows, frames = self._rows(messages, batch_limits)
        t0 = time.perf_counter()
        cat = isinstance(link, CATLink)  # CAT's transmitter and receiver are one call
        em = self._emit(messages, tokens, snr_db, link, noiseless, analog_rows, token_rows, frames,
                        analog=not cat)
        tx = self.arrive(em)
        if cat and analog_rows:
            tx.received = link(tokens.select(analog_rows), snr_db, noiseless=noiseless)
        self.timings = tx.timings = {"channel": time.perf_counter() - t0}
        return tx

    def emit(self, items, *, snr_db: float | None = None, channel: str | None = None,
             seed: int | None = None) -> Emission:
        """The transmitter and the channel: encode ``items`` and send them, up to what the receiver's antenna
        got (each path's received symbols and CSI: what :mod:`ragsc.serve.frame` carries to a receiver in
        another process). :meth:`arrive` turns it into the :class:`Transmission` :meth:`transmit` returns."""
        link, messages, tokens, encode_s = self._encoded(items, snr_db, channel, seed)
        analog_rows, token_rows, frames = self._rows(messages, batch_limits=True)
        t0 = time.perf_counter()
        em = self._emit(messages, tokens, snr_db, link, False, analog_rows, token_rows, frames)
        em.timings = {"encode": encode_s, "channel": time.perf_counter() - t0}
        return em

    def _encoded(self, items, snr_db, channel, seed, noiseless: bool = False):
        """``(link, messages, tokens, encode seconds)``: the link and the SNR checked, then the items parsed
        (their limits, the batch's size) and encoded -- all refusals before any encoding."""
        link = self.link(channel, seed)  # validates channel and k before any encoding
        if not noiseless:
            link.snr(snr_db)  # and the SNR
        messages = parse_items(items, self.task, self.spec.limits, batch=True)
        t0 = time.perf_counter()
        tokens = self.encode(messages)
        return link, messages, tokens, time.perf_counter() - t0

    def _rows(self, messages: list[Message], batch_limits: bool):
        """``(analog_rows, token_rows, frames)``: which items cross the semantic path and which the token
        link, and the sentences' frames (each sentence held to ``limits.text_tokens``, and with
        ``batch_limits`` the batch's together to ``limits.batch_tokens``; errors name the batch's item,
        before anything is sent)."""
        by_token = self.sentence_path is not None
        token_rows = [i for i, m in enumerate(messages) if by_token and m.kind == "text"]
        analog_rows = [i for i in range(len(messages)) if i not in set(token_rows)]
        texts = [messages[i].content for i in token_rows]
        frames = self.sentence_path.frames(texts, items=token_rows) if token_rows else None
        if frames is not None and batch_limits:
            checks.batch_tokens(SentencePath.tokens_per_item(frames), token_rows, self.spec.limits)
        return analog_rows, token_rows, frames

    def _emit(self, messages, tokens, snr_db, link, noiseless, analog_rows, token_rows, frames,
              analog: bool = True) -> Emission:
        em = Emission(messages, link.config, analog_rows=analog_rows, token_rows=token_rows,
                      token_meta=dict(tokens.meta))
        if analog_rows and analog:
            if not isinstance(link, AnalogLink):
                raise ConfigError(f"pipeline {self.spec.name!r}: channel.path {self.spec.channel.path!r} "
                                  "does not split into a transmitter and a receiver (the analog link does)")
            em.analog = link.observe(tokens.select(analog_rows), snr_db, noiseless=noiseless)
            em.modalities = [messages[i].kind for i in analog_rows]
        if self.jscc is not None:
            em.photo_rows = [i for i in analog_rows if messages[i].kind == "image"]
        if em.photo_rows:
            em.photos = image_link(self.spec, self.jscc, link.config).observe(
                [messages[i].content for i in em.photo_rows], snr_db, noiseless=noiseless)
        if token_rows:  # over the same channel (kind, seed, CSI, fading) as the analog link
            em.sentences, em.frames_per_item, em.tokens_per_item = self.sentence_path.observe(
                [messages[i].content for i in token_rows], snr_db, config=link.config, noiseless=noiseless,
                frames=frames)
        return em

    def arrive(self, em: Emission) -> Transmission:
        """The receiver's front ends on an :class:`Emission` (from :meth:`emit`, or a frame another process
        sent): equalisation and detection on each path, over the channel the emission names."""
        if not isinstance(em, Emission):
            raise InputError(f"arrive() takes an Emission from emit(), got {type(em).__name__}")
        t0 = time.perf_counter()
        rx = sentences = photos = None
        if em.analog is not None:
            link = AnalogLink(em.channel, transform=self.decoders.pca)
            rx = link.read(em.analog, em.modalities, em.token_meta)
        if em.photos:
            photos = [self.receiver.photo_link.arrive(o) for o in em.photos]
        if em.sentences is not None:
            sentences = self.sentence_path.read(em.sentences, em.frames_per_item, em.tokens_per_item,
                                                config=em.channel)
        timings = {**em.timings, "channel": em.timings.get("channel", 0.0) + time.perf_counter() - t0}
        return Transmission(em.messages, rx, timings, sentences, em.analog_rows, em.token_rows, photos,
                            em.photo_rows)

    # ------------------------------------------------------------------------- receiver
    def retrieve(self, received: torch.Tensor, kinds: list[str]) -> list[list]:
        """Hits per received item: text items search text items, image items image items."""
        return self.receiver.retrieve(received, kinds)

    def receive(self, tx: Transmission, *, rag: bool | None = None,
                tasks: tuple[str, ...] | None = None) -> list[Output]:
        """Decode a transmission (``rag`` overrides the spec; ``tasks`` limits what image items yield:
        any of ``"image"``, ``"caption"``, ``"vqa"``); see :meth:`Receiver.receive`."""
        outputs = self.receiver.receive(tx, rag=rag, tasks=tasks)
        self.timings = self.receiver.timings
        return outputs

    def decode_sentences(self, received: Received, *, rag: bool | None = None) -> list[Output]:
        """Decode sentences received on the token link; see :meth:`Receiver.decode_sentences`."""
        outputs = self.receiver.decode_sentences(received, rag=rag)
        self.timings = self.receiver.timings
        return outputs

    def kb_sentences(self):
        """The local and global KBs' sentences as token-link hypotheses (built once per KB content)."""
        return self.receiver.kb_sentences()

    def decode(self, tokens: SemanticTokens, messages: list[Message], *, rag: bool | None = None,
               tasks: tuple[str, ...] | None = None) -> list[Output]:
        """Decode received ``tokens`` from any path (the analog link, a digital baseline's re-encoded
        content, ...); see :meth:`Receiver.decode`."""
        outputs = self.receiver.decode(tokens, messages, rag=rag, tasks=tasks)
        self.timings = self.receiver.timings
        return outputs

    def run(self, items, *, snr_db: float | None = None, channel: str | None = None, rag: bool | None = None,
            seed: int | None = None) -> list[Output]:
        """``receive(transmit(items))``."""
        return self.receive(self.transmit(items, snr_db=snr_db, channel=channel, seed=seed), rag=rag)
