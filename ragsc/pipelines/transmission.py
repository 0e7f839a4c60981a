"""What crosses a pipeline: an :class:`Emission` (what the receiver's antenna got), a :class:`Transmission`
(what reached its decoders), an :class:`Output` per item.

:meth:`~ragsc.pipelines.Pipeline.emit` returns an :class:`Emission` (the transmitter and the channel: the
received symbols of each path, what the service's frame carries), :meth:`~ragsc.pipelines.Pipeline.arrive`
turns it into a :class:`Transmission` (the receiver's front ends: equalisation, detection);
:meth:`~ragsc.pipelines.Pipeline.transmit` does both. The receiver
(:class:`~ragsc.pipelines.receiver.Receiver`, through :meth:`~ragsc.pipelines.Pipeline.receive`) turns it
into one :class:`Output` per item. Both are plain values: the pipeline's parts are not in them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from ragsc.channel import Received
from ragsc.channel.path import Observed
from ragsc.config import ChannelConfig
from ragsc.errors import InputError
from ragsc.pipelines.items import Message
from ragsc.types import SemanticTokens


@dataclass
class Emission:
    """What the receiver's antenna got for a batch: each path's :class:`~ragsc.channel.path.Observed`, the
    rows it carries, and the item headers (each row's kind, the questions asked about images).

    ``analog``: the semantic path's (the analog link; rows ``analog_rows``, their ``modalities`` and the
    encoder's token ``meta``); ``sentences``: the token link's, one row per frame, rows ``token_rows`` with
    ``frames_per_item`` and ``tokens_per_item``; ``photos``: the image JSCC's, one per photo, rows
    ``photo_rows``. ``channel`` is the link's :class:`~ragsc.config.ChannelConfig` (the kind, seed, CSI and
    equaliser both ends use). ``messages`` keep what was sent; only their kinds and questions cross a wire.
    """

    messages: list[Message]
    channel: ChannelConfig
    analog: Observed | None = None
    analog_rows: list[int] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    token_meta: dict = field(default_factory=dict)
    sentences: Observed | None = None
    token_rows: list[int] = field(default_factory=list)
    frames_per_item: list[int] = field(default_factory=list)
    tokens_per_item: list[int] = field(default_factory=list)
    photos: list[Observed] | None = None
    photo_rows: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.messages)


@dataclass
class Transmission:
    """What reached the receiver, plus the bookkeeping an evaluation needs.

    Image items (and sentences, with ``text.link: embedding``) cross the spec's semantic path (the
    analog link, or CAT with ``channel.path: cat``): ``received`` holds them, rows ``analog_rows`` of the
    batch (``received.tokens``: embeddings ``[n, D]`` and each row's modality, the per-item header;
    ``None`` when there are none). Sentences on the token link
    (``text.link: token``, the default) are in ``sentences``, rows ``token_rows``: one
    :class:`~ragsc.channel.token_link.TokenObservation` per frame. With ``image.link: jscc`` the images'
    pixels crossed the image JSCC too: ``photos`` holds one :class:`~ragsc.channel.jscc.Arrival` per image,
    rows ``photo_rows``. ``messages`` keep what was sent (for
    scoring; the receiver reads only the questions the receiver itself asks about images).
    """

    messages: list[Message]
    received: Received | None
    timings: dict[str, float] = field(default_factory=dict)
    sentences: Received | None = None
    analog_rows: list[int] | None = None
    token_rows: list[int] = field(default_factory=list)
    photos: list | None = None
    photo_rows: list[int] = field(default_factory=list)

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
        for i, a in zip(self.photo_rows, self.photos or []):  # the photo's symbols, beside its embedding's
            uses[i] += a.channel_uses
        return uses

    @property
    def channel_uses(self) -> int:
        """Complex symbols per item (the mean, rounded, when items differ)."""
        uses = self.channel_uses_per_item
        return round(sum(uses) / len(uses))

    def __len__(self) -> int:
        return len(self.messages)

    @classmethod
    def concat(cls, txs: list[Transmission]) -> Transmission:
        """One transmission of several (a service decodes concurrent devices' items in one batch): items in
        order, each keeping its own received symbols and noise; per-item bookkeeping is concatenated, and
        the batch-level values (``snr_db``, ``channel``) are the first one's. ``split`` its outputs back with
        the transmissions' lengths."""
        if not txs:
            raise InputError("concat() needs at least one transmission")
        if len(txs) == 1:
            return txs[0]
        offsets = [0]
        for tx in txs:
            offsets.append(offsets[-1] + len(tx))
        rows = lambda name: [o + r for tx, o in zip(txs, offsets) for r in getattr(tx, name)]  # noqa: E731
        analog = [tx.received for tx in txs if tx.received is not None]
        sentences = [tx.sentences for tx in txs if tx.sentences is not None]
        photos = [p for tx in txs for p in (tx.photos or [])]
        return cls([m for tx in txs for m in tx.messages], _concat_received(analog, "analog"),
                   dict(txs[0].timings), _concat_received(sentences, "sentences"), rows("analog_rows"),
                   rows("token_rows"), photos if any(tx.photos for tx in txs) else None, rows("photo_rows"))


def _concat_received(parts: list[Received], what: str) -> Received | None:
    """Received of several batches of one path as one: content, tokens and per-item meta lists joined."""
    if not parts:
        return None
    first = parts[0]
    if len(parts) == 1:
        return first
    if len({p.meta.get("path") for p in parts}) > 1:
        raise InputError(f"concat(): the {what} crossed different paths")
    tokens = None
    if first.tokens is not None:
        t0 = first.tokens
        tokens = SemanticTokens(torch.cat([p.tokens.embeddings for p in parts]),
                                [m for p in parts for m in p.tokens.modalities], meta=dict(t0.meta))
    cat = lambda name: (torch.cat([getattr(p, name) for p in parts])  # noqa: E731
                        if all(getattr(p, name) is not None for p in parts) else None)
    meta = dict(first.meta)
    for key, value in first.meta.items():  # per-item lists (channel uses, frames, tokens, CAT's n_symbols)
        if isinstance(value, list):
            meta[key] = [v for p in parts for v in p.meta.get(key, [])]
    if "length_errors" in meta:
        meta["length_errors"] = sum(p.meta.get("length_errors", 0) for p in parts)
    content = [c for p in parts for c in p.content] if first.content is not None else None
    n = sum(len(p.content) if p.content is not None else len(p.tokens) for p in parts)
    uses = meta.get("channel_uses_per_item")
    channel_uses = round(sum(uses) / len(uses)) if uses else first.channel_uses
    return Received(tokens, cat("features"), cat("sent"), channel_uses if n else 0, first.snr_db, meta,
                    content, cat("ok"))


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
