"""Adaptive compression: fit an encoder's tower, or a decoder's LM, to a device budget (size, latency,
parameters).

* :mod:`~ragsc.compress.config`: :class:`CompressionConfig` (methods: prune, int8-dynamic, int8-static,
  fp16, bf16, none) and :class:`Budget`;
* :mod:`~ragsc.compress.towers`: where each tower's network (the *unit*) sits in an encoder;
* :mod:`~ragsc.compress.layers`, :mod:`~ragsc.compress.quantize`, :mod:`~ragsc.compress.precision`,
  :mod:`~ragsc.compress.prune`, :mod:`~ragsc.compress.finetune`: the methods;
* :mod:`~ragsc.compress.apply`: :func:`compress` one tower by a config (and replay it on load);
* :mod:`~ragsc.compress.measure`: size, latency on this machine, parameters, scores on held-out data
  (a text tower's: WordNet definition -> example R@1; cosine and R@1 against the float tower);
* :mod:`~ragsc.compress.pareto`: :func:`front` of candidates, :func:`choose` by a budget;
* :mod:`~ragsc.compress.saved`: :func:`save_compressed` and :class:`CompressedEncoder`
  (``load_encoder("compressed:<dir>")``: config JSON + safetensors, no pickle);
* :mod:`~ragsc.compress.lm`: the decoder side, a generative decoder's causal LM (int8-dynamic, fp16,
  bf16) scored by BLEU-1 over the token link, :func:`lm_front`, saved and reloaded by
  ``load_lm("compressed:<dir>")`` (a pipeline spec's ``decoder.lm``).

``ragsc compress encoder SPEC --budget-mb X --budget-ms Y --out DIR`` (or ``ragsc compress lm SPEC ...`` for
the decoder's LM) runs the front, prints it and writes the point the budget picks.
"""

from ragsc.compress.apply import Compressed, compress
from ragsc.compress.config import (
    COMPRESSION_METHODS,
    LM_METHODS,
    Budget,
    CompressionConfig,
    FinetuneConfig,
    LMCompressionConfig,
    parse_lm_methods,
    parse_methods,
)
from ragsc.compress.data import EvalData
from ragsc.compress.lm import (
    CompressedLM,
    LinkData,
    LMMeasurement,
    compress_lm,
    lm_front,
    lm_front_table,
    load_compressed_lm,
    save_compressed_lm,
)
from ragsc.compress.measure import Measurement
from ragsc.compress.pareto import CompressionPoint, choose, front, front_table
from ragsc.compress.saved import CompressedEncoder, save_compressed

__all__ = [
    "LM_METHODS",
    "COMPRESSION_METHODS",
    "Budget",
    "Compressed",
    "CompressedEncoder",
    "CompressedLM",
    "CompressionConfig",
    "EvalData",
    "FinetuneConfig",
    "CompressionPoint",
    "LMCompressionConfig",
    "LMMeasurement",
    "LinkData",
    "Measurement",
    "choose",
    "compress",
    "compress_lm",
    "front",
    "front_table",
    "lm_front",
    "lm_front_table",
    "load_compressed_lm",
    "parse_lm_methods",
    "parse_methods",
    "save_compressed",
    "save_compressed_lm",
]
