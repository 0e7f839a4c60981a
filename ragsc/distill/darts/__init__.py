"""KDL-DARTS: a differentiable architecture search for compact image students (the RKD-SC paper's search).

The student maps an image ``[B, C, H, W]`` into the teacher's embedding space ``[B, out_dim]``; the search
trades how well it imitates the teacher (a KD loss, ``1 - cosine``) against how big it is (an expected
parameter or MAC count, differentiable in the architecture weights). One concept per module, in the
order the flow uses them:

* :mod:`~ragsc.distill.darts.ops`: the DARTS operations (:data:`OPS`, :data:`PRIMITIVES`) and what each
  costs (:func:`op_cost`).
* :mod:`~ragsc.distill.darts.config`: :class:`SearchSpaceConfig` (the search space), :class:`Genotype`
  (the discrete cells), :class:`ArchitectureConfig` (a genotype and its sizes).
* :mod:`~ragsc.distill.darts.layout`: the skeleton both networks share (cell sizes, edges, stem).
* :mod:`~ragsc.distill.darts.supernet`: :class:`SearchNetwork`, every edge a softmax(alpha)-weighted mix
  of all operations, and its expected complexity.
* :mod:`~ragsc.distill.darts.network`: :class:`DerivedNetwork`, the discrete student a genotype builds
  (saved as every model is, :mod:`ragsc.saved`).
* :mod:`~ragsc.distill.darts.checkpoint`: the search's per-epoch checkpoint (safetensors + JSON, no pickle).
* :mod:`~ragsc.distill.darts.derivation`: :func:`derive` (the genotype of a searched supernet, the skip
  cap held) and the complexity budget (:func:`architecture_cost`, :func:`cheapest_architecture`,
  :func:`check_budget`).
* :mod:`~ragsc.distill.darts.train`: the KD loss and batches, :func:`retrain` and :func:`kd_score`.
* :mod:`~ragsc.distill.darts.searching`: :func:`search`, first-order bilevel DARTS with the skip guard
  (:class:`SkipGuard`), resumable from its checkpoint.
* :mod:`~ragsc.distill.darts.front`: :func:`lambda_front` (search, derive, retrain and score per ``lam``)
  and :func:`plot_front`.

:mod:`ragsc.distill.runs` runs all this on a teacher store and saves the result as a student
(``ragsc distill search``).
"""

from ragsc.distill.darts.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_MANIFEST,
    EpochStats,
)
from ragsc.distill.darts.config import ArchitectureConfig, Genotype, SearchSpaceConfig
from ragsc.distill.darts.derivation import architecture_cost, cheapest_architecture, check_budget, derive
from ragsc.distill.darts.front import LambdaPoint, lambda_front, plot_front
from ragsc.distill.darts.layout import STEM_MULTIPLIER
from ragsc.distill.darts.network import DerivedNetwork
from ragsc.distill.darts.ops import COMPLEXITIES, OPS, PRIMITIVES, op_cost
from ragsc.distill.darts.searching import SearchResult, SkipGuard, search
from ragsc.distill.darts.supernet import SearchNetwork
from ragsc.distill.darts.train import kd_score, retrain

__all__ = [
    "CHECKPOINT_FORMAT", "CHECKPOINT_MANIFEST", "COMPLEXITIES", "OPS", "PRIMITIVES",
    "STEM_MULTIPLIER", "ArchitectureConfig", "DerivedNetwork", "EpochStats", "LambdaPoint",
    "Genotype", "SearchNetwork", "SearchResult", "SearchSpaceConfig", "SkipGuard", "architecture_cost",
    "cheapest_architecture", "check_budget", "derive", "kd_score", "lambda_front", "op_cost", "plot_front",
    "retrain", "search",
]
