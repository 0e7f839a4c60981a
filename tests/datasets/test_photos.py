"""The photos the image JSCC is trained on (Debian's background packages) and evaluated on (held-out photos
shipped inside Python packages, and one Debian wallpaper); skipped where the Debian packages are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragsc.datasets.debian_photos import PHOTOS, VALIDATION, photo_paths
from ragsc.datasets.photos import HELDOUT, heldout_photo_paths
from ragsc.errors import InputError

MATE = Path("/usr/share/backgrounds/mate/nature")
PLASMA = Path("/usr/share/wallpapers/Path/contents/images/1280x800.jpg")


@pytest.mark.skipif(not MATE.is_dir(), reason="Debian's background packages are not installed")
def test_debian_photos_split_into_training_and_validation():
    train, val = photo_paths()
    assert len(train) + len(val) == len(PHOTOS) == 28 and len(val) == len(VALIDATION) == 3
    assert not set(train) & set(val) and all(p.is_file() for p in train + val)
    assert [p.relative_to("/usr/share/backgrounds").as_posix() for p in val] == list(VALIDATION)


def test_missing_debian_photos_name_the_packages_to_install(tmp_path):
    with pytest.raises(InputError, match=r"28 of the Debian background photos are missing .*apt-get install "
                                         r"mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04"):
        photo_paths(tmp_path)


@pytest.mark.skipif(not PLASMA.is_file(), reason="plasma-workspace-wallpapers is not installed")
def test_heldout_photos_are_files_and_none_is_a_training_photo():
    got = heldout_photo_paths()
    assert [n for n, _ in got] == [n for n, _, _ in HELDOUT] and len(got) == 24
    assert all(p.is_file() for _, p in got)
    assert not {p.name for _, p in got} & {Path(n).name for n in PHOTOS}


def test_a_missing_heldout_photo_says_how_to_install_it(monkeypatch):
    import ragsc.datasets.photos as photos

    monkeypatch.setattr(photos, "HELDOUT", (*photos.HELDOUT[:-1], ("forest_path", "plasma", "nowhere.jpg")))
    with pytest.raises(InputError,
                       match="held-out photo missing: .*nowhere.jpg .*plasma-workspace-wallpapers"):
        photos.heldout_photo_paths()
