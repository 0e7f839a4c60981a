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

from PIL import Image

from ragsc.channel import Received
from ragsc.channel.path import Observed
from ragsc.config import ChannelConfig
from ragsc.pipelines.items import Message


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
