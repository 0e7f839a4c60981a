"""A pipeline's text path: sentences over the token-level link, decoded by the channel-guided LM.

:class:`SentencePath` is what a pipeline with ``text.link: token`` (the default) uses for its text items:

* the transmitter tokenises each sentence with the LM's tokenizer (which must give the sentence back
  exactly: byte-level BPE such as SmolLM2's does for any Unicode text; another is refused with an
  :class:`~ragsc.errors.InputError` naming the sentence) and sends it through a
  :class:`~ragsc.channel.token_link.TokenLink` (``symbols_per_token`` complex symbols per token plus a
  length header). A sentence longer than ``max_tokens`` tokens is sent in several frames, each with
  its own header, and the receiver joins them: ``frames_per_item`` in the received meta says how many,
  and the pipeline's :class:`~ragsc.pipelines.Output` reports it (nothing is dropped). A sentence of
  more than the spec's ``limits.text_tokens`` tokens (all frames together) is refused with an
  :class:`~ragsc.errors.InputError` naming the item, its tokens and the limit: the receiver's work grows
  with them (on 2 CPU cores a 512-token sentence decoded in 99.5 s, a 12-token one in 5.7 s). A long
  text is not split into sentences here: one item is one output, and where a text breaks is the
  caller's to decide;
* the receiver decodes each frame with a :class:`~ragsc.decoders.token_decoder.ChannelLMDecoder`
  (beam search over channel likelihood + the LM's prior), with RAG from the KBs' sentences when asked.

The LM (``decoder.lm`` of the spec, SmolLM2-135M by default) is loaded on first use, so a pipeline that
never sends a sentence never loads it.
"""

from __future__ import annotations

from ragsc import checks
from ragsc.channel import Received
from ragsc.channel.path import Observed
from ragsc.channel.token_link import TokenCodebook, TokenCodebookConfig, TokenLink
from ragsc.config import LIMITS, ChannelConfig, Limits, TextLinkConfig
from ragsc.errors import InputError, ModelLoadError


class SentencePath:
    """Sentences over the token link and back (see the module docstring).

    Parameters
    ----------
    config
        The spec's ``text`` section.
    channel
        The spec's channel (its ``k_symbols`` is not used: a sentence costs what its tokens cost).
    lm
        A :class:`~ragsc.decoders.lm.CausalLM` or an LM spec (``"smollm2"``, ``"hf:<dir>"``); kept as given
        in ``lm`` (a pipeline shares it with the paths it derives), loaded by :attr:`decoder`.
    owner
        Who asked for it (a pipeline's name), for error messages.
    limits
        The spec's :class:`~ragsc.config.Limits`: ``text_chars`` and ``text_tokens`` per sentence.
    """

    def __init__(self, config: TextLinkConfig, channel: ChannelConfig, lm, owner: str = "pipeline",
                 limits: Limits = LIMITS) -> None:
        self.config, self.channel, self.owner, self.limits = config, channel, owner, limits
        self.lm = lm  # as given: the decoder loads a spec string on first use
        self._decoder = None

    @property
    def decoder(self):
        """The :class:`~ragsc.decoders.token_decoder.ChannelLMDecoder`, built (its LM loaded) on first use."""
        if self._decoder is None:
            from ragsc.decoders.lm import as_lm
            from ragsc.decoders.token_decoder import ChannelLMDecoder

            try:
                lm = as_lm(self.lm)
            except ModelLoadError as exc:
                spec = getattr(self.lm, "spec", self.lm)
                raise ModelLoadError(f"{self.owner}: the text path's LM (decoder.lm = {spec!r}) cannot "
                                     f"be loaded: {exc}. Install it, point decoder.lm at a local model "
                                     "('hf:<dir>'), or send sentences as embeddings (text.link: embedding)"
                                     ) from None
            c = self.config
            codebook = TokenCodebook(TokenCodebookConfig(len(lm.tokenizer), c.symbols_per_token,
                                                         c.codebook_seed, c.codebook))
            self._decoder = ChannelLMDecoder(lm, codebook, beam=c.beam, lm_weight=c.lm_weight,
                                             rag_prior=c.rag_prior, length_candidates=c.length_candidates)
        return self._decoder

    def link(self, config: ChannelConfig | None = None) -> TokenLink:
        """The token link over ``config`` (default: the spec's channel)."""
        return TokenLink(config or self.channel, self.decoder.codebook, max_tokens=self.config.max_tokens,
                         header_symbols=self.config.header_symbols, gain_symbols=self.config.gain_symbols)

    def frames(self, texts: list[str], items: list[int] | None = None) -> tuple[list[list[int]], list[int]]:
        """Each text's token ids cut into frames of at most ``max_tokens``; and the frames per text.

        :class:`~ragsc.errors.InputError` for a text over ``limits.text_chars`` (before it is tokenised) or
        ``limits.text_tokens``; ``items``: each text's index in the caller's batch, for the messages.
        """
        texts = list(texts)
        items = list(range(len(texts))) if items is None else list(items)
        for i, text in zip(items, texts):
            if isinstance(text, str):  # anything else is token_ids' error
                checks.text_chars(text, i, self.limits)
        frames, counts = [], []
        m = self.config.max_tokens
        tok = self.decoder.lm.tokenizer
        for i, text, ids in zip(items, texts, self.decoder.token_ids(texts)):
            checks.text_tokens(len(ids), i, self.limits)
            if not ids:
                raise InputError(f"sentence {i} has no tokens to send")
            if tok.decode(ids, clean_up_tokenization_spaces=False) != text:
                raise InputError(f"sentence {i} ({text[:40]!r}): the LM's tokenizer cannot represent it "
                                 "exactly (it has no byte fallback for some of its characters); use an LM "
                                 "with a byte-level tokenizer, such as the default, or text.link: embedding")
            chunks = [ids[j:j + m] for j in range(0, len(ids), m)]
            frames += chunks
            counts.append(len(chunks))
        return frames, counts

    @staticmethod
    def tokens_per_item(frames: tuple[list[list[int]], list[int]]) -> list[int]:
        """Each text's tokens, all its frames together, from :meth:`frames`' result."""
        chunks, counts = frames
        out, j = [], 0
        for c in counts:
            out.append(sum(len(f) for f in chunks[j:j + c]))
            j += c
        return out

    def send(self, texts: list[str], snr_db: float | None = None, *, config: ChannelConfig | None = None,
             noiseless: bool = False, frames: tuple[list[list[int]], list[int]] | None = None) -> Received:
        """Send ``texts`` over ``config`` (default: the spec's channel; a pipeline passes its link's, so
        sentences and images cross the same channel); ``frames``: :meth:`frames` of them, already
        checked. ``rx.content`` holds one observation per frame, ``rx.meta`` the per-item
        ``channel_uses_per_item``, ``frames_per_item`` and ``tokens_per_item``."""
        obs, counts, tokens = self.observe(texts, snr_db, config=config, noiseless=noiseless, frames=frames)
        return self.read(obs, counts, tokens, config=config)

    def observe(self, texts: list[str], snr_db: float | None = None, *, config: ChannelConfig | None = None,
                noiseless: bool = False, frames: tuple[list[list[int]], list[int]] | None = None
                ) -> tuple[Observed, list[int], list[int]]:
        """The transmitting end of :meth:`send` and the channel: the frames'
        :class:`~ragsc.channel.path.Observed` (one row per frame), the frames per text and the tokens per
        text."""
        frames = frames if frames is not None else self.frames(texts)
        tokens = self.tokens_per_item(frames)
        chunks, counts = frames
        return self.link(config).observe(chunks, snr_db, noiseless=noiseless), counts, tokens

    def read(self, obs: Observed, counts: list[int], tokens: list[int], *,
             config: ChannelConfig | None = None) -> Received:
        """The receiving end of :meth:`send`: the frames read on the token link over ``config``, joined per
        text (``counts`` frames each; ``tokens``: the transmitter's token counts, bookkeeping)."""
        rx = self.link(config).read(obs)
        per_frame = rx.meta["channel_uses_per_item"]
        uses, j = [], 0
        for c in counts:
            uses.append(sum(per_frame[j:j + c]))
            j += c
        rx.meta.update(channel_uses_per_item=uses, frames_per_item=list(counts), tokens_per_item=list(tokens))
        rx.channel_uses = round(sum(uses) / len(uses))
        return rx

    @staticmethod
    def check(rx) -> None:
        """:class:`~ragsc.errors.InputError` unless ``rx`` came from :meth:`send`."""
        meta = getattr(rx, "meta", None) or {}
        if not isinstance(rx, Received) or meta.get("path") != "token" or "frames_per_item" not in meta:
            raise InputError("expected the Received of sentences sent on the token link (SentencePath.send), "
                             f"got {type(rx).__name__} from path {meta.get('path')!r}")

    def receive(self, rx: Received, kb_sentences=None) -> list[str]:
        """The decoded sentences of a :meth:`send` (``kb_sentences``: RAG, see
        :meth:`~ragsc.decoders.token_decoder.ChannelLMDecoder.sentences`)."""
        self.check(rx)
        dec = self.decoder
        ids = dec.decode_ids(rx.content, kb_sentences)
        out, j = [], 0
        for c in rx.meta["frames_per_item"]:
            joined = [t for frame in ids[j:j + c] for t in frame]  # byte-level tokens: exact joins
            out.append(dec.lm.tokenizer.decode(joined, clean_up_tokenization_spaces=False))
            j += c
        return out
