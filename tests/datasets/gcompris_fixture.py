"""Synthetic GCompris bundles (the five the photo corpus reads), written with :func:`write_rcc`."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from tests.datasets.rcc_writer import write_rcc

ROOT = "/gcompris/src/activities/{b}/resource/"
BOARD = """QtObject {{
    property var tab: [
        {{
            "image": "qrc:{root}key.svg",
            "title": qsTr("{title}"),
            "text": qsTr("{text}"),
            "image2": "qrc:{root}{image}",
            "text2": qsTr("{title}")
        }}
    ]
}}
"""


def webp(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "WEBP", lossless=True)
    return buf.getvalue()


def make_gcompris(folder: Path) -> Path:
    """Five bundles with 7 photos in all: 3 described, 3 named by category, 1 erase animal; plus a letter
    block that the corpus leaves out."""
    folder.mkdir(parents=True, exist_ok=True)
    described = {
        "explore_monuments": (
            "wonders/colosseum.webp",
            "Colosseum",
            'The Colosseum is in Rome. It is \\"old\\".',
        ),
        "explore_world_animals": ("animals/giraffe.webp", "Giraffe", "The giraffe lives in Africa."),
        "explore_farm_animals": ("animals/cow.webp", "Cow", "The cow goes moo! It gives milk."),
    }
    for i, (bundle, (image, title, text)) in enumerate(described.items()):
        root = ROOT.format(b=bundle)
        board = BOARD.format(root=root, title=title, text=text, image=image)
        write_rcc(
            folder / f"{bundle}.rcc",
            {root + "board/board1.qml": board.encode(), root + image: webp((40 * i, 100, 200))},
            compress=i == 0,
        )
    root = ROOT.format(b="categorization")
    write_rcc(
        folder / "categorization.rcc",
        {
            root + "images/fishes/fish12.webp": webp((0, 0, 255)),
            root + "images/tools/screwDriver2.webp": webp((200, 200, 0)),
            root + "images/renewable/windmill3.webp": webp((10, 200, 10)),
            root + "images/alphabets/alphabets.webp": webp((1, 2, 3)),
        },
    )
    write_rcc(folder / "erase.rcc", {ROOT.format(b="erase") + "red_panda.webp": webp((200, 50, 0))})
    return folder
