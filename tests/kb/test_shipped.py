"""ragsc.kb.shipped: the default KBs' shipped image embeddings, used when their fingerprint matches."""

import pytest
import torch

from ragsc.kb.default import build_default_kb
from ragsc.kb.shipped import SHIPPED_PARTS, images_digest, shipped_embeddings, shipped_path, write_shipped
from tests.kb._fakes import FakeEncoder

N = 6  # test images in a small shipped file


def _path(item):
    from ragsc.decoders.context import item_image_path

    return item_image_path(item)


@pytest.fixture(scope="module")
def test_images():
    from ragsc.datasets import load_easy_vqa

    return [x.path for x in load_easy_vqa("test")[:N]]


@pytest.fixture(scope="module")
def small_file(embedded, tmp_path_factory):
    """A shipped file of the first N easy-VQA test images, written by the recipe."""
    return write_shipped(tmp_path_factory.mktemp("shipped") / "e.safetensors", embedded,
                         parts={"easy-vqa-test": ("test", N)}, progress=False)


@pytest.fixture
def shipped(small_file, monkeypatch):
    """The small file in place of kb/embeddings.safetensors."""
    import ragsc.kb.shipped

    monkeypatch.setattr(ragsc.kb.shipped, "shipped_path", lambda: small_file)
    return small_file


def test_the_shipped_file_is_a_fresh_encoding_of_the_default_kbs_images(embedded):
    from safetensors import safe_open

    from ragsc.datasets import load_easy_vqa

    path = shipped_path()
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    # rebuilt after the embedded encoder's weights changed? `python -m ragsc.kb.shipped`
    assert meta["encoder"] == embedded.fingerprint, "kb/embeddings.safetensors is stale: rebuild it"
    train, test = load_easy_vqa("train"), load_easy_vqa("test")
    assert shapes == {"easy-vqa-train": (len(train), embedded.dim), "easy-vqa-test": (200, embedded.dim)}
    assert set(shapes) == set(SHIPPED_PARTS)
    for split, photos, rows in (("train", train, [0, 1, 1789, len(train) - 1]), ("test", test, [0, 199])):
        x = shipped_embeddings(embedded, split, [p.path for p in photos[: rows[-1] + 1]])
        assert x is not None and x.dtype == torch.float32
        fresh = embedded.encode_images([photos[i].path for i in rows]).embeddings
        # float16: a relative error of 2^-11 per component; every row unit norm again
        torch.testing.assert_close(x[rows], fresh, atol=1e-3, rtol=0)
        assert torch.allclose(x.norm(dim=-1), torch.ones(len(x)), atol=1e-5)


def test_the_build_uses_the_shipped_vectors_when_the_fingerprint_matches(embedded, shipped, test_images,
                                                                        tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an image was encoded although its embedding is shipped")

    monkeypatch.setattr(embedded, "encode_images", refuse)
    kb = build_default_kb(tmp_path / "local", embedded, "local", local_images=4, local_texts=2)
    assert kb.stats()["by_modality"] == {"image": 4, "text": 2}
    x = shipped_embeddings(embedded, "test", test_images[:4])
    hits = kb.search(x, 1, modality="image")
    images = [it for it in kb.items() if it.modality == "image"]
    assert [str(p) for p in test_images[:4]] == [str(p) for p in map(_path, images)]
    # each shipped row is its own image's stored vector
    assert [h[0].id for h in hits] == [it.id for it in images]
    assert all(h[0].score == pytest.approx(1.0, abs=1e-5) for h in hits)


def test_the_build_encodes_for_another_encoder(shipped, tmp_path):
    fake = FakeEncoder()
    kb = build_default_kb(tmp_path / "local", fake, "local", local_images=4, local_texts=2)
    assert fake.calls["image"] == 1 and kb.stats()["by_modality"] == {"image": 4, "text": 2}


def test_other_images_more_images_or_no_file_are_encoded(embedded, small_file, test_images, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    assert shipped_embeddings(embedded, "test", test_images, file=small_file).shape == (N, embedded.dim)
    assert shipped_embeddings(embedded, "test", test_images[:3], file=small_file).shape == (3, embedded.dim)
    assert shipped_embeddings(embedded, "test", test_images + test_images[:1], file=small_file) is None
    assert shipped_embeddings(embedded, "test", test_images[1:3], file=small_file) is None  # not the first
    assert shipped_embeddings(embedded, "train", test_images[:1], file=small_file) is None  # not shipped
    assert shipped_embeddings(embedded, "test", test_images, file=tmp_path / "none.safetensors") is None
    assert shipped_embeddings(FakeEncoder(), "test", test_images, file=small_file) is None
    # the images' bytes changed since the file was written (another easy-VQA release): its digest differs
    with safe_open(str(small_file), framework="pt") as f:
        meta = f.metadata()
    assert meta["easy-vqa-test.digest"] == images_digest(test_images)
    other = tmp_path / "other.safetensors"
    save_file(load_file(str(small_file)), str(other),
              metadata={**meta, "easy-vqa-test.digest": images_digest(test_images[::-1])})
    assert shipped_embeddings(embedded, "test", test_images, file=other) is None
