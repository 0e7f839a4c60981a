"""Shared parts of the pipeline tests: one encoder, the small default KBs and the shipped decoders, the
pipelines built on them, and the evaluation images."""

import os
from pathlib import Path

import pytest

from ragsc.pipelines import Pipeline

from ._helpers import SPECS, embedding_spec, files_under


@pytest.fixture(scope="module")
def parts(embedded, default_kbs, decoders):
    local, global_ = default_kbs
    return {"encoder": embedded, "local": local, "global_": global_, "decoders": decoders}


@pytest.fixture(scope="module")
def pipes(parts):
    """The text pipeline and the easy-VQA image and VQA pipelines (embeddings only, the trained decoders)."""
    names = {"text": "text", "image": "image-easyvqa", "vqa": "vqa-easyvqa"}
    return {task: Pipeline.from_config(SPECS / f"{name}.yaml", **parts) for task, name in names.items()}


@pytest.fixture(scope="module")
def by_embedding(parts):
    """The text and multitask pipelines with sentences on the analog link (``text.link: embedding``)."""
    return {task: Pipeline.from_config(embedding_spec(task), **parts) for task in ("text", "multitask")}


@pytest.fixture(scope="module")
def test_images():
    from ragsc.datasets import load_easy_vqa

    return load_easy_vqa("test")


@pytest.fixture(scope="module")
def kb_fortunes(default_kbs):
    """Fortunes the global KB stores (skipped where Debian's fortunes are not installed)."""
    from ragsc.datasets.corpus import caption_sentences

    captions = set(caption_sentences())
    texts = [it.text for it in default_kbs[1].items() if it.modality == "text" and it.text not in captions]
    if not texts:
        pytest.skip("no fortunes installed: the text corpus is the captions alone")
    return texts


@pytest.fixture
def disk_unchanged(tmp_path):
    """Fails the test if anything was created under RAGSC_HOME or tmp_path while it ran."""
    home = Path(os.environ["RAGSC_HOME"])
    before = files_under(home, tmp_path)
    yield
    assert files_under(home, tmp_path) == before


@pytest.fixture(scope="module")
def cat_dir(tmp_path_factory):
    """A tiny CAT for the embedded encoder's 384-d space with a known rate table (tests/pipelines/_cat.py)."""
    from tests.pipelines._cat import save_tiny_cat

    return save_tiny_cat(tmp_path_factory.mktemp("cat"))
