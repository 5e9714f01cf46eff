"""White, silver, grey and black paint differ in lightness only: the phrase side (which
achromatic name a colour phrase means), the pixel side (lightness of a candidate's achromatic
pixels) and the program telling a white car from a silver one that both read "white"."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_ros.language.colours import (
    ACHROMATIC_LIGHTNESS,
    achromatic_name,
    lightness_match,
)
from spatial_ros.language.parser import parse_refexpr
from spatial_ros.language.program import ObjectView, Program
from spatial_ros.spatial.predicates import Viewpoint
from spatial_ros.types import Box3D
from spatial_ros.vlm.appearance import pixel_lightness


@pytest.mark.parametrize(("phrase", "name"), [
    ("white", "white"), ("snow white", "white"), ("bright white", "white"), ("ivory", "white"),
    ("silver", "silver"), ("silvery", "silver"), ("metallic silver", "silver"),
    ("bright silver", "silver"), ("light gray", "silver"), ("gray", "gray"), ("grey", "gray"),
    ("charcoal", "gray"), ("black", "black"), ("jet black", "black"),
    ("red", None), ("navy", None), ("beige", None), ("nonsense", None)])
def test_achromatic_name_of_a_phrase(phrase, name):
    assert achromatic_name(phrase) == name


def test_lightness_match_is_one_sided_at_the_extremes():
    white, silver = ACHROMATIC_LIGHTNESS["white"], ACHROMATIC_LIGHTNESS["silver"]
    assert lightness_match("white", 1.0) == 1.0  # a sunlit white car saturates: still white
    assert lightness_match("black", 0.02) == 1.0
    assert lightness_match("silver", silver) == 1.0
    assert lightness_match("silver", white) < 0.3 and lightness_match("white", silver) < 0.3
    assert lightness_match("gray", 0.95) == 0.2  # the floor: a misread never rules out
    assert lightness_match("white", None) == 1.0


def test_pixel_lightness_reads_only_achromatic_pixels():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (190, 190, 192)  # silver paint
    img[:, 20:] = (200, 30, 30)  # red: not achromatic, ignored
    uv = np.stack(np.meshgrid(np.arange(2, 38, 2), np.arange(2, 18, 2)), -1).reshape(-1, 2)
    assert pixel_lightness(img, uv.astype(float)) == pytest.approx(192 / 255, abs=0.01)
    assert pixel_lightness(img, np.array([[30.0, 10.0]] * 10)) is None  # red only
    assert pixel_lightness(img, np.array([[-3.0, 1.0]])) is None


def test_the_white_car_and_the_silver_car_that_both_read_white():
    T = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 1.0]])
    vp = Viewpoint.from_camera_pose(T)

    def car(y, lightness):
        box = Box3D.from_yaw([10.0, y, -0.9], [4.0, 1.7, 1.5], 0.0, "velodyne")
        v = ObjectView(box, np.array([-y, 0.9, 10.0]), {"white": 0.6, "gray": 0.4},
                       label="car", lightness={"body": lightness, "all": lightness})
        v.colour_bands = {"body": {"white": 0.6, "gray": 0.4}}
        return v

    views = [car(3.0, 0.50), car(-3.0, 0.66), car(0.0, 0.34)]  # silver, white, grey
    prog = Program(views, vp)
    assert prog.resolve(parse_refexpr("the silver car")).index == 0
    assert prog.resolve(parse_refexpr("the white car")).index == 1
    assert prog.resolve(parse_refexpr("the grey car")).index == 2
    r = prog.resolve(parse_refexpr("the metallic silver sedan"))
    assert r.index == 0 and not r.ambiguous


def test_clothes_are_not_judged_by_lightness():
    """A white shirt in the shade of a body reads mid grey: "the pedestrian in white" still
    finds the only pedestrian, as the colour terms alone allow."""
    T = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0],
                  [0.0, 0.0, 0.0, 1.0]])
    box = Box3D.from_yaw([8.0, 1.0, -0.8], [0.5, 0.6, 1.75], 0.0, "velodyne")
    person = ObjectView(box, np.array([-1.0, 0.8, 8.0]), {"gray": 1.0}, label="pedestrian",
                        lightness={"torso": 0.44, "all": 0.44})
    prog = Program([person], Viewpoint.from_camera_pose(T))
    e = parse_refexpr("the pedestrian in white")
    assert prog.membership(e.np)[0] >= 0.2
    assert prog.resolve(e).index == 0
