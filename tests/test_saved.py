"""ragsc.saved: one folder format for every model, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
from torch import nn

from ragsc import saved
from ragsc.errors import InputError, ModelLoadError
from ragsc.saved import CONFIG_FILE, KINDS, Saved, load, load_state, read_header, save


class Tiny(nn.Module):
    """A model that takes part in ragsc.saved (registered as kind 'tiny' by the fixture)."""

    kind, format_version = "tiny", 2

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.width = width
        self.lin = nn.Linear(width, 2)

    def to_saved(self) -> Saved:
        return Saved(self.kind, self.format_version, {"width": self.width}, self.state_dict(),
                     info={"note": "x"}, files={"vocab.txt": b"a\nb\n"})

    @classmethod
    def from_saved(cls, s: Saved, scale: float = 1.0) -> Tiny:
        m = load_state(cls(**s.config), s.tensors, str(s.folder))
        m.vocab, m.scale = s.files["vocab.txt"].decode().split(), scale
        return m


@pytest.fixture(autouse=True)
def tiny_kind(monkeypatch):
    monkeypatch.setattr(KINDS, "_entries", dict(KINDS._entries))
    sys.modules.setdefault("tests.test_saved", sys.modules[__name__])
    KINDS.register("tiny", f"{__name__}:Tiny")


def test_round_trip(tmp_path):
    m = Tiny(4)
    folder = save(m, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    header = read_header(folder)
    assert header == {"kind": "tiny", "format_version": 2, "config": {"width": 4}, "info": {"note": "x"},
                      "files": ["vocab.txt"]}
    back = load(folder, scale=0.5)
    assert isinstance(back, Tiny) and back.vocab == ["a", "b"] and back.scale == 0.5
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), back.state_dict().values()))
    assert load(folder, kind="tiny").width == 4
    assert not list(tmp_path.glob(".*"))  # no temporary folder left behind


def test_targets_checked_before_writing(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    (tmp_path / "link").symlink_to(tmp_path / "busy")
    os.mkfifo(tmp_path / "fifo")
    for bad, match in [(tmp_path / "file", "is a file, not a folder"),
                       (tmp_path / "file" / "m", "which is a file"),
                       (tmp_path / "busy", "holds other files, not a saved model"),
                       (".", "the current folder"), ("", "an empty path"), ("/", "the filesystem root"),
                       (tmp_path / "link", "symbolic link"), (tmp_path / "fifo", "is a FIFO")]:
        with pytest.raises(InputError, match=match):
            save(Tiny(), bad)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine" and (tmp_path / "file").read_text() == "x"
    (tmp_path / "empty").mkdir()
    save(Tiny(), tmp_path / "empty")  # an empty folder may be written
    with pytest.raises(InputError, match="already holds a saved model; pass overwrite=True"):
        save(Tiny(5), tmp_path / "empty")
    save(Tiny(5), tmp_path / "empty", overwrite=True)
    assert load(tmp_path / "empty").width == 5


def test_check_target_of_a_kind_and_for_an_option(tmp_path):
    folder = save(Tiny(), tmp_path / "m")
    assert saved.check_target(folder, overwrite=True, kind="tiny") == folder
    with pytest.raises(InputError, match=r"^--out .*m: holds a 'tiny', not a 'student'; name a new or empty "
                                         "folder$"):
        saved.check_target(folder, overwrite=True, kind="student", option="--out")
    with pytest.raises(InputError, match=r"^--out .*m: already holds a saved model; name a new or empty "
                                         "folder$"):
        saved.check_target(folder, option="--out")  # a command says what it can do: no overwrite=True
    (folder / CONFIG_FILE).write_text("{")
    with pytest.raises(InputError, match="holds an unreadable saved model"):
        saved.check_target(folder, overwrite=True, kind="tiny")


def test_a_failed_save_leaves_the_old_model(tmp_path, monkeypatch):
    folder = save(Tiny(3), tmp_path / "m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save(Tiny(6), folder, overwrite=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def _edit(folder, **changes):
    header = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**header, **changes}))


@pytest.mark.parametrize(("changes", "match"), [
    ({"kind": None}, "names no model kind"),
    ({"kind": "nope"}, "unknown model kind 'nope'"),
    ({"format_version": 3}, "format_version 3, written by a newer ragsc; this one reads up to 2"),
    ({"format_version": "1"}, "format_version must be a positive integer"),
    ({"config": [1]}, "'config' must be a JSON dict"),
    ({"files": ["vocab.txt", "gone.txt"]}, "names the file 'gone.txt', which is missing"),
    ({"files": ["../x"]}, "names the file '../x'"),
    ({"width": 3}, r"unknown fields \['width'\]"),
])
def test_bad_headers(tmp_path, changes, match):
    folder = save(Tiny(), tmp_path / "m")
    _edit(folder, **changes)
    with pytest.raises(ModelLoadError, match=match):
        load(folder)


def test_bad_tensors_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save(Tiny(), tmp_path / "m")
    weights = folder / "model.safetensors"
    good = load_file(str(weights))
    save_file({"lin.weight": good["lin.weight"]}, str(weights))
    with pytest.raises(ModelLoadError, match="tensor 'lin.bias' is missing"):
        load(folder)
    save_file({**good, "extra": torch.zeros(1)}, str(weights))
    with pytest.raises(ModelLoadError, match="unexpected tensor 'extra'"):
        load(folder)
    save_file({**good, "lin.weight": torch.zeros(2, 9)}, str(weights))
    with pytest.raises(ModelLoadError, match=r"'lin.weight' has shape \(2, 9\), the config builds \(2, 3\)"):
        load(folder)
    weights.write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="model.safetensors: missing or corrupt"):
        load(folder)
    with pytest.raises(ModelLoadError, match="holds a 'tiny', not a 'cat-codec'"):
        load(folder, kind="cat-codec")
    with pytest.raises(ModelLoadError, match="not a folder"):
        saved.read(tmp_path / "nowhere")


def test_a_config_the_weights_do_not_fit_allocates_nothing(tmp_path):
    """build lays the network out on the meta device first: a config.json that asks for other (here: huge)
    sizes than model.safetensors holds is refused before a real tensor is allocated."""
    folder = save(Tiny(3), tmp_path / "m")
    tensors = saved.read(folder).tensors
    devices = []

    def factory(width: int):
        def make() -> Tiny:
            devices.append(torch.empty(0).device.type)  # where this construction puts its tensors
            return Tiny(width)
        return make

    with pytest.raises(ModelLoadError, match=r"'lin.weight' has shape \(2, 3\), the config builds "
                                             r"\(2, 4294967296\)"):
        saved.build(factory(2 ** 32), tensors, str(folder))  # 2^33 floats, had it been built
    assert devices == ["meta"]
    net = saved.build(factory(3), tensors, str(folder))
    assert devices[1:] == ["meta", "cpu"] and torch.equal(net.lin.weight, tensors["lin.weight"])


def test_a_chain_of_saved_models_that_comes_back_is_refused(tmp_path):
    from contextlib import ExitStack

    a, b = tmp_path / "a", tmp_path / "b"
    with saved.loading(a, "base"), saved.loading(b, "base"):
        with pytest.raises(ModelLoadError, match=r"the base comes back to a folder already being loaded "
                                                 r"\(.*a -> .*b -> .*a\)"):
            with saved.loading(tmp_path / "b" / ".." / "a", "base"):
                pass
    with saved.loading(a, "base"):  # the chain is unwound when a load ends, however it ends
        pass
    with ExitStack() as chain:
        for i in range(saved.MAX_CHAIN):
            chain.enter_context(saved.loading(tmp_path / str(i), "base"))
        with pytest.raises(ModelLoadError, match=f"bases nested more than {saved.MAX_CHAIN} deep"):
            with saved.loading(tmp_path / "deeper", "base"):
                pass


def test_every_kind_names_a_class_that_takes_part():
    for entry in KINDS.entries():
        cls = entry.load()
        assert cls.kind == entry.prefix, entry
        assert isinstance(cls.format_version, int) and cls.format_version >= 1
        assert callable(cls.from_saved) and callable(cls.to_saved)
