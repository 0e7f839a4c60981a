"""The digital baselines' receiver: separate coding (or the ideal bound) with the semantic receiver behind it.

:class:`DigitalReceiver` sends each item's raw content (a sentence, an image) through
:class:`~ragsc.channel.SeparateCoding` at the best of :data:`DIGITAL_MCS` (an oracle link adaptation)
or through :class:`~ragsc.channel.IdealDigital`, at the pipeline's ``k_symbols`` complex symbols per
item, or at each item's own count (what the pipeline spent on it: a sentence on the token link, an item
on CAT). Sentences are the decoded text; decoded images are re-encoded with the pipeline's encoder and
decoded by :meth:`~ragsc.pipelines.Pipeline.decode` (caption, answers) with the same KBs and heads as
the semantic receiver, so the comparison is of the links, not of the downstream.
"""

from __future__ import annotations

import hashlib

import torch
from PIL import Image

# (modulation order, code rate) of separate coding, from the most robust to the fastest
DIGITAL_MCS = ((4, 1 / 3), (4, 1 / 2), (16, 1 / 2), (16, 3 / 4), (64, 3 / 4))


def best_mcs(contents: list, cfg, channel: str, snr: float, seed: int = 0,
             channel_uses: list[int] | None = None, **codec):
    """Separate coding at the best of :data:`DIGITAL_MCS` (an oracle link adaptation over the set).

    Keeps the MCS that delivers the most items, then the most bits (the best quality). Returns the
    :class:`~ragsc.channel.Received` and that ``(modulation, code rate)``, or ``None`` when no MCS
    delivers a single item (the output is then the most robust MCS's: every item failed).
    """
    from ragsc.channel import SeparateCoding

    # fastest first: the first MCS that delivers every item has the most bits of all such (bits grow with
    # rate), so the search stops there; otherwise every MCS is tried
    best, first = None, None
    for m, r in reversed(DIGITAL_MCS):
        rx = SeparateCoding(cfg, channel=channel, modulation=m, code_rate=r, seed=seed, **codec)(
            contents, snr, channel_uses=channel_uses)
        key = (int(rx.ok.sum()), sum(rx.meta["bits_used"]))
        if best is None or key > best[0]:
            best = (key, rx, (m, r))
        if (m, r) == DIGITAL_MCS[0]:
            first = rx
        if key[0] == len(rx.ok):
            break
    if best[0][0] == 0:
        return first if first is not None else best[1], None
    return best[1], best[2]


class DigitalReceiver:
    """Separate coding (best MCS per SNR) or the ideal bound, with the semantic receiver's downstream.

    Parameters
    ----------
    pipe
        The :class:`~ragsc.pipelines.Pipeline` whose ``k_symbols``, encoder, KBs and heads are used.
    ideal
        ``True``: the ideal digital bound (capacity budget, error-free) instead of separate coding.
    seed
        Seeds the channel.
    cache
        Decoded image (by content hash) -> embedding, shared between receivers: both baselines decode
        mostly the same images (the grey fallback above all), and encoding them is the slow part.
    text_codec
        The source codec of sentences (default: UTF-8 + deflate,
        :class:`~ragsc.channel.codecs.DeflateTextCodec`;
        :class:`~ragsc.channel.LMTextCodec` for the LM-coded peer).
    """

    def __init__(self, pipe, ideal: bool = False, seed: int = 0, cache: dict | None = None,
                 text_codec=None) -> None:
        self.pipe, self.ideal, self.seed, self.text_codec = pipe, ideal, seed, text_codec
        self._emb: dict[str, torch.Tensor] = {} if cache is None else cache

    def __call__(self, messages, channel: str, snr: float,
                 channel_uses: list[int] | None = None) -> tuple[list, dict]:
        """Send ``messages`` over ``channel`` at ``snr`` dB and decode them; ``channel_uses`` (one per
        message) overrides the spec's ``k_symbols`` per item (sentences on the token link and items on CAT
        cost their own).

        Returns
        -------
        outputs, meta
            One :class:`~ragsc.pipelines.Output` per message (texts: ``text``; images: the decoded
            ``image``, its ``caption`` and ``answers``); ``meta`` has ``"text_mcs"`` / ``"image_mcs"``,
            the (modulation, code rate) chosen for each kind sent (``None`` for the ideal bound).
        """
        from ragsc.encoders.inputs import load_image
        from ragsc.pipelines import Output
        from ragsc.types import SemanticTokens

        outputs = [Output(m.kind, questions=list(m.questions)) for m in messages]
        meta = {}
        t_idx = [i for i, m in enumerate(messages) if m.kind == "text"]
        if t_idx:
            uses = [channel_uses[i] for i in t_idx] if channel_uses is not None else None
            rx = self._send([messages[i].content for i in t_idx], channel, snr, uses)
            for i, text in zip(t_idx, rx.content):
                outputs[i].text = text
            meta["text_mcs"] = rx.meta.get("mcs")
        i_idx = [i for i, m in enumerate(messages) if m.kind == "image"]
        if i_idx:
            uses = [channel_uses[i] for i in i_idx] if channel_uses is not None else None
            rx = self._send([load_image(messages[i].content, i) for i in i_idx], channel, snr, uses)
            # the receiver's view of a decoded image is its embedding, as for the semantic path
            tokens = SemanticTokens(self._embed(rx.content), "image")
            rag = self.pipe.retriever is not None
            decoded = self.pipe.decode(tokens, [messages[i] for i in i_idx], rag=rag,
                                       tasks=("caption", "vqa"))
            for i, o, im in zip(i_idx, decoded, rx.content):
                outputs[i].image, outputs[i].caption, outputs[i].answers = im, o.caption, o.answers
            meta["image_mcs"] = rx.meta.get("mcs")
        return outputs, meta

    def _send(self, contents: list, channel: str, snr: float, channel_uses: list[int] | None = None):
        """The :class:`~ragsc.channel.Received` of ``contents``; separate coding sets ``meta["mcs"]``."""
        from ragsc.channel import IdealDigital

        cfg = self.pipe.spec.channel  # the same channel (k, CSI, fading, Rician K) as the semantic link
        codec = {"text_codec": self.text_codec} if self.text_codec is not None else {}
        if self.ideal:
            return IdealDigital(cfg, channel=channel, seed=self.seed, **codec)(contents, snr,
                                                                               channel_uses=channel_uses)
        rx, mcs = best_mcs(contents, cfg, channel, snr, self.seed, channel_uses, **codec)
        rx.meta["mcs"] = mcs
        return rx

    def _embed(self, images: list[Image.Image]) -> torch.Tensor:
        """``[N, D]`` embeddings of ``images``, each distinct image encoded once per cache."""
        keys = [hashlib.sha1(im.tobytes()).hexdigest() for im in images]
        todo = {k: im for k, im in zip(keys, images) if k not in self._emb}
        if todo:
            for k, e in zip(todo, self.pipe.encoder.encode_images(list(todo.values())).embeddings.float()):
                self._emb[k] = e
        return torch.stack([self._emb[k] for k in keys])
