from pathlib import Path

import pytest

from ragsc.config import EncoderConfig, PipelineSpec, load_pipeline_spec, validate
from ragsc.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"


@pytest.mark.parametrize("task", ["text", "image", "vqa", "multitask"])
def test_shipped_specs_validate(task):
    spec = load_pipeline_spec(PIPELINES / f"{task}.yaml")
    assert spec.task == task and spec.encoder.spec == "embedded"
    # photos cross the image JSCC in the image, VQA and multitask specs; the easy-VQA path keeps its own specs
    assert spec.image.link == ("jscc" if task in ("image", "vqa", "multitask") else "embedding")


@pytest.mark.parametrize("task", ["image", "vqa", "multitask"])
def test_the_easy_vqa_path_is_a_named_spec(task):
    plain, easy = (load_pipeline_spec(PIPELINES / f"{n}.yaml") for n in (task, f"{task}-easyvqa"))
    assert easy.image.link == "embedding" and easy.name == f"{task}-easyvqa"
    assert (easy.decoder.caption, easy.decoder.vqa) == ("retrieved", "head")  # the easy-VQA decoders
    assert "open" in (plain.decoder.caption, plain.decoder.vqa)  # photos: open captions and answers
    # the same spec but for how the pixels travel and what describes them
    skip = {"image": True, "name": True, "decoder": {"caption", "vqa"}}
    assert easy.model_dump(exclude=skip) == plain.model_dump(exclude=skip)


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


def test_a_spec_that_is_not_utf8_is_a_config_error(tmp_path):
    from ragsc.federated.config import load_spec

    f = tmp_path / "latin1.yaml"
    f.write_bytes("name: café\ntask: text\n".encode("latin-1"))  # was a UnicodeDecodeError traceback
    for load, what in ((load_pipeline_spec, "pipeline spec"), (load_spec, "federated spec")):
        with pytest.raises(ConfigError, match=rf"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 9\): "
                                              rf"save the {what} as UTF-8"):
            load(f)
    f.write_bytes("\ufeffname: café\ntask: text\n".encode("utf-8"))  # a byte-order mark is fine
    assert load_pipeline_spec(f).name == "café"


def test_validate_direct():
    assert validate(EncoderConfig, {"spec": " hf:/x "}).spec == "hf:/x"
    assert PipelineSpec(name="n", task="vqa").channel.snr_db == 10.0


def test_channel_config_bounds():
    from ragsc.config import ChannelConfig

    assert ChannelConfig().k_symbols == 48 and ChannelConfig().channel == "awgn"
    assert ChannelConfig(k_symbols=1).k_symbols == 1 and ChannelConfig(k_symbols=250_000).k_symbols == 250_000
    for k in (0, -3, 1_000_001):
        with pytest.raises(ConfigError, match=r"k_symbols"):
            validate(ChannelConfig, {"k_symbols": k})
    for snr in (-30.5, 60.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"snr_db"):
            validate(ChannelConfig, {"snr_db": snr})
    with pytest.raises(ConfigError, match=r"channel: .*'awgn', 'rayleigh' or 'rician'"):
        validate(ChannelConfig, {"channel": "wifi"})


def test_decoder_config_defaults():
    from ragsc.config import DecoderConfig

    d = DecoderConfig()
    assert (d.rag, d.k, d.fusion, d.text, d.vqa, d.lm, d.weights) == (True, 4, "weighted", "fast", "head",
                                                                      "smollm2", None)
    for bad in ({"fusion": "sum"}, {"text": "gpt"}, {"vqa": "oracle"}, {"k": 0}, {"k": 65},
                {"temperature": 1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            validate(DecoderConfig, bad)


def test_kb_ref_build_values():
    from ragsc.config import KBRef

    assert KBRef(path="x").build is None and KBRef(path="x").scope == "global"
    assert validate(KBRef, {"path": "x", "build": "default"}).build == "default"
    assert validate(KBRef, {"path": "x", "build": None}).build is None
    for bad in ({"path": "x", "build": "yes"}, {"path": "x", "build": True},
                {"path": "x", "scope": "regional"}, {}):
        with pytest.raises(ConfigError):
            validate(KBRef, bad)


def test_pipeline_spec_knowledge_bases():
    spec = {"name": "n", "task": "text", "knowledge_bases": [{"path": "a", "scope": "local"}, {"path": "b"}]}
    assert [k.scope for k in validate(PipelineSpec, spec).knowledge_bases] == ["local", "global"]
    spec["knowledge_bases"].append({"path": "c", "scope": "local"})
    with pytest.raises(ConfigError, match=r"knowledge_bases: .*at most one local and one global"):
        validate(PipelineSpec, spec)


@pytest.mark.parametrize("path", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_spec_validates(path):
    spec = load_pipeline_spec(path)
    assert spec.name and spec.task == path.stem.removesuffix("-easyvqa")
    assert spec.decoder.rag and {k.scope for k in spec.knowledge_bases} == {"local", "global"}
    assert all(k.build == "default" for k in spec.knowledge_bases)
    assert spec.channel.k_symbols == 48


def test_pipeline_spec_has_one_seed_and_a_fixed_budget():
    spec = validate(PipelineSpec, {"name": "n", "task": "text", "seed": 7})
    assert spec.seed == 7 and "seed" not in spec.resolved()["channel"]
    again = validate(PipelineSpec, {**spec.resolved(), "seed": 8})  # a printed spec reads back, seed changed
    assert again.seed == 8
    assert validate(PipelineSpec, {"name": "n", "task": "text", "seed": 7, "channel": {"seed": 7}}).seed == 7
    with pytest.raises(ConfigError, match=r"channel.seed \(3\) differs from the pipeline's seed \(7\)"):
        validate(PipelineSpec, {"name": "n", "task": "text", "seed": 7, "channel": {"seed": 3}})
    with pytest.raises(ConfigError, match="channel: .*k_symbols complex symbols per item in every path"):
        validate(PipelineSpec, {"name": "n", "task": "text", "channel": {"k_symbols": None}})


def test_snr_is_checked_in_one_place():
    from ragsc.channel import snr_db_to_no
    from ragsc.config import SNR_RANGE_DB, ChannelConfig, check_snr_db
    from ragsc.errors import InputError

    assert ChannelConfig(snr_db=3.0).resolve_snr(None) == 3.0 and ChannelConfig().resolve_snr(-2) == -2.0
    assert snr_db_to_no(10.0) == pytest.approx(0.1) and isinstance(snr_db_to_no(10.0), float)
    for bad in (float("nan"), float("inf"), SNR_RANGE_DB[1] + 0.5, SNR_RANGE_DB[0] - 0.5, "loud"):
        with pytest.raises(InputError, match="snr_db"):
            check_snr_db(bad)
        with pytest.raises(InputError, match="snr_db"):
            snr_db_to_no(bad)


def test_pipeline_channel_chooses_analog_or_cat():
    from ragsc.channel import AnalogLink
    from ragsc.config import ChannelConfig, PipelineChannelConfig

    spec = validate(PipelineSpec, {"name": "n", "task": "image"})
    c = spec.channel
    assert isinstance(c, PipelineChannelConfig) and isinstance(c, ChannelConfig)
    assert (c.path, c.cat, c.cat_quality, c.cat_symbols, c.cat_pilots) == ("analog", None, 0.9, None, 0)
    cat = {"path": "cat", "cat": " runs/cat ", "cat_quality": 0.8, "cat_pilots": 4}
    c = validate(PipelineSpec, {"name": "n", "task": "image", "channel": cat}).channel
    assert (c.path, c.cat, c.cat_quality, c.cat_pilots) == ("cat", "runs/cat", 0.8, 4)
    assert validate(PipelineSpec, {"name": "n", "task": "image", "channel": {"path": "cat", "cat": "x",
                                                                            "cat_symbols": 16}}).channel
    # the paths read only the ChannelConfig fields, and take no pipeline setting as an override
    assert type(AnalogLink(c).config) is ChannelConfig and AnalogLink(c).config.channel == c.channel
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['path'\]"):
        AnalogLink(path="cat")


@pytest.mark.parametrize(("channel", "match"), [
    ({"path": "cat"}, r"channel: .*path 'cat' needs the codec: set channel\.cat"),
    ({"path": "cat", "cat": "  "}, r"channel\.cat: .*the codec's folder, got an empty string"),
    ({"path": "digital"}, r"channel\.path: .*'analog' or 'cat'"),
    ({"cat": "x"}, r"channel\.cat applies only to path: cat \(channel\.path is 'analog'\)"),
    ({"cat_quality": 0.5, "cat_pilots": 4}, r"channel\.cat_quality, channel\.cat_pilots apply only to path"),
    ({"path": "cat", "cat": "x", "cat_symbols": 8, "cat_quality": 0.8}, r"exclude each other"),
    ({"path": "cat", "cat": "x", "cat_quality": 0}, r"channel\.cat_quality: .*greater than 0"),
    ({"path": "cat", "cat": "x", "cat_quality": 1.5}, r"channel\.cat_quality: .*less than or equal to 1"),
    ({"path": "cat", "cat": "x", "cat_symbols": 0}, r"channel\.cat_symbols: .*greater than or equal to 1"),
    ({"path": "cat", "cat": "x", "cat_pilots": 1}, r"channel\.cat_pilots must be 0 .* or >= 2"),
    ({"path": "cat", "cat": "x", "cat_pilots": -2}, r"channel\.cat_pilots: .*greater than or equal to 0"),
])
def test_pipeline_channel_cat_settings_are_checked(channel, match):
    with pytest.raises(ConfigError, match=match):
        validate(PipelineSpec, {"name": "n", "task": "image", "channel": channel}, "pipeline spec")


def test_decoder_text_is_refused_where_nothing_reads_it():
    """decoder.text decodes sentences sent as embeddings; on the token link it would be silently ignored."""
    from ragsc.config import PipelineSpec, validate

    with pytest.raises(ConfigError, match=r"decoder\.text.*text\.link: embedding"):
        validate(PipelineSpec, {"name": "t", "task": "text", "decoder": {"text": "lm"}})
    spec = validate(PipelineSpec, {"name": "t", "task": "text", "decoder": {"text": "lm"},
                                   "text": {"link": "embedding"}})
    assert spec.decoder.text == "lm"
    assert validate(PipelineSpec, {"name": "t", "task": "text"}).decoder.text == "fast"  # the default passes


def test_config_constructors_name_nested_fields():
    from ragsc.config import ChannelConfig, EncoderConfig, PipelineSpec

    with pytest.raises(ConfigError, match=r"invalid EncoderConfig: batch_size: .*greater than or equal to 1"):
        EncoderConfig(batch_size=0)
    with pytest.raises(ConfigError, match=r"invalid PipelineSpec: channel\.snr_db: .*less than or equal"):
        PipelineSpec(name="x", task="text", channel={"snr_db": 99})
    with pytest.raises(ConfigError, match="snr: Extra inputs are not permitted"):
        ChannelConfig(snr=3)


def test_limits_have_documented_defaults_a_spec_may_override():
    from ragsc.config import LIMITS, Limits

    assert (LIMITS.text_chars, LIMITS.text_tokens, LIMITS.image_pixels, LIMITS.batch_items,
            LIMITS.batch_tokens, LIMITS.questions, LIMITS.question_chars) == (100_000, 512, 40_000_000, 256,
                                                                            4096, 16, 500)
    assert PipelineSpec(name="x", task="text").limits == LIMITS
    spec = PipelineSpec(name="x", task="text", limits={"text_tokens": 2048, "batch_items": 8})
    assert (spec.limits.text_tokens, spec.limits.batch_items, spec.limits.text_chars) == (2048, 8, 100_000)
    assert spec.resolved()["limits"]["image_pixels"] == 40_000_000  # `ragsc spec validate` prints them
    with pytest.raises(ConfigError, match=r"limits\.text_tokens: .*greater than or equal to 1"):
        PipelineSpec(name="x", task="text", limits={"text_tokens": 0})
    with pytest.raises(ConfigError, match=r"limits\.image_pixels: .*less than or equal to 178956970"):
        PipelineSpec(name="x", task="text", limits={"image_pixels": 400_000_000})
    with pytest.raises(ConfigError, match=r"limits\.tokens: Extra inputs"):
        PipelineSpec(name="x", task="text", limits={"tokens": 5})
    with pytest.raises(ConfigError, match=r"invalid Limits: batch_items"):
        Limits(batch_items=2.5)


def test_image_link_defaults_and_jscc_settings():
    from ragsc.config import ImageLinkConfig

    spec = validate(PipelineSpec, {"name": "n", "task": "image"})
    assert isinstance(spec.image, ImageLinkConfig)
    assert spec.image.model_dump() == {"link": "embedding", "ratio": "1/12", "codec": None, "tile": 1024}
    jscc = {"link": "jscc", "ratio": "1/6", "codec": "runs/jscc", "tile": 512}
    spec = validate(PipelineSpec, {"name": "n", "task": "multitask", "image": jscc})
    assert spec.image.model_dump() == jscc
    # the printed spec reads back, either link
    assert validate(PipelineSpec, spec.resolved()) == spec
    plain = validate(PipelineSpec, {"name": "n", "task": "image"})
    assert validate(PipelineSpec, plain.resolved()) == plain
    # a jscc-only field at its default value is no stray setting
    assert validate(PipelineSpec, {"name": "n", "task": "image", "image": {"ratio": "1/12"}}).image.link \
        == "embedding"
    # a YAML number is a ratio too (the codec matches it within 0.5 %)
    assert validate(PipelineSpec, {"name": "n", "task": "image", "image": {"link": "jscc", "ratio": 0.0833}}
                    ).image.ratio == "0.0833"


@pytest.mark.parametrize(("image", "match"), [
    ({"link": "embedding", "ratio": "1/6"}, r"image: .*image\.ratio applies only to image\.link: jscc"),
    ({"ratio": "1/6", "codec": "x", "tile": 512},
     r"image\.ratio, image\.codec, image\.tile apply only to image\.link: jscc"),
    ({"codec": "x"}, r"image\.codec applies only to image\.link: jscc"),
    ({"link": "pixels"}, r"image\.link: .*'embedding' or 'jscc'"),
    ({"link": "jscc", "tile": 100}, r"image\.tile: .*multiple of 8"),
    ({"link": "jscc", "tile": 32}, r"image\.tile: .*greater than or equal to 64"),
    ({"link": "jscc", "tile": 8192}, r"image\.tile: .*less than or equal to 4096"),
    ({"link": "jscc", "ratio": "abc"}, r"image\.ratio: .*a fraction like '1/12' or a number"),
    ({"link": "jscc", "ratio": "2"}, r"image\.ratio: .*bandwidth ratio must be in \(0, 1\]"),
    ({"link": "jscc", "ratio": True}, r"image\.ratio: .*a fraction like"),
    ({"link": "jscc", "size": 64}, r"image\.size: Extra inputs"),
])
def test_image_link_settings_are_checked(image, match):
    with pytest.raises(ConfigError, match=match):
        validate(PipelineSpec, {"name": "n", "task": "image", "image": image}, "pipeline spec")


def test_spec_validate_prints_the_image_section(cli, tmp_path):
    import json

    import yaml

    code, out, _ = cli("spec", "validate", PIPELINES / "image.yaml")
    assert code == 0
    assert json.loads(out)["image"] == {"link": "jscc", "ratio": "1/12", "codec": None, "tile": 1024}
    code, out, _ = cli("spec", "validate", PIPELINES / "image-easyvqa.yaml")
    assert code == 0
    assert json.loads(out)["image"] == {"link": "embedding", "ratio": "1/12", "codec": None, "tile": 1024}
    path = tmp_path / "jscc.yaml"
    image = {"link": "jscc", "ratio": "1/48"}
    path.write_text(yaml.safe_dump({"name": "j", "task": "image", "image": image}))
    code, out, _ = cli("spec", "validate", path)
    assert code == 0 and json.loads(out)["image"] == {"link": "jscc", "ratio": "1/48", "codec": None,
                                                      "tile": 1024}
    path.write_text("name: j\ntask: image\nimage: {link: embedding, ratio: 1/6}\n")
    code, _, err = cli("spec", "validate", path)
    assert code == 2 and err.startswith("error:") and "image.ratio applies only to image.link: jscc" in err


def test_open_decoders_and_what_they_read():
    from ragsc.config import PipelineSpec

    base = {"name": "p", "task": "vqa"}
    spec = PipelineSpec(**base, image={"link": "jscc"}, decoder={"vqa": "open", "describe": "photo"})
    assert (spec.decoder.vqa, spec.decoder.caption, spec.decoder.describe) == ("open", "retrieved", "photo")
    with pytest.raises(ConfigError, match="only image.link: jscc sends"):
        PipelineSpec(**base, decoder={"vqa": "open", "describe": "photo"})
    with pytest.raises(ConfigError, match="applies to open captions or answers"):
        PipelineSpec(**base, image={"link": "jscc"}, decoder={"describe": "photo"})
    with pytest.raises(ConfigError, match="caption"):
        PipelineSpec(**base, decoder={"caption": "poem"})
