"""Pipelines with ``image.link: jscc``: each image's pixels cross the image JSCC beside its embedding, and the
receiver returns the photo (a KB photo it recognises exactly, with RAG); captions and answers still come from
the embedding. Tiny untrained codecs (levels 8 and 32: ratios 1/48 and 1/12), never the shipped one."""

import math

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ragsc.channel.jscc import JSCCCodec, JSCCConfig, JSCCLink
from ragsc.decoders.context import item_image_path
from ragsc.errors import ConfigError, ModelLoadError
from ragsc.pipelines import Pipeline
from tests.channel.jscc.conftest import photo

from ._helpers import SPECS

TINY = dict(widths=(8, 8, 8), blocks=(0, 1), max_channels=32, levels=(8, 32))
NAME = "multitask-default"  # the name of pipelines/multitask.yaml


def tiny_codec(seed: int = 0, **fields) -> JSCCCodec:
    torch.manual_seed(seed)
    return JSCCCodec(JSCCConfig(**{**TINY, **fields})).eval()


def jscc_spec(task: str = "multitask", text: str | None = None, channel: dict | None = None, **image) -> dict:
    """``pipelines/<task>.yaml`` with ``image: {link: jscc, **image}`` (``text``: the text link)."""
    spec = {**yaml.safe_load((SPECS / f"{task}.yaml").read_text()), "image": {"link": "jscc", **image}}
    if text is not None:
        spec["text"] = {"link": text}
    if channel is not None:
        spec["channel"] = channel
    return spec


def pixels(im) -> np.ndarray:
    if not isinstance(im, Image.Image):
        with Image.open(im) as f:
            im = f.convert("RGB")
    return np.asarray(im)


@pytest.fixture(scope="module")
def lm_parts(parts, multitask):
    """The pipeline parts with the multitask fixture's LM (loaded once for every pipeline)."""
    return {**parts, "lm": multitask.receiver.lm}


@pytest.fixture(scope="module")
def codec():
    return tiny_codec()


@pytest.fixture(scope="module")
def pipe(lm_parts, codec):
    return Pipeline.from_config(jscc_spec(), **lm_parts, jscc=codec)


@pytest.fixture(scope="module")
def plain(lm_parts):
    """The same spec with ``image.link: embedding`` (the easy-VQA path)."""
    return Pipeline.from_config({**jscc_spec(), "image": {"link": "embedding"}}, **lm_parts)


@pytest.fixture(scope="module")
def side_pipe(lm_parts):
    """Sentences as embeddings, a codec with the side-information branch."""
    return Pipeline.from_config(jscc_spec(text="embedding"), **lm_parts, jscc=tiny_codec(1, side_info=True))


@pytest.fixture(scope="module")
def kb_photo(default_kbs):
    """An easy-VQA train image the global KB holds (its file)."""
    from ragsc.datasets import load_easy_vqa

    x = load_easy_vqa("train")[0]
    held = {item_image_path(it) for it in default_kbs[1].items() if it.modality == "image"}
    assert x.path in held
    return x.path


def test_photos_cross_the_jscc_beside_their_embeddings(pipe, plain, codec, test_images):
    odd = photo(45, 70, seed=2)  # not square, not a multiple of 8: the padding is paid for
    question = {"image": test_images[0].path, "questions": ["what is the color of the shape?"]}
    items = ["a red triangle", question, odd]
    assert pipe.jscc is codec and plain.jscc is None
    tx = pipe.transmit(items, snr_db=12.5)
    ref = plain.transmit(items, snr_db=12.5)  # the same spec with image.link: embedding
    assert tx.photo_rows == [1, 2] and tx.analog_rows == [1, 2] and tx.token_rows == [0]
    assert [a.size for a in tx.photos] == [(64, 64), (45, 70)]
    link = JSCCLink(codec, ratio="1/12")
    assert (link.channel_uses(64, 64), link.channel_uses(45, 70)) == (8 * 8 * 16 + 16, 6 * 9 * 16 + 16)
    k = pipe.spec.channel.k_symbols
    assert ref.channel_uses_per_item[1:] == [k, k]
    assert tx.channel_uses_per_item == [ref.channel_uses_per_item[0], k + link.channel_uses(64, 64),
                                        k + link.channel_uses(45, 70)]
    assert tx.channel_uses == round(sum(tx.channel_uses_per_item) / 3)
    # the photos take their own channel: the embeddings and the sentence cross exactly as without them
    assert torch.equal(tx.received.tokens.embeddings, ref.received.tokens.embeddings)
    outs, ref_outs = pipe.receive(tx), plain.receive(ref)
    assert [o.kind for o in outs] == ["text", "image", "image"]
    assert outs[0].text == ref_outs[0].text == "a red triangle" and outs[0].meta == ref_outs[0].meta
    assert outs[0].image is None
    assert outs[1].image.size == (64, 64) and outs[2].image.size == (70, 45)  # PIL sizes are (W, H)
    for j in (1, 2):  # captions, labels and answers still come from the embedding path
        o, r = outs[j], ref_outs[j]
        assert isinstance(o.caption, str)
        assert (o.caption, o.label, o.answers) == (r.caption, r.label, r.answers)
        assert set(o.meta) == {"channel_uses", "recognised", "side_used"}
        assert o.meta["channel_uses"] == tx.channel_uses_per_item[j] and o.meta["side_used"] is False
        assert o.context  # RAG ran: the retrieved hits are kept
    assert len(outs[1].answers) == 1
    assert outs[2].meta["recognised"] is False  # a generated photo no KB holds


def test_tasks_choose_what_image_items_yield(pipe, test_images):
    tx = pipe.transmit([test_images[1].path], snr_db=10)
    only_caption = pipe.receive(tx, tasks=("caption",))[0]
    assert only_caption.image is None and isinstance(only_caption.caption, str) and only_caption.meta == {}
    only_image = pipe.receive(tx, tasks=("image",))[0]
    assert only_image.image.size == (64, 64) and only_image.caption is None and only_image.answers == []
    assert set(only_image.meta) == {"channel_uses", "recognised", "side_used"}


def test_a_kb_photo_is_recognised_exactly_with_rag(pipe, kb_photo):
    tx = pipe.transmit([kb_photo], snr_db=20)
    out = pipe.receive(tx, rag=True)[0]
    assert kb_photo in {item_image_path(h.item) for h in out.context}
    assert out.meta["recognised"] is True and out.meta["side_used"] is False
    assert np.array_equal(pixels(out.image), pixels(kb_photo))  # the KB's file, pixel for pixel
    plain = pipe.receive(tx, rag=False)[0]
    assert plain.context is None and plain.meta["recognised"] is False and plain.image.size == (64, 64)
    assert not np.array_equal(pixels(plain.image), pixels(kb_photo))  # decoded: an untrained codec's guess
    # a photo no KB holds is not recognised, with RAG or without
    other = pipe.receive(pipe.transmit([photo(64, 64, seed=5)], snr_db=20), rag=True)[0]
    assert other.meta["recognised"] is False


def test_retrieved_kb_photos_are_candidates_and_the_top_one_side_information(side_pipe, pipe, monkeypatch):
    seen = {}

    def spy(link):
        receive = link.receive

        def wrapped(arrivals, side=None, known=None):
            seen[link] = (side, known)
            return receive(arrivals, side, known)

        monkeypatch.setattr(link, "receive", wrapped)

    for p in (side_pipe, pipe):
        spy(p.receiver.photo_link)
    items = [photo(64, 64, seed=7), "a blue circle"]
    out = side_pipe.receive(side_pipe.transmit(items, snr_db=5))
    side, known = seen[side_pipe.receiver.photo_link]
    files = [item_image_path(h.item) for h in out[0].context]
    assert len(side) == len(known) == 1 and len(known[0]) == len(files) == side_pipe.spec.decoder.k
    assert [np.array_equal(pixels(a), pixels(b)) for a, b in zip(known[0], files)] == [True] * len(files)
    assert len(side[0]) == 1 and np.array_equal(pixels(side[0][0]), pixels(files[0]))
    assert isinstance(out[0].meta["side_used"], bool) and out[0].meta["recognised"] is False
    assert isinstance(out[1].text, str) and out[1].meta == {}  # a sentence on the analog link
    # a codec without the branch gets no side information; without RAG there are no candidates at all
    pipe.receive(pipe.transmit([items[0]], snr_db=5))
    assert seen[pipe.receiver.photo_link][0] == [None] and len(seen[pipe.receiver.photo_link][1][0]) == 4
    side_pipe.receive(side_pipe.transmit([items[0]], snr_db=5), rag=False)
    assert seen[side_pipe.receiver.photo_link] == ([None], [None])


def test_noiseless_and_seeded_photos(pipe, codec, kb_photo):
    a = photo(40, 48, seed=3)
    bound = pipe.transmit([a, kb_photo], noiseless=True)
    assert bound.channel == "none" and math.isinf(bound.snr_db)
    assert all(torch.equal(p.y_zf, p.y_mmse) for p in bound.photos)
    outs = pipe.receive(bound, rag=False)
    # the photo is the link's own noiseless decode, whatever the seed
    expected = JSCCLink(codec, ratio="1/12")([a], noiseless=True).content[0]
    assert np.array_equal(pixels(outs[0].image), pixels(expected))
    again = pipe.receive(pipe.transmit([a, kb_photo], noiseless=True, seed=9), rag=False)
    assert np.array_equal(pixels(again[0].image), pixels(outs[0].image))
    assert pipe.receive(bound, rag=True)[1].meta["recognised"] is True
    # with noise, the spec's seed (or the call's) seeds the photos' channel too
    t1, t2, t3 = (pipe.transmit([a], snr_db=0, seed=s) for s in (3, 3, 4))
    assert torch.equal(t1.photos[0].y_zf, t2.photos[0].y_zf)
    assert not torch.allclose(t1.photos[0].y_zf, t3.photos[0].y_zf)


def test_the_codec_from_image_codec_and_shared_by_with_text_link(lm_parts, codec, tmp_path):
    folder = codec.save(tmp_path / "jscc")
    p = Pipeline.from_config(jscc_spec(text="embedding", codec=str(folder)), **lm_parts)
    assert isinstance(p.jscc, JSCCCodec) and p.jscc.config == codec.config
    assert p.with_text_link("token").jscc is p.jscc  # shared, not loaded again
    tx = p.transmit([photo(32, 32)], noiseless=True)
    assert tx.channel_uses_per_item == [p.spec.channel.k_symbols + 4 * 4 * 16 + 16]
    with pytest.raises(ModelLoadError, match="no saved model at .*nowhere"):
        Pipeline.from_config(jscc_spec(codec=str(tmp_path / "nowhere")), **lm_parts)


def test_the_shipped_codec_is_the_default(lm_parts, codec, tmp_path, monkeypatch):
    import ragsc.channel.jscc.link as link_module

    folder = codec.save(tmp_path / "shipped")
    monkeypatch.setattr(link_module, "default_codec_dir", lambda: folder)
    assert Pipeline.from_config(jscc_spec(), **lm_parts).jscc.config == codec.config
    monkeypatch.setattr(link_module, "default_codec_dir", lambda: tmp_path / "not-yet")
    with pytest.raises(ModelLoadError, match="not-yet"):
        Pipeline.from_config(jscc_spec(), **lm_parts)


def test_misfits_are_refused_at_construction(lm_parts, codec):
    unsent = rf"pipeline '{NAME}': .*sends bandwidth ratios 1/48, 1/12, not 1/6"
    with pytest.raises(ConfigError, match=unsent):
        Pipeline.from_config(jscc_spec(ratio="1/6"), **lm_parts, jscc=codec)
    with pytest.raises(ConfigError, match=r"image\.ratio: .*a fraction like"):
        Pipeline.from_config(jscc_spec(ratio="abc"), **lm_parts, jscc=codec)
    slow = Pipeline.from_config(jscc_spec(ratio="1/48"), **lm_parts, jscc=codec)
    assert slow.receiver.photo_link.level == 8
    with pytest.raises(ConfigError, match=rf"pipeline '{NAME}': .*block fading.*fading='fast'"):
        Pipeline.from_config(jscc_spec(channel={"fading": "fast"}), **lm_parts, jscc=codec)
    with pytest.raises(ConfigError, match=rf"pipeline '{NAME}': .*perfect CSI.*csi='none'"):
        Pipeline.from_config(jscc_spec(channel={"csi": "none"}), **lm_parts, jscc=codec)
    awgn_only = tiny_codec(channels=("awgn",))
    with pytest.raises(ConfigError, match=rf"pipeline '{NAME}': .*trained on awgn, not 'rayleigh'"):
        Pipeline.from_config(jscc_spec(channel={"channel": "rayleigh"}), **lm_parts, jscc=awgn_only)
    # a call's channel the codec was not trained on
    p = Pipeline.from_config(jscc_spec(text="embedding"), **lm_parts, jscc=awgn_only)
    with pytest.raises(ConfigError, match=rf"pipeline '{NAME}': .*trained on awgn, not 'rician'"):
        p.transmit([photo(16, 16)], snr_db=10, channel="rician")


def test_a_codec_trained_without_awgn_serves_its_own_channel(lm_parts):
    # the receiver's end once checked its codec against the default channel (AWGN) and refused this one
    codec = tiny_codec(channels=("rayleigh",))
    p = Pipeline.from_config(jscc_spec(text="embedding", channel={"channel": "rayleigh"}), **lm_parts,
                             jscc=codec)
    out = p.run([photo(24, 40)], snr_db=15)[0]
    assert out.image.size == (40, 24) and out.meta["recognised"] is False


def test_a_text_pipeline_builds_no_codec(lm_parts, tmp_path):
    # nothing is loaded: neither the folder named (it does not exist) nor the shipped one
    p = Pipeline.from_config(jscc_spec("text", codec=str(tmp_path / "nowhere")), **lm_parts)
    assert p.jscc is None and p.receiver.photo_link is None
    tx = p.transmit(["a green circle"], snr_db=10)
    assert tx.photos is None and tx.photo_rows == []
    assert p.receive(tx)[0].text == "a green circle"


def test_open_captions_and_answers_read_the_embedding_or_the_decoded_photo(lm_parts, codec, test_images,
                                                                           monkeypatch):
    """decoder.caption / vqa: open answer from the PhotoDescriber; describe: photo hands it the decoded
    photos' embeddings (by the receiver's encoder) instead of the received ones."""
    from ragsc.decoders.photo_text import PhotoDescriber

    seen = []

    def caption(self, z, context=None):
        seen.append(z.clone())
        return ["a caption"] * len(z)

    def answer(self, z, questions, context=None):
        return [["an answer"] * len(q) for q in questions]

    monkeypatch.setattr(PhotoDescriber, "caption", caption)
    monkeypatch.setattr(PhotoDescriber, "answer", answer)
    items = [{"image": test_images[2].path, "questions": ["what is it?", "is it red?"]},
             photo(40, 40, seed=3)]
    for describe in ("embedding", "photo"):
        spec = {**jscc_spec(), "decoder": {"caption": "open", "vqa": "open", "describe": describe}}
        p = Pipeline.from_config(spec, **lm_parts, jscc=codec)
        tx = p.transmit(items, snr_db=15)
        outs = p.receive(tx)
        assert [o.caption for o in outs] == ["a caption"] * 2
        assert outs[0].answers == ["an answer"] * 2 and outs[1].answers == []
        if describe == "embedding":
            assert torch.allclose(seen[-1], tx.received.tokens.embeddings.float())
        else:
            again = p.encoder.encode_images([o.image for o in outs]).embeddings.float()
            assert torch.allclose(seen[-1], again)
            assert all(o.image is not None for o in outs)


def test_the_photo_vqa_spec_answers_in_open_vocabulary(lm_parts, codec):
    """pipelines/vqa.yaml end to end with the real describer (the embedded encoder, SmolLM2): a photo with
    a yes/no and an open question; the photo itself crosses the (tiny) codec."""
    p = Pipeline.from_config(SPECS / "vqa.yaml", **lm_parts, jscc=codec)
    assert (p.spec.image.link, p.spec.decoder.vqa) == ("jscc", "open")
    rng = np.random.default_rng(0)
    sky = np.zeros((48, 64, 3), np.uint8)
    sky[..., 2] = 200 + rng.integers(0, 40, (48, 64))  # a blue picture
    out = p.run([{"image": sky, "questions": ["is there a dog?", "what colour is it?"]}], snr_db=10)[0]
    assert out.image.size == (64, 48) and len(out.answers) == 2  # the photo that crossed, and the answers
    assert out.answers[0] in ("yes", "no") and out.answers[1] and isinstance(out.answers[1], str)


@pytest.mark.parametrize("decoder", [{"caption": "retrieved", "vqa": "open"},
                                     {"caption": "open", "vqa": "head"}])
def test_describe_photo_reads_the_photo_only_for_open_outputs(lm_parts, codec, test_images, decoder):
    """With describe: photo, an open output reads the decoded photo; the other keeps its own decoder."""
    spec = {**jscc_spec(), "decoder": {**decoder, "describe": "photo"}}
    p = Pipeline.from_config(spec, **lm_parts, jscc=codec)
    item = {"image": test_images[5].path, "questions": ["what shape is this?"]}
    out = p.run([item], snr_db=15)[0]
    assert isinstance(out.caption, str) and out.caption and len(out.answers) == 1 and out.answers[0]
    if decoder["caption"] == "retrieved":
        assert out.caption == out.context[0].item.text  # the top retrieved caption
    else:
        assert out.answers[0] in p.decoders.vqa.config.answers  # the easy-VQA head
