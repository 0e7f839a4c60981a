"""The decoder side of compression (ragsc/compress/lm.py): a causal LM compressed, measured over the token
link, saved, reloaded by ``load_lm("compressed:<dir>")`` and a pipeline's ``decoder.lm``; bad input.

All on a tiny random Llama saved as a local transformers model (``hf:<dir>``), tied like SmolLM2."""

from __future__ import annotations

import json

import pytest
import torch

from ragsc.compress import (
    Budget,
    CompressedLM,
    LinkData,
    LMCompressionConfig,
    choose,
    compress_lm,
    lm_front,
    lm_front_table,
    load_compressed_lm,
    parse_lm_methods,
    save_compressed_lm,
)
from ragsc.decoders.lm import load_lm
from ragsc.errors import ConfigError, InputError, ModelLoadError

from ..decoders._tiny_lm import tiny_lm

SENTENCES = ["the ship is safe in the harbour", "please send the map before noon",
             "Zoë paid €12.50 at 9:45!", "my neighbour's dog barks at the postman every morning"]


def save_base(folder, seed: int = 0):
    lm = tiny_lm(seed, tie=True)
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The spec of a tiny tied Llama on disk, and the LM it loads."""
    spec = f"hf:{save_base(tmp_path_factory.mktemp('lm'))}"
    return spec, load_lm(spec)


def logits(lm, text: str = "the cat sat on the mat") -> torch.Tensor:
    ids = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        return lm.model(input_ids=ids).logits[0].float()


def test_int8_quantises_every_linear_and_the_embedding_and_leaves_the_base_float(base):
    spec, lm = base
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    c = compress_lm(LMCompressionConfig(lm=spec, method="int8-dynamic"), lm)
    kinds = {type(m).__module__ for m in c.model.modules()}
    assert not any(type(m) is torch.nn.Linear or type(m) is torch.nn.Embedding for m in c.model.modules())
    assert "torch.ao.nn.quantized.dynamic.modules.linear" in kinds
    assert c.n_logits == lm.n_logits == lm.model.config.vocab_size
    assert c.params == sum(p.numel() for p in lm.model.parameters())
    after = lm.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the base LM is not changed
    # int8 keeps the float LM's next-token ranking (random weights: logits spread, so this is not trivial)
    a, b = logits(lm), logits(c)
    assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99
    assert not torch.equal(a, b)


def test_keep_float_leaves_the_named_layers_float_and_reloads(base, tmp_path):
    spec, lm = base
    config = LMCompressionConfig(lm=spec, method="int8-dynamic", keep_float=("down_proj", "lm_head"))
    c = compress_lm(config, lm)
    floats = {n for n, m in c.model.named_modules() if type(m) is torch.nn.Linear}
    assert floats == {"lm_head", "model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"}
    assert config.name == "int8-dynamic[float:down_proj,lm_head]"
    assert c.fingerprint != compress_lm(LMCompressionConfig(lm=spec), lm).fingerprint
    back = load_lm(f"compressed:{save_compressed_lm(tmp_path / 'c', c)}")
    assert {n for n, m in back.model.named_modules() if type(m) is torch.nn.Linear} == floats
    assert torch.equal(logits(back), logits(c))
    with pytest.raises(ConfigError, match=r"keep_float: 'mlp\.nothing' names no Linear.*down_proj"):
        compress_lm(LMCompressionConfig(lm=spec, keep_float=("mlp.nothing",)), lm)
    with pytest.raises(ValueError, match="keep_float applies to int8-dynamic, not bf16"):
        LMCompressionConfig(lm=spec, method="bf16", keep_float=("lm_head",))


def test_half_precision_stores_a_tied_weight_once(base):
    spec, lm = base
    for method, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        c = compress_lm(LMCompressionConfig(lm=spec, method=method), lm)
        assert next(c.model.parameters()).dtype == dtype
        tensors, meta = c.state()
        assert "lm_head.weight" not in tensors and meta["#aliases"]["aliases"] == {
            "lm_head.weight": "model.embed_tokens.weight"}
        assert torch.allclose(logits(c), logits(lm), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("method", ["none", "int8-dynamic", "bf16"])
def test_save_and_reload_gives_the_same_model(base, tmp_path, method):
    spec, lm = base
    c = compress_lm(LMCompressionConfig(lm=spec, method=method), lm)
    folder = save_compressed_lm(tmp_path / "c", c, figures={"score": 1.0})
    header = json.loads((folder / "config.json").read_text())
    assert header["kind"] == "compressed-lm" and header["info"]["figures"] == {"score": 1.0}
    record = header["config"]
    assert record["config"] == {"lm": spec, "method": method, "keep_float": []}
    assert record["base_fingerprint"] == lm.fingerprint
    back = load_lm(f"compressed:{folder}")
    assert isinstance(back, CompressedLM) and back.fingerprint == c.fingerprint != lm.fingerprint
    assert torch.equal(logits(back), logits(c))  # bit-identical: integers and scales as stored
    assert back(["the cat"], max_new_tokens=4) == c(["the cat"], max_new_tokens=4)


def test_a_pipeline_text_path_decodes_with_a_compressed_lm(base, tmp_path):
    """``decoder.lm: compressed:<dir>``: the token link's receiver runs on the int8 LM (its beam search
    feeds strided ids to the uint8 embedding lookup)."""
    from ragsc.config import ChannelConfig, TextLinkConfig
    from ragsc.pipelines.sentences import SentencePath

    spec, lm = base
    folder = save_compressed_lm(tmp_path / "c",
                                compress_lm(LMCompressionConfig(lm=spec, method="int8-dynamic"), lm))
    path = SentencePath(TextLinkConfig(beam=3), ChannelConfig(), f"compressed:{folder}")
    rx = path.send(SENTENCES, snr_db=30.0)
    assert path.receive(rx) == SENTENCES  # 30 dB: the channel decides, whatever the random LM thinks


def test_the_front_measures_each_candidate_and_the_budget_picks(base):
    spec, lm = base
    data = LinkData(SENTENCES, snrs=(0.0, 30.0))
    configs = [LMCompressionConfig(lm=spec, method=m) for m in ("none", "int8-dynamic", "bf16")]
    points = lm_front(configs, lm=lm, data=data, batches=(1, 4), repeats=1)
    by = {p.name: p.figures for p in points}
    assert by["none"].agreement == 1.0 and by["none"].bleu[30.0] == pytest.approx(1.0)
    assert by["none"].bleu[0.0] < by["none"].bleu[30.0]  # 0 dB garbles a random LM's sentences
    # (int8 is not below bf16 on a model this small: its tied head becomes a second int8 copy, plus scales)
    assert by["int8-dynamic"].size_bytes < 0.6 * by["none"].size_bytes
    assert by["bf16"].size_bytes == pytest.approx(by["none"].size_bytes / 2, rel=0.05)
    assert all(set(f.ms) == {1, 4} and f.sentences_per_s > 0 for f in by.values())
    table = lm_front_table(points)
    assert "BLEU-1 30 dB" in table and "ms/step @4" in table
    smallest = min(points, key=lambda p: p.figures.size_bytes)
    assert choose(points, Budget(max_mb=smallest.figures.size_mb * 1.001)) is smallest
    assert choose(points, Budget()).figures.score == max(p.figures.score for p in points)
    impossible = rf"impossible budget: no compression meets size <= .*{smallest.name}"
    with pytest.raises(ConfigError, match=impossible):
        choose(points, Budget(max_mb=smallest.figures.size_mb / 2))


def test_bad_input(base, tmp_path):
    spec, lm = base
    with pytest.raises(ConfigError, match="unknown LM compression method 'prune'.*int8-dynamic"):
        parse_lm_methods("none,prune")
    with pytest.raises(ValueError, match="method"):
        LMCompressionConfig(lm=spec, method="int4")
    with pytest.raises(ConfigError, match="the LM given is 'tiny-llama'"):
        compress_lm(LMCompressionConfig(lm=spec), tiny_lm())
    c = compress_lm(LMCompressionConfig(lm=spec), lm)
    with pytest.raises(ConfigError, match="compressed already"):
        compress_lm(LMCompressionConfig(lm=spec), c)
    with pytest.raises(ConfigError, match="one LM"):
        lm_front([LMCompressionConfig(lm=spec), LMCompressionConfig(lm="smollm2")], lm=lm)
    # a folder holding something else: refused, nothing written
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds other files"):
        save_compressed_lm(other, c)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    with pytest.raises(ModelLoadError, match="no compressed LM"):
        load_lm(f"compressed:{other}")
    # corrupt weights, an invalid config
    folder = save_compressed_lm(tmp_path / "c", c)
    header, weights = (folder / "config.json").read_text(), (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="missing or corrupt"):
        load_compressed_lm(folder)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(json.dumps({**json.loads(header), "config": {}}))
    with pytest.raises(ModelLoadError, match="not a valid compressed LM config"):
        load_compressed_lm(folder)
    (folder / "config.json").write_text(json.dumps({**json.loads(header), "kind": "student"}))
    with pytest.raises(ModelLoadError, match="holds a 'student', not a compressed LM"):
        load_compressed_lm(folder)


def test_a_changed_base_is_refused(tmp_path):
    """The base spec now loads other weights than the ones compressed: compress it again."""
    base_dir = save_base(tmp_path / "base", seed=0)
    spec = f"hf:{base_dir}"
    folder = save_compressed_lm(tmp_path / "c", compress_lm(LMCompressionConfig(lm=spec),
                                                            load_lm(spec)))
    save_base(base_dir, seed=1)
    with pytest.raises(ModelLoadError, match="compress it again"):
        load_compressed_lm(folder)
