"""Evaluation: task metrics (``metrics.py``) and SNR sweeps of the pipelines against baselines (``sweep.py``)."""

from ragsc.eval.metrics import accuracy, bleu, psnr, recall_at_k, sentence_similarity, ssim
from ragsc.eval.sweep import METHODS, evaluation_set, plot, run_eval, save, score, summary_table, write_csv

__all__ = ["METHODS", "accuracy", "bleu", "evaluation_set", "plot", "psnr", "recall_at_k", "run_eval", "save", "score",
           "sentence_similarity", "ssim", "summary_table", "write_csv"]
