"""Decoders at the receiver: text, image and VQA, each with RAG on (a :class:`Context`) or off (``None``).

Imports follow the flow: decoders read :mod:`ragsc.kb` hits and :mod:`ragsc.channel`'s PCA basis; the
pipelines compose them. Each trained network is built from a small dataclass config (``TextGRUConfig``,
``ImageDecoderConfig``, ``AnswerHeadConfig``); the networks and their configs ship in
``encoders/embedded/decoders/`` (a saved model, :func:`load_decoders`); ``ragsc decoders train`` retrains
them.
"""

from ragsc.decoders.bundle import Decoders, load_decoders, save_decoders
from ragsc.decoders.context import Context, retrieve
from ragsc.decoders.image import ImageDecoder, ImageDecoderConfig, ImageDecoderNet, retrieved_image
from ragsc.decoders.lm import CausalLM, load_lm
from ragsc.decoders.photo_text import DescriberSettings, PhotoDescriber
from ragsc.decoders.text import TextDecoder, TextGRU, TextGRUConfig, Vocab
from ragsc.decoders.vqa import AnswerHead, AnswerHeadConfig, VQADecoder

__all__ = ["AnswerHead", "AnswerHeadConfig", "CausalLM", "Context", "Decoders", "DescriberSettings",
           "ImageDecoder", "ImageDecoderConfig", "ImageDecoderNet", "PhotoDescriber", "TextDecoder",
           "TextGRU", "TextGRUConfig", "VQADecoder", "Vocab", "load_decoders", "load_lm", "retrieve",
           "retrieved_image", "save_decoders"]
