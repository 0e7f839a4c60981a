"""A tiny CAT codec saved to a folder, for the pipeline and sweep tests of ``channel.path: cat``.

Untrained (its decoded embeddings are noise-like) with a hand-made rate table, so which lengths the rate
policy picks is known: at ``cat_quality`` 0.9 it sends 8 symbols at 0 dB, 4 at 15 dB and 2 at 20 dB.
"""

from pathlib import Path

from PIL import Image

from ragsc.channel import CATCalibration, CATCodec, CATConfig

LEVELS = (2, 4, 8)
# quality per level (2, 4, 8) at 0 / 10 / 20 dB
TABLE = CATCalibration(snrs_db=(0.0, 10.0, 20.0), n_items=100,
                       quality={"awgn": ((0.5, 0.6, 0.7), (0.7, 0.85, 0.9), (0.9, 0.95, 0.97))})


def save_tiny_cat(folder: Path, dim: int = 384, calibration: CATCalibration | None = TABLE) -> Path:
    """A tiny CAT for ``dim``-d embeddings (AWGN only) saved in ``folder``; returns ``folder``."""
    config = CATConfig(token_dim=dim, target_dim=dim, model_dim=16, layers=1, heads=2, max_symbols=8,
                       levels=LEVELS, channels=("awgn",), calibration=calibration)
    return CATCodec(config).save(folder)


def cat_spec(folder, task: str = "multitask", **channel) -> dict:
    """A KB-less spec (no RAG) whose embeddings, sentences included, take the CAT codec in ``folder``."""
    return {"name": "cat", "task": task, "decoder": {"rag": False}, "text": {"link": "embedding"},
            "channel": {"path": "cat", "cat": str(folder), **channel}}


def solid_images(n: int) -> list:
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    return [Image.new("RGB", (64, 64), colors[i % len(colors)]) for i in range(n)]
