"""The equal-area CRS and polygonizing a mask: one home for predict and evaluate."""

from __future__ import annotations

import numpy as np
from affine import Affine
from pyproj import CRS, Transformer

from solarmap.geo import equal_area_crs, polygonize_mask


def test_equal_area_crs_is_centred_on_the_box_in_either_crs() -> None:
    utm = (500000.0, 5300000.0, 510000.0, 5310000.0)  # 10 km in UTM 33N
    crs = equal_area_crs(utm, "EPSG:32633")
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(
        505000.0, 5305000.0
    )
    laea = "+proj=laea +lat_0={:.6f} +lon_0={:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m"
    assert crs == CRS.from_proj4(laea.format(lat, lon))
    assert crs.axis_info[0].unit_name == "metre"
    assert equal_area_crs((lon - 1, lat - 1, lon + 1, lat + 1)) == crs  # lon/lat box, same centre
    assert equal_area_crs(None) == CRS.from_proj4(laea.format(0, 0))


def test_polygonize_mask_is_4_connected_with_holes_and_follows_the_transform() -> None:
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = True  # corner neighbours, and (1, 1) touches the ring's corner
    mask[2:6, 2:6] = True
    mask[3:5, 3:5] = False  # a hole
    four = polygonize_mask(mask, Affine.identity())
    assert len(four) == 3
    ring = max(four, key=lambda p: p.area)
    assert ring.area == 12 and len(ring.interiors) == 1
    assert len(polygonize_mask(mask, Affine.identity(), connectivity=8)) == 1
    (moved,) = polygonize_mask(mask[:1, :1], Affine(10, 0, 100, 0, -10, 50))
    assert moved.bounds == (100.0, 40.0, 110.0, 50.0)
    assert polygonize_mask(np.zeros((3, 3), bool), Affine.identity()) == []
