"""Reading Qt resource bundles: round trips through the test writer, and corrupt bundles refused."""

import struct

import pytest

from ragsc.datasets.qt_resources import read_rcc
from ragsc.errors import InputError
from tests.datasets.rcc_writer import write_rcc

FILES = {
    "/a/b/photo.webp": b"\x00\x01webp",
    "/a/board.qml": 'title: qsTr("é")'.encode(),
    "/z.txt": b"z" * 300,
}


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path, compress):
    path = write_rcc(tmp_path / "x.rcc", FILES, compress=compress)
    assert read_rcc(path) == FILES
    assert read_rcc(path, (".webp",)) == {"/a/b/photo.webp": FILES["/a/b/photo.webp"]}


def test_not_a_bundle(tmp_path):
    (tmp_path / "x.rcc").write_bytes(b"PK\x03\x04 a zip")
    with pytest.raises(InputError, match="no 'qres' header"):
        read_rcc(tmp_path / "x.rcc")
    with pytest.raises(InputError, match="no Qt resource bundle at"):
        read_rcc(tmp_path / "missing.rcc")


def test_truncated_bundle(tmp_path):
    path = write_rcc(tmp_path / "x.rcc", FILES)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(InputError, match="x.rcc"):
        read_rcc(path)


def _root_field(tmp_path, at: int, value: int):
    """A one-file bundle whose root entry has the 4-byte field at byte ``at`` set to ``value``."""
    path = write_rcc(tmp_path / "x.rcc", {"/a.txt": b"a"})
    blob = bytearray(path.read_bytes())
    tree = struct.unpack(">I", blob[8:12])[0]
    blob[tree + at : tree + at + 4] = struct.pack(">I", value)
    path.write_bytes(bytes(blob))
    return path


def test_a_directory_that_contains_itself_is_refused(tmp_path):
    with pytest.raises(InputError, match="cycle"):
        read_rcc(_root_field(tmp_path, 10, 0))  # the root's first child is the root


def test_a_directory_that_claims_too_many_children_is_refused(tmp_path):
    with pytest.raises(InputError, match="more entries than the file holds"):
        read_rcc(_root_field(tmp_path, 6, 2**31))  # its child count


def test_a_compressed_entry_that_lies_about_its_size_is_refused(tmp_path):
    import zlib

    big = zlib.compress(b"\x00" * 100_000)
    path = write_rcc(tmp_path / "x.rcc", {"/a.bin": b"placeholder"})
    blob = path.read_bytes()
    # rewrite the data block by hand: claim 10 bytes, carry 100,000
    tree, data, names = struct.unpack(">III", blob[8:20])
    entry = blob[tree + 22 : tree + 44]
    entry = entry[:4] + struct.pack(">H", 1) + entry[6:]
    payload = struct.pack(">I", 10) + big
    new_data = struct.pack(">I", len(payload)) + payload
    out = bytearray(blob[: tree + 22] + entry + blob[tree + 44 : data]) + new_data
    names_at = len(out)
    out += blob[names:]
    out[16:20] = struct.pack(">I", names_at)
    path.write_bytes(bytes(out))
    with pytest.raises(InputError, match="do not match its stated size"):
        read_rcc(path)


def _with_entry_flags_and_payload(path, flags: int, payload: bytes):
    """Rewrite the bundle's one file entry: its flags and its data block."""
    blob = path.read_bytes()
    tree, data, names = struct.unpack(">III", blob[8:20])
    entry = blob[tree + 22 : tree + 44]
    entry = entry[:4] + struct.pack(">H", flags) + entry[6:]
    out = bytearray(blob[: tree + 22] + entry + blob[tree + 44 : data])
    out += struct.pack(">I", len(payload)) + payload
    names_at = len(out)
    out += blob[names:]
    out[16:20] = struct.pack(">I", names_at)
    path.write_bytes(bytes(out))


def test_an_entry_that_claims_nothing_cannot_inflate(tmp_path):
    import zlib

    path = write_rcc(tmp_path / "x.rcc", {"/a.bin": b"placeholder"})
    _with_entry_flags_and_payload(path, 1, struct.pack(">I", 0) + zlib.compress(b"\x00" * 100_000))
    with pytest.raises(InputError, match="do not match its stated size"):
        read_rcc(path)


def test_zstd_entries_are_refused_by_name(tmp_path):
    path = write_rcc(tmp_path / "x.rcc", {"/a.bin": b"placeholder"})
    _with_entry_flags_and_payload(path, 4, b"\x28\xb5\x2f\xfd")
    with pytest.raises(InputError, match="zstd"):
        read_rcc(path)


def test_the_total_output_is_bounded(tmp_path, monkeypatch):
    import ragsc.datasets.qt_resources as qt

    path = write_rcc(tmp_path / "x.rcc", {f"/f{i}.bin": b"x" * 1000 for i in range(5)})
    monkeypatch.setattr(qt, "MAX_TOTAL_BYTES", 3000)
    with pytest.raises(InputError, match="yields more than"):
        read_rcc(path)
