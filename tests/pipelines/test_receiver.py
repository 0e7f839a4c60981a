"""ragsc.pipelines.receiver: retrieval from the KBs and the decoders, per item kind, with and without RAG."""


import numpy as np
import pytest
from PIL import Image

from ragsc.errors import ConfigError, InputError
from ragsc.pipelines import Pipeline, Receiver


def test_decode_reads_tokens_from_any_path(by_embedding, test_images):
    multitask = by_embedding["multitask"]  # sentences on the analog link
    items = ["a red triangle", {"image": test_images[0].path, "questions": ["what shape is in the image?"]}]
    tx = multitask.transmit(items, snr_db=10, seed=2)
    via_receive = multitask.receive(tx)
    via_decode = multitask.decode(tx.received.tokens, tx.messages)
    assert multitask.timings == multitask.receiver.timings
    assert set(multitask.timings) == {"retrieve", "decode"}
    assert [o.text for o in via_receive] == [o.text for o in via_decode]
    assert via_receive[1].answers == via_decode[1].answers and via_receive[1].caption == via_decode[1].caption
    # the pipeline's receiver does the decoding: the same outputs from it directly
    assert isinstance(multitask.receiver, Receiver)
    direct = multitask.receiver.decode(tx.received.tokens, tx.messages)
    assert [o.text for o in direct] == [o.text for o in via_decode]
    assert direct[1].answers == via_decode[1].answers
    # tokens that never crossed the link: the clean encoding decodes to the sent sentence
    clean = multitask.decode(multitask.encode(tx.messages), tx.messages, tasks=("caption",))
    assert clean[0].text == "a red triangle" and clean[1].image is None and clean[1].answers == []
    with pytest.raises(InputError, match="2 messages"):
        multitask.decode(tx.received.tokens.select([0]), tx.messages)
    with pytest.raises(InputError, match="SemanticTokens"):
        multitask.decode(tx.received.tokens.embeddings, tx.messages)


def test_text_pipeline_recovers_kb_sentences_at_high_snr(by_embedding, kb_fortunes):
    p = by_embedding["text"]
    captions = ["a red triangle", "a yellow circle", "a picture of a gray rectangle",
                "a triangle that is teal"]
    fortunes = kb_fortunes[:12]
    sent = captions + fortunes
    outs = p.run(sent, snr_db=30, channel="awgn")
    assert [o.kind for o in outs] == ["text"] * len(sent)
    assert [o.text for o in outs[: len(captions)]] == captions
    # 48 of 192 complex PCA coefficients: a fortune with a near twin in the KB may come back as the twin
    assert sum(o.text == f for o, f in zip(outs[len(captions):], fortunes)) >= len(fortunes) - 2
    for o, s in zip(outs, sent):
        assert o.context and any(h.item.text == s for h in o.context)  # what was sent is among the hits


def test_text_without_rag_still_decodes(by_embedding):
    outs = by_embedding["text"].run(["a red triangle", "a gray rectangle"], snr_db=30, rag=False)
    assert all(o.context is None for o in outs)
    assert all(isinstance(o.text, str) and o.text.strip() for o in outs)
    rag = by_embedding["text"].run(["a red triangle"], snr_db=30, rag=True)
    assert rag[0].context is not None


def test_image_pipeline_accepts_paths_pil_and_arrays(pipes, test_images):
    xs = test_images[200:203]  # in no KB: novel content
    with Image.open(xs[1].path) as im:
        pil = im.convert("RGB")
    arr = np.asarray(Image.open(xs[2].path).convert("RGB"))
    outs = pipes["image"].run([xs[0].path, pil, arr], snr_db=30)
    assert [o.kind for o in outs] == ["image"] * 3
    for o in outs:
        assert isinstance(o.image, Image.Image) and o.image.size == (64, 64) and o.image.mode == "RGB"
        assert isinstance(o.caption, str) and o.caption
        assert set(o.label) == {"color", "shape"}
        assert o.answers == [] and o.text is None
    right = sum((o.label["color"], o.label["shape"]) == (x.color, x.shape) for o, x in zip(outs, xs))
    assert right >= 2
    # without RAG the caption is the text decoder's reading of the image embedding, and no label
    bare = pipes["image"].run([xs[0].path], snr_db=30, rag=False)[0]
    assert bare.context is None and bare.label is None and isinstance(bare.caption, str)
    assert bare.image.size == (64, 64)


def test_vqa_answers_clean_test_images(pipes, test_images):
    xs = test_images[200:210]  # in no KB
    items = [{"image": x.path, "questions": [q for q, _ in x.questions[:2]]} for x in xs]
    outs = pipes["vqa"].run(items, snr_db=30)
    assert all(len(o.answers) == 2 and o.questions == it["questions"] for o, it in zip(outs, items))
    truth = [a for x in xs for _, a in x.questions[:2]]
    got = [a for o in outs for a in o.answers]
    assert np.mean([g == t for g, t in zip(got, truth)]) >= 0.8
    # the vqa task decodes answers only
    assert all(o.image is None for o in outs)


def test_multitask_decodes_each_item_by_kind(multitask, test_images, kb_fortunes):
    x0, x1 = test_images[3], test_images[4]
    with Image.open(x1.path) as im:
        pil = im.convert("RGB")
    items = ["a blue rectangle",
             {"image": x0.path, "questions": ["what shape is this?", "is there a triangle?"]},
             kb_fortunes[0], pil, {"text": "a gray circle"}]
    outs = multitask.run(items, snr_db=30)
    assert [o.kind for o in outs] == ["text", "image", "text", "image", "text"]
    assert [outs[i].text for i in (0, 2, 4)] == ["a blue rectangle", kb_fortunes[0], "a gray circle"]
    for i in (1, 3):
        assert outs[i].text is None and outs[i].image.size == (64, 64) and outs[i].caption
    assert len(outs[1].answers) == 2 and outs[3].answers == []


@pytest.mark.usefixtures("disk_unchanged")
def test_receive_needs_a_transmission(pipes):
    tx = pipes["text"].transmit("a red circle")
    for bad in (tx.received, [tx], "a red circle", None):
        with pytest.raises(InputError, match="takes a Transmission"):
            pipes["text"].receive(bad)


def test_rag_needs_a_knowledge_base(parts):
    with pytest.raises(ConfigError, match="no knowledge base"):
        Pipeline.from_config({"name": "bare", "task": "text"}, encoder=parts["encoder"],
                             decoders=parts["decoders"])
    bare = Pipeline.from_config({"name": "bare", "task": "text", "decoder": {"rag": False}},
                                encoder=parts["encoder"], decoders=parts["decoders"])
    assert bare.retriever is None
    out = bare.run("a red circle", snr_db=30)
    assert out[0].context is None and isinstance(out[0].text, str) and out[0].text
    with pytest.raises(ConfigError, match="RAG needs a knowledge base"):
        bare.receive(bare.transmit("a red circle"), rag=True)
