"""Rasterizing labels: the centre rule, the ignore ring, invalid pixels, real reference masks."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import Polygon, box

from data_prep.rasterize import IGNORE, SOLAR, rasterize_labels, rasterize_window
from solarmap.errors import InputError
from tests.conftest import AUSTRIA, needs_realdata

T = Affine(10, 0, 0, 0, -10, 100)  # 10×10 grid of 10 m pixels, y from 100 down to 0


def test_centre_rule_burns_pixels_whose_centre_is_inside() -> None:
    # x 10..42, y 58..90: centres at 15,25,35 in x and 65,75,85 in y are inside → 3×3.
    mask = rasterize_labels([box(10, 58, 42, 90)], transform=T, shape=(10, 10))
    assert mask.dtype == np.uint8
    assert mask.sum() == 9
    assert (mask[1:4, 1:4] == SOLAR).all()


def test_hole_is_background() -> None:
    outer = [(0, 0), (100, 0), (100, 100), (0, 100)]
    hole = [(30, 30), (70, 30), (70, 70), (30, 70)]
    mask = rasterize_labels([Polygon(outer, [hole])], transform=T, shape=(10, 10))
    assert mask.sum() == 100 - 16
    assert (mask[3:7, 3:7] == 0).all()


def test_boundary_ring_marks_both_sides_ignore() -> None:
    mask = rasterize_labels([box(20, 20, 80, 80)], transform=T, shape=(10, 10), boundary=1)
    solar = rasterize_labels([box(20, 20, 80, 80)], transform=T, shape=(10, 10))
    # 6×6 solar block; ring of 1 px inside and outside becomes ignore; 4×4 core stays solar.
    assert (mask == SOLAR).sum() == 16
    assert (mask == IGNORE).sum() == 64 - 16
    assert (mask[solar == 0] != SOLAR).all()


def test_invalid_pixels_become_ignore() -> None:
    valid = np.ones((10, 10), bool)
    valid[0, :] = False
    mask = rasterize_labels([box(0, 0, 100, 100)], transform=T, shape=(10, 10), valid=valid)
    assert (mask[0] == IGNORE).all()
    assert (mask[1:] == SOLAR).all()


def test_window_agrees_with_full_grid_including_ring() -> None:
    from rasterio.windows import Window

    geoms = [box(12, 14, 77, 63), box(5, 70, 30, 95)]
    full = rasterize_labels(geoms, transform=T, shape=(10, 10), boundary=2)
    part = rasterize_window(geoms, scene_transform=T, window=Window(3, 2, 5, 6), boundary=2)
    np.testing.assert_array_equal(part, full[2:8, 3:8])


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        rasterize_labels([], transform=T, shape=(10, 10), boundary=-1)
    with pytest.raises(InputError):
        rasterize_labels([], transform=T, shape=(10, 10), valid=np.ones((3, 3), bool))
    assert rasterize_labels([], transform=T, shape=(4, 5)).sum() == 0


@pytest.mark.realdata
@needs_realdata
def test_agrees_with_reference_masks_on_real_chips() -> None:
    import geopandas as gpd
    import rasterio

    labels = gpd.read_file(AUSTRIA / "osm_solar_polygons_austria.geojson")
    masks = sorted(AUSTRIA.glob("mask_*.tif"))
    assert masks
    for path in masks:
        with rasterio.open(path) as src:
            ref = src.read(1)
            local = labels.to_crs(src.crs)
            local = local[local.intersects(box(*src.bounds))]
            ours = rasterize_labels(local, transform=src.transform, shape=src.shape)
        np.testing.assert_array_equal(ours, ref, err_msg=path.name)
