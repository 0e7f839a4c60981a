"""ragsc.compress.pareto: the front's figures, the budget's choice and its errors."""

from __future__ import annotations

import pytest
import torch

from ragsc.compress import (
    Budget,
    CompressionConfig,
    CompressionPoint,
    EvalData,
    Measurement,
    choose,
    front,
    front_table,
)
from ragsc.compress.apply import Compressed
from ragsc.errors import ConfigError


def point(methods: str, mb: float, ms1: float, params: int, score: float, ms64: float = 100.0,
          cosine: float = 1.0) -> CompressionPoint:
    """A front point with given figures (no timing involved: choose() is tested on known numbers)."""
    config = CompressionConfig(methods=tuple(methods.split("+")), tower="image")
    c = Compressed(config, {}, None, None, params, params)  # type: ignore[arg-type]
    return CompressionPoint(c, Measurement(int(mb * 1e6), params, {1: ms1, 64: ms64}, score, None, cosine))


POINTS = [point("none", 20.0, 10.0, 1000, 1.00), point("int8-dynamic", 5.0, 4.0, 1000, 0.99),
          point("fp16", 10.0, 30.0, 1000, 1.00, ms64=300.0), point("prune", 12.0, 5.0, 500, 0.90),
          point("prune+int8-static", 3.0, 3.0, 500, 0.85)]


def test_the_best_score_within_the_budget_is_picked():
    assert choose(POINTS, Budget()).name == "none"  # unconstrained: the best score, then the fastest
    assert choose(POINTS, Budget(max_mb=15)).name == "fp16"
    assert choose(POINTS, Budget(max_mb=15, max_ms=20)).name == "int8-dynamic"
    assert choose(POINTS, Budget(max_params=600)).name == "prune50%"
    assert choose(POINTS, Budget(max_params=600, max_mb=4)).name == "prune50%+int8-static"
    assert choose(POINTS, Budget(max_ms=150, batch=64)).name == "none"
    assert choose(POINTS[1:], Budget(max_ms=400, batch=64)).name == "fp16"
    tie = [point("none", 20.0, 10.0, 1000, 1.0), point("fp16", 10.0, 10.0, 1000, 1.0)]
    assert choose(tie, Budget()).name == "fp16"  # equal score and latency: the smaller
    # equal (saturated) score: the one closer to float, however fast the other
    tie = [point("int8-static", 5.0, 1.0, 1000, 1.0, cosine=0.89), point("int8-dynamic", 5.0, 3.0, 1000, 1.0,
                                                                           cosine=0.98)]
    assert choose(tie, Budget(max_ms=5)).name == "int8-dynamic"


def test_an_impossible_budget_names_the_failing_constraint_and_the_closest_point():
    with pytest.raises(ConfigError) as err:
        choose(POINTS, Budget(max_mb=1.0))
    msg = str(err.value)
    assert "size <= 1 MB (the smallest point, prune50%+int8-static, is 3.0 MB)" in msg
    assert "Closest point: prune50%+int8-static: 3.0 MB" in msg and "fails size 3.0 MB > 1 MB" in msg
    with pytest.raises(ConfigError) as err:
        choose(POINTS, Budget(max_ms=1.0, max_params=100))
    msg = str(err.value)
    assert "latency <= 1 ms at batch 1 (the fastest point" in msg and "nor parameters <= 100" in msg
    # each constraint alone is met by some point, never both at once
    at_once = "no compression meets size <= 4 MB, parameters <= 900 at once"
    with pytest.raises(ConfigError, match=at_once) as err:
        choose([point("int8-dynamic", 3.0, 1.0, 1000, 1.0), point("prune", 12.0, 1.0, 500, 1.0)],
               Budget(max_mb=4, max_params=900))
    assert "Closest point: int8-dynamic" in str(err.value)
    with pytest.raises(ConfigError, match="measured at batch 1, 64, not 8"):
        choose(POINTS, Budget(max_ms=5, batch=8))


def test_the_table_marks_the_pick_and_the_misses():
    budget = Budget(max_mb=15, max_ms=20)
    text = front_table(POINTS, budget, choose(POINTS, budget))
    assert "* int8-dynamic" in text and "no: size" in text and "no: latency" in text
    assert text.splitlines()[0].split()[:3] == ["method", "size", "MB"]


def test_a_front_measures_each_candidate(student, data, train_images):
    configs = [CompressionConfig(encoder=student.spec, tower="text", methods=(m,)) for m in
               ("none", "int8-dynamic", "fp16")]
    points = front(student, configs, data=data, batches=(1, 4), repeats=1, n_threads=1,
                   calibration=data.texts)
    f = {p.name: p.figures for p in points}
    assert f["none"].r1 == 1.0 and f["none"].cosine == pytest.approx(1.0)
    assert f["none"].caption_r1 is not None and 0 <= f["none"].score <= 1
    assert f["none"].pair_r1 is None and f["none"].score == pytest.approx((1.0 + f["none"].caption_r1) / 2)
    # int8 weights take a quarter, half precision half of the float bytes (the embedding dominates)
    assert f["int8-dynamic"].size_bytes < 0.4 * f["none"].size_bytes
    assert 0.45 < f["fp16"].size_bytes / f["none"].size_bytes < 0.55
    assert all(set(x.ms) == {1, 4} and min(x.ms.values()) > 0 for x in f.values())
    assert {x.params for x in f.values()} == {student.num_parameters()["text"]}
    with pytest.raises(ConfigError, match="one tower"):
        front(student, [configs[0], CompressionConfig(encoder=student.spec, tower="image")], data=data)


PAIRS = [("a small domesticated feline", "the cat slept on the warm mat"),
         ("a vessel for travel on water", "the boat left the harbour at noon"),
         ("the colour of blood", "she wore a bright red dress"),
         ("a greeting between people", "hello, how are you today")]


def test_with_pairs_the_text_score_is_their_retrieval_by_the_compressed_tower(student, data):
    import torch.nn.functional as F

    gloss = EvalData(data.texts, data.images, data.captions, PAIRS)
    configs = [CompressionConfig(encoder=student.spec, tower="text", methods=(m,)) for m in
               ("none", "int8-dynamic")]
    points = front(student, configs, data=gloss, batches=(1,), repeats=1, n_threads=1)
    # the float tower's R@1, by hand: definition i -> example i among the four, both sides float
    q = F.normalize(student.encode_texts([a for a, _ in PAIRS]).embeddings.float(), dim=-1)
    k = F.normalize(student.encode_texts([b for _, b in PAIRS]).embeddings.float(), dim=-1)
    by_hand = float((q @ k.T).argmax(1).eq(torch.arange(4)).float().mean())
    f = {p.name: p.figures for p in points}
    assert f["none"].pair_r1 == pytest.approx(by_hand) and f["none"].r1 == 1.0
    # the int8 tower's, by hand too: both sides encoded by the compressed unit in the tower's place
    int8 = next(p.compressed for p in points if p.name == "int8-dynamic")
    with int8.tower.swapped(int8.unit):
        q8 = F.normalize(student.encode_texts([a for a, _ in PAIRS]).embeddings.float(), dim=-1)
        k8 = F.normalize(student.encode_texts([b for _, b in PAIRS]).embeddings.float(), dim=-1)
    assert not torch.equal(q8, q)  # the int8 unit was in place: its embeddings differ from the float ones
    by_hand8 = float((q8 @ k8.T).argmax(1).eq(torch.arange(4)).float().mean())
    assert f["int8-dynamic"].pair_r1 == pytest.approx(by_hand8)
    for x in f.values():
        assert x.score == pytest.approx((x.pair_r1 + x.caption_r1) / 2)  # r1 (vs float) no longer counts
        assert x.as_dict()["pair_r1"] == x.pair_r1
    assert "gloss R@1" in front_table(points)
    # without captions the pairs' R@1 is the score alone
    assert Measurement(1, 1, {1: 1.0}, 1.0, None, 1.0, pair_r1=0.4).score == pytest.approx(0.4)
