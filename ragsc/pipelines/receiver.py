"""A pipeline's receiver: retrieval from the local + global KBs, then the text, image and VQA decoders.

:class:`Receiver` owns the receiving parts of a pipeline: its knowledge bases (a
:class:`~ragsc.kb.HybridRetriever`), its decoders and the LM they share. It turns a
:class:`~ragsc.pipelines.transmission.Transmission` into one :class:`~ragsc.pipelines.transmission.Output`
per item (:meth:`Receiver.receive`), or decodes received tokens from any path (:meth:`Receiver.decode`:
the digital baselines use it). Retrieval guides the decoders: text items search the KBs' texts, image
items their images, and the hits are the decoders' context (``rag=False`` decodes from the received
embedding alone). Sentences sent on the token link are decoded by the channel-guided LM of the pipeline's
:class:`~ragsc.pipelines.sentences.SentencePath`, with the KBs' sentences as hypotheses.

Stage timings of the last call are in ``receiver.timings`` (seconds: retrieve, decode).
"""

from __future__ import annotations

import time

import torch

from ragsc.channel import Received
from ragsc.config import PipelineSpec
from ragsc.decoders import Context, ImageDecoder, TextDecoder, VQADecoder
from ragsc.decoders.lm import SharedLM
from ragsc.errors import ConfigError, InputError
from ragsc.pipelines.items import Message
from ragsc.pipelines.sentences import SentencePath
from ragsc.pipelines.transmission import Output, Transmission
from ragsc.types import SemanticTokens

# what a pipeline's receiver produces for an image item (a text pipeline has none)
IMAGE_TASKS = {"text": (), "image": ("image", "caption"), "vqa": ("vqa",),
               "multitask": ("image", "caption", "vqa")}


class Receiver:
    """Retrieval + decoding for one pipeline spec (see the module docstring).

    Parameters
    ----------
    spec
        The pipeline's validated spec (``decoder`` section: RAG, ``k``, the decoders' settings).
    encoder
        The pipeline's encoder (the VQA decoder embeds its questions with it).
    decoders
        The trained decoder bundle (:func:`~ragsc.decoders.load_decoders`).
    retriever
        A :class:`~ragsc.kb.HybridRetriever` over the local and global KBs, or ``None`` (no RAG).
    lm
        A :class:`~ragsc.decoders.lm.CausalLM` or an LM spec, shared by the text and VQA decoders.
    sentence_path
        The pipeline's token link for sentences (``None``: sentences are sent as embeddings).
    jscc
        The image JSCC codec of ``image.link: jscc`` (``None``: images are drawn from their embeddings).
    """

    def __init__(self, spec: PipelineSpec, encoder, decoders, retriever=None, lm=None,
                 sentence_path: SentencePath | None = None, jscc=None) -> None:
        if retriever is None and spec.decoder.rag:
            raise ConfigError(f"pipeline {spec.name!r}: decoder.rag is on but no knowledge base is "
                              "configured (add knowledge_bases or set decoder.rag: false)")
        self.spec, self.encoder, self.decoders, self.retriever = spec, encoder, decoders, retriever
        self.lm = lm or SharedLM.of(spec.decoder.lm)  # loaded on first use, once for every holder
        d = decoders
        self.text_decoder = TextDecoder(d.text, d.vocab, spec.decoder.text, lm=self.lm)
        self.image_decoder = ImageDecoder(d.image, spec.decoder.image_copy_threshold)
        dec = spec.decoder
        self.vqa_decoder = VQADecoder(d.vqa, encoder, "head" if dec.vqa == "open" else dec.vqa, lm=self.lm)
        self.describer = None  # captions and answers for photos (decoder.caption / decoder.vqa: open)
        if "open" in (dec.caption, dec.vqa):
            from ragsc.decoders.photo_text import PhotoDescriber

            self.describer = PhotoDescriber(encoder, self.lm)
        self.sentence_path = sentence_path
        self.photo_link = None
        if jscc is not None:  # the receiving end only: the channel settings are the transmitter's
            from ragsc.channel.jscc import JSCCLink

            # on a channel the codec knows (the default, AWGN, refused a codec trained without it)
            self.photo_link = JSCCLink(jscc, channel=jscc.config.channels[0], ratio=spec.image.ratio,
                                       tile=spec.image.tile, limits=spec.limits)
        self._kb_sentences: tuple | None = None  # (key, KBSentences) of the KBs' sentences, for RAG
        self.timings: dict[str, float] = {}

    def __repr__(self) -> str:
        kbs = [name for name, _ in self.retriever.kbs] if self.retriever is not None else []
        return f"Receiver({self.spec.name!r}, kbs={kbs}, rag={self.spec.decoder.rag})"

    def _rag(self, rag: bool | None) -> bool:
        rag = self.spec.decoder.rag if rag is None else rag
        if rag and self.retriever is None:
            raise ConfigError(f"pipeline {self.spec.name!r}: RAG needs a knowledge base")
        return rag

    # ------------------------------------------------------------------------- retrieval
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

    def kb_sentences(self):
        """The local and global KBs' sentences as token-link hypotheses (built once per KB content)."""
        kbs = self.retriever.kbs
        # the generation too: an ingestion and a deletion of as many items leave the length unchanged
        key = tuple((name, id(kb), kb.manifest.get("generation"), len(kb)) for name, kb in kbs)
        if self._kb_sentences is None or self._kb_sentences[0] != key:
            texts = sorted({it.text for _, kb in kbs for it in kb.items()
                            if it.modality == "text" and it.text})
            self._kb_sentences = (key, self.sentence_path.decoder.sentences(texts))
        return self._kb_sentences[1]

    # ------------------------------------------------------------------------- decoding
    def receive(self, tx: Transmission, *, rag: bool | None = None,
                tasks: tuple[str, ...] | None = None) -> list[Output]:
        """Decode a transmission (``rag`` overrides the spec; ``tasks`` limits what image items yield:
        any of ``"image"``, ``"caption"``, ``"vqa"``)."""
        if not isinstance(tx, Transmission):
            raise InputError(f"receive() takes a Transmission from transmit(), got {type(tx).__name__}")
        outputs: list[Output | None] = [None] * len(tx)
        timings = {"retrieve": 0.0, "decode": 0.0}
        if tx.received is not None:
            tasks = tasks or self._default_tasks(tx)
            drawn = tuple(t for t in tasks if t != "image") if tx.photos is not None else tasks
            later = ()  # described from the decoded photos (decoder.describe: photo), after they are decoded
            dec = self.spec.decoder
            if tx.photos is not None and dec.describe == "photo" and "image" in tasks:
                later = tuple(t for t in drawn if getattr(dec, t) == "open")  # caption / vqa: open
                drawn = tuple(t for t in drawn if t not in later)
            analog = self.decode(tx.received.tokens, [tx.messages[i] for i in tx.analog_rows], rag=rag,
                                 tasks=drawn)
            per_item = tx.received.meta.get("channel_uses_per_item")
            for j, (i, o) in enumerate(zip(tx.analog_rows, analog)):
                if per_item is not None:  # a variable-length path (CAT): what this item cost
                    o.meta = {"channel_uses": per_item[j], "n_symbols": tx.received.meta["n_symbols"][j]}
                outputs[i] = o
            timings = dict(self.timings)
            if tx.photos is not None and "image" in tasks:
                t0 = time.perf_counter()
                self._decode_photos(tx, outputs)
                if later:
                    self._describe_photos([outputs[i] for i in tx.photo_rows], later)
                timings["decode"] += time.perf_counter() - t0
        if tx.sentences is not None:
            for i, o in zip(tx.token_rows, self.decode_sentences(tx.sentences, rag=rag)):
                outputs[i] = o
            timings = {k: timings[k] + self.timings[k] for k in timings}
        self.timings = {**tx.timings, **timings}
        return outputs

    def _default_tasks(self, tx: Transmission) -> tuple[str, ...]:
        """What image items yield unless asked otherwise: the task's outputs, and the decoded photo whenever
        its pixels crossed the image JSCC (a VQA receiver shows the photo it answers about)."""
        base = IMAGE_TASKS[self.spec.task]
        return base if tx.photos is None or "image" in base else ("image", *base)

    def _decode_photos(self, tx: Transmission, outputs: list) -> None:
        """The photos that crossed the image JSCC: with RAG, a retrieved KB photo consistent with the received
        code is returned exactly, else the top one is the decoder's side information."""
        if self.photo_link is None:
            raise ConfigError(f"pipeline {self.spec.name!r} received photos but has no image codec "
                              "(image.link: embedding)")
        from ragsc.decoders.context import item_image_path
        from ragsc.encoders.inputs import load_image

        known, side = [], []
        for i in tx.photo_rows:
            hits = outputs[i].context or []
            paths = [p for p in (item_image_path(h.item) for h in hits) if p is not None]
            photos = [load_image(p) for p in paths]
            known.append(photos or None)
            side.append(photos[:1] if photos and self.photo_link.codec.config.side_info else None)
        images, meta = self.photo_link.receive(tx.photos, side, known)
        for j, (i, im) in enumerate(zip(tx.photo_rows, images)):
            outputs[i].image = im
            outputs[i].meta = {**outputs[i].meta, "channel_uses": tx.channel_uses_per_item[i],
                               "recognised": meta["recognised"][j] is not None,
                               "side_used": meta["side_used"][j]}

    def _describe_photos(self, outputs: list[Output], tasks: tuple[str, ...]) -> None:
        """Captions and answers read from the decoded photos, embedded again by the receiver's encoder."""
        z = self.encoder.encode_images([o.image for o in outputs]).embeddings.float()
        has_ctx = all(o.context is not None for o in outputs)
        self._describe(z, outputs, Context([o.context for o in outputs]) if has_ctx else None, tasks)

    def _describe(self, z: torch.Tensor, outputs: list[Output], ctx: Context | None,
                  tasks: tuple[str, ...]) -> None:
        """Open captions and answers (:class:`~ragsc.decoders.photo_text.PhotoDescriber`) into ``outputs``."""
        dec = self.spec.decoder
        if "caption" in tasks and dec.caption == "open":
            for o, text in zip(outputs, self.describer.caption(z, ctx)):
                o.caption = text
        questions = [o.questions for o in outputs]
        if "vqa" in tasks and dec.vqa == "open" and any(questions):
            for o, answers in zip(outputs, self.describer.answer(z, questions, ctx)):
                o.answers = answers

    def decode_sentences(self, received: Received, *, rag: bool | None = None) -> list[Output]:
        """Decode sentences received on the token link (``rag`` as in :meth:`receive`): RAG uses the
        sentences of the local and global KBs (see :mod:`ragsc.decoders.token_decoder`)."""
        if self.sentence_path is None:
            raise ConfigError(f"pipeline {self.spec.name!r} sends no sentences on the token link "
                              "(text.link: embedding, or a task without texts)")
        self.sentence_path.check(received)
        rag = self._rag(rag)
        t0 = time.perf_counter()
        kb = self.kb_sentences() if rag else None
        t1 = time.perf_counter()
        texts = self.sentence_path.receive(received, kb)
        used = self.sentence_path.decoder.last_rag
        outputs, j = [], 0
        m = received.meta
        for text, uses, frames, n_tokens in zip(texts, m["channel_uses_per_item"], m["frames_per_item"],
                                                m["tokens_per_item"]):
            rag_used = [s for frame in used[j:j + frames] for s in frame] if kb is not None else None
            outputs.append(Output("text", text=text, meta={"channel_uses": uses, "tokens": n_tokens,
                                                           "frames": frames, "rag": rag_used}))
            j += frames
        self.timings = {"retrieve": t1 - t0, "decode": time.perf_counter() - t1}
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
        rag = self._rag(rag)
        tasks = IMAGE_TASKS[self.spec.task] if tasks is None else tasks  # (): nothing for images
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
        dec = self.spec.decoder
        self._describe(z, [outputs[i] for i in idx], ctx, tasks)
        if "caption" in tasks and dec.caption == "retrieved":
            if ctx is not None:
                for i, row in zip(idx, ctx.hits):
                    outputs[i].caption = row[0].item.text if row else None
                    outputs[i].label = _label(row[0].item.extra) if row else None
            else:  # no KB: the text decoder reads the image embedding (the two spaces are aligned)
                for i, text in zip(idx, self.text_decoder.draft(z)):
                    outputs[i].caption = text
        if "vqa" in tasks and dec.vqa != "open":
            questions = [outputs[i].questions for i in idx]
            if any(questions):
                for i, answers in zip(idx, self.vqa_decoder(z, questions, ctx)):
                    outputs[i].answers = answers


def _label(extra: dict) -> dict | None:
    keep = {k: extra[k] for k in ("color", "shape", "label", "class") if k in extra}
    return keep or None
