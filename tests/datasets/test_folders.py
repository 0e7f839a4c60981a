"""ragsc.datasets.folders: what counts as a photo in a folder, and the stable training / validation split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragsc.datasets.folders import EXTENSIONS, list_photos, split_photos
from ragsc.errors import InputError


def _touch(root: Path, *names: str) -> None:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"x")  # the listing reads names only, never the files


def test_photos_are_found_recursively_in_sorted_order(tmp_path):
    _touch(tmp_path, "b.jpg", "a.PNG", "sub/c.webp", "sub/deeper/d.JpEg", "e.tiff", "f.heic", "g.avif")
    got = [p.relative_to(tmp_path).as_posix() for p in list_photos(tmp_path)]
    assert got == ["a.PNG", "b.jpg", "e.tiff", "f.heic", "g.avif", "sub/c.webp", "sub/deeper/d.JpEg"]
    assert list_photos(str(tmp_path)) == list_photos(tmp_path)


def test_hidden_files_and_folders_and_other_files_are_skipped(tmp_path):
    _touch(tmp_path, "keep.jpg", ".hidden.jpg", ".cache/x.jpg", "sub/.git/y.png", "notes.txt", "raw.cr2",
           "archive.jpg.zip", "movie.mp4", "sub/z.bmp", "jpg")
    (tmp_path / "folder.png").mkdir()  # a folder named like a photo is no photo
    got = [p.relative_to(tmp_path).as_posix() for p in list_photos(tmp_path)]
    assert got == ["keep.jpg", "sub/z.bmp"]


def test_symbolic_links_are_not_followed(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    _touch(data, "a.jpg")
    _touch(elsewhere, "b.jpg", "c.jpg")
    os.symlink(elsewhere / "b.jpg", data / "link.jpg")
    os.symlink(elsewhere, data / "linked_folder")
    assert list_photos(data) == [data / "a.jpg"]


def test_every_extension_counts():
    assert {".jpg", ".jpeg", ".png", ".webp", ".heic", ".avif"} <= set(EXTENSIONS)


def test_a_missing_path_a_file_and_an_empty_folder_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"--data .*none: not a folder of photos \(it does not exist\)"):
        list_photos(tmp_path / "none")
    _touch(tmp_path, "one.jpg")
    with pytest.raises(InputError, match=r"not a folder of photos \(it is a file\)"):
        list_photos(tmp_path / "one.jpg")
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty", "readme.txt", ".x.jpg")
    with pytest.raises(InputError, match=r"--data .*empty: holds no photos \(files ending .jpg, .jpeg"):
        list_photos(tmp_path / "empty")


def test_split_is_a_tenth_by_hash_with_at_least_one_in_each(tmp_path):
    names = [f"p{i:03d}.jpg" for i in range(200)]
    _touch(tmp_path, *names)
    paths = list_photos(tmp_path)
    train, val = split_photos(paths, tmp_path)
    assert sorted(train + val) == paths and not set(train) & set(val)
    assert 8 <= len(val) <= 35  # ~10 % (a hash, not a count)
    assert train == [p for p in paths if p not in val]  # listing order kept
    assert split_photos(paths, tmp_path, 0.5)[1] != val and len(split_photos(paths, tmp_path, 0.5)[1]) > 60
    two = paths[:2]
    t2, v2 = split_photos(two, tmp_path)
    assert len(t2) == 1 and len(v2) == 1 and sorted(t2 + v2) == two


def test_split_is_stable_when_photos_are_added_and_independent_of_where_the_folder_is(tmp_path):
    first, moved = tmp_path / "a", tmp_path / "b" / "c"
    _touch(first, *[f"{i}.jpg" for i in range(60)])
    _touch(moved, *[f"{i}.jpg" for i in range(60)])
    _, val = split_photos(list_photos(first), first)
    _touch(first, *[f"new/{i}.png" for i in range(100)])
    train2, val2 = split_photos(list_photos(first), first)
    old = set(val)
    assert old <= set(val2) and not old & set(train2)  # old photos never move between the splits
    assert len(val2) > len(val)  # some new ones validate too
    _, val_moved = split_photos(list_photos(moved), moved)
    assert [p.name for p in val_moved] == [p.name for p in val]  # the path inside the folder decides


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 2])
def test_split_refuses_a_bad_fraction_and_fewer_than_two_photos(tmp_path, fraction):
    _touch(tmp_path, "a.jpg", "b.jpg")
    paths = list_photos(tmp_path)
    with pytest.raises(InputError, match="validation fraction must be in"):
        split_photos(paths, tmp_path, fraction)
    with pytest.raises(InputError, match="training needs at least 2 photos .*found 1"):
        split_photos(paths[:1], tmp_path)
