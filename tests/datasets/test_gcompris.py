"""The captioned photo corpus from GCompris's bundles: synthetic bundles here, the real package when
installed."""

import pytest

from ragsc.datasets import gcompris
from ragsc.errors import InputError
from tests.datasets.gcompris_fixture import make_gcompris


@pytest.fixture
def bundles(tmp_path, monkeypatch):
    folder = make_gcompris(tmp_path / "rcc")
    monkeypatch.setenv("RAGSC_GCOMPRIS_DIR", str(folder))
    return folder


def test_captions_titles_and_categories(bundles):
    photos = {p.uri: p for p in gcompris.captioned_photos()}
    assert len(photos) == 7  # the letter block is left out
    colosseum = photos["gcompris:explore_monuments/wonders/colosseum.webp"]
    assert colosseum.title == "Colosseum" and colosseum.category == "monument"
    assert colosseum.caption == "Colosseum. The Colosseum is in Rome."  # the first sentence only
    assert photos["gcompris:explore_farm_animals/animals/cow.webp"].caption == "Cow. The cow goes moo!"
    assert photos["gcompris:explore_world_animals/animals/giraffe.webp"].category == "animal"
    named = {p.uri.rsplit("/", 1)[1]: (p.caption, p.category) for p in photos.values()}
    assert named["fish12.webp"] == ("a fish swimming underwater", "fish")
    assert named["screwDriver2.webp"] == ("a screwdriver", "tool")
    assert named["windmill3.webp"] == ("a wind turbine", "energy")
    assert named["red_panda.webp"] == ("a red panda", "animal")


def test_photo_files_are_extracted_once(bundles):
    from PIL import Image

    uri = "gcompris:erase/red_panda.webp"
    path = gcompris.photo_file(uri)
    assert path.is_file() and Image.open(path).size == (40, 30)
    mtime = path.stat().st_mtime_ns
    assert gcompris.photo_file(uri) == path and path.stat().st_mtime_ns == mtime
    path.write_bytes(b"an older photo")  # the package changed: extracted again
    assert Image.open(gcompris.photo_file(uri)).size == (40, 30)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "gcompris:erase/../../x.webp",
        "gcompris:Erase!/x.webp",
        "gcompris:erase//etc/passwd",
        "gcompris:erase/./x.webp",
        "gcompris:erase/",
        None,
    ],
)
def test_bad_uris(bundles, uri):
    with pytest.raises(InputError, match="not a GCompris photo URI"):
        gcompris.photo_file(uri)


def test_a_missing_photo(bundles):
    with pytest.raises(InputError, match="no such photo"):
        gcompris.photo_file("gcompris:erase/dodo.webp")


def test_missing_package_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGSC_GCOMPRIS_DIR", str(tmp_path))
    assert not gcompris.available()
    with pytest.raises(InputError, match="gcompris-qt-data"):
        gcompris.captioned_photos()


@pytest.mark.skipif(
    not gcompris.available(gcompris.RCC_DIR), reason="Debian's gcompris-qt-data is not installed"
)
def test_the_real_package():
    photos = gcompris.captioned_photos(gcompris.RCC_DIR)
    assert len(photos) == 246 and len({p.uri for p in photos}) == 246
    by = {p.category for p in photos}
    assert by == {"monument", "animal", "fish", "tool", "energy", "object"}
    assert all(p.caption and p.title for p in photos)
