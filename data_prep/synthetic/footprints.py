"""Real solar-farm outlines from a vector file, as shapes for the synthetic farms.

:func:`read_footprints` reads the polygons of a file (through :func:`solarmap.geo.read_vector`);
:meth:`FootprintShapes.draw` gives one of them in local metres: reprojected to an equal-area CRS
centred on it, with far-off fragments dropped, rescaled to the area asked for and rotated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from pyproj import Transformer
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from solarmap.errors import InputError
from solarmap.geo import check_vector_crs, equal_area_crs, read_vector

__all__ = ["FootprintShapes", "read_footprints"]

#: Parts of a multipolygon smaller than this share of its largest part are dropped.
_MIN_PART_SHARE: Final = 0.1
#: Parts further than this many (square roots of the largest part's area) from it are dropped:
#: merged records join plants kilometres apart.
_MAX_PART_GAP: Final = 1.0


class FootprintShapes:
    """The polygons of a footprints file, drawn from one at a time.

    Args:
        geometries: Polygons and multipolygons in ``crs``.
        crs: Their CRS (anything pyproj accepts).
        source: The file they came from (for messages).
    """

    def __init__(self, geometries: list[BaseGeometry], crs: Any, source: Path) -> None:
        self.geometries = geometries
        self.crs = crs
        self.source = source
        self._units: dict[int, BaseGeometry] = {}

    def __len__(self) -> int:
        return len(self.geometries)

    def draw(self, rng: np.random.Generator, area_m2: float) -> tuple[BaseGeometry, float, int]:
        """A random outline in local metres, centred near 0, of ``area_m2``.

        Returns:
            The outline (a polygon or multipolygon, possibly with holes), the angle it was
            rotated by (degrees, counter-clockwise) and the index of the polygon drawn.
        """
        i = int(rng.integers(len(self.geometries)))
        unit = self._unit_shape(i)
        angle = float(rng.uniform(0.0, 360.0))
        k = math.sqrt(area_m2)
        shape = affinity.rotate(affinity.scale(unit, k, k, origin=(0, 0)), angle, origin=(0, 0))
        return shape, angle, i

    def _unit_shape(self, i: int) -> BaseGeometry:
        """Polygon ``i`` in metres of an equal-area CRS centred on it, its far-off fragments
        dropped, centred on its centroid and scaled to an area of 1 (made once)."""
        if i not in self._units:
            self._units[i] = self._project(i)
        return self._units[i]

    def _project(self, i: int) -> BaseGeometry:
        geom = self.geometries[i]
        to_metres = Transformer.from_crs(
            self.crs, equal_area_crs(geom.bounds, self.crs), always_xy=True
        )
        metric = shapely.transform(
            geom, lambda xy: np.column_stack(to_metres.transform(xy[:, 0], xy[:, 1]))
        )
        metric = _main_parts(shapely.make_valid(metric))
        c = metric.centroid
        metric = affinity.translate(metric, -c.x, -c.y)
        k = 1.0 / math.sqrt(metric.area)
        return affinity.scale(metric, k, k, origin=(0, 0))


def _main_parts(geom: BaseGeometry) -> BaseGeometry:
    """The polygon parts of ``geom`` near its largest one and not much smaller."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and p.area > 0]
    if len(parts) == 1:
        return parts[0]
    big = max(parts, key=lambda p: p.area)
    gap = _MAX_PART_GAP * math.sqrt(big.area)
    keep = [
        p
        for p in parts
        if p is big or (p.area >= _MIN_PART_SHARE * big.area and p.distance(big) <= gap)
    ]
    return MultiPolygon(keep) if len(keep) > 1 else big


def read_footprints(path: str | Path) -> FootprintShapes:
    """The solar-farm polygons of a vector file (GeoJSON, GeoPackage, Shapefile...).

    Args:
        path: The file.

    Returns:
        Its polygons and multipolygons (other geometries are skipped).

    Raises:
        InputFileError: if the file is missing, empty or not a vector file.
        InputError: if it has no CRS, or no polygon with an area.
    """
    p = Path(path)
    gdf = read_vector(p, what="solar-farm footprints file")
    check_vector_crs(gdf, p)
    geoms = [
        g
        for g in gdf.geometry
        if g is not None and not g.is_empty and g.geom_type in ("Polygon", "MultiPolygon")
    ]
    geoms = [g for g in geoms if shapely.make_valid(g).area > 0]
    if not geoms:
        raise InputError(
            f"{p}: no polygons to draw farm footprints from; give a file of solar-farm polygons"
        )
    return FootprintShapes(geoms, gdf.crs, p)
