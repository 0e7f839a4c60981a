"""ragsc.pipelines.Pipeline: spec -> encoder -> link -> retrieval -> decoders, per task, and its input
checks."""

import dataclasses
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ragsc._assets import asset_dir
from ragsc.config import PipelineSpec, load_pipeline_spec, validate
from ragsc.errors import ConfigError, InputError, KBError
from ragsc.pipelines import Output, Pipeline, Transmission

SPECS = asset_dir("pipelines")


@pytest.fixture(scope="module")
def pipes(parts):
    return {task: Pipeline.from_config(SPECS / f"{task}.yaml", **parts) for task in ("text", "image", "vqa")}


def embedding_spec(task: str) -> dict:
    """``pipelines/<task>.yaml`` with sentences sent as embeddings (the semantic-embedding path)."""
    return {**yaml.safe_load((SPECS / f"{task}.yaml").read_text()), "text": {"link": "embedding"}}


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


def files_under(*roots):
    return {p for r in roots if Path(r).exists() for p in Path(r).rglob("*")}


@pytest.fixture
def disk_unchanged(tmp_path):
    """Fails the test if anything was created under RAGSC_HOME or tmp_path while it ran."""
    home = Path(os.environ["RAGSC_HOME"])
    before = files_under(home, tmp_path)
    yield
    assert files_under(home, tmp_path) == before


def other_encoder(dim=384):
    """A stand-in for an encoder with another fingerprint (what KnowledgeBase.create reads)."""
    return SimpleNamespace(spec="fake:other", dim=dim, fingerprint="fake-other-fingerprint")


# ----------------------------------------------------------------------------- building


def test_from_config_path_dict_and_spec_agree(parts):
    import ragsc

    assert ragsc.Pipeline is Pipeline and ragsc.Transmission is Transmission and ragsc.Output is Output
    path = SPECS / "text.yaml"
    spec = load_pipeline_spec(path)
    as_dict = yaml.safe_load(path.read_text())
    built = [Pipeline.from_config(path, **parts), Pipeline.from_config(str(path), **parts),
             Pipeline.from_config(as_dict, **parts), Pipeline.from_config(spec, **parts)]
    assert all(p.spec == spec and p.task == "text" for p in built)
    assert built[0].encoder is parts["encoder"] and built[0].decoders is parts["decoders"]
    assert "text-default" in repr(built[0])
    # same spec, same parts, same seed: the same outputs whichever way it was built
    texts = [p.run("a green circle", snr_db=5)[0].text for p in built]
    assert len(set(texts)) == 1


def test_from_config_bad_dict_names_the_field(parts):
    with pytest.raises(ConfigError, match=r"channel\.k_symbols"):
        Pipeline.from_config({"name": "x", "task": "text", "channel": {"k_symbols": 0}}, **parts)
    with pytest.raises(ConfigError, match="not found"):
        Pipeline.from_config(SPECS / "nope.yaml", **parts)


# ----------------------------------------------------------------------------- transmit / receive


def test_transmit_and_receive(multitask, test_images):
    x = test_images[0]
    items = ["a red triangle", {"image": x.path, "questions": ["what is the color of the shape?"]}]
    tx = multitask.transmit(items, snr_db=12.5)
    assert isinstance(tx, Transmission) and len(tx) == 2
    assert tx.kinds == ["text", "image"]
    # the sentence crosses the token link (16-symbol header + 2 gain symbols + 4 per token), the image
    # the analog one
    n_tokens = len(multitask.sentence_path.decoder.token_ids(["a red triangle"])[0])
    assert tx.token_rows == [0] and tx.analog_rows == [1]
    assert tx.channel_uses_per_item == [18 + 4 * n_tokens, multitask.spec.channel.k_symbols]
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


def test_decode_reads_tokens_from_any_path(by_embedding, test_images):
    multitask = by_embedding["multitask"]  # sentences on the analog link
    items = ["a red triangle", {"image": test_images[0].path, "questions": ["what shape is in the image?"]}]
    tx = multitask.transmit(items, snr_db=10, seed=2)
    via_receive = multitask.receive(tx)
    via_decode = multitask.decode(tx.received.tokens, tx.messages)
    assert [o.text for o in via_receive] == [o.text for o in via_decode]
    assert via_receive[1].answers == via_decode[1].answers and via_receive[1].caption == via_decode[1].caption
    # tokens that never crossed the link: the clean encoding decodes to the sent sentence
    clean = multitask.decode(multitask.encode(tx.messages), tx.messages, tasks=("caption",))
    assert clean[0].text == "a red triangle" and clean[1].image is None and clean[1].answers == []
    with pytest.raises(InputError, match="2 messages"):
        multitask.decode(tx.received.tokens.select([0]), tx.messages)
    with pytest.raises(InputError, match="SemanticTokens"):
        multitask.decode(tx.received.tokens.embeddings, tx.messages)


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


# ----------------------------------------------------------------------------- bad input


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
    with pytest.raises(InputError, match=r"unknown keys \['question'\]"):
        pipes["vqa"].transmit([{"image": path, "question": ["what shape?"]}])
    with pytest.raises(InputError, match="needs 'image'"):
        pipes["image"].transmit([{}])
    with pytest.raises(InputError, match="array must be"):
        pipes["image"].transmit([np.zeros((2, 8, 8, 3), np.uint8)])


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


@pytest.mark.usefixtures("disk_unchanged")
def test_receive_needs_a_transmission(pipes):
    tx = pipes["text"].transmit("a red circle")
    for bad in (tx.received, [tx], "a red circle", None):
        with pytest.raises(InputError, match="takes a Transmission"):
            pipes["text"].receive(bad)


def test_kb_of_another_encoder_is_refused(parts, tmp_path):
    from ragsc.kb import KnowledgeBase

    other = KnowledgeBase.create(tmp_path / "other", other_encoder(), scope="global")
    with pytest.raises(KBError, match="fake-other-fingerprint"):
        Pipeline.from_config(SPECS / "text.yaml", **{**parts, "global_": other})
    with pytest.raises(KBError, match="different encoders"):
        Pipeline.from_config(SPECS / "text.yaml", **{**parts, "local": other})
    spec = {"name": "x", "task": "text",
            "knowledge_bases": [{"path": str(tmp_path / "other"), "scope": "global", "build": None}]}
    with pytest.raises(KBError, match=r"built by encoder 'fake:other'"):
        Pipeline.from_config(spec, encoder=parts["encoder"], decoders=parts["decoders"])


def test_missing_kb_with_build_null_creates_nothing(parts, tmp_path):
    missing = tmp_path / "nowhere" / "kb"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"name": "m", "task": "text",
                                    "knowledge_bases": [{"path": str(missing), "scope": "global",
                                                         "build": None}]}))
    home = Path(os.environ["RAGSC_HOME"])
    before = files_under(home)
    with pytest.raises(KBError, match=str(missing)) as exc:
        Pipeline.from_config(spec, encoder=parts["encoder"], decoders=parts["decoders"])
    assert "build: default" in str(exc.value)
    assert not missing.exists() and not missing.parent.exists()
    # a bare name resolves under RAGSC_HOME/kb, and is not created either
    with pytest.raises(KBError, match="no-such-kb"):
        Pipeline.from_config({"name": "m", "task": "text", "knowledge_bases": [{"path": "no-such-kb"}]},
                             encoder=parts["encoder"], decoders=parts["decoders"])
    assert files_under(home) == before


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


def test_decoders_of_another_encoder_are_refused(parts):
    foreign = dataclasses.replace(parts["decoders"], encoder_fingerprint="fingerprint-of-another-encoder")
    with pytest.raises(ConfigError,
                       match="decoders were trained behind encoder fingerprint fingerprint-of-another"):
        Pipeline.from_config(SPECS / "text.yaml", **{**parts, "decoders": foreign})


def test_duplicated_kb_scopes_are_a_config_error(parts):
    spec = {"name": "dup", "task": "text",
            "knowledge_bases": [{"path": "a", "scope": "global"}, {"path": "b"}]}
    with pytest.raises(ConfigError, match="knowledge_bases"):
        Pipeline.from_config(spec, **parts)
    with pytest.raises(ConfigError, match=r"knowledge_bases: .*at most one local and one global"):
        validate(PipelineSpec, spec)


# ----------------------------------------------------------------------------- the CAT path (path: cat)


@pytest.fixture(scope="module")
def cat_dir(tmp_path_factory):
    """A tiny CAT for the embedded encoder's 384-d space with a known rate table (tests/pipelines/_cat.py)."""
    from tests.pipelines._cat import save_tiny_cat

    return save_tiny_cat(tmp_path_factory.mktemp("cat"))


def cat_spec(folder, task: str = "multitask", **channel) -> dict:
    """A KB-less spec (no RAG) whose embeddings, sentences included, take the CAT codec in ``folder``."""
    return {"name": "cat", "task": task, "decoder": {"rag": False}, "text": {"link": "embedding"},
            "channel": {"path": "cat", "cat": str(folder), **channel}}


def solid_images(n: int) -> list:
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    return [Image.new("RGB", (64, 64), colors[i % len(colors)]) for i in range(n)]


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


def test_cat_path_bad_specs_name_the_field(embedded, decoders, cat_dir, tmp_path):
    from ragsc.errors import ModelLoadError
    from tests.pipelines._cat import save_tiny_cat

    parts = {"encoder": embedded, "decoders": decoders}
    with pytest.raises(ConfigError, match=r"path 'cat' needs the codec: set channel\.cat"):
        Pipeline.from_config({"name": "cat", "task": "image", "decoder": {"rag": False},
                              "channel": {"path": "cat"}}, **parts)
    with pytest.raises(ModelLoadError, match=r"channel\.cat = .*no such folder"):
        Pipeline.from_config(cat_spec(tmp_path / "none"), **parts)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"channel\.cat = .*config\.json not found"):
        Pipeline.from_config(cat_spec(tmp_path / "empty"), **parts)
    small = save_tiny_cat(tmp_path / "small", dim=8)
    with pytest.raises(ConfigError, match=r"channel\.cat = .*token_dim=8 to target_dim=8.*dimension 384"):
        Pipeline.from_config(cat_spec(small), **parts)
    with pytest.raises(ConfigError, match=r"channel\.cat_symbols = 3 is not one of the codec's levels"):
        Pipeline.from_config(cat_spec(cat_dir, cat_symbols=3), **parts)
    bare = save_tiny_cat(tmp_path / "bare", calibration=None)
    with pytest.raises(ConfigError, match=r"no rate table .*set channel\.cat_symbols"):
        Pipeline.from_config(cat_spec(bare), **parts)
    fixed = Pipeline.from_config(cat_spec(bare, cat_symbols=8), **parts)  # a fixed length needs no table
    assert fixed.transmit(solid_images(1), snr_db=5).channel_uses_per_item == [8]
    with pytest.raises(ConfigError, match=r"trained on awgn, not channel\.channel = 'rayleigh'"):
        Pipeline.from_config(cat_spec(cat_dir, channel="rayleigh"), **parts)
    with pytest.raises(ConfigError, match=r"set channel\.csi: perfect and channel\.equalizer: mmse"):
        Pipeline.from_config(cat_spec(cat_dir, equalizer="zf"), **parts)
    # a call's channel the codec was not trained on: refused before anything is encoded
    with pytest.raises(ConfigError, match=r"channel\.cat = .*trained on awgn, not 'rician'"):
        fixed.transmit(solid_images(1), channel="rician")
