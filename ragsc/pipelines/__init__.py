"""Task pipelines (text, image, VQA, multitask) that compose encoder, link, KBs and decoders."""

from ragsc.kb.default import build_default_kb
from ragsc.pipelines.items import Message, parse_items
from ragsc.pipelines.pipeline import Output, Pipeline, Transmission

__all__ = ["Message", "Output", "Pipeline", "Transmission", "build_default_kb", "parse_items"]
