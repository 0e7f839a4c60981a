"""ragsc/targets.py: the one check of every output path (a file written whole, a folder a command fills).

Nothing here writes to a real device node: /dev/null is only looked at (stat), never opened or replaced.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from ragsc.errors import InputError
from ragsc.targets import check_file, check_folder, describe, only_files


@pytest.fixture
def places(tmp_path):
    """A file, a FIFO, a socket, a folder holding a file, an empty folder, links to each."""
    (tmp_path / "file").write_text("keep")
    os.mkfifo(tmp_path / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    for name in ("file", "fifo", "empty"):
        (tmp_path / f"link-{name}").symlink_to(tmp_path / name)
    (tmp_path / "link-null").symlink_to("/dev/null")
    yield tmp_path
    sock.close()


def _dev_null() -> tuple[int, int]:
    st = os.stat("/dev/null")
    assert stat.S_ISCHR(st.st_mode)
    return st.st_mode, st.st_rdev


def test_a_file_target_is_a_missing_path_or_a_regular_file(places):
    assert check_file(places / "new.jsonl") == places / "new.jsonl"
    assert check_file(str(places / "file"), "--out") == places / "file"


@pytest.mark.parametrize("name, problem", [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("sock", "is a socket, not a regular file"),
    ("full", "is a folder, not a file"),
    ("empty", "is a folder, not a file"),
    ("link-file", "is a symbolic link (to "),
    ("link-fifo", "is a symbolic link (to "),
    ("link-null", "is a symbolic link (to /dev/null)"),
    ("file/x.jsonl", "lies under"),
    ("missing/x.jsonl", "its folder"),
])
def test_a_file_target_refuses_everything_else(places, name, problem):
    with pytest.raises(InputError) as e:
        check_file(places / name, "--out")
    assert str(e.value).startswith(f"--out {places / name}: {problem}")
    assert (places / "file").read_text() == "keep" and stat.S_ISFIFO(os.lstat(places / "fifo").st_mode)


def test_a_device_node_is_refused_and_left_alone():
    before = _dev_null()
    with pytest.raises(InputError, match=r"^--out /dev/null: is a character device, not a regular file; "
                                         r"name a new file or a file to replace$"):
        check_file("/dev/null", "--out")
    with pytest.raises(InputError, match="is a character device, not a folder"):
        check_folder("/dev/null", "--out")
    assert _dev_null() == before


@pytest.mark.parametrize("check", [check_file, check_folder])
@pytest.mark.parametrize("path, problem", [("", "''"), (" ", "' '"), (".", "."), ("/", "/")])
def test_empty_current_and_root_are_refused(check, path, problem):
    with pytest.raises(InputError) as e:
        check(path, "--out")
    assert str(e.value).startswith(f"--out {problem}: is ")
    assert any(w in str(e.value) for w in ("an empty path", "the current folder", "the filesystem root"))


def test_the_current_folder_by_another_name(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for path in ("./", "../sub", str(tmp_path / "sub")):
        with pytest.raises(InputError, match="is the current folder"):
            check_folder(path)


def test_a_folder_target_is_new_or_empty(places):
    assert check_folder(places / "new" / "deeper", "--out") == places / "new" / "deeper"
    assert check_folder(places / "empty") == places / "empty"
    assert not (places / "new").exists()  # a check writes nothing


@pytest.mark.parametrize("name, problem", [
    ("file", "is a file, not a folder"),
    ("fifo", "is a FIFO (named pipe), not a folder"),
    ("full", "is not empty; name a new or empty folder"),
    ("link-empty", "is a symbolic link (to "),
    ("file/model", f"lies under {{}}{os.sep}file, which is a file, not a folder"),
    ("file/a/b", f"lies under {{}}{os.sep}file, which is a file, not a folder"),
])
def test_a_folder_target_refuses_everything_else(places, name, problem):
    with pytest.raises(InputError) as e:
        check_folder(places / name, "--store")
    assert str(e.value).startswith(f"--store {places / name}: {problem.format(places)}")
    assert (places / "full" / "notes.txt").read_text() == "mine"


def test_without_an_option_the_message_starts_with_the_path(places):
    with pytest.raises(InputError, match=rf"^{places / 'full'}: is not empty"):
        check_folder(places / "full")


def test_reuse_decides_about_a_folder_that_holds_something(places):
    seen = []
    assert check_folder(places / "full", reuse=lambda f: seen.append(f)) == places / "full"
    assert seen == [places / "full"]
    check_folder(places / "empty", reuse=lambda f: pytest.fail("an empty folder needs no rule"))
    with pytest.raises(InputError, match=r"^--out .*full: holds a stranger; name another$"):
        check_folder(places / "full", "--out", reuse=lambda f: "holds a stranger; name another")


def test_only_files(places):
    rule = only_files("eval.csv", "eval_*.png", what="a previous eval's files")
    (places / "empty" / "eval.csv").write_text("x")
    (places / "empty" / "eval_text.png").write_text("x")
    assert check_folder(places / "empty", reuse=rule) == places / "empty"
    (places / "empty" / "eval_x.png.bak").write_text("x")
    with pytest.raises(InputError, match=r"holds eval_x.png.bak \(a file\): only a previous eval's files may "
                                         "be replaced there"):
        check_folder(places / "empty", reuse=rule)
    (places / "empty" / "eval_x.png.bak").unlink()
    (places / "empty" / "eval_d.png").mkdir()  # a name it writes, but a folder
    with pytest.raises(InputError, match=r"holds eval_d.png \(a folder\)"):
        check_folder(places / "empty", reuse=rule)


def test_describe(places):
    assert describe(places / "nothing") == "nothing" and describe(places / "file" / "x") == "nothing"
    assert describe(places / "link-file") == "a symbolic link"
    assert describe("/dev/null") == "a character device"
