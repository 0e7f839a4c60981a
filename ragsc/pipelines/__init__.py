"""Task pipelines (text, image, VQA, multitask) that compose encoder, link, KBs and decoders.

Modules: :mod:`~ragsc.pipelines.pipeline` (:class:`Pipeline`: encoder + paths + receiver),
:mod:`~ragsc.pipelines.factory` (spec -> parts, the shipped specs by name), :mod:`~ragsc.pipelines.receiver`
(:class:`Receiver`: retrieval + decoding), :mod:`~ragsc.pipelines.transmission` (:class:`Emission`,
:class:`Transmission`, :class:`Output`), :mod:`~ragsc.pipelines.sentences` (the token link for sentences),
:mod:`~ragsc.pipelines.items` (what a pipeline takes).
"""

from ragsc.kb.default import build_default_kb
from ragsc.pipelines.factory import shipped_specs
from ragsc.pipelines.items import Message, parse_items
from ragsc.pipelines.pipeline import Pipeline
from ragsc.pipelines.receiver import Receiver
from ragsc.pipelines.transmission import Emission, Output, Transmission

__all__ = ["Emission", "Message", "Output", "Pipeline", "Receiver", "Transmission", "build_default_kb",
           "parse_items", "shipped_specs"]
