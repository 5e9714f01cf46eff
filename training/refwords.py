"""The words people use for the simulator's objects: colour and noun synonyms (each maps back
to the simulator's term), its captions, and noun phrases in caption style with other words in
them. ``training.refqueries`` paraphrases with them; ``training.refer_samples`` trains on them.
"""

from __future__ import annotations

# Colour synonyms people use for the simulator's palette (each maps back to its term).
COLOUR_SYNONYMS = {
    "red": ("crimson", "scarlet", "ruby", "cherry red", "bright red", "dark red", "vermilion"),
    "green": ("emerald", "forest green", "grass green", "jade", "kelly green", "dark green"),
    "blue": ("navy blue", "azure", "cobalt", "royal blue", "sapphire", "dark blue", "bluish"),
    "yellow": ("lemon", "golden", "lemon yellow", "canary yellow", "bright yellow", "mustard"),
    "orange": ("tangerine", "bright orange", "pumpkin", "carrot orange", "orangish"),
    "purple": ("violet", "plum", "indigo", "purplish", "dark purple", "grape"),
    "white": ("ivory", "snow white", "off white", "pearl", "cream"),
    "black": ("ebony", "jet black", "coal black", "pitch black", "dark black"),
    "pink": ("hot pink", "rose", "bubblegum pink", "pinkish", "light pink", "salmon"),
    "cyan": ("teal", "turquoise", "aqua", "aquamarine", "sea blue"),
    "brown": ("chocolate", "chestnut", "coffee brown", "dark brown"),
    "gray": ("grey", "ash grey", "slate grey", "charcoal grey"),
    "silver": ("silvery", "metallic silver", "bright silver"),
}
NOUN_SYNONYMS = {
    "mug": ("cup", "coffee cup", "coffee mug", "teacup"),
    "bowl": ("dish", "salad bowl", "soup bowl", "basin"),
    "can": ("tin", "soda can", "tin can", "drink can"),
    "bottle": ("water bottle", "flask", "soda bottle"),
    "book": ("notebook", "textbook", "novel", "hardcover"),
    "box": ("crate", "carton", "package", "cardboard box"),
    "cube": ("block", "toy block", "building block"),
    "ball": ("sphere", "toy ball", "orb"),
    "car": ("automobile", "sedan", "vehicle", "passenger car", "hatchback"),
    "pedestrian": ("person", "man", "woman", "walker"),
    "cyclist": ("bicyclist", "biker", "bike rider", "rider"),
    "pole": ("post", "lamp post", "street light", "pillar"),
}


def caption(category: str, colour: str) -> str:
    """The simulator's own caption of an object."""
    from spatial_ros.sim.catalog import caption as sim_caption

    return sim_caption(category, colour)


def noun_phrase(category: str, colour: str, colour_word: str | None = None,
                noun: str | None = None) -> str:
    """A noun phrase in caption style ("the red mug", "the pedestrian in blue", "the pole")
    with another colour word or noun in place of the simulator's."""
    c = colour_word or colour
    n = noun or category
    if category in ("pedestrian", "cyclist"):
        return f"the {n} in {c}" if colour else f"the {n}"
    if category == "pole":
        return f"the {n}"
    return f"the {c} {n}"
