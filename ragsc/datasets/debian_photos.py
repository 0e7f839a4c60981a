"""The real photos the shipped image JSCC codec is trained on: Debian's desktop-background packages.

28 photographs (the packages' drawings and renders are left out), installed by ``apt-get install
mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04`` under ``/usr/share/backgrounds``:

* ``mate-backgrounds`` (1.26): the 12 photos of ``mate/nature/`` (GPL-2+, authors in the package's AUTHORS);
* ``lomiri-wallpapers-16.04`` (20.04.0): 14 photos (CC-BY-4.0, CC-BY-SA-4.0, CC0-1.0, each file's in the
  package's copyright file);
* ``lomiri-wallpapers-20.04`` (20.04.0): ``Infinite-Sea_by_Aury88.jpg`` and ``Kleiber_by_Lukas_Baubkus.jpg``
  (CC-BY-SA-4.0).

Three of them (:data:`VALIDATION`) are the validation split (choosing the checkpoint, stopping on a plateau);
none is ever an evaluation photo: evaluation uses other sources (:mod:`ragsc.datasets.sample_photos`).
"""

from __future__ import annotations

from pathlib import Path

from ragsc.errors import InputError

ROOT = Path("/usr/share/backgrounds")
PACKAGES = ("mate-backgrounds", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")

PHOTOS: tuple[str, ...] = tuple(
    f"mate/nature/{n}.jpg"
    for n in (
        "Aqua",
        "Blinds",
        "Dune",
        "FreshFlower",
        "Garden",
        "GreenMeadow",
        "LadyBird",
        "RainDrops",
        "Storm",
        "TwoWings",
        "Wood",
        "YellowFlower",
    )
) + tuple(
    f"{n}.jpg"
    for n in (
        "Bridge_by_Sander_Klootwijk",
        "Dragonfly_by_Bolly",
        "Picture_0B_by_freespace",
        "Picture_1A_by_freespace",
        "Wine_by_Jakkub_Mede",
        "aitzgorri_by_Aitzol_Berasategi",
        "analogpattern_by_Peter_Nerlich",
        "free_by_Peter_Nerlich",
        "friends_by_Aitzol_Berasategi",
        "greentock_by_Peter_Nerlich",
        "life_by_Aitzol_Berasategi",
        "picosdeeuropa_by_Aitzol_Berasategi",
        "seeding_by_Clements_Engelhardt",
        "sunset_by_Aitzol_Berasategi",
        "Infinite-Sea_by_Aury88",
        "Kleiber_by_Lukas_Baubkus",
    )
)

VALIDATION: tuple[str, ...] = (
    "mate/nature/Storm.jpg",
    "friends_by_Aitzol_Berasategi.jpg",
    "Kleiber_by_Lukas_Baubkus.jpg",
)


def photo_paths(root: Path = ROOT) -> tuple[list[Path], list[Path]]:
    """``(train, validation)`` paths of the photos; :class:`InputError` naming the packages to install when
    any
    is missing."""
    missing = [n for n in PHOTOS if not (root / n).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of the Debian background photos are missing (first: {root / missing[0]}); "
            f"install them: make photos (apt-get install {' '.join(PACKAGES)})"
        )
    return [root / n for n in PHOTOS if n not in VALIDATION], [root / n for n in VALIDATION]
