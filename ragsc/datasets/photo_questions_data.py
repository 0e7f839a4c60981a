"""The development set's content: our captions, questions and accepted answers per photo (the data of
:mod:`ragsc.datasets.photo_questions`, which loads the photos, splits the set and matches answers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Question:
    """A question and the answers accepted as right (the first is the reference answer)."""

    text: str
    answers: tuple[str, ...]


def ask(text: str, *answers: str) -> Question:
    return Question(text, answers)


YES, NO = ("yes",), ("no",)
POLAR = ("yes", "no")

PHOTOS: tuple[tuple[str, str, str, str, tuple[Question, ...]], ...] = (
    (
        "astronaut",
        "skimage",
        "astronaut.png",
        "an astronaut in an orange spacesuit in front of an american flag",
        (
            ask("what is this person's job?", "astronaut"),
            ask("is the person wearing a spacesuit?", *YES),
            ask("what colour is the suit?", "orange"),
        ),
    ),
    (
        "brick",
        "skimage",
        "brick.png",
        "a grey brick wall",
        (
            ask("what is this a picture of?", "brick wall", "wall", "bricks", "brick"),
            ask("is this a wall?", *YES),
        ),
    ),
    (
        "camera",
        "skimage",
        "camera.png",
        "a man with a camera on a tripod in a field",
        (ask("what is the man using?", "camera", "tripod"), ask("is this photo in colour?", *NO)),
    ),
    (
        "cell",
        "skimage",
        "cell.png",
        "a single cell under a microscope",
        (ask("what is shown?", "cell", "a cell"), ask("is there an animal in the picture?", *NO)),
    ),
    (
        "chelsea",
        "skimage",
        "chelsea.png",
        "a close-up of a tabby cat",
        (ask("what animal is this?", "cat", "tabby cat", "kitten", "tabby"), ask("is there a dog?", *NO)),
    ),
    (
        "clock",
        "skimage",
        "clock_motion.png",
        "a blurry wall clock",
        (ask("what object is this?", "clock", "wall clock"), ask("is this a clock?", *YES)),
    ),
    (
        "coffee",
        "skimage",
        "coffee.png",
        "a cup of coffee on a saucer with a spoon",
        (ask("what drink is in the cup?", "coffee", "espresso"), ask("is there a cup?", *YES)),
    ),
    (
        "coins",
        "skimage",
        "coins.png",
        "a collection of old coins",
        (ask("what objects are shown?", "coins", "coin", "money"), ask("is there a cat?", *NO)),
    ),
    (
        "grass",
        "skimage",
        "grass.png",
        "a close-up of grass",
        (ask("what is this?", "grass", "lawn"), ask("is this a photo of a city?", *NO)),
    ),
    (
        "gravel",
        "skimage",
        "gravel.png",
        "a close-up of gravel stones",
        (ask("what is this?", "gravel", "stones", "pebbles", "rocks"), ask("is there water?", *NO)),
    ),
    (
        "hubble_deep_field",
        "skimage",
        "hubble_deep_field.jpg",
        "galaxies in deep space",
        (ask("what is shown?", "galaxies", "stars", "space", "galaxy"), ask("is there a building?", *NO)),
    ),
    (
        "immunohistochemistry",
        "skimage",
        "ihc.png",
        "a stained tissue sample under a microscope",
        (ask("what is shown?", "tissue", "cells", "a tissue sample"), ask("is this a landscape?", *NO)),
    ),
    (
        "microaneurysms",
        "skimage",
        "microaneurysms.png",
        "a grey close-up of blood vessels in the retina",
        (ask("what is shown?", "blood vessels", "retina", "vessels"), ask("is there a person?", *NO)),
    ),
    (
        "moon",
        "skimage",
        "moon.png",
        "the cratered surface of the moon",
        (
            ask("what is shown?", "moon", "the moon", "moon surface", "craters"),
            ask("is this in colour?", *NO),
        ),
    ),
    (
        "motorcycle",
        "skimage",
        "motorcycle_left.png",
        "a red motorcycle parked in a garage",
        (
            ask("what vehicle is this?", "motorcycle", "motorbike", "bike"),
            ask("what colour is the motorcycle?", "red"),
            ask("is it a car?", *NO),
        ),
    ),
    (
        "page",
        "skimage",
        "page.png",
        "a page of printed text about image segmentation",
        (ask("what is on the page?", "text", "writing", "words"), ask("is there text?", *YES)),
    ),
    (
        "retina",
        "skimage",
        "retina.jpg",
        "a photograph of the retina of an eye",
        (ask("what part of the body is this?", "eye", "retina"), ask("is the picture mostly orange?", *YES)),
    ),
    (
        "rocket",
        "skimage",
        "rocket.jpg",
        "a rocket on a launch pad at night",
        (ask("what is on the launch pad?", "rocket", "a rocket", "spacecraft"), ask("is it daytime?", *NO)),
    ),
    (
        "text",
        "skimage",
        "text.png",
        "handwritten numbers and symbols on paper",
        (
            ask("what is written on the paper?", "numbers", "math", "equations", "text", "writing"),
            ask("is there a tree?", *NO),
        ),
    ),
    (
        "china",
        "sklearn",
        "china.jpg",
        "a chinese pagoda on a hill among trees",
        (
            ask("what kind of building is this?", "pagoda", "temple", "tower", "palace"),
            ask("are there trees?", *YES),
        ),
    ),
    (
        "flower",
        "sklearn",
        "flower.jpg",
        "an orange dahlia flower",
        (ask("what is this?", "flower", "dahlia"), ask("what colour is the flower?", "orange")),
    ),
    (
        "grace_hopper",
        "matplotlib",
        "grace_hopper.jpg",
        "a portrait of an elderly woman in a navy uniform in front of a flag",
        (
            ask("who is in the picture?", "woman", "a woman", "an old woman", "officer", "grace hopper"),
            ask("is the person wearing a uniform?", *YES),
        ),
    ),
    (
        "by_the_water",
        "plasma",
        "BytheWater",
        "a wooden jetty by the water at sunset",
        (
            ask("what is the walkway made of?", "wood", "wooden planks", "planks"),
            ask("is there water?", *YES),
        ),
    ),
    (
        "cold_ripple",
        "plasma",
        "ColdRipple",
        "a wooden pier on a foggy lake",
        (ask("what is in the middle of the picture?", "pier", "jetty", "dock"), ask("is it sunny?", *NO)),
    ),
    (
        "colorful_cups",
        "plasma",
        "ColorfulCups",
        "rows of colourful plastic cups seen from above",
        (ask("what objects are these?", "cups", "plastic cups", "cup"), ask("is there only one cup?", *NO)),
    ),
    (
        "darkest_hour",
        "plasma",
        "DarkestHour",
        "a misty blue lake at dusk",
        (
            ask("what time of day is it?", "dusk", "night", "evening", "twilight"),
            ask("is there water?", *YES),
        ),
    ),
    (
        "evening_glow",
        "plasma",
        "EveningGlow",
        "wooden rowing boats on a lake shore at sunset",
        (ask("what is on the shore?", "boats", "rowing boats", "boat"), ask("is the sun setting?", *YES)),
    ),
    (
        "fallen_leaf",
        "plasma",
        "FallenLeaf",
        "a fallen maple leaf on the ground in autumn",
        (
            ask("what season is it?", "autumn", "fall"),
            ask("what is lying on the ground?", "leaf", "leaves", "a leaf", "maple leaf"),
        ),
    ),
    (
        "grey",
        "plasma",
        "Grey",
        "the wavy facade of a modern building in black and white",
        (
            ask("what is this a photo of?", "building", "architecture", "facade"),
            ask("is there an animal?", *NO),
        ),
    ),
    (
        "kite",
        "plasma",
        "Kite",
        "a colourful kite flying in a blue sky with clouds",
        (ask("what is flying in the sky?", "kite", "a kite"), ask("what colour is the sky?", "blue")),
    ),
    (
        "one_stands_out",
        "plasma",
        "OneStandsOut",
        "green plants seen from above with one orange plant",
        (ask("what colour are most of the plants?", "green"), ask("is there a car?", *NO)),
    ),
    (
        "forest_path",
        "plasma",
        "Path",
        "a path through a green forest",
        (ask("where was this photo taken?", "forest", "woods", "in a forest"), ask("are there trees?", *YES)),
    ),
    (
        "summer_night",
        "plasma",
        "summer_1am",
        "a calm lake under a pink and purple sky at dusk",
        (ask("what is below the sky?", "lake", "water", "sea"), ask("are there people?", *NO)),
    ),
)

# Fashion-MNIST classes -> (caption noun, accepted answers to "what is this?", worn on the feet)
FASHION = (
    ("t-shirt", ("t-shirt", "shirt", "top", "tee", "tshirt"), False),
    ("pair of trousers", ("trousers", "pants", "jeans"), False),
    ("pullover", ("pullover", "sweater", "jumper"), False),
    ("dress", ("dress",), False),
    ("coat", ("coat", "jacket"), False),
    ("sandal", ("sandal", "sandals", "shoe"), True),
    ("shirt", ("shirt", "blouse"), False),
    ("sneaker", ("sneaker", "shoe", "trainer", "sneakers", "running shoe"), True),
    ("bag", ("bag", "handbag", "purse"), False),
    ("ankle boot", ("boot", "ankle boot", "boots", "shoe"), True),
)
