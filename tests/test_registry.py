"""Spec-prefix registries: lazy loaders by name, clear errors, users' own prefixes."""

import sys

import pytest

from ragsc.errors import ConfigError
from ragsc.registry import ENCODERS, LMS, Registry


def test_a_prefix_loads_its_module_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "my_backend.py").write_text("CALLS = []\n\ndef load(rest, **options):\n"
                                            "    CALLS.append((rest, options))\n    return 'model:' + rest\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    r = Registry("thing", "mine:x")
    r.register("mine", "my_backend:load", "mine:<dir>")
    assert "my_backend" not in sys.modules  # registering imports nothing
    assert r.load("mine:/a/b:c", device="cpu") == "model:/a/b:c"  # only the first ':' splits
    assert sys.modules["my_backend"].CALLS == [("/a/b:c", {"device": "cpu"})]
    assert r.load("mine") == "model:"
    assert list(r) == ["mine"] and "mine" in r


@pytest.mark.parametrize("spec", ["", "   ", None, 3, "nope:x"])
def test_unknown_or_malformed_specs_name_the_known_prefixes(spec):
    with pytest.raises(ConfigError, match="embedded"):
        ENCODERS.split(spec)


@pytest.mark.parametrize(("prefix", "target"), [("a b", "m:f"), ("", "m:f"), ("ok", "m.f"),
                                                ("ok", "m:f:g"), ("ok", "1m:f"), ("ok", None)])
def test_bad_registrations_are_refused(prefix, target):
    with pytest.raises(ConfigError):
        Registry("thing", "x").register(prefix, target)


def test_load_encoder_uses_a_registered_prefix(monkeypatch, tmp_path):
    from ragsc import load_encoder

    (tmp_path / "fake_encoders.py").write_text(
        "def load(rest, *, spec, device, batch_size):\n    return (rest, spec, device, batch_size)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(ENCODERS, "_entries", dict(ENCODERS._entries))
    ENCODERS.register("fake", "fake_encoders:load")
    assert load_encoder(" fake:/m ", batch_size=3) == ("/m", "fake:/m", "cpu", 3)


def test_the_shipped_prefixes():
    assert list(ENCODERS) == ["embedded", "open_clip", "hf", "student", "compressed"]
    assert list(LMS) == ["smollm2", "hf", "compressed"]
