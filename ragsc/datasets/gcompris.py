"""Captioned real photos from Debian's ``gcompris-qt-data``: the default global KB's photo corpus.

GCompris (KDE's educational suite, GPL-3.0-or-later; each photo's author and licence, mostly public
domain or CC-BY(-SA) from Wikimedia Commons, are in the README next to it inside the bundle) ships its
activities as Qt resource bundles under ``/usr/share/gcompris-qt/rcc``. Five of them hold real photos
with names or descriptions, 246 in all:

* ``explore_monuments``, ``explore_world_animals``, ``explore_farm_animals`` (73): each photo with a
  title and a paragraph from the activity's board files ("Colosseum" — "The Colosseum or Coliseum is
  today the most recognizable of Rome's Classical buildings. ..."); the caption is the title and the
  paragraph's first sentence;
* ``categorization`` (140 of 142; the letter and number blocks are left out): monuments, fishes, tools,
  renewable energy and household objects, named by file ("hammer3.webp"); the caption is the name in
  words ("a hammer", "a wind turbine");
* ``erase`` (33): animal photos named by file ("red_panda.webp" -> "a red panda").

No photo here is a training photo of any ragsc model, nor a photo of the development set
(:mod:`ragsc.datasets.photo_questions`). ``apt-get install gcompris-qt-data`` (``make photos``) installs
them; photos are extracted once to ``RAGSC_HOME/photos/gcompris``.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ragsc.errors import InputError

RCC_DIR = Path(
    "/usr/share/gcompris-qt/rcc"
)  # where Debian installs the bundles; RAGSC_GCOMPRIS_DIR overrides
PACKAGE = "gcompris-qt-data"
URI_PREFIX = "gcompris:"
_DESCRIBED = ("explore_monuments", "explore_world_animals", "explore_farm_animals")
_RESOURCE = "/gcompris/src/activities/{bundle}/resource/"  # where a bundle keeps its photos
_ENTRY = re.compile(
    r'"title":\s*qsTr\("((?:[^"\\]|\\.)*)"\)\s*,\s*"text":\s*qsTr\("((?:[^"\\]|\\.)*)"\)'
    r'.*?"image2":\s*"qrc:([^"]+)"',
    re.S,
)

# categorization's file names -> what the photo shows (the rest are the name split into words)
_NAMES = {
    "IndiaGate": "India Gate in New Delhi",
    "arcDeTriomphe": "the Arc de Triomphe in Paris",
    "bayterek": "the Bayterek tower in Astana",
    "brandenburgGate": "the Brandenburg Gate in Berlin",
    "burj": "the Burj Khalifa skyscraper in Dubai",
    "cathedral": "a cathedral",
    "christTheRedeemer": "the Christ the Redeemer statue in Rio de Janeiro",
    "colosseum": "the Colosseum in Rome",
    "eiffelTower": "the Eiffel Tower in Paris",
    "empireState": "the Empire State Building in New York",
    "greatPyramid": "the Great Pyramid of Giza",
    "greatWall": "the Great Wall of China",
    "jucheTower": "the Juche Tower in Pyongyang",
    "kutubMinar": "the Qutub Minar tower in Delhi",
    "leMusee": "the Louvre museum in Paris",
    "leaningTowerOfPisa": "the Leaning Tower of Pisa",
    "monument": "a historic monument",
    "mountRushmore": "Mount Rushmore",
    "operaHouse": "the Sydney Opera House",
    "parthenon": "the Parthenon in Athens",
    "statueOfLiberty": "the Statue of Liberty in New York",
    "tajMahal": "the Taj Mahal in India",
    "usCapitol": "the United States Capitol in Washington",
    "victoriaMemorial": "the Victoria Memorial",
    "zimniPalace": "the Winter Palace in Saint Petersburg",
    "dam": "a hydroelectric dam",
    "solar": "solar panels",
    "windmill": "a wind turbine",
    "geothermal": "a geothermal power station",
    "blackslate": "a blackboard",
    "buffetset": "a cup and saucer",
    "bulb": "a light bulb",
    "erasers": "an eraser",
    "knife": "a knife, a fork and a spoon",
    "pan": "a frying pan",
    "weighingMachine": "a weighing scale",
    "spoons": "spoons",
    "cuttingTool": "a cutting tool",
    "measuringTape": "a measuring tape",
    "plier": "pliers",
    "screwDriver": "a screwdriver",
    "sideCutter": "side cutters",
    "spray": "a spray bottle",
    "tweezer": "tweezers",
    "nailCutter": "a nail clipper",
    "camels": "camels",
    "meerkats": "meerkats",
    "spoonbills": "spoonbills",
    "swans": "swans",
    "chamaeleon": "a chameleon",
    "gosling": "a gosling",
    "calf": "a calf",
}
_CATEGORY = {
    "monuments": "monument",
    "fishes": "fish",
    "tools": "tool",
    "renewable": "energy",
    "others": "object",
}


@dataclass(frozen=True)
class CaptionedPhoto:
    """One photo of the corpus.

    ``uri`` is ``gcompris:<bundle>/<path under its resource folder>``; ``caption`` the KB text; ``title``
    the thing's name
    ("Colosseum", "a red panda"); ``category`` one of monument, animal, fish, tool, energy, object.
    """

    uri: str
    caption: str
    title: str
    category: str


def _uri(bundle: str, path: str) -> str:
    """``gcompris:<bundle>/<path under the bundle's resource folder>``."""
    return f"{URI_PREFIX}{bundle}/{path.removeprefix(_RESOURCE.format(bundle=bundle))}"


def _words(stem: str) -> str:
    """``leaningTowerOfPisa3`` -> ``leaning tower of pisa``."""
    stem = re.sub(r"\d+$", "", stem).replace("_", " ")
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem).lower().strip()


def _article(words: str) -> str:
    return ("an " if words[:1] in "aeiou" else "a ") + words


def _first_sentence(text: str) -> str:
    text = text.replace('\\"', '"').replace("\\'", "'").strip()
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    return (m.group(1) if m else text)[:240]


def _named(bundle: str, path: str) -> CaptionedPhoto | None:
    folder, stem = path.split("/")[-2], Path(path).stem
    if bundle == "erase":
        caption = _NAMES.get(stem) or _article(_words(stem))
        return CaptionedPhoto(_uri(bundle, path), caption, caption, "animal")
    if folder not in _CATEGORY:  # the letter and number blocks
        return None
    base = re.sub(r"\d+$", "", stem)
    if folder == "fishes":
        caption = "a fish swimming underwater"
    else:
        caption = _NAMES.get(base) or _article(_words(stem))
    return CaptionedPhoto(_uri(bundle, path), caption, caption, _CATEGORY[folder])


def _described(bundle: str, files: dict[str, bytes]) -> list[CaptionedPhoto]:
    out = []
    for name, blob in sorted(files.items()):
        if name.endswith(".qml"):
            for title, text, image in _ENTRY.findall(blob.decode("utf-8", "replace")):
                inside = image.startswith(_RESOURCE.format(bundle=bundle))  # its own photos only
                if inside and image.endswith(".webp") and image in files:
                    category = "monument" if bundle == "explore_monuments" else "animal"
                    title = title.replace('\\"', '"')
                    out.append(
                        CaptionedPhoto(
                            _uri(bundle, image), f"{title}. {_first_sentence(text)}", title, category
                        )
                    )
    return out


@lru_cache(maxsize=4)
def _bundle(folder: str, bundle: str) -> dict[str, bytes]:
    from ragsc.datasets.qt_resources import read_rcc

    return read_rcc(Path(folder) / f"{bundle}.rcc", (".webp", ".qml"))


def bundle_dir() -> Path:
    """The bundles' folder: ``RAGSC_GCOMPRIS_DIR`` when set, else :data:`RCC_DIR`."""
    return Path(os.environ.get("RAGSC_GCOMPRIS_DIR") or RCC_DIR)


def available(folder: str | Path | None = None) -> bool:
    """Whether ``gcompris-qt-data`` is installed (its photo bundles are there)."""
    folder = folder or bundle_dir()
    return all((Path(folder) / f"{b}.rcc").is_file() for b in (*_DESCRIBED, "categorization", "erase"))


def captioned_photos(folder: str | Path | None = None) -> tuple[CaptionedPhoto, ...]:
    """The corpus (246 photos), in a fixed order; one entry per photo file (a photo two boards describe
    keeps the first).

    Raises
    ------
    InputError
        ``gcompris-qt-data`` is not installed (the message says how to install it).
    """
    return _captioned(str(folder or bundle_dir()))


@lru_cache(maxsize=2)
def _captioned(folder: str) -> tuple[CaptionedPhoto, ...]:
    if not available(folder):
        raise InputError(
            f"the captioned photo corpus needs Debian's {PACKAGE} (no bundles in {folder}): "
            f"make photos, or apt-get install {PACKAGE}"
        )
    found: dict[str, CaptionedPhoto] = {}
    for bundle in _DESCRIBED:
        for p in _described(bundle, _bundle(str(folder), bundle)):
            found.setdefault(p.uri, p)
    for bundle in ("categorization", "erase"):
        for path in sorted(_bundle(str(folder), bundle)):
            if path.endswith(".webp"):
                p = _named(bundle, path)
                if p is not None:
                    found.setdefault(p.uri, p)
    return tuple(found.values())


_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # one component of a photo's path in its bundle


def photo_file(uri: str, folder: str | Path | None = None) -> Path:
    """The file of a corpus photo (``gcompris:<bundle>/<path>``), extracted under
    ``RAGSC_HOME/photos/gcompris`` (again when the package's photo changed size)."""
    from ragsc._assets import home_dir

    if not isinstance(uri, str) or not uri.startswith(URI_PREFIX):
        raise InputError(f"not a GCompris photo URI: {uri!r}")
    bundle, _, path = uri.removeprefix(URI_PREFIX).partition("/")
    parts = path.split("/")
    if not re.fullmatch(r"[a-z_]+", bundle) or not all(_PART.fullmatch(p) and p != ".." for p in parts):
        raise InputError(f"not a GCompris photo URI: {uri!r}")
    root = home_dir() / "photos" / "gcompris"
    target = root / bundle / path
    files = _bundle(str(folder or bundle_dir()), bundle)
    inside = _RESOURCE.format(bundle=bundle) + path
    if inside not in files:
        raise InputError(f"{uri!r}: no such photo in {Path(folder or bundle_dir()) / bundle}.rcc")
    blob = files[inside]
    if not (target.is_file() and target.stat().st_size == len(blob)):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, target)  # atomic: a reader never sees half a file
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target
