"""The words the referring-expression parser knows: object nouns (synonyms, plurals,
hypernyms per domain), size and material adjectives, spatial words, numbers.

Categories are the ones the specialists and the simulator name (tabletop: mug, bowl, can,
bottle, book, box, cube, ball; street: car, van, truck, pedestrian, cyclist, pole; indoor:
SUN RGB-D's common classes). A noun the lexicon does not know is still parsed as the head of
its phrase (open vocabulary): it then has no category, and the model alone scores candidates
for it.

Words are matched lower case; multi-word entries ("coffee cup", "lamp post") are matched
longest first by the parser.
"""

from __future__ import annotations

import functools

# canonical category -> (domain, nouns that name it). Plurals are added by ``_plural``.
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    # tabletop (the simulator's catalog)
    "mug": ("tabletop", ("mug", "cup", "coffee cup", "coffee mug", "teacup", "tea cup",
                         "tea mug", "beaker", "tumbler")),
    "bowl": ("tabletop", ("bowl", "dish", "basin", "salad bowl", "soup bowl",
                          "cereal bowl", "serving bowl")),
    "can": ("tabletop", ("can", "tin", "tin can", "soda can", "soup can", "beer can",
                         "drink can", "cola can", "canister", "soda", "tinned can")),
    "bottle": ("tabletop", ("bottle", "water bottle", "flask", "soda bottle", "wine bottle",
                            "drink bottle", "plastic bottle", "glass bottle")),
    "book": ("tabletop", ("book", "notebook", "novel", "textbook", "paperback", "hardcover",
                          "hardback", "booklet", "journal", "manual", "diary")),
    "box": ("tabletop", ("box", "crate", "carton", "package", "parcel", "case", "chest",
                         "cardboard box", "shoebox", "shoe box", "cuboid", "packet")),
    "cube": ("tabletop", ("cube", "block", "die", "dice", "square block", "toy block",
                          "building block", "brick")),
    "ball": ("tabletop", ("ball", "sphere", "orb", "globe", "marble", "toy ball")),
    "gripper": ("tabletop", ("gripper", "robot gripper", "end effector", "robot hand",
                             "claw", "robot arm", "manipulator")),
    # street (KITTI classes + the simulator's street catalog)
    "car": ("street", ("car", "automobile", "auto", "sedan", "saloon", "hatchback", "coupe",
                       "passenger car", "taxi", "cab", "station wagon", "estate car",
                       "parked car", "motorcar")),
    "van": ("street", ("van", "minivan", "minibus", "camper", "delivery van", "suv",
                       "people carrier", "mpv")),
    "truck": ("street", ("truck", "lorry", "pickup", "pickup truck", "pick up truck",
                         "trailer", "semi", "tractor trailer", "bus", "tram")),
    "pedestrian": ("street", ("pedestrian", "man", "woman", "walker", "guy", "lady",
                              "child", "kid", "boy", "girl", "human", "gentleman",
                              "passerby", "passer by", "jogger", "runner")),
    "cyclist": ("street", ("cyclist", "bicyclist", "biker", "bike rider", "bicycle rider",
                           "rider", "bicycle", "bike", "cycle", "bicycle with rider")),
    "pole": ("street", ("pole", "post", "lamp post", "lamppost", "street lamp",
                        "street light", "streetlight", "signpost", "sign post", "pillar",
                        "bollard", "column", "lamp pole", "traffic pole", "utility pole")),
    # indoor (SUN RGB-D's frequent classes)
    "bed": ("indoor", ("bed",)),
    "night_stand": ("indoor", ("night stand", "nightstand", "bedside table", "night table")),
    "ottoman": ("indoor", ("ottoman", "footstool", "pouf", "pouffe")),
    "dresser": ("indoor", ("dresser", "chest of drawers", "drawers", "cabinet")),
    "dresser_mirror": ("indoor", ("mirror", "dresser mirror")),
    "lamp": ("indoor", ("lamp", "desk lamp", "table lamp", "floor lamp")),
    "chair": ("indoor", ("chair", "stool", "armchair", "seat")),
    "sofa": ("indoor", ("sofa", "couch", "settee")),
    "table": ("indoor", ("table", "desk", "coffee table", "dining table")),
    "pillow": ("indoor", ("pillow", "cushion")),
    "monitor": ("indoor", ("monitor", "screen", "tv", "television", "display")),
    "shelf": ("indoor", ("shelf", "bookshelf", "bookcase")),
}
# Nouns that admit several categories (hypernyms). "object"-like words admit any.
ANY = "*"
HYPERNYMS: dict[str, tuple[str, ...]] = {
    "object": (ANY,), "thing": (ANY,), "item": (ANY,), "one": (ANY,), "stuff": (ANY,),
    "entity": (ANY,), "something": (ANY,), "article": (ANY,), "it": (ANY,),
    "container": ("mug", "bowl", "can", "bottle", "box"),
    "vessel": ("mug", "bowl", "bottle"),
    "drink": ("can", "bottle", "mug"), "beverage": ("can", "bottle"),
    "toy": ("ball", "cube"), "shape": ("cube", "ball"),
    "vehicle": ("car", "van", "truck"), "automobile": ("car", "van"),
    "person": ("pedestrian", "cyclist"), "people": ("pedestrian", "cyclist"),
    "someone": ("pedestrian", "cyclist"), "somebody": ("pedestrian", "cyclist"),
    "road user": ("car", "van", "truck", "pedestrian", "cyclist"),
    "furniture": ("bed", "night_stand", "ottoman", "dresser", "chair", "sofa", "table",
                  "shelf"),
}
_IRREGULAR_PLURALS = {"people": "person", "men": "man", "women": "woman", "children": "child",
                      "dice": "die", "boxes": "box", "shelves": "shelf", "benches": "bench",
                      "buses": "bus", "couches": "couch", "glasses": "glass",
                      "parcels": "parcel", "passersby": "passerby", "passers by": "passer by"}
# Words that name a surface, not an object (goals: "above the table").
SURFACES = frozenset({"table", "floor", "ground", "surface", "tabletop", "desk", "counter",
                      "road", "street"})

# Relative size adjectives: word -> (measure, direction). They compare within the phrase's
# category ("the big box" = the bigger of the boxes); alone they mean nothing.
SIZE_ADJECTIVES: dict[str, tuple[str, str]] = {
    "big": ("volume", "max"), "large": ("volume", "max"), "huge": ("volume", "max"),
    "giant": ("volume", "max"), "bigger": ("volume", "max"), "larger": ("volume", "max"),
    "biggest": ("volume", "max"), "largest": ("volume", "max"), "enormous": ("volume", "max"),
    "small": ("volume", "min"), "little": ("volume", "min"), "tiny": ("volume", "min"),
    "mini": ("volume", "min"), "smaller": ("volume", "min"), "smallest": ("volume", "min"),
    "tall": ("height", "max"), "taller": ("height", "max"), "tallest": ("height", "max"),
    "short": ("height", "min"), "shorter": ("height", "min"), "shortest": ("height", "min"),
    "wide": ("width", "max"), "wider": ("width", "max"), "widest": ("width", "max"),
    "broad": ("width", "max"), "broader": ("width", "max"), "broadest": ("width", "max"),
    "narrow": ("width", "min"), "narrower": ("width", "min"), "narrowest": ("width", "min"),
    "thin": ("width", "min"), "thinner": ("width", "min"), "thinnest": ("width", "min"),
    "slim": ("width", "min"), "slimmer": ("width", "min"), "slimmest": ("width", "min"),
    "long": ("length", "max"), "longer": ("length", "max"), "longest": ("length", "max"),
    "fat": ("width", "max"), "fatter": ("width", "max"), "fattest": ("width", "max"),
}
# Viewer-relative position words used as adjectives or superlatives: word -> axis.
POSITION_WORDS: dict[str, str] = {
    "left": "left", "leftmost": "left", "left most": "left", "furthest left": "left",
    "farthest left": "left", "far left": "left",
    "right": "right", "rightmost": "right", "right most": "right",
    "furthest right": "right", "farthest right": "right", "far right": "right",
    "middle": "middle", "center": "middle", "centre": "middle", "central": "middle",
    "closest": "near", "nearest": "near", "nearer": "near", "closer": "near", "near": "near",
    "close": "near", "front": "near", "frontmost": "near", "foremost": "near",
    "farthest": "far", "furthest": "far", "farther": "far", "further": "far", "far": "far",
    "distant": "far", "back": "far", "rear": "far", "backmost": "far", "hindmost": "far",
    "remotest": "far",
    "highest": "high", "higher": "high", "top": "high", "topmost": "high", "upper": "high",
    "uppermost": "high",
    "lowest": "low", "lower": "low", "bottom": "low", "bottommost": "low",
}
MATERIALS = frozenset({"wooden", "wood", "metal", "metallic", "steel", "plastic", "glass",
                       "ceramic", "porcelain", "paper", "cardboard", "rubber", "leather",
                       "aluminium", "aluminum", "tin", "cloth", "fabric", "stone", "concrete"})
# Adjectives the parser recognises but the grounding cannot check (reported as unchecked).
UNCHECKED = frozenset({"shiny", "matte", "empty", "full", "open", "closed", "round", "square",
                       "new", "old", "clean", "dirty", "plain", "striped", "spotted",
                       "parked", "moving", "standing", "walking", "waiting", "lone", "single",
                       "solid", "hollow", "heavy", "light", "pretty", "nice", "cute",
                       "coloured", "colored", "painted", "bright", "dark", "main",
                       "rectangular", "cylindrical", "spherical", "flat", "upright",
                       "fancy", "simple", "favourite", "favorite", "other", "same", "whole"})
DETERMINERS = frozenset({"the", "a", "an", "this", "that", "these", "those", "any", "some",
                         "my", "our", "your", "its", "one", "each", "every"})
ORDINALS: dict[str, int] = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "last": -1,
}
NUMBER_WORDS: dict[str, float] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "a": 1, "an": 1,
    "half": 0.5, "couple": 2, "few": 3, "dozen": 12, "single": 1, "pair": 2, "both": 2,
}
# Words for the viewer (the camera / the robot): "closest to me", "nearest the camera".
VIEWER_WORDS = frozenset({"me", "us", "you", "camera", "robot", "viewer", "sensor", "here",
                          "yourself", "myself", "observer", "ego", "vehicle's", "car's"})


def _plural(noun: str) -> list[str]:
    """Regular English plurals of a noun (last word of a multi-word noun)."""
    *head, last = noun.split()
    if last.endswith(("s", "x", "ch", "sh", "z")):
        forms = [last + "es"]
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        forms = [last[:-1] + "ies"]
    elif last.endswith("f"):
        forms = [last[:-1] + "ves", last + "s"]
    else:
        forms = [last + "s"]
    return [" ".join([*head, f]) for f in forms]


@functools.lru_cache(maxsize=1)
def noun_table() -> dict[str, tuple[tuple[str, ...], bool]]:
    """Every noun phrase the lexicon knows -> (categories it admits, plural?)."""
    table: dict[str, tuple[tuple[str, ...], bool]] = {}
    for cat, (_, nouns) in CATEGORIES.items():
        for n in nouns:
            table.setdefault(n, ((cat,), False))
    for word, cats in HYPERNYMS.items():
        table[word] = (cats, word == "people")
    for n, (cats, _) in list(table.items()):
        for p in _plural(n):
            table.setdefault(p, (cats, True))
    for p, s in _IRREGULAR_PLURALS.items():
        if s in table:
            table[p] = (table[s][0], True)
    table["people"] = (HYPERNYMS["people"], True)
    return table


@functools.lru_cache(maxsize=1)
def max_noun_words() -> int:
    return max(len(n.split()) for n in noun_table())


def domain_of(category: str) -> str | None:
    entry = CATEGORIES.get(category)
    return entry[0] if entry else None


def categories_in(domain: str) -> tuple[str, ...]:
    return tuple(c for c, (d, _) in CATEGORIES.items() if d == domain)
