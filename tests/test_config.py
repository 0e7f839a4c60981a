from pathlib import Path

import pytest

from ragsc.config import EncoderConfig, PipelineSpec, load_pipeline_spec, validate
from ragsc.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.parametrize("task", ["text", "image", "vqa", "multitask"])
def test_shipped_specs_validate(task):
    spec = load_pipeline_spec(PIPELINES / f"{task}.yaml")
    assert spec.task == task and spec.encoder.spec == "embedded"


def test_error_names_the_bad_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: text\nencoder:\n  spec: embedded\n  batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"encoder\.batch_size"):
        load_pipeline_spec(bad)
    bad.write_text("name: x\ntask: translate\n")
    with pytest.raises(ConfigError, match=r"task: .*'text'"):
        load_pipeline_spec(bad)
    bad.write_text("name: x\ntask: text\nencdoer: {}\n")
    with pytest.raises(ConfigError, match="encdoer"):
        load_pipeline_spec(bad)
    bad.write_text("name: x\ntask: text\nencoder:\n  spec: clip:foo\n")
    with pytest.raises(ConfigError, match="unknown encoder backend"):
        load_pipeline_spec(bad)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline_spec(tmp_path / "none.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_pipeline_spec(f)
    f.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline_spec(f)


def test_validate_direct():
    assert validate(EncoderConfig, {"spec": " hf:/x "}).spec == "hf:/x"
    assert PipelineSpec(name="n", task="vqa").channel.snr_db == 10.0
