"""Datasets that ship inside registry packages: easy-VQA and real sample photos.

Everything here is offline: images and questions come from the ``easy-vqa`` package, photos from
scikit-image's and scikit-learn's bundled samples. Loaders return plain records; encoders, KBs and
benchmarks share them.
"""

from ragsc.datasets.easy_vqa import COLORS, SHAPES, EasyVQAImage, caption_for, load_easy_vqa
from ragsc.datasets.photos import Photo, load_photos

__all__ = ["COLORS", "SHAPES", "EasyVQAImage", "caption_for", "load_easy_vqa", "Photo", "load_photos"]
