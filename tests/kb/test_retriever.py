"""HybridRetriever: local + global fusion (rrf, weighted), provenance, recency, filters, encoder checks."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import ragsc.encoders
from ragsc.errors import ConfigError, InputError, KBError
from ragsc.kb import HybridRetriever, KnowledgeBase, NewItem

from ._fakes import FakeEncoder, unit

DAY = 86_400.0


@pytest.fixture
def enc():
    return FakeEncoder(dim=16)


def add_texts(kb: KnowledgeBase, enc: FakeEncoder, texts, **kw):
    return kb.add(enc.encode_texts(texts), [NewItem("text", t, **kw) for t in texts])


@pytest.fixture
def pair(new_kb, enc):
    """A local KB (l0..l4 + shared) and a global KB (g0..g4 + shared) built by the same encoder."""
    local = new_kb("local", encoder=enc, scope="local")
    glob = new_kb("global", encoder=enc, scope="global")
    add_texts(local, enc, [f"local doc {i}" for i in range(5)] + ["shared doc"])
    add_texts(glob, enc, [f"global doc {i}" for i in range(5)] + ["shared doc"])
    return local, glob


def test_default_fusion_is_the_specs():
    import inspect

    from ragsc.config import FUSION_DEFAULT, DecoderConfig

    default = inspect.signature(HybridRetriever).parameters["fusion"].default
    assert default == DecoderConfig().fusion == FUSION_DEFAULT == "weighted"


def test_rrf_fusion_and_provenance(pair, enc):
    local, glob = pair
    r = HybridRetriever(local, glob, fusion="rrf", encoder=enc)
    q = enc.encode_texts(["shared doc", "local doc 3", "global doc 2"]).embeddings
    rows = r.search(q, k=12)
    assert len(rows) == 3 and all(len(row) == 11 for row in rows)  # 5 + 5 + 1 shared, fused once
    top = rows[0][0]
    assert top.item.text == "shared doc" and top.provenance == "local+global"
    assert top.score == pytest.approx(2 / 61) and top.kb_score == pytest.approx(1.0, abs=1e-5)
    # a single-KB rank-1 hit scores 1/61; the shared doc, found in both, can outrank it (that is rrf)
    first_local = next(h for h in rows[1] if h.provenance == "local")
    assert first_local.item.text == "local doc 3" and first_local.score == pytest.approx(1 / 61)
    first_global = next(h for h in rows[2] if h.provenance == "global")
    assert first_global.item.text == "global doc 2" and first_global.score == pytest.approx(1 / 61)
    for row in rows:
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
        for h in row:
            assert h.provenance == {"local": "local", "global": "global",
                                    "shared": "local+global"}[h.item.text.split()[0]]
    # rrf: a hit found in one KB at rank r (from 1) scores w / (60 + r)
    single = sorted(h.score for h in rows[1] if h.provenance != "local+global")
    assert all(any(s == pytest.approx(1 / (60 + rank)) for rank in range(1, 7)) for s in single)
    assert len(r.search(q[0], k=3)[0]) == 3  # a single 1-D query works, k caps the list


def test_weighted_fusion_and_weights(pair, enc):
    local, glob = pair
    q = enc.encode_texts(["shared doc"]).embeddings
    r = HybridRetriever(local, glob, fusion="weighted", weights=(1.0, 1.0), encoder=enc)
    hits = r.search(q, k=11)[0]
    assert hits[0].item.text == "shared doc" and hits[0].provenance == "local+global"
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    raw = {h.item.text: h.score for h in local.search(q, k=6)[0] + glob.search(q, k=6)[0]}
    for h in hits[1:]:
        assert (h.score == pytest.approx(raw[h.item.text], abs=1e-6)
                and h.kb_score == pytest.approx(raw[h.item.text]))
    # weights scale each KB's contribution
    skew = HybridRetriever(local, glob, fusion="weighted", weights=(0.5, 2.0), encoder=enc).search(q, k=11)[0]
    for h in skew[1:]:
        w = 0.5 if h.provenance == "local" else 2.0
        assert h.score == pytest.approx(w * raw[h.item.text], abs=1e-6)
    # rrf with a zero local weight: local-only hits score 0 and rank after everything the global KB found
    muted = HybridRetriever(local, glob, fusion="rrf", weights=(0.0, 1.0), encoder=enc).search(
        enc.encode_texts(["local doc 1"]).embeddings, k=11)[0]
    assert [h.provenance != "local" for h in muted] == [True] * 6 + [False] * 5
    assert all(h.score == 0 for h in muted if h.provenance == "local")


def test_recency_boost_reorders_local_items(new_kb, enc):
    local = new_kb("local", encoder=enc)
    glob = new_kb("global", encoder=enc, scope="global")
    base = enc.text_vector("query")
    rng = np.random.default_rng(0)
    noise = unit(rng.standard_normal((2, 16)))
    near = unit(base + 0.2 * noise[0])  # closer to the query, but old
    far = unit(base + 0.6 * noise[1])  # further, but new
    now = time.time()
    local.add(np.stack([near, far]), [NewItem("text", "old but close", created_at=now - 30 * DAY),
                                      NewItem("text", "new but further", created_at=now)])
    glob.add(np.stack([unit(base + 0.4 * noise[0])]),
             [NewItem("text", "global item", created_at=now - 30 * DAY)])
    q = torch.from_numpy(base[None])
    no_boost = HybridRetriever(local, None, fusion="rrf", encoder=enc).search(q, k=2)[0]
    assert [h.item.text for h in no_boost] == ["old but close", "new but further"]
    boosted = HybridRetriever(local, None, fusion="rrf", recency_half_life_s=DAY, recency_weight=0.25,
                              encoder=enc).search(q, k=2)[0]
    assert [h.item.text for h in boosted] == ["new but further", "old but close"]
    assert (boosted[0].score == pytest.approx(1.25 / 62, rel=1e-3)
            and boosted[1].score == pytest.approx(1 / 61, rel=1e-3))
    # only local items are boosted
    both = HybridRetriever(local, glob, fusion="rrf", recency_half_life_s=DAY, encoder=enc).search(q, k=3)[0]
    g = next(h for h in both if h.provenance == "global")
    assert g.score == pytest.approx(1 / 61)


def test_modality_filter(new_kb, enc):
    local = new_kb("local", encoder=enc)
    glob = new_kb("global", encoder=enc, scope="global")
    add_texts(local, enc, ["a red square", "a blue circle"])
    local.add(enc.encode_texts(["red image"]), [NewItem("image", "red image", source_uri="red.png")])
    glob.add(enc.encode_texts(["blue image"]), [NewItem("image", "blue image", source_uri="blue.png")])
    add_texts(glob, enc, ["a green triangle"])
    r = HybridRetriever(local, glob, encoder=enc)
    hits = r.search("a red square", k=5, modality="image")[0]
    assert sorted(h.item.text for h in hits) == ["blue image", "red image"]
    assert {h.provenance for h in hits} == {"local", "global"}
    texts = r.search("a red square", k=5, modality="text")[0]
    assert (texts[0].item.text == "a red square" and all(h.item.modality == "text" for h in texts)
            and len(texts) == 3)


def test_text_query_uses_the_encoder_passed_in(pair, enc, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("load_encoder must not be called when an encoder is given")

    monkeypatch.setattr(ragsc.encoders, "load_encoder", refuse)
    r = HybridRetriever(*pair, fusion="weighted", encoder=enc)
    before = dict(enc.calls)
    hits = r.search("global doc 4", k=2)[0]
    assert hits[0].item.text == "global doc 4" and hits[0].kb_score == pytest.approx(1.0, abs=1e-5)
    assert enc.calls["text"] == before["text"] + 1
    rows = r.search(["local doc 0", "local doc 1"], k=1)
    assert [row[0].item.text for row in rows] == ["local doc 0", "local doc 1"]
    assert r.embed(enc.encode_texts(["x"])).shape == (1, 16)  # already-embedded queries pass through
    assert enc.calls["text"] == before["text"] + 3


def test_mismatched_encoders_between_kbs(new_kb):
    a = new_kb("a", encoder=FakeEncoder(spec="fake:a", fingerprint="fp-a"))
    b = new_kb("b", encoder=FakeEncoder(spec="fake:b", fingerprint="fp-b"), scope="global")
    with pytest.raises(KBError) as e:
        HybridRetriever(a, b)
    assert all(s in str(e.value) for s in ("fake:a", "fp-a", "fake:b", "fp-b"))


def test_an_encoder_from_another_model_is_refused(pair):
    with pytest.raises(KBError):
        HybridRetriever(*pair, encoder=FakeEncoder(spec="fake:other", fingerprint="fp-other"))


def test_single_kb_and_argument_errors(pair, enc):
    local, glob = pair
    only_global = HybridRetriever(None, glob, encoder=enc).search("global doc 0", k=3)[0]
    assert {h.provenance for h in only_global} == {"global"}
    with pytest.raises(ConfigError):
        HybridRetriever(None, None)
    with pytest.raises(ConfigError, match="fusion"):
        HybridRetriever(local, glob, fusion="borda")
    with pytest.raises(InputError):
        HybridRetriever(local, glob, encoder=enc).search("x", k=0)
    capped = HybridRetriever(local.reload(), None, encoder=enc, fetch_k=1).search("local doc 2", k=5)[0]
    assert [h.item.text for h in capped] == ["local doc 2"]  # fetch_k bounds what each KB contributes
