"""A frame against the receiving pipeline: what must agree before its symbols are decoded.

:func:`check` holds a decoded frame (:mod:`ragsc.serve.frame`) to the pipeline a server holds: the same spec
and encoder (otherwise the symbols mean something else), the receiver's own channel processing (CSI,
equaliser, fading), its ``k_symbols`` and basis, each path's row width, the spec's limits on items,
questions, tokens and pixels, and CSI present exactly where the spec's receiver needs it. Every mismatch is an
:class:`~ragsc.errors.InputError` naming the field, the frame's value and the receiver's.
"""

from __future__ import annotations

from ragsc import checks
from ragsc.channel.jscc.link import HEADER_SYMBOLS
from ragsc.config import check_snr_db
from ragsc.errors import InputError
from ragsc.pipelines import Pipeline
from ragsc.pipelines.transmission import Emission
from ragsc.serve.frame import FrameHeader


def check(pipe: Pipeline, header: FrameHeader, em: Emission, max_pixels: int | None = None) -> None:
    """:class:`~ragsc.errors.InputError` unless the frame ``header`` / ``em`` fits ``pipe``'s receiver
    (``max_pixels``: the server's own bound on a photo, below the spec's ``limits.image_pixels``)."""
    spec = pipe.spec
    if header.spec != spec.name:
        raise InputError(f"frame: sent for pipeline {header.spec!r}; this receiver serves {spec.name!r}")
    if not pipe.encoder.serves(header.encoder):
        raise InputError(f"frame: encoded by an encoder of fingerprint {header.encoder[:16]!r}...; this "
                         f"receiver's is {pipe.encoder.spec!r} ({pipe.encoder.fingerprint[:16]}...)")
    check_snr_db(header.snr_db)
    ours, theirs = spec.channel, em.channel
    for field in ("csi", "equalizer", "fading", "k_symbols"):
        if getattr(theirs, field) != getattr(ours, field):
            raise InputError(f"frame: channel.{field} is {getattr(theirs, field)!r}; this receiver's is "
                             f"{getattr(ours, field)!r}")
    lim = spec.limits
    checks.batch_items(len(em), lim)
    for i, m in enumerate(em.messages):
        if m.questions:
            checks.questions(m.questions, i, lim)
    fades = theirs.channel != "awgn" and theirs.csi == "perfect"  # where the receiver needs h
    if em.analog is not None:
        if spec.channel.path != "analog":
            raise InputError(f"frame: an analog section, but this receiver's channel.path is "
                             f"{spec.channel.path!r}")
        link = pipe.link(theirs.channel)
        n_features = pipe.decoders.pca.components.shape[1]
        k = link.k_symbols_for(n_features)
        _shape(em.analog.y, (len(em.analog_rows), k), "analog.y")
        if em.analog.side["n_features"][:1] not in ([], [n_features]):
            raise InputError(f"frame: analog.n_features is {em.analog.side['n_features'][0]}; "
                             f"this receiver's basis has {n_features}")
        _csi(em.analog.h, fades, "analog.h")
    if em.sentences is not None:
        if pipe.sentence_path is None:
            raise InputError("frame: a sentence section, but this receiver reads sentences as embeddings "
                             "(text.link: embedding)")
        width = pipe.sentence_path.link(theirs).width
        _shape(em.sentences.y, (sum(em.frames_per_item), width), "sentences.y")
        checks.batch_tokens(em.tokens_per_item, em.token_rows, lim)
        per_frame = spec.text.max_tokens
        for i, n, f in zip(em.token_rows, em.tokens_per_item, em.frames_per_item):
            checks.text_tokens(n, i, lim)
            # the decoder's work grows with the frames: they must be the ones the tokens need
            if not (f - 1) * per_frame < n <= f * per_frame:
                raise InputError(f"frame: item {i} claims {n} tokens in {f} frames of at most {per_frame}")
        _csi(em.sentences.h, fades, "sentences.h")
    if em.photos:
        if pipe.jscc is None or pipe.receiver.photo_link is None:
            raise InputError("frame: a photo section, but this receiver has no image codec "
                             "(image.link: embedding)")
        link = pipe.receiver.photo_link
        for j, (i, o) in enumerate(zip(em.photo_rows, em.photos)):
            h, w = o.side["size"][0]
            checks.image_pixels((w, h), i, lim)
            if max_pixels is not None and h * w > max_pixels:
                raise InputError(f"frame: photo {i} of {w} x {h} pixels, more than this server's "
                                 f"{max_pixels:,}")
            _shape(o.y, (1, link.channel_uses(h, w) - HEADER_SYMBOLS), f"photos.y[{j}] ({h}x{w} at ratio "
                   f"{link.ratio}, tile {link.tile})")
            _csi(o.h, fades, f"photos.h[{j}]")
    image_rows = [i for i, m in enumerate(em.messages) if m.kind == "image"]
    if pipe.jscc is not None and sorted(em.photo_rows) != image_rows:
        raise InputError("frame: this receiver decodes every photo's pixels (image.link: jscc); the photo "
                         f"section must carry each image item, rows {image_rows}")


def _shape(y, expected: tuple[int, int], name: str) -> None:
    if tuple(y.shape) != expected:
        raise InputError(f"frame: {name} is {list(y.shape)}; this receiver expects {list(expected)}")


def _csi(h, needed: bool, name: str) -> None:
    if needed and h is None:
        raise InputError(f"frame: {name} missing: this receiver equalises with perfect CSI on a fading "
                         "channel")
    if not needed and h is not None:
        raise InputError(f"frame: {name} sent, but the channel is AWGN or the receiver has no CSI "
                         "(csi: none)")
