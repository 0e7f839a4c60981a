"""ragsc.pipelines.Pipeline: encoder -> link -> receiver, per task; the transmitter's input checks and the
CAT path."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ragsc.errors import ConfigError, InputError
from ragsc.pipelines import Output, Pipeline, Transmission

from ._cat import cat_spec, solid_images
from ._helpers import SPECS


def test_transmit_and_receive(multitask, test_images):
    x = test_images[0]
    items = ["a red triangle", {"image": x.path, "questions": ["what is the color of the shape?"]}]
    tx = multitask.transmit(items, snr_db=12.5)
    assert isinstance(tx, Transmission) and len(tx) == 2
    assert tx.kinds == ["text", "image"]
    # the sentence crosses the token link (16-symbol header + 2 gain symbols + 4 per token), the image's
    # embedding the analog one and its 64x64 pixels the image JSCC (64 * 64 * 3 / 12 symbols + a 16-symbol
    # header)
    n_tokens = len(multitask.sentence_path.decoder.token_ids(["a red triangle"])[0])
    assert tx.token_rows == [0] and tx.analog_rows == [1] and tx.photo_rows == [1]
    assert tx.channel_uses_per_item == [18 + 4 * n_tokens, multitask.spec.channel.k_symbols + 1024 + 16]
    assert tx.channel_uses == round(sum(tx.channel_uses_per_item) / 2)
    assert tx.snr_db == 12.5 and tx.channel == "awgn" and tx.sentences.snr_db == 12.5
    z = tx.received.tokens.embeddings
    assert z.shape == (1, 384) and tx.received.tokens.modalities == ("image",)
    assert torch.allclose(z.norm(dim=-1), torch.ones(1), atol=1e-5)
    assert set(multitask.timings) == {"encode", "channel"}
    outs = multitask.receive(tx)
    assert [type(o) for o in outs] == [Output, Output] and [o.kind for o in outs] == ["text", "image"]
    assert set(multitask.timings) == {"encode", "channel", "retrieve", "decode"}
    assert outs[0].text == "a red triangle" and outs[0].image is None and outs[0].answers == []
    assert outs[0].meta == {"channel_uses": 18 + 4 * n_tokens, "tokens": n_tokens, "frames": 1,
                            "rag": ["a red triangle"]}  # the KB holds this caption
    assert outs[1].text is None and outs[1].questions == ["what is the color of the shape?"]
    assert len(outs[1].answers) == 1 and outs[1].context


def test_run_is_receive_of_transmit_and_deterministic(by_embedding):
    multitask = by_embedding["multitask"]  # sentences on the analog link
    items = ["a blue circle", "Expect the worst, it's the least you can do."]
    a = multitask.run(items, snr_db=-5, seed=3)
    b = multitask.receive(multitask.transmit(items, snr_db=-5, seed=3))
    c = multitask.run(items, snr_db=-5, seed=3)
    assert [o.text for o in a] == [o.text for o in b] == [o.text for o in c]
    t1 = multitask.transmit(items, snr_db=-5, seed=3)
    t2 = multitask.transmit(items, snr_db=-5, seed=3)
    t3 = multitask.transmit(items, snr_db=-5, seed=4)
    assert torch.equal(t1.received.tokens.embeddings, t2.received.tokens.embeddings)
    assert not torch.allclose(t1.received.tokens.embeddings, t3.received.tokens.embeddings)
    # the default seed is the spec's
    d = multitask.transmit(items, snr_db=-5)
    e = multitask.transmit(items, snr_db=-5, seed=multitask.spec.seed)
    assert torch.equal(d.received.tokens.embeddings, e.received.tokens.embeddings)


def test_spec_seed_seeds_the_pipeline(by_embedding, parts):
    multitask = by_embedding["multitask"]  # sentences on the analog link
    items = ["a blue circle", "Expect the worst, it's the least you can do."]
    spec = multitask.spec.resolved()  # as `ragsc spec validate` prints it: one seed, at the top level
    assert "seed" not in spec["channel"]
    seeded = Pipeline.from_config({**spec, "seed": 3}, **parts)
    assert seeded.link().config.seed == 3 and multitask.link().config.seed == multitask.spec.seed == 0
    a = seeded.transmit(items, snr_db=-5)
    b = multitask.transmit(items, snr_db=-5, seed=3)
    c = multitask.transmit(items, snr_db=-5)
    assert torch.equal(a.received.tokens.embeddings, b.received.tokens.embeddings)
    assert not torch.allclose(a.received.tokens.embeddings, c.received.tokens.embeddings)
    with pytest.raises(ConfigError, match="one seed"):
        Pipeline.from_config({**spec, "seed": 3, "channel": {**spec["channel"], "seed": 4}}, **parts)


def test_tokens_carry_each_rows_modality_end_to_end(by_embedding, test_images):
    multitask = by_embedding["multitask"]  # sentences on the analog link
    items = [test_images[0].path, "a red triangle", test_images[1].path, "Trust, but verify."]
    messages = multitask.messages(items)
    tokens = multitask.encode(messages)
    assert tokens.modalities == ("image", "text", "image", "text") and tokens.embeddings.shape == (4, 384)
    tx = multitask.send(messages, tokens, snr_db=10)
    assert tx.received.tokens.modalities == tokens.modalities  # the link does not relabel rows
    assert tx.kinds == ["image", "text", "image", "text"]
    # a single-modality batch keeps one label
    assert multitask.encode(multitask.messages(["a", "b"])).modality == "text"
    with pytest.raises(InputError, match="modalities do not match"):
        multitask.send(messages, tokens.select([1, 0, 2, 3]), snr_db=10)


def test_default_snr_channel_and_noiseless(by_embedding):
    p = by_embedding["text"]
    tx = p.transmit(["a red triangle"])
    assert tx.snr_db == p.spec.channel.snr_db and tx.channel == p.spec.channel.channel
    tx = p.transmit(["a red triangle"], channel="rayleigh", snr_db=3)
    assert tx.channel == "rayleigh" and tx.snr_db == 3.0
    bound = p.transmit(["a red triangle", "a teal circle"], noiseless=True)
    assert math.isinf(bound.snr_db) and bound.snr_db > 0 and bound.channel == "none"
    assert bound.channel_uses == p.spec.channel.k_symbols
    # the noiseless bound is deterministic: no noise, whatever the seed
    again = p.transmit(["a red triangle", "a teal circle"], noiseless=True, seed=9)
    assert torch.equal(bound.received.tokens.embeddings, again.received.tokens.embeddings)
    assert [o.text for o in p.receive(bound)] == ["a red triangle", "a teal circle"]


def test_batch_of_one_is_the_same_path(pipes, test_images):
    p = pipes["text"]
    one, listed = p.run("a purple triangle", snr_db=0), p.run(["a purple triangle"], snr_db=0)
    assert len(one) == 1 and one[0].text == listed[0].text
    # a str question is a list of one
    item = {"image": test_images[5].path, "questions": "what color is the shape?"}
    one, listed = pipes["vqa"].run(item, snr_db=20), pipes["vqa"].run([item], snr_db=20)
    assert len(one) == 1 and one[0].answers == listed[0].answers and len(one[0].answers) == 1
    assert one[0].questions == ["what color is the shape?"]
    a = pipes["image"].run(Path(test_images[5].path), snr_db=20)
    assert len(a) == 1 and a[0].caption == pipes["image"].run([test_images[5].path], snr_db=20)[0].caption


@pytest.mark.usefixtures("disk_unchanged")
def test_wrong_kind_for_the_task(pipes, test_images):
    with Image.open(test_images[0].path) as im:
        pil = im.convert("RGB")
    with pytest.raises(InputError, match=r"'text' pipeline expected a sentence"):
        pipes["text"].transmit([pil])
    with pytest.raises(InputError, match=r"'text' pipeline expected a sentence"):
        pipes["text"].transmit({"image": test_images[0].path})
    with pytest.raises(InputError, match=r"'image' pipeline expected an image"):
        pipes["image"].transmit({"text": "a red circle"})
    # a plain sentence to an image pipeline: it is not an image file, and the error says an image was expected
    with pytest.raises(InputError,
                       match="'image' pipeline expected an image .*'a red circle' is not an image file"):
        pipes["image"].transmit("a red circle")
    with pytest.raises(InputError, match="got int"):
        pipes["text"].transmit([3])
    with pytest.raises(InputError, match="got NoneType"):
        pipes["text"].transmit(None)
    with pytest.raises(InputError, match="empty or non-string text"):
        pipes["text"].transmit(["  "])
    with pytest.raises(InputError, match="empty or non-string text"):
        pipes["text"].transmit([{"text": 5}])


@pytest.mark.usefixtures("disk_unchanged")
def test_bad_batches_and_vqa_items(pipes, test_images):
    path = test_images[0].path
    for p in pipes.values():
        with pytest.raises(InputError, match="empty batch"):
            p.transmit([])
    with pytest.raises(InputError, match="questions with no image"):
        pipes["vqa"].transmit([{"questions": ["what shape?"]}])
    with pytest.raises(InputError, match="vqa pipeline needs questions"):
        pipes["vqa"].transmit([path])
    with pytest.raises(InputError, match="vqa pipeline needs questions"):
        pipes["vqa"].transmit([{"image": path, "questions": []}])
    for bad in ([1], [""], ["ok?", "   "], [None]):
        with pytest.raises(InputError, match="questions must be non-empty strings"):
            pipes["vqa"].transmit([{"image": path, "questions": bad}])
    with pytest.raises(InputError, match="'questions' must be a list"):
        pipes["vqa"].transmit([{"image": path, "questions": 5}])
    # the receiver's work per image is bounded: how many questions, how long
    with pytest.raises(InputError, match=r"item 0: 17 questions, more than the limit of 16"):
        pipes["vqa"].transmit([{"image": path, "questions": ["what?"] * 17}])
    with pytest.raises(InputError, match=r"question 1 has 501 characters.*limits.question_chars"):
        pipes["vqa"].transmit([{"image": path, "questions": ["what?", "x" * 501]}])
    with pytest.raises(InputError, match=r"unknown keys \['question'\]"):
        pipes["vqa"].transmit([{"image": path, "question": ["what shape?"]}])
    with pytest.raises(InputError, match="needs 'image'"):
        pipes["image"].transmit([{}])
    with pytest.raises(InputError, match="array must be"):
        pipes["image"].transmit([np.zeros((2, 8, 8, 3), np.uint8)])
    for p in pipes.values():  # was a TypeError from list(5)
        with pytest.raises(InputError, match="a list of items, got int"):
            p.run(5)


@pytest.mark.usefixtures("disk_unchanged")
def test_a_batch_over_the_limit_is_refused_before_anything_is_encoded(pipes, parts, monkeypatch):
    encoded = []
    monkeypatch.setattr(parts["encoder"], "encode_texts", lambda *a, **k: encoded.append(a))
    with pytest.raises(InputError, match=r"item 256: a batch of 257 items, more than the limit of 256 "
                                         r"\(limits.batch_items\)"):
        pipes["text"].transmit(["a red circle"] * 257, noiseless=True)
    images = [np.zeros((8, 8, 3), np.uint8)] * 3
    spec = {**yaml.safe_load((SPECS / "image.yaml").read_text()), "limits": {"batch_items": 2}}
    pipe = Pipeline.from_config(spec, **parts)
    assert len(pipe.transmit(images[:2], noiseless=True)) == 2
    with pytest.raises(InputError, match="item 2: a batch of 3 items, more than the limit of 2"):
        pipe.run(images)
    assert encoded == []


@pytest.mark.usefixtures("disk_unchanged")
def test_bad_snr_and_channel(pipes):
    p = pipes["text"]
    for snr in (100, -31, 60.5):
        with pytest.raises(InputError, match=r"\[-30.0, 60.0\] dB"):
            p.transmit("a red circle", snr_db=snr)
    for snr in (float("nan"), float("inf")):
        with pytest.raises(InputError, match="finite"):
            p.run("a red circle", snr_db=snr)
    with pytest.raises(ConfigError, match="channel.*'awgn', 'rayleigh' or 'rician'.*'wifi'"):
        p.transmit("a red circle", channel="wifi")
    assert p.transmit("a red circle", snr_db=60).snr_db == 60.0  # the bounds themselves are allowed
    assert p.transmit("a red circle", snr_db=-30).snr_db == -30.0


def test_cat_path_sends_images_and_sentences_through_the_codec(embedded, decoders, cat_dir):
    from ragsc.channel import CATLink

    parts = {"encoder": embedded, "decoders": decoders}
    p = Pipeline.from_config(cat_spec(cat_dir), **parts)
    assert isinstance(p.link(), CATLink) and p.cat.config.levels == (2, 4, 8)
    assert p.with_text_link("token").cat is p.cat  # the codec is shared, not loaded again
    a, b, c = solid_images(3)
    items = [a, b, "a red circle", {"image": c, "questions": ["what color is the shape?"]}]
    tx = p.transmit(items, snr_db=20)
    assert tx.received.meta["path"] == "cat" and tx.analog_rows == [0, 1, 2, 3] and tx.token_rows == []
    assert tx.kinds == ["image", "image", "text", "image"] and tx.received.tokens.embeddings.shape == (4, 384)
    # the rate table: quality 0.9 takes 2 symbols at 20 dB, 8 at 0 dB
    assert tx.channel_uses_per_item == [2] * 4 and tx.channel_uses == 2
    outs = p.receive(tx)  # the receiver is unchanged: the decoders read the decoded embeddings
    assert [o.kind for o in outs] == ["image", "image", "text", "image"]
    for o in (outs[0], outs[1], outs[3]):
        assert o.image.size == (64, 64) and isinstance(o.caption, str)
    assert isinstance(outs[2].text, str) and len(outs[3].answers) == 1
    assert all(o.meta == {"channel_uses": 2, "n_symbols": 2} for o in outs)
    assert p.transmit(items, snr_db=0).channel_uses_per_item == [8] * 4
    # the bound: no noise, at the length the policy picks on the best channel
    bound = p.transmit(items, noiseless=True)
    assert bound.channel == "none" and math.isinf(bound.snr_db) and bound.channel_uses_per_item == [2] * 4
    fixed = Pipeline.from_config(cat_spec(cat_dir, cat_symbols=4), **parts)
    assert fixed.transmit(items, snr_db=0).channel_uses_per_item == [4] * 4
    assert fixed.transmit(items, snr_db=20).channel_uses_per_item == [4] * 4


def test_cat_rate_policy_picks_each_items_length(embedded, decoders, cat_dir):
    # with pilots each item's length follows its own SNR estimate: at 15 dB (4 symbols by the table) the
    # estimates fall on both sides of the table's steps
    p = Pipeline.from_config(cat_spec(cat_dir, task="image", cat_pilots=4), encoder=embedded,
                             decoders=decoders)
    messages = p.messages(solid_images(4))
    tokens = p.encode(messages)
    tx = p.send(messages * 6, tokens.select(list(range(4)) * 6), snr_db=15)
    n = tx.received.meta["n_symbols"]
    assert set(n) <= {2, 4, 8} and len(set(n)) > 1
    assert tx.channel_uses_per_item == [k + 4 for k in n]  # pilots are channel uses
    assert tx.channel_uses == round(sum(tx.channel_uses_per_item) / 24)
    outs = p.receive(tx, tasks=("caption",))
    assert [o.meta["channel_uses"] for o in outs] == tx.channel_uses_per_item
    assert [o.meta["n_symbols"] for o in outs] == n
