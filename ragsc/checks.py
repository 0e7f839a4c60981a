"""What a caller hands ragsc, checked once: item sizes against the :class:`~ragsc.config.Limits`, and the
numeric settings of components.

The limits (one config, :class:`~ragsc.config.Limits`; defaults :data:`~ragsc.config.LIMITS`, a pipeline
spec's ``limits:`` section overrides them) are enforced where items enter, before the work they would cost:

* ``text_chars`` and ``image_pixels``: by the encoders (:mod:`ragsc.encoders.inputs`; an image's size is
  read from its file's header, before it is decoded), by a pipeline's items
  (:func:`ragsc.pipelines.items.parse_items`) and by the LM text codec (:class:`~ragsc.channel.LMTextCodec`);
* ``text_tokens``: by a pipeline's token link, once a sentence is tokenised
  (:class:`~ragsc.pipelines.sentences.SentencePath`);
* ``batch_items`` and ``batch_tokens`` (all the sentences of a batch on the token link): by
  :meth:`ragsc.pipelines.Pipeline.transmit` (and ``run``), the calls a user or a service makes; a sweep
  that sends a whole evaluation set through ``Pipeline.send`` is not held to them (the receiver decodes a
  big batch ``max_rows`` LM rows at a time, :class:`~ragsc.decoders.token_decoder.ChannelLMDecoder`).

Past a limit, an :class:`~ragsc.errors.InputError` names the item's index, its size and the limit.
A component's numeric constructor argument that is not a number of the right kind (NaN, inf, 2.5 where
an integer is meant) is a :class:`~ragsc.errors.ConfigError` naming it (:func:`integer`, :func:`real`);
a size field of a dataclass config (what a saved model is rebuilt from) is checked by :func:`size`.
"""

from __future__ import annotations

import math
import numbers

from ragsc.config import LIMITS, MAX_WIDTH, Limits
from ragsc.errors import ConfigError, InputError


def text_chars(text: str, index: int, limits: Limits = LIMITS, label: str = "item") -> None:
    """:class:`InputError` when ``text`` has more than ``limits.text_chars`` characters (``label``,
    ``index``: which item, for the message)."""
    if len(text) > limits.text_chars:
        raise InputError(f"{label} {index}: a text of {len(text):,} characters, more than the limit of "
                         f"{limits.text_chars:,} (limits.text_chars): split it, or raise the limit")


def questions(asked: list[str], index: int, limits: Limits = LIMITS) -> None:
    """:class:`InputError` when an image is asked more than ``limits.questions`` questions, or a question is
    longer than ``limits.question_chars`` characters."""
    if len(asked) > limits.questions:
        raise InputError(f"item {index}: {len(asked)} questions, more than the limit of {limits.questions} "
                         "(limits.questions): ask fewer, or raise the limit")
    for j, q in enumerate(asked):
        if len(q) > limits.question_chars:
            raise InputError(f"item {index}: question {j} has {len(q):,} characters, more than the limit of "
                             f"{limits.question_chars:,} (limits.question_chars)")


def text_tokens(n_tokens: int, index: int, limits: Limits = LIMITS) -> None:
    """:class:`InputError` when a sentence of ``n_tokens`` tokens is over ``limits.text_tokens``."""
    if n_tokens > limits.text_tokens:
        raise InputError(f"item {index}: a sentence of {n_tokens:,} tokens, more than the limit of "
                         f"{limits.text_tokens:,} (limits.text_tokens): split it into shorter items, or "
                         "raise the limit")


def image_pixels(size: tuple[int, int], index: int, limits: Limits = LIMITS, where: str = "",
                 label: str = "item") -> None:
    """:class:`InputError` when an image of ``size`` (width, height) has more than ``limits.image_pixels``
    pixels (``where``: the file, ``label``: the item's kind, for the message)."""
    width, height = size
    if width * height > limits.image_pixels:
        raise InputError(f"{label} {index}: {where}an image of {width} x {height} = {width * height:,} "
                         f"pixels, more than the limit of {limits.image_pixels:,} (limits.image_pixels): "
                         "downscale it, or raise the limit")


def batch_tokens(tokens_per_item: list[int], items: list[int], limits: Limits = LIMITS) -> None:
    """:class:`InputError` when sentences of ``tokens_per_item`` (batch indices ``items``) together have
    more than ``limits.batch_tokens`` tokens; the message names the first item past the limit."""
    total = 0
    for i, n in zip(items, tokens_per_item):
        total += n
        if total > limits.batch_tokens:
            raise InputError(f"item {i}: with it the batch's sentences have {total:,} tokens "
                             f"({sum(tokens_per_item):,} in all), more than the limit of "
                             f"{limits.batch_tokens:,} (limits.batch_tokens): send them in smaller batches, "
                             "or raise the limit")


def batch_items(n_items: int, limits: Limits = LIMITS) -> None:
    """:class:`InputError` when a batch of ``n_items`` is over ``limits.batch_items``."""
    if n_items > limits.batch_items:
        raise InputError(f"item {limits.batch_items}: a batch of {n_items:,} items, more than the limit of "
                         f"{limits.batch_items:,} (limits.batch_items): send it in smaller batches, or "
                         "raise the limit")


def integer(value, name: str, lo: int = 1, hi: int | None = None) -> int:
    """``value`` as an int; :class:`ConfigError` naming ``name`` unless an integer in ``[lo, hi]``
    (a bool, a float such as 4.0, NaN or inf is not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < lo or (
            hi is not None and value > hi):
        span = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{name} must be an integer {span}, got {value!r}")
    return int(value)


def real(value, name: str, lo: float | None = None, hi: float | None = None, *, open_lo: bool = False,
         open_hi: bool = False) -> float:
    """``value`` as a float; :class:`ConfigError` naming ``name`` unless a finite number within the bounds
    (``open_lo`` / ``open_hi``: the bound itself excluded)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if open_lo else value >= lo
    if ok and hi is not None:
        ok = value < hi if open_hi else value <= hi
    if not ok:
        bounds = [f"{'>' if open_lo else '>='} {lo}" if lo is not None else "",
                  f"{'<' if open_hi else '<='} {hi}" if hi is not None else ""]
        span = " and ".join(b for b in bounds if b)
        raise ConfigError(f"{name} must be a finite number{' ' + span if span else ''}, got {value!r}")
    return float(value)


def size(cfg, name: str, lo: int = 1, hi: int = MAX_WIDTH) -> int:
    """Field ``name`` of ``cfg`` (a dataclass config of a network) if it is an integer in ``[lo, hi]``, else
    :class:`ConfigError` naming ``Class.name``.

    ``hi`` bounds what a saved ``config.json`` may ask for (:data:`~ragsc.config.MAX_WIDTH` and its
    siblings): a layer of any size would otherwise be allocated as asked. A bool or a float (JSON's
    ``8.0``) is refused: it would build another architecture than the one the weights were trained in.
    """
    value = integer(getattr(cfg, name), f"{type(cfg).__name__}.{name}", lo)
    if value > hi:
        raise ConfigError(f"{type(cfg).__name__}.{name} must be at most {hi}, got {value!r}")
    return value
