"""RAG context: rank weights, pooling, image items behind KB hits, retrieve() against a real KB."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.datasets import load_easy_vqa
from ragsc.decoders import Context, retrieve
from ragsc.decoders.context import item_image_path, item_pixels, pooled, rank_weights
from ragsc.errors import InputError

from ._fakes import hits, item, text_context


@pytest.mark.parametrize("k", [1, 2, 4, 10])
def test_rank_weights_sum_to_one_and_decrease(k):
    w = rank_weights(k)
    assert w.shape == (k,) and w.dtype == torch.float32
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6)
    assert (w > 0).all()
    assert (w[1:] < w[:-1]).all()
    # 1 / (rank + 1), normalised: the ratio of the first two is exactly 2
    if k > 1:
        assert float(w[0] / w[1]) == pytest.approx(2.0)
        assert float(w[0] / w[-1]) == pytest.approx(float(k))


def test_pooled_weights_rows_and_flags_empty_ones():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[2.0, 4.0]])
    out, has = pooled([a, torch.zeros(0, 2), b], (2,))
    assert out.shape == (3, 2) and has.shape == (3,)
    assert has.tolist() == [1.0, 0.0, 1.0]
    assert torch.allclose(out[0], torch.tensor([2 / 3, 1 / 3]))  # rank weights 2/3, 1/3
    assert torch.equal(out[1], torch.zeros(2))
    assert torch.allclose(out[2], b[0])


def test_pooled_all_empty_and_image_shaped():
    out, has = pooled([torch.zeros(0, 3, 4, 4)] * 2, (3, 4, 4))
    assert out.shape == (2, 3, 4, 4) and not out.any() and not has.any()
    img = torch.rand(3, 3, 4, 4)
    out, has = pooled([img], (3, 4, 4))
    expected = (rank_weights(3).view(-1, 1, 1, 1) * img).sum(0)
    assert torch.allclose(out[0], expected) and has.tolist() == [1.0]


def test_item_image_path_easy_vqa_uri():
    x = load_easy_vqa("train")[0]
    path = item_image_path(item("image", x.caption, f"easy-vqa:train/{x.image_id}"))
    assert path is not None and path.resolve() == x.path.resolve()
    t = load_easy_vqa("test")[0]
    assert (item_image_path(item("image", t.caption, f"easy-vqa:test/{t.image_id}")).resolve()
            == t.path.resolve())
    assert item_image_path(item("image", "a red circle", "easy-vqa:train/99999999")) is None


def test_item_image_path_plain_file_and_missing(tmp_path):
    p = tmp_path / "red.png"
    Image.new("RGB", (32, 16), (255, 0, 0)).save(p)
    assert item_image_path(item("image", None, str(p))) == p
    assert item_image_path(item("image", None, str(tmp_path / "gone.png"))) is None
    assert item_image_path(item("image", None, None)) is None
    assert item_image_path(item("image", None, str(tmp_path))) is None  # a folder is not an image file
    # a text item has no image even when its URI names one
    assert item_image_path(item("text", "a red square", str(p))) is None


def test_item_pixels_resized_in_unit_range(tmp_path):
    p = tmp_path / "half.png"
    arr = np.zeros((16, 32, 3), np.uint8)
    arr[..., 2] = 255
    Image.fromarray(arr).save(p)
    px = item_pixels(item("image", None, str(p)), 8)
    assert px.shape == (3, 8, 8) and px.dtype == torch.float32
    assert torch.allclose(px[2], torch.ones(8, 8)) and not px[:2].any()
    assert item_pixels(item("text", "hello", None), 8) is None


def test_context_texts_len_and_check():
    ctx = Context([hits([item("text", "a"), item("image", None, "x.png"), item("image", "a cap", "y.png")]),
                   []])
    assert len(ctx) == 2
    assert ctx.texts == [["a", "a cap"], []]  # items without text are skipped
    ctx.check(2)
    with pytest.raises(InputError, match="2 rows for 3"):
        ctx.check(3)
    assert text_context([["x", "y"]]).texts == [["x", "y"]]


def test_retrieve_from_kb(default_kbs, embedded):
    _, global_ = default_kbs
    sentences = ["a red triangle", "a picture of a blue circle"]
    emb = embedded.encode_texts(sentences).embeddings
    ctx = retrieve(global_, emb, k=4)
    assert isinstance(ctx, Context) and len(ctx) == 2
    assert all(len(row) == 4 for row in ctx.hits)
    # the stored sentence is its own nearest neighbour
    assert [row[0].item.text for row in ctx.hits] == sentences
    for row in ctx.hits:
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)

    img = retrieve(global_, emb, k=3, modality="image")
    assert all(len(row) == 3 and all(h.item.modality == "image" for h in row) for row in img.hits)
    # image items of the default KB are easy-VQA train images with their captions
    assert all(item_image_path(h.item) is not None for row in img.hits for h in row)
    assert "red" in img.hits[0][0].item.text and "triangle" in img.hits[0][0].item.text
    txt = retrieve(global_, emb, k=3, modality="text")
    assert all(h.item.modality == "text" and item_image_path(h.item) is None for row in txt.hits for h in row)
