"""Evaluation: task metrics (``metrics.py``); SNR sweeps and reports join here with the pipelines."""

from ragsc.eval.metrics import accuracy, bleu, psnr, recall_at_k, sentence_similarity, ssim

__all__ = ["accuracy", "bleu", "psnr", "recall_at_k", "sentence_similarity", "ssim"]
