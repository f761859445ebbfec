"""Regions are boxes an operator can see: never a pixel wide, never the whole frame by default."""

import numpy as np

from kizu.scoring.regions import find_regions, min_box, peak_region


def test_a_one_pixel_hot_spot_at_the_edge_gets_a_visible_box_inside_the_image():
    m = np.zeros((100, 60), np.float32)
    m[0, 59] = 5.0
    (r,) = find_regions(m, 1.0)
    side = min_box(m.shape)
    assert side == 8 and r["width"] == r["height"] == side and r["area"] == 1 and r["peak"] == 5.0
    assert 0 <= r["x"] and r["x"] + r["width"] <= 60 and r["y"] == 0
    assert r["x"] <= 59 < r["x"] + r["width"]


def test_large_images_get_proportionally_larger_minimum_boxes_and_big_regions_keep_their_size():
    assert min_box((1000, 800)) == 32 and min_box((4, 5)) == 4
    m = np.zeros((200, 200), np.float32)
    m[50:120, 30:40] = 2.0
    (r,) = find_regions(m, 1.0)
    assert (r["x"], r["y"], r["width"], r["height"]) == (30, 50, 10, 70)


def test_regions_are_sorted_by_peak_and_nothing_above_an_infinite_threshold():
    m = np.zeros((50, 50), np.float32)
    m[5, 5], m[40, 40] = 2.0, 3.0
    assert [r["peak"] for r in find_regions(m, 1.0)] == [3.0, 2.0]
    assert find_regions(m, np.inf) == []


def test_the_peak_region_is_around_the_maximum_not_the_whole_frame():
    yy, xx = np.mgrid[0:64, 0:64]
    m = (0.1 + np.exp(-((yy - 20) ** 2 + (xx - 45) ** 2) / 20.0)).astype(np.float32)
    (r,) = peak_region(m)
    assert r["x"] <= 45 < r["x"] + r["width"] and r["y"] <= 20 < r["y"] + r["height"]
    assert r["width"] < 32 and r["height"] < 32
    assert peak_region(np.ones((10, 10), np.float32)) == []
