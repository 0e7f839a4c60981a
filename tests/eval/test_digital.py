"""ragsc.eval.digital: the digital baselines' receiver (separate coding or the ideal bound + the pipeline)."""

import numpy as np
import pytest
import torch
from PIL import Image

from ragsc.eval.digital import DIGITAL_MCS, DigitalReceiver
from ragsc.eval.metrics import psnr
from ragsc.eval.sets import evaluation_set
from ragsc.types import SemanticTokens


def test_digital_receiver_text(multitask):
    msgs = multitask.messages(["a red circle", "a blue square"])
    dr = DigitalReceiver(multitask)
    high, meta = dr(msgs, "awgn", 30)
    assert [o.text for o in high] == ["a red circle", "a blue square"]
    assert meta["text_mcs"] is not None and "image_mcs" not in meta
    low, meta_low = dr(msgs, "awgn", -10)
    assert [o.text for o in low] == ["", ""]  # failed CRC: the empty-string fallback
    assert meta_low["text_mcs"] is None  # no MCS delivered a sentence: none is named as chosen
    again, _ = DigitalReceiver(multitask)(msgs, "awgn", 30)
    assert [o.text for o in again] == [o.text for o in high]


@pytest.fixture(scope="module")
def images(multitask):
    ev = evaluation_set("vqa", 2, seed=3)
    return ev, multitask.messages(ev.items)


@pytest.mark.parametrize("ideal", [False, True])
def test_digital_receiver_images_decode_through_the_pipeline(multitask, images, monkeypatch, ideal):
    ev, msgs = images
    calls = []
    decode = multitask.decode

    def spy(tokens, messages, **kw):
        calls.append((tokens, messages, kw))
        return decode(tokens, messages, **kw)

    monkeypatch.setattr(multitask, "decode", spy)
    cache: dict = {}
    outputs, meta = DigitalReceiver(multitask, ideal=ideal, cache=cache)(msgs, "awgn", 30)

    # one decode of the re-encoded images, as image tokens, with the receiver's KBs and only caption + answers
    assert len(calls) == 1
    tokens, sent, kw = calls[0]
    assert isinstance(tokens, SemanticTokens) and tokens.modalities == ("image", "image")
    assert sent == msgs and kw == {"rag": True, "tasks": ("caption", "vqa")}
    expected = multitask.encoder.encode_images([o.image for o in outputs]).embeddings.float()
    assert torch.allclose(tokens.embeddings, expected, atol=1e-5)
    assert len(cache) == len({o.image.tobytes() for o in outputs})

    for o, ref, qs in zip(outputs, ev.images, ev.answers):
        assert o.kind == "image" and o.image.size == ref.size
        assert isinstance(o.caption, str) and o.caption
        assert len(o.answers) == len(o.questions) == len(qs)
    # each image is either the mid-grey fallback (its WebP did not fit the budget, or the CRC failed) or a
    # lossy copy closer to what was sent than grey is; at 30 dB the ideal bound's budget fits every image
    grey = Image.new("RGB", ev.images[0].size, (128, 128, 128))
    delivered = [not np.array_equal(np.asarray(o.image), np.asarray(grey)) for o in outputs]
    for o, ref, ok in zip(outputs, ev.images, delivered):
        assert not ok or psnr([o.image], [ref])[0] > psnr([grey], [ref])[0]
    assert "text_mcs" not in meta
    if ideal:
        assert all(delivered) and meta["image_mcs"] is None  # no MCS: the bound is error-free at capacity
    else:
        # an MCS is named only when it delivered an image (none fits k_symbols here: every one is grey)
        assert meta["image_mcs"] in DIGITAL_MCS if any(delivered) else meta["image_mcs"] is None


def test_digital_receiver_image_fallback_and_shared_cache(multitask, images, monkeypatch):
    ev, msgs = images
    cache: dict = {}
    outputs, meta = DigitalReceiver(multitask, cache=cache)(msgs, "awgn", -10)
    grey = np.full((*ev.images[0].size[::-1], 3), 128, dtype=np.uint8)
    assert all(np.array_equal(np.asarray(o.image), grey) for o in outputs)  # nothing delivered: mid-grey
    assert len(cache) == 1 and all(isinstance(o.caption, str) for o in outputs)

    # the ideal bound at the same point decodes the same grey images: not encoded again
    encoded = []
    encode_images = multitask.encoder.encode_images

    def counting(ims):
        encoded.append(len(ims))
        return encode_images(ims)

    monkeypatch.setattr(multitask.encoder, "encode_images", counting)
    ideal, _ = DigitalReceiver(multitask, ideal=True, cache=cache)(msgs, "awgn", -10)
    assert encoded == [] and all(np.array_equal(np.asarray(o.image), grey) for o in ideal)
