"""Evaluation: task metrics (``metrics``), evaluation sets (``sets``), scoring (``scoring``), the digital
baselines' receiver (``digital``), SNR sweeps against the baselines (``sweep``) and their CSV, plots and
table (``results``)."""

from ragsc.eval.digital import DIGITAL_MCS, DigitalReceiver
from ragsc.eval.metrics import accuracy, bleu, psnr, recall_at_k, sentence_similarity, ssim
from ragsc.eval.results import plot, save, summary_table, write_csv
from ragsc.eval.scoring import PRIMARY, PSNR_CAP_DB, TASK_METRICS, retrieval_scores, score
from ragsc.eval.sets import SUBSETS, EvalSet, evaluation_set
from ragsc.eval.sweep import COLUMNS, SWEEP_METHODS, run_eval

__all__ = ["COLUMNS", "DIGITAL_MCS", "SWEEP_METHODS", "PRIMARY", "PSNR_CAP_DB", "SUBSETS", "TASK_METRICS",
           "DigitalReceiver", "EvalSet", "accuracy", "bleu", "evaluation_set", "plot", "psnr", "recall_at_k",
           "retrieval_scores", "run_eval", "save", "score", "sentence_similarity", "ssim", "summary_table",
           "write_csv"]
