"""ragsc.pipelines.factory: a spec (a shipped name, a path, a dict) -> the parts of a pipeline, and the
errors of parts that do not fit."""

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from ragsc.config import PipelineSpec, load_pipeline_spec, validate
from ragsc.errors import ConfigError, KBError
from ragsc.pipelines import Output, Pipeline, Transmission

from ._cat import cat_spec, solid_images
from ._helpers import SPECS, files_under, other_encoder


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


def test_from_config_takes_a_shipped_specs_name(parts, tmp_path, monkeypatch):
    from ragsc.pipelines import shipped_specs
    from ragsc.pipelines.factory import load_spec

    assert shipped_specs() == ["image", "image-easyvqa", "multitask", "multitask-easyvqa", "text", "vqa",
                               "vqa-easyvqa"]
    for name in shipped_specs():
        assert load_spec(name) == load_pipeline_spec(SPECS / f"{name}.yaml")
    named = Pipeline.from_config("multitask", **parts)
    assert named.spec == load_pipeline_spec(SPECS / "multitask.yaml") and named.task == "multitask"
    with pytest.raises(ConfigError, match=r"unknown pipeline spec 'multi-task'.*image, image-easyvqa, "
                       r"multitask, multitask-easyvqa, text, vqa, vqa-easyvqa"):
        Pipeline.from_config("multi-task", **parts)
    # a path is read as a path: a file named like a shipped spec, or anything with a folder or a suffix
    monkeypatch.chdir(tmp_path)
    Path("text").write_text(yaml.safe_dump({"name": "mine", "task": "text", "decoder": {"rag": False}}))
    assert load_spec("text").name == "mine" and load_spec(str(tmp_path / "text")).name == "mine"
    with pytest.raises(ConfigError, match="pipeline spec not found: nope.yaml"):
        load_spec("nope.yaml")
    with pytest.raises(ConfigError, match="pipeline spec not found: specs/multitask"):
        load_spec("specs/multitask")


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
    with pytest.raises(ModelLoadError, match=r"channel\.cat = .*no config\.json"):
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
