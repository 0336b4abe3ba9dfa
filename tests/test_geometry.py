import math

import pytest

from svtr_label.core.geometry import (
    bounding_quad,
    clamp,
    from_percent,
    is_self_intersecting,
    order_clockwise,
    polygon_area,
    quad_iou,
    rotated_rect_corners,
    rotated_rect_from_quad,
    to_percent,
)


def close(a, b, tol=1e-6):
    return all(math.isclose(p[0], q[0], abs_tol=tol) and math.isclose(p[1], q[1], abs_tol=tol) for p, q in zip(a, b))


def test_order_clockwise_from_any_start():
    quad = [(10, 10), (110, 12), (108, 40), (8, 38)]
    for k in range(4):
        shuffled = quad[k:] + quad[:k]
        assert list(order_clockwise(shuffled)) == [tuple(map(float, p)) for p in quad]
    assert list(order_clockwise(list(reversed(quad)))) == [tuple(map(float, p)) for p in quad]


def test_rotation_is_about_the_top_left_corner_clockwise_on_screen():
    # Label Studio: a 100x20 box at (50, 50) rotated 90 degrees hangs down-left of its corner.
    tl, tr, br, bl = rotated_rect_corners(50, 50, 100, 20, 90)
    assert close([tl, tr, br, bl], [(50, 50), (50, 150), (30, 150), (30, 50)])


@pytest.mark.parametrize("angle", [0, 5, 30, 89.5, 90, 135, 180, 270, 359])
def test_rotated_rectangle_round_trip(angle):
    corners = rotated_rect_corners(200, 100, 120, 30, angle)
    x, y, w, h, rot = rotated_rect_from_quad(corners)
    assert close(rotated_rect_corners(x, y, w, h, rot), corners, tol=1e-6)
    assert (x, y) == pytest.approx((200, 100))
    assert (w, h) == pytest.approx((120, 30))


def test_non_rectangular_quad_gets_covering_rectangle_starting_near_its_first_corner():
    quad = [(10, 10), (110, 15), (112, 45), (8, 40)]
    x, y, w, h, rot = rotated_rect_from_quad(quad)
    rect = rotated_rect_corners(x, y, w, h, rot)
    assert quad_iou(rect, quad) > 0.85
    assert polygon_area(rect) >= polygon_area(quad) - 1e-6
    assert math.dist(rect[0], quad[0]) < 6


def test_vertical_and_tiny_boxes():
    vertical = rotated_rect_corners(40, 10, 200, 12, 90)  # a vertical text column
    assert close(rotated_rect_corners(*rotated_rect_from_quad(vertical)), vertical)
    tiny = [(5, 5), (6, 5), (6, 6), (5, 6)]
    x, y, w, h, rot = rotated_rect_from_quad(tiny)
    assert (w, h) == pytest.approx((1, 1))
    assert polygon_area(tiny) == 1


def test_percent_conversion_clamps_to_the_image():
    pts = to_percent([(-5, 10), (210, 50)], 200, 100)
    assert pts == [[0.0, 10.0], [100.0, 50.0]]
    assert from_percent([[50, 50]], 200, 100) == [(100.0, 50.0)]
    assert clamp(101, 0, 100) == 100


def test_self_intersection_and_area():
    assert is_self_intersecting([(0, 0), (10, 10), (10, 0), (0, 10)])  # bow tie
    assert not is_self_intersecting([(0, 0), (10, 0), (10, 10), (0, 10)])
    assert polygon_area([(0, 0), (10, 0), (10, 5), (0, 5)]) == 50


def test_bounding_quad_of_polygon_with_more_points():
    poly = [(0, 0), (50, -2), (100, 0), (100, 20), (50, 22), (0, 20)]
    quad = bounding_quad(poly)
    assert len(quad) == 4
    assert quad_iou(quad, poly) > 0.9
