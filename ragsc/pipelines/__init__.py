"""Task pipelines (text, image, VQA, multitask) that compose encoder, link, KBs and decoders."""

from ragsc.pipelines.default_kb import build_default_kb
from ragsc.pipelines.pipeline import Message, Output, Pipeline, Transmission

__all__ = ["Message", "Output", "Pipeline", "Transmission", "build_default_kb"]
