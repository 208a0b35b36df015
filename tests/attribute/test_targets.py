"""Targets: what is explained (regions, frozen object regions, windows around targets)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.windows import transform as window_transform
from shapely.geometry import Point, box

from attribute.targets import (
    RegionTarget,
    build_target,
    frozen_object_region,
    pixel_region,
    probability_to_logit,
    region_from_polygon,
    target_region,
    window_for_target,
)
from solarmap.errors import InputError
from tests.attribute.conftest import LinearSegmenter, box_region, make_window

X0, Y0 = 500000.0, 4000000.0
SCENE_TRANSFORM = Affine(10, 0, X0, 0, -10, Y0)


def value(f: RegionTarget, x: torch.Tensor) -> float:
    """``f(x)`` of one window as a float."""
    with torch.no_grad():
        return float(f(x)[0])


def pixel_box(r0: float, c0: float, r1: float, c1: float) -> object:
    """Map-coordinate polygon of the pixel box rows r0..r1, cols c0..c1 of the scene grid."""
    return box(X0 + c0 * 10, Y0 - r1 * 10, X0 + c1 * 10, Y0 - r0 * 10)


# --- RegionTarget ---------------------------------------------------------------------------


def test_region_target_sum_and_mean_are_the_analytic_values(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    f_sum = RegionTarget(linear_model, region)
    f_mean = RegionTarget(linear_model, torch.from_numpy(region), reduction="mean")
    want = linear_model.region_value(window_input, region)
    assert f_sum(window_input).shape == (1,)
    assert value(f_sum, window_input) == pytest.approx(want, rel=1e-5)
    assert value(f_mean, window_input) == pytest.approx(want / region.sum(), rel=1e-5)
    assert f_sum.n_pixels == region.sum() == 400


def test_region_target_maps_a_batch_to_one_value_per_input(
    linear_model: LinearSegmenter, region: np.ndarray
) -> None:
    xs = torch.cat([make_window(1), make_window(2), make_window(3)])
    out = RegionTarget(linear_model, region)(xs)
    want = [linear_model.region_value(xs[i : i + 1], region) for i in range(3)]
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5)


def test_region_target_rejects_bad_regions_and_inputs(
    linear_model: LinearSegmenter, window_input: torch.Tensor, region: np.ndarray
) -> None:
    with pytest.raises(InputError, match="empty"):
        RegionTarget(linear_model, np.zeros((64, 64), bool))
    with pytest.raises(InputError, match="H, W"):
        RegionTarget(linear_model, np.ones((1, 64, 64), bool))
    with pytest.raises(InputError, match="reduction"):
        RegionTarget(linear_model, region, reduction="max")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="region's size"):
        RegionTarget(linear_model, region)(window_input[..., :32, :32])


# --- regions from geometries ----------------------------------------------------------------


def test_region_from_polygon_burns_pixel_centres() -> None:
    region = region_from_polygon(pixel_box(2, 3, 5, 9), transform=SCENE_TRANSFORM, shape=(16, 16))
    assert region.dtype == bool
    np.testing.assert_array_equal(np.argwhere(region).min(0), [2, 3])
    np.testing.assert_array_equal(np.argwhere(region).max(0), [4, 8])
    assert region.sum() == 3 * 6


def test_region_from_polygon_tiny_polygon_falls_back_to_touched_pixels() -> None:
    # 2 m square inside pixel (4, 7), away from its centre: the centre rule burns nothing.
    tiny = box(X0 + 70.5, Y0 - 42.5, X0 + 72.5, Y0 - 40.5)
    region = region_from_polygon(tiny, transform=SCENE_TRANSFORM, shape=(16, 16))
    assert np.argwhere(region).tolist() == [[4, 7]]


def test_region_from_polygon_outside_or_empty_raises() -> None:
    with pytest.raises(InputError, match="does not overlap"):
        region_from_polygon(pixel_box(40, 40, 45, 45), transform=SCENE_TRANSFORM, shape=(16, 16))
    with pytest.raises(InputError, match="empty"):
        region_from_polygon(box(0, 0, 1, 1).buffer(-5), transform=SCENE_TRANSFORM, shape=(16, 16))


def test_pixel_region_is_the_pixel_holding_the_point() -> None:
    region = pixel_region((X0 + 35.0, Y0 - 72.0), transform=SCENE_TRANSFORM, shape=(16, 16))
    assert np.argwhere(region).tolist() == [[7, 3]]
    with pytest.raises(InputError, match="outside"):
        pixel_region(Point(X0 - 5, Y0 - 5), transform=SCENE_TRANSFORM, shape=(16, 16))
    with pytest.raises(InputError, match="point"):
        pixel_region(pixel_box(1, 1, 2, 2), transform=SCENE_TRANSFORM, shape=(16, 16))


# --- frozen object region -------------------------------------------------------------------


def _half_positive_window() -> tuple[LinearSegmenter, torch.Tensor, np.ndarray]:
    """A linear model whose logit is the first band, positive in the polygon's left half."""
    model = LinearSegmenter(weights=(1.0,) + (0.0,) * 9, bias=0.0)
    x = torch.full((1, 10, 64, 64), -1.0)
    x[0, 0, 20:40, 24:34] = 2.0  # left half of the polygon box, and nothing else, is solar
    return model, x, box_region()


def test_frozen_object_region_is_the_predicted_part_of_the_polygon() -> None:
    model, x, polygon = _half_positive_window()
    region = frozen_object_region(model, x, polygon, threshold_logit=0.0)
    want = np.zeros((64, 64), bool)
    want[20:40, 24:34] = True
    np.testing.assert_array_equal(region, want)


def test_frozen_region_does_not_move_when_the_input_is_perturbed() -> None:
    model, x, polygon = _half_positive_window()
    f = build_target(
        "object", pixel_box(20, 24, 40, 44), model=model, x=x, transform=SCENE_TRANSFORM,
        threshold_logit=0.0,
    )  # fmt: skip
    before = f.region_numpy()
    moved = x.clone()
    moved[0, 0, 20:40, 24:34] = -1.0  # the old object vanishes...
    moved[0, 0, 20:40, 34:44] = 3.0  # ...and the right half turns solar
    # Recomputing the object region on the perturbed input would move it:
    recomputed = frozen_object_region(model, moved, polygon, threshold_logit=0.0)
    assert not (recomputed & before).any()
    # The target reads the logits where the ORIGINAL prediction was positive.
    assert value(f, moved) == pytest.approx(-1.0 * before.sum())
    np.testing.assert_array_equal(f.region_numpy(), before)


def test_frozen_object_region_falls_back_to_the_polygon_when_nothing_is_positive() -> None:
    model, x, polygon = _half_positive_window()
    region = frozen_object_region(model, x, polygon, threshold_logit=10.0)
    np.testing.assert_array_equal(region, polygon)


def test_probability_to_logit() -> None:
    assert probability_to_logit(0.5) == 0.0
    assert probability_to_logit(0.8) == pytest.approx(math.log(4.0))
    with pytest.raises(InputError, match="probability"):
        probability_to_logit(1.0)


# --- build_target ---------------------------------------------------------------------------


def test_build_target_kinds(linear_model: LinearSegmenter, window_input: torch.Tensor) -> None:
    kw: dict[str, Any] = {"model": linear_model, "x": window_input, "transform": SCENE_TRANSFORM}
    polygon = build_target("polygon", pixel_box(20, 24, 40, 44), **kw)
    np.testing.assert_array_equal(polygon.region_numpy(), box_region())
    assert polygon.kind == "polygon"
    pixel = build_target("pixel", (X0 + 105.0, Y0 - 55.0), **kw)
    assert np.argwhere(pixel.region_numpy()).tolist() == [[5, 10]]
    valid = np.ones((64, 64), bool)
    valid[:, 48:] = False  # padding past the scene edge
    window = build_target("window", None, valid=valid, reduction="mean", **kw)
    np.testing.assert_array_equal(window.region_numpy(), valid)
    want = linear_model.region_value(window_input, valid, mean=True)
    assert value(window, window_input) == pytest.approx(want, rel=1e-5)


def test_build_target_errors(linear_model: LinearSegmenter, window_input: torch.Tensor) -> None:
    kw: dict[str, Any] = {"model": linear_model, "x": window_input, "transform": SCENE_TRANSFORM}
    with pytest.raises(InputError, match="threshold"):
        build_target("object", pixel_box(20, 24, 40, 44), **kw)
    with pytest.raises(InputError, match="unknown target kind"):
        build_target("blob", pixel_box(20, 24, 40, 44), **kw)  # type: ignore[arg-type]
    no_valid = np.zeros((64, 64), bool)
    with pytest.raises(InputError, match="no valid pixel"):
        target_region("window", transform=SCENE_TRANSFORM, shape=(64, 64), valid=no_valid)


# --- window_for_target ----------------------------------------------------------------------


def _covers(win: object, r0: int, c0: int, r1: int, c1: int) -> bool:
    return (
        win.row_off <= r0  # type: ignore[attr-defined]
        and win.col_off <= c0  # type: ignore[attr-defined]
        and win.row_off + win.height >= r1  # type: ignore[attr-defined]
        and win.col_off + win.width >= c1  # type: ignore[attr-defined]
    )


def test_window_for_target_adds_margin_and_rounds_to_the_multiple() -> None:
    win = window_for_target(
        pixel_box(50, 100, 60, 130), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300)
    )
    assert (win.height, win.width) == (96, 96)  # 10+64 → 96, 30+64 → 96
    assert _covers(win, 50 - 32, 100 - 32, 60 + 32, 130 + 32)
    # centred: the extra rows split evenly around target + margin
    assert (win.row_off, win.col_off) == (50 - 32 - 11, 100 - 32 - 1)
    small = window_for_target(
        pixel_box(50, 100, 60, 130), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300),
        margin_px=4, multiple=8, min_size=16,
    )  # fmt: skip
    assert (small.height, small.width) == (24, 40)
    assert _covers(small, 46, 96, 64, 134)


def test_window_for_target_point_gets_the_minimum_size() -> None:
    win = window_for_target(
        Point(X0 + 1005.0, Y0 - 1005.0), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300),
        margin_px=8, multiple=32, min_size=64,
    )  # fmt: skip
    assert (win.height, win.width) == (64, 64)
    assert _covers(win, 100 - 8, 100 - 8, 101 + 8, 101 + 8)


def test_window_for_target_is_shifted_inside_the_scene() -> None:
    win = window_for_target(
        pixel_box(0, 290, 5, 300), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300)
    )
    assert (win.row_off, win.col_off) == (0, 300 - win.width)
    assert win.row_off + win.height <= 200
    assert _covers(win, 0, 290, 5, 300)
    # The window's own grid puts the target polygon at the right pixels.
    t = window_transform(win, SCENE_TRANSFORM)
    shape = (int(win.height), int(win.width))
    region = region_from_polygon(pixel_box(0, 290, 5, 300), transform=t, shape=shape)
    assert region.sum() == 50
    assert np.argwhere(region).max(0).tolist() == [4, shape[1] - 1]


def test_window_larger_than_the_scene_covers_it_and_extends_past() -> None:
    win = window_for_target(
        pixel_box(10, 10, 20, 20), scene_transform=SCENE_TRANSFORM, scene_shape=(40, 50)
    )
    assert (win.height, win.width) == (96, 96)
    assert win.row_off < 0 and win.col_off < 0
    assert _covers(win, 0, 0, 40, 50)  # the whole scene; the caller pads the rest


def test_window_for_target_clips_a_target_reaching_past_the_scene() -> None:
    win = window_for_target(
        pixel_box(-30, -30, 10, 10), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300)
    )
    assert (win.row_off, win.col_off) == (0, 0)
    assert (win.height, win.width) == (96, 96)  # only the 10 px inside the scene count


def test_window_for_target_outside_the_scene_raises() -> None:
    with pytest.raises(InputError, match="outside"):
        window_for_target(
            pixel_box(250, 10, 260, 20), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300)
        )
    with pytest.raises(InputError, match="outside"):
        window_for_target((X0 - 100.0, Y0), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300))
    with pytest.raises(InputError, match="invalid"):
        window_for_target(
            (X0, Y0), scene_transform=SCENE_TRANSFORM, scene_shape=(200, 300), multiple=0
        )
