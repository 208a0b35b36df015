"""OSM labels of a synthetic region as OSM XML 0.6, tagged as OpenStreetMap tags solar farms.

Mapped plants are closed ways or multipolygon relations (always when they have holes or several
parts), panel rows are generators, some farms are mapped only by their generators (orphans)
and some not at all, as incomplete as real OSM. A preset plant is mapped by its fence, some
metres outside its panels; rooftop plants are tagged ``location=roof``. Roads and unrelated
land use (villages, water, farmland) are mapped too, so a reader has to pick the solar features
out.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterator
from typing import Any, Final
from xml.sax.saxutils import quoteattr

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.warp import transform_bounds
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from data_prep.synthetic.config import GENERATOR_VERSION, RegionConfig
from data_prep.synthetic.farms import Farm
from data_prep.synthetic.fields import rng_for
from data_prep.synthetic.grid import Grid
from data_prep.synthetic.landscape import Land
from solarmap.geo import polygonize_mask

__all__ = ["build_osm_xml"]

_OSM_VERSIONS: Final = (1, 2, 3)


class _OsmBuilder:
    """Collects nodes, ways and relations in UTM, writes OSM XML 0.6 in WGS84."""

    def __init__(self, grid: Grid, rng: np.random.Generator, date: dt.date) -> None:
        self.grid = grid
        self.rng = rng
        self.date = date
        self.xy: list[NDArray[np.float64]] = []
        self.n_nodes = 0
        self.node_meta: list[tuple[int, str]] = []  # (count, timestamp) runs of nodes
        self.ways: list[tuple[int, int, bool, tuple[tuple[str, str], ...], tuple[int, str]]] = []
        self.relations: list[
            tuple[list[tuple[int, str]], tuple[tuple[str, str], ...], tuple[int, str]]
        ] = []

    def meta(self) -> tuple[int, str]:
        """A version and an edit time some months to years before the scene."""
        stamp = dt.datetime.combine(self.date, dt.time(0)) - dt.timedelta(
            days=int(self.rng.integers(30, 1500)), seconds=int(self.rng.integers(0, 86400))
        )
        version = int(self.rng.choice(_OSM_VERSIONS, p=[0.6, 0.3, 0.1]))
        return version, stamp.strftime("%Y-%m-%dT%H:%M:%SZ")

    def way(
        self,
        coords: Any,
        tags: dict[str, str],
        *,
        closed: bool,
        meta: tuple[int, str] | None = None,
    ) -> int:
        """Add a way (its nodes first); ``coords`` ``[N, 2]`` in the scene CRS. Returns its id."""
        pts = np.asarray(coords, dtype=np.float64)
        if closed and len(pts) > 1 and (pts[0] == pts[-1]).all():
            pts = pts[:-1]
        meta = meta or self.meta()
        first = self.n_nodes + 1
        self.xy.append(pts)
        self.n_nodes += len(pts)
        self.node_meta.append((len(pts), meta[1]))
        self.ways.append((first, len(pts), closed, tuple(tags.items()), meta))
        return len(self.ways)

    def area(self, geom: BaseGeometry, tags: dict[str, str], *, relation: bool) -> None:
        """A polygon as a closed way, or as a multipolygon relation (always when holes/parts)."""
        polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
        meta = self.meta()
        if not relation and len(polys) == 1 and not polys[0].interiors:
            self.way(polys[0].exterior.coords, tags, closed=True, meta=meta)
            return
        members: list[tuple[int, str]] = []
        for p in polys:
            members.append((self.way(p.exterior.coords, {}, closed=True, meta=meta), "outer"))
            for ring in p.interiors:
                members.append((self.way(ring.coords, {}, closed=True, meta=meta), "inner"))
        self.relations.append((members, (("type", "multipolygon"), *tags.items()), meta))

    def xml(self) -> str:
        to_ll = Transformer.from_crs(self.grid.crs, 4326, always_xy=True)
        xy = np.concatenate(self.xy) if self.xy else np.zeros((0, 2))
        lon, lat = to_ll.transform(xy[:, 0], xy[:, 1])
        w, s, e, n = transform_bounds(self.grid.crs, "EPSG:4326", *self.grid.bounds, densify_pts=21)
        out = [
            "<?xml version='1.0' encoding='UTF-8'?>",
            '<osm version="0.6" generator="solarmap synthetic '
            f'{GENERATOR_VERSION}" copyright="synthetic data, no OpenStreetMap content">',
            f'  <bounds minlat="{s:.7f}" minlon="{w:.7f}" maxlat="{n:.7f}" maxlon="{e:.7f}"/>',
        ]
        stamps = np.repeat([m for _, m in self.node_meta], [k for k, _ in self.node_meta])
        out.extend(
            f'  <node id="{i}" version="1" timestamp="{t}" lat="{la:.7f}" lon="{lo:.7f}"/>'
            for i, t, la, lo in zip(
                range(1, len(xy) + 1), stamps.tolist(), lat.tolist(), lon.tolist(), strict=True
            )
        )
        for wid, (first, count, closed, tags, (version, stamp)) in enumerate(self.ways, start=1):
            out.append(f'  <way id="{wid}" version="{version}" timestamp="{stamp}">')
            refs = list(range(first, first + count)) + ([first] if closed else [])
            out.extend(f'    <nd ref="{r}"/>' for r in refs)
            out.extend(_tag_lines(tags))
            out.append("  </way>")
        for rid, (members, tags, (version, stamp)) in enumerate(self.relations, start=1):
            out.append(f'  <relation id="{rid}" version="{version}" timestamp="{stamp}">')
            out.extend(
                f'    <member type="way" ref="{ref}" role="{role}"/>' for ref, role in members
            )
            out.extend(_tag_lines(tags))
            out.append("  </relation>")
        out.append("</osm>")
        return "\n".join(out) + "\n"


@functools.lru_cache(maxsize=256)
def _tag_lines(tags: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    return tuple(f"    <tag k={quoteattr(k)} v={quoteattr(v)}/>" for k, v in tags)


_PLANT_TAGS: Final = {
    "power": "plant",
    "plant:source": "solar",
    "plant:method": "photovoltaic",
}
_GENERATOR_TAGS: Final = {
    "power": "generator",
    "generator:source": "solar",
    "generator:method": "photovoltaic",
    "generator:type": "solar_photovoltaic_panel",
    "generator:output:electricity": "yes",
}


def _generator_rows(f: Farm) -> list[NDArray[np.float64]]:
    """Panel rows (arrays of a few rows in large farms) inside the panel area: rings ``[N, 2]``.

    Rows at an angle are cut in the rows' own frame (the panel area turned about the CRS
    origin so they run east-west) and turned back.
    """
    if f.panel_area.is_empty:
        return []
    turned = f.row_angle != 0.0
    area = (
        affinity.rotate(f.panel_area, -f.row_angle, origin=(0, 0), use_radians=True)
        if turned
        else f.panel_area
    )
    minx, miny, maxx, maxy = area.bounds
    pitch = f.row_width + f.row_gap
    k0 = math.floor((miny - f.row_phase) / pitch) - 1
    k1 = math.ceil((maxy - f.row_phase) / pitch) + 1
    group = max(1, math.ceil((k1 - k0) / 40))  # at most ~40 generator strips per farm
    starts = f.row_phase + pitch * np.arange(k0, k1, group, dtype=np.float64)
    strips = shapely.box(minx - 1, starts, maxx + 1, starts + (group - 1) * pitch + f.row_width)
    pieces = shapely.get_parts(shapely.intersection(strips, area))
    keep = (shapely.get_type_id(pieces) == 3) & (shapely.area(pieces) >= 30.0)
    rings = shapely.get_exterior_ring(shapely.simplify(pieces[keep], 0.3))
    if turned:
        rings = np.array(
            [affinity.rotate(r, f.row_angle, origin=(0, 0), use_radians=True) for r in rings],
            dtype=object,
        )
    coords, index = shapely.get_coordinates(rings, return_index=True)
    return np.split(coords, np.flatnonzero(np.diff(index)) + 1) if len(coords) else []


def build_osm_xml(
    config: RegionConfig, grid: Grid, land: Land, farms: list[Farm]
) -> tuple[str, dict[str, int]]:
    """The region's OSM XML, and counts of the solar features in it (for the summary)."""
    rng = rng_for(config, "osm")
    osm = _OsmBuilder(grid, rng, dt.date.fromisoformat(config.resolved_date))
    counts = _add_farms(osm, farms)
    _add_roads(osm, grid, land)
    for poly, tags in _landuse_polygons(config, grid, land, farms):
        osm.area(poly, tags, relation=False)
    return osm.xml(), counts


def _add_farms(osm: _OsmBuilder, farms: list[Farm]) -> dict[str, int]:
    """Mapped farms as plants and/or generators; counts of what was added."""
    counts = {"plants": 0, "plant_relations": 0, "plants_with_hole": 0, "generators": 0}
    for f in farms:
        if not f.mapped:
            continue
        if not f.orphan:
            mw = max(1, round(f.area_ha / 1.8))
            tags = {
                **_PLANT_TAGS,
                "plant:output:electricity": f"{mw} MW",
                "name": f.name,
                "operator": f.operator,
            }
            if f.roof is not None:
                tags["location"] = "roof"
            outline = f.osm_outline if f.osm_outline is not None else f.footprint
            osm.area(outline, tags, relation=f.as_relation)
            counts["plants"] += 1
            counts["plant_relations"] += int(f.as_relation or f.hole is not None)
            counts["plants_with_hole"] += int(f.hole is not None)
        if f.with_generators:
            meta = osm.meta()  # one mapping session per farm
            gen_tags = (
                {**_GENERATOR_TAGS, "location": "roof"} if f.roof is not None else _GENERATOR_TAGS
            )
            for ring in _generator_rows(f):
                osm.way(ring, gen_tags, closed=True, meta=meta)
                counts["generators"] += 1
    return counts


def _add_roads(osm: _OsmBuilder, grid: Grid, land: Land) -> None:
    """Roads and tracks, clipped to the scene (pieces under 20 m dropped)."""
    image = box(*grid.bounds)
    for road in land.roads:
        line = LineString(grid.world(road.px)).intersection(image)
        for part in shapely.get_parts(line):
            if not isinstance(part, LineString) or part.length < 20:
                continue
            if road.kind == "track":
                tags = {"highway": "track", "tracktype": "grade3", "surface": "unpaved"}
            else:
                tags = {"highway": road.kind, "surface": "asphalt", "ref": road.name}
            osm.way(part.coords, tags, closed=False)


def _mask_polygons(mask: NDArray[np.bool_], grid: Grid, min_area_m2: float) -> list[Polygon]:
    """Outlines of the patches of ``mask`` (holes filled, simplified to 12 m) of at least
    ``min_area_m2``."""
    polys = []
    for patch in polygonize_mask(mask, grid.transform):
        p = Polygon(patch.exterior).simplify(12.0)
        if isinstance(p, Polygon) and p.is_valid and p.area >= min_area_m2:
            polys.append(p)
    return polys


def _landuse_polygons(
    config: RegionConfig, grid: Grid, land: Land, farms: list[Farm]
) -> Iterator[tuple[Polygon, dict[str, str]]]:
    """Unrelated areas mapped in OSM: villages, water bodies and some farmland parcels."""
    for p in _mask_polygons(land.maps["settle"] >= 0.5, grid, 20_000.0):
        yield p, {"landuse": "residential"}
    for p in _mask_polygons(land.maps["water"] >= 0.5, grid, 5_000.0):
        yield p, {"natural": "water", "water": "pond" if p.area < 50_000 else "reservoir"}
    yield from _farmland_polygons(config, grid, land, farms)


def _farmland_polygons(
    config: RegionConfig, grid: Grid, land: Land, farms: list[Farm]
) -> Iterator[tuple[Polygon, dict[str, str]]]:
    """Whole green parcels away from farms, from their strip / column rectangle (the gentle
    warp ignored, as mappers trace roughly)."""
    rng = rng_for(config, "osm", 1)
    lc_ok = (land.maps["green"] >= 0.35) & (land.maps["scrub"] < 0.2)
    if land.claimed is not None:
        lc_ok &= ~land.claimed
    rr, cc = np.nonzero(lc_ok[::7, ::7])
    if rr.size == 0:
        return
    n_want = max(3, min(40, round(config.area_km2 * 0.5)))
    pick = rng.permutation(rr.size)
    seen: set[tuple[int, int]] = set()
    fences = [f.fence if f.fence is not None else f.outer for f in farms]
    farm_union = shapely.union_all([g.buffer(20.0) for g in fences]) if farms else Polygon()
    image = box(*grid.bounds)
    c, s = math.cos(land.rotation), math.sin(land.rotation)
    for j in pick[: 20 * n_want].tolist():
        if len(seen) >= n_want:
            break
        b = int(land.band[rr[j] * 7, cc[j] * 7])
        k = int(land.col[rr[j] * 7, cc[j] * 7])
        if (b, k) in seen or b < 1 or b >= len(land.band_edges):
            continue
        seen.add((b, k))
        u0 = k * land.band_width[b] - land.band_offset[b] + 1.0
        u1 = (k + 1) * land.band_width[b] - land.band_offset[b] - 1.0
        v0, v1 = land.band_edges[b - 1] + 1.0, land.band_edges[b] - 1.0
        uv = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
        px = np.column_stack((uv[:, 0] * c - uv[:, 1] * s, uv[:, 0] * s + uv[:, 1] * c))
        poly = Polygon(grid.world(px)).intersection(image)
        if isinstance(poly, Polygon) and poly.area > 5_000 and not poly.intersects(farm_union):
            yield poly, {"landuse": "farmland", "crop": "yes" if rng.random() < 0.5 else "rice"}
