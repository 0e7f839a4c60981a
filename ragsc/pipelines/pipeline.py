"""Task pipelines: encoder -> link -> retrieval from the receiver's KBs -> decoders.

``Pipeline.from_config("pipelines/multitask.yaml")`` builds one from a spec. Then

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
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ragsc.channel import CATCodec, CATLink, Link, Received
from ragsc.channel.path import path_configs
from ragsc.config import PipelineSpec, load_pipeline_spec, validate
from ragsc.decoders import Context, ImageDecoder, TextDecoder, VQADecoder, load_decoders
from ragsc.errors import ConfigError, InputError, KBError, ModelLoadError
from ragsc.pipelines.items import TASK_KINDS, Message, parse_items
from ragsc.pipelines.sentences import SentencePath
from ragsc.types import SemanticTokens

# what a pipeline's receiver produces for an image item (a text pipeline has none)
IMAGE_TASKS = {"text": (), "image": ("image", "caption"), "vqa": ("vqa",),
               "multitask": ("image", "caption", "vqa")}


@dataclass
class Transmission:
    """What reached the receiver, plus the bookkeeping an evaluation needs.

    Image items (and sentences, with ``text.link: embedding``) cross the spec's semantic path (the
    analog link, or CAT with ``channel.path: cat``): ``received`` holds them, rows ``analog_rows`` of the
    batch (``received.tokens``: embeddings ``[n, D]`` and each row's modality, the per-item header;
    ``None`` when there are none). Sentences on the token link
    (``text.link: token``, the default) are in ``sentences``, rows ``token_rows``: one
    :class:`~ragsc.channel.token_link.TokenObservation` per frame. ``messages`` keep what was sent (for
    scoring; the receiver reads only the questions the receiver itself asks about images).
    """

    messages: list[Message]
    received: Received | None
    timings: dict[str, float] = field(default_factory=dict)
    sentences: Received | None = None
    analog_rows: list[int] | None = None
    token_rows: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.analog_rows is None:  # every row on the analog link
            self.analog_rows = list(range(len(self.messages)))

    @property
    def _any(self) -> Received:
        return self.received if self.received is not None else self.sentences

    @property
    def snr_db(self) -> float:
        """The SNR it was sent at (``inf`` for the noiseless bound)."""
        return self._any.snr_db

    @property
    def channel(self) -> str:
        """The channel it crossed (``"none"`` for the noiseless bound)."""
        return self._any.channel

    @property
    def kinds(self) -> list[str]:
        """Each item's modality, as the received headers say."""
        kinds = [""] * len(self.messages)
        if self.received is not None:
            for i, kind in zip(self.analog_rows, self.received.tokens.modalities):
                kinds[i] = kind
        for i in self.token_rows:
            kinds[i] = "text"
        return kinds

    @property
    def channel_uses_per_item(self) -> list[int]:
        """Complex symbols each item cost, everything included (headers, pilots, every frame of a long
        sentence); on CAT each item's own length."""
        uses = [0] * len(self.messages)
        if self.received is not None:
            # a variable-length path (CAT) counts per item; the analog link spends the same on each
            per_item = self.received.meta.get("channel_uses_per_item",
                                              [self.received.channel_uses] * len(self.analog_rows))
            for i, u in zip(self.analog_rows, per_item):
                uses[i] = u
        if self.sentences is not None:
            for i, u in zip(self.token_rows, self.sentences.meta["channel_uses_per_item"]):
                uses[i] = u
        return uses

    @property
    def channel_uses(self) -> int:
        """Complex symbols per item (the mean, rounded, when items differ)."""
        uses = self.channel_uses_per_item
        return round(sum(uses) / len(uses))

    def __len__(self) -> int:
        return len(self.messages)


@dataclass
class Output:
    """What the receiver produced for one item.

    ``text``: the decoded sentence (text items); ``image``: the decoded image, ``caption`` the caption
    of the best retrieved neighbour (RAG) or the text decoder's reading of the embedding (no RAG),
    ``label`` its class attributes when the KB has them; ``answers``: one per question;
    ``context``: the retrieved hits (``None`` without RAG), with their provenance; ``meta``: what the
    path reports per item (a sentence on the token link: ``channel_uses``, ``tokens``, ``frames`` (more
    than one when it was longer than ``text.max_tokens``) and ``rag``, the KB sentences it was decoded
    with; an item on CAT: ``channel_uses`` and ``n_symbols``, its data symbols; empty on the analog link,
    whose items all cost ``k_symbols``).
    """

    kind: str
    text: str | None = None
    image: Image.Image | None = None
    caption: str | None = None
    label: dict | None = None
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    context: list | None = None
    meta: dict = field(default_factory=dict)


class Pipeline:
    """A task pipeline built from a :class:`~ragsc.config.PipelineSpec` (see the module docstring).

    Parameters
    ----------
    spec
        The validated spec.
    encoder, local, global_, decoders, lm, cat
        Already-built parts to use instead of building them from the spec (tests, notebooks and
        sweeps share one encoder and KB this way); ``cat`` is a :class:`~ragsc.channel.CATCodec` for
        ``channel.path: cat`` (default: loaded from ``channel.cat``).
    """

    def __init__(self, spec: PipelineSpec, *, encoder=None, local=None, global_=None, decoders=None,
                 lm=None, cat: CATCodec | None = None) -> None:
        from ragsc.encoders import load_encoder
        from ragsc.kb import HybridRetriever

        self.spec = spec
        self.encoder = encoder or load_encoder(spec.encoder.spec, batch_size=spec.encoder.batch_size,
                                               device=spec.encoder.device)
        self.decoders = decoders or load_decoders(spec.decoder.weights)
        self.decoders.check_encoder(self.encoder)
        self.cat = _cat_codec(spec, self.encoder, cat) if spec.channel.path == "cat" else None
        # k must fit the basis, the codec serve the channel: fail before encoding
        link = self.link()
        if isinstance(link, Link):
            link.k_symbols_for(self.decoders.pca.components.shape[1])
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
        # sentences on the token link (text.link: token), decoded by the channel-guided LM
        self.sentence_path = None
        if spec.text.link == "token" and "text" in TASK_KINDS[self.task]:
            self.sentence_path = SentencePath(spec.text, spec.channel, lm, owner=f"pipeline {spec.name!r}")
        self._kb_sentences: tuple | None = None  # (key, KBSentences) of the KBs' sentences, for RAG
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

    def with_text_link(self, link: str) -> Pipeline:
        """This pipeline with sentences sent another way (``"token"`` or ``"embedding"``), sharing its
        encoder, KBs, decoders and LM (sweeps compare the two text paths this way)."""
        spec = validate(PipelineSpec, {**self.spec.model_dump(), "text": {**self.spec.text.model_dump(),
                                                                          "link": link}}, "pipeline spec")
        kbs = dict(self.retriever.kbs) if self.retriever is not None else {}
        lm = self.sentence_path._lm if self.sentence_path is not None else None
        return Pipeline(spec, encoder=self.encoder, decoders=self.decoders, local=kbs.get("local"),
                        global_=kbs.get("global"), lm=lm, cat=self.cat)

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

    def link(self, channel: str | None = None, seed: int | None = None) -> Link | CATLink:
        """The semantic path of this pipeline over the spec's channel (``channel`` overrides its kind),
        seeded with the spec's seed (or ``seed``): the analog link sending ``k_symbols`` PCA coefficients
        of the decoders' basis, or (``channel.path: cat``) the CAT link with the spec's rate policy."""
        update = {"seed": self.spec.seed if seed is None else seed}
        if channel is not None:
            update["channel"] = channel
        c = self.spec.channel
        if c.path == "analog":
            return Link(c, transform=self.decoders.pca, **update)
        (channel_config,) = path_configs(c, update, what="link")  # a bad channel name is the call's error
        try:
            return CATLink(self.cat, channel_config, quality=c.cat_quality, n_symbols=c.cat_symbols,
                           n_pilots=c.cat_pilots)
        except ConfigError as exc:
            raise ConfigError(f"pipeline {self.spec.name!r}: the CAT codec (channel.cat = {c.cat!r}) cannot "
                              f"serve this link: {exc}") from None

    def transmit(self, items, *, snr_db: float | None = None, channel: str | None = None,
                 seed: int | None = None, noiseless: bool = False) -> Transmission:
        """Encode and send ``items``; ``noiseless`` sends the same symbols without noise (the bound)."""
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
             link: Link | CATLink | None = None) -> Transmission:
        """Send already-encoded messages (sweeps encode once and send at every SNR).

        Images (and sentences, with ``text.link: embedding``) cross ``link`` (default :meth:`link`: the
        analog link or CAT); sentences on the token link cross the same channel, seed and SNR.
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
        by_token = self.sentence_path is not None
        token_rows = [i for i, m in enumerate(messages) if by_token and m.kind == "text"]
        analog_rows = [i for i in range(len(messages)) if i not in set(token_rows)]
        texts = [messages[i].content for i in token_rows]
        frames = self.sentence_path.frames(texts) if token_rows else None  # refuse before sending anything
        t0 = time.perf_counter()
        rx = link(tokens.select(analog_rows), snr_db, noiseless=noiseless) if analog_rows else None
        sentences = None
        if token_rows:  # over the same channel (kind, seed, CSI, fading) as the analog link
            sentences = self.sentence_path.send(texts, snr_db, config=link.config, noiseless=noiseless,
                                                frames=frames)
        self.timings = {"channel": time.perf_counter() - t0}
        return Transmission(messages, rx, dict(self.timings), sentences, analog_rows, token_rows)

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
        outputs: list[Output | None] = [None] * len(tx)
        timings = {"retrieve": 0.0, "decode": 0.0}
        if tx.received is not None:
            analog = self.decode(tx.received.tokens, [tx.messages[i] for i in tx.analog_rows], rag=rag,
                                 tasks=tasks)
            per_item = tx.received.meta.get("channel_uses_per_item")
            for j, (i, o) in enumerate(zip(tx.analog_rows, analog)):
                if per_item is not None:  # a variable-length path (CAT): what this item cost
                    o.meta = {"channel_uses": per_item[j], "n_symbols": tx.received.meta["n_symbols"][j]}
                outputs[i] = o
            timings = dict(self.timings)
        if tx.sentences is not None:
            for i, o in zip(tx.token_rows, self.decode_sentences(tx.sentences, rag=rag)):
                outputs[i] = o
            timings = {k: timings[k] + self.timings[k] for k in timings}
        self.timings = {**tx.timings, **timings}
        return outputs

    def decode_sentences(self, received: Received, *, rag: bool | None = None) -> list[Output]:
        """Decode sentences received on the token link (``rag`` as in :meth:`receive`): RAG uses the
        sentences of the local and global KBs (see :mod:`ragsc.decoders.token_decoder`)."""
        if self.sentence_path is None:
            raise ConfigError(f"pipeline {self.spec.name!r} sends no sentences on the token link "
                              "(text.link: embedding, or a task without texts)")
        self.sentence_path.check(received)
        rag = self.spec.decoder.rag if rag is None else rag
        if rag and self.retriever is None:
            raise ConfigError(f"pipeline {self.spec.name!r}: RAG needs a knowledge base")
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

    def kb_sentences(self):
        """The local and global KBs' sentences as token-link hypotheses (built once per KB content)."""
        kbs = self.retriever.kbs
        key = tuple((name, id(kb), len(kb)) for name, kb in kbs)
        if self._kb_sentences is None or self._kb_sentences[0] != key:
            texts = sorted({it.text for _, kb in kbs for it in kb.items()
                            if it.modality == "text" and it.text})
            self._kb_sentences = (key, self.sentence_path.decoder.sentences(texts))
        return self._kb_sentences[1]

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


def _cat_codec(spec: PipelineSpec, encoder, codec: CATCodec | None) -> CATCodec:
    """The CAT codec of ``channel.path: cat``: ``codec`` or the one saved in ``channel.cat``, checked against
    the pipeline's encoder and the spec's CAT settings (each error names the spec field and the fix)."""
    c = spec.channel
    where = f"pipeline {spec.name!r}: channel.cat = {c.cat!r}"
    if codec is None:
        folder = Path(c.cat).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"{where}: no such folder ({folder.absolute()}); point channel.cat at the "
                                 "folder CATCodec.save wrote (config.json + model.safetensors), or use "
                                 "channel.path: analog")
        try:
            codec = CATCodec.load(folder)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{where}: {exc}") from None
    elif not isinstance(codec, CATCodec):
        raise ConfigError(f"pipeline {spec.name!r}: cat= takes a CATCodec, got {type(codec).__name__}")
    cfg, dim = codec.config, encoder.dim
    if (cfg.token_dim, cfg.target_dim) != (dim, dim):
        raise ConfigError(f"{where}: the codec maps token_dim={cfg.token_dim} to target_dim="
                          f"{cfg.target_dim}, but the pipeline's encoder ({encoder.spec}) has dimension "
                          f"{dim}: train a CAT on this encoder's embeddings (token_dim = target_dim = {dim}) "
                          "or change encoder.spec")
    if c.cat_symbols is not None and c.cat_symbols not in cfg.levels:
        raise ConfigError(f"pipeline {spec.name!r}: channel.cat_symbols = {c.cat_symbols} is not one of the "
                          f"codec's levels {list(cfg.levels)} (channel.cat = {c.cat!r}): choose one of them, "
                          "or remove cat_symbols to use its rate policy")
    if c.cat_symbols is None and cfg.calibration is None:
        raise ConfigError(f"{where}: the codec has no rate table for channel.cat_quality: calibrate it "
                          "(ragsc.distill.cat.calibrate, then save it again) or set channel.cat_symbols to "
                          f"one of its levels {list(cfg.levels)}")
    if c.channel not in cfg.channels:
        raise ConfigError(f"{where}: the codec was trained on {', '.join(cfg.channels)}, not channel.channel "
                          f"= {c.channel!r}: choose one of them, or train a codec on {c.channel}")
    if c.csi != "perfect" or c.equalizer != cfg.equalizer:
        raise ConfigError(f"{where}: the codec decodes {cfg.equalizer} equalisation with perfect CSI: set "
                          f"channel.csi: perfect and channel.equalizer: {cfg.equalizer}")
    return codec


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
