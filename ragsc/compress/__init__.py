"""Adaptive compression: fit an encoder's tower to a device budget (size, latency, parameters).

* :mod:`~ragsc.compress.config`: :class:`CompressionConfig` (methods: prune, int8-dynamic, int8-static,
  fp16, bf16, none) and :class:`Budget`;
* :mod:`~ragsc.compress.towers`: where each tower's network (the *unit*) sits in an encoder;
* :mod:`~ragsc.compress.layers`, :mod:`~ragsc.compress.quantize`, :mod:`~ragsc.compress.precision`,
  :mod:`~ragsc.compress.prune`, :mod:`~ragsc.compress.finetune`: the methods;
* :mod:`~ragsc.compress.apply`: :func:`compress` one tower by a config (and replay it on load);
* :mod:`~ragsc.compress.measure`: size, latency on this machine, parameters, scores on held-out data
  (a text tower's: WordNet definition -> example R@1; cosine and R@1 against the float tower);
* :mod:`~ragsc.compress.front`: :func:`front` of candidates, :func:`choose` by a budget;
* :mod:`~ragsc.compress.saved`: :func:`save_compressed` and :class:`CompressedEncoder`
  (``load_encoder("compressed:<dir>")``: config JSON + safetensors, no pickle).

``ragsc compress --encoder SPEC --budget-mb X --budget-ms Y --out DIR`` runs the front, prints it and
writes the point the budget picks.
"""

from ragsc.compress.apply import Compressed, compress
from ragsc.compress.config import METHODS, Budget, CompressionConfig, FinetuneConfig, parse_methods
from ragsc.compress.data import EvalData
from ragsc.compress.front import FrontPoint, choose, front, front_table
from ragsc.compress.measure import Measurement
from ragsc.compress.saved import CompressedEncoder, save_compressed

__all__ = [
    "METHODS",
    "Budget",
    "Compressed",
    "CompressedEncoder",
    "CompressionConfig",
    "EvalData",
    "FinetuneConfig",
    "FrontPoint",
    "Measurement",
    "choose",
    "compress",
    "front",
    "front_table",
    "parse_methods",
    "save_compressed",
]
