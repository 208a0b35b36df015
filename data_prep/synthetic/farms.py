"""Solar farms: their shapes, where they go, what OSM knows of them, and how they look at 10 m.

Without a preset, farms are unions of slightly rotated rectangular blocks with internal access
roads, a hole (a pond or a substation) in some, and east-west panel rows. With a preset, their
outlines are irregular (convex hulls of scattered points, star-like polygons, L-shapes, notched
rectangles, unions of blocks) at any angle, their rows run east-west or along the outline, their
rows are spaced by the module tilt and ground-cover ratio, their panels and the ground between
the rows are of the preset's kinds, and some are partly built (the rest of the site graded bare
soil). A preset plant's fence runs a few metres outside its panel footprint, the strip between
covered like the ground between the rows; OSM maps the fence, the truth is the footprint.
Internal access roads are optional (narrower in small plants), and some preset plants are arrays
on large industrial or agricultural roofs. With a footprints file
(:mod:`~data_prep.synthetic.footprints`), every outline is a real plant's. :func:`place_farms`
puts them, largest first, where no water, village, snow, no data, paved road or other farm is
in the way; :func:`assign_roles` decides which OSM misses or maps only as generators;
:func:`render_farms` renders them at 2 m and averages to 10 m, so that every 10 m pixel mixes
panels and the ground between the rows, as in real imagery.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray
from rasterio.enums import MergeAlg
from rasterio.features import rasterize
from rasterio.transform import Affine
from scipy import ndimage
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from data_prep.synthetic.config import PIXEL_M, RegionConfig
from data_prep.synthetic.fields import FloatMap, block_mean, max_pool, rng_for
from data_prep.synthetic.footprints import FootprintShapes
from data_prep.synthetic.grid import Grid
from data_prep.synthetic.landscape import LOOKALIKE_LAYERS, Land
from data_prep.synthetic.presets import PANEL_TYPES, PanelMix, Preset

log = logging.getLogger(__name__)

__all__ = [
    "PANEL_MATERIALS",
    "Farm",
    "assign_roles",
    "irregular_outline",
    "place_farms",
    "render_farms",
    "stripe_share",
]

#: End-members that are panels (the others a farm is made of lie between the rows).
PANEL_MATERIALS: Final = frozenset({"panel", "panel_alt", *PANEL_TYPES})
#: The ground between the rows of a preset farm, by kind, and the end-member it is.
_GROUND_ENDMEMBER: Final = {
    "bare_soil": "bare_soil",
    "dark_soil": "dark_soil",
    "gravel": "gravel",
    "grass": "grass",
    "dry_grass": "dry_grass",
}
_SUBPIXELS: Final = 5  # farms are rendered at 2 m: 5 x 5 sub-pixels per 10 m pixel
_SUBPIXEL_M: Final = PIXEL_M / _SUBPIXELS
#: The layers of a farm rendering, by bit.
_FOOTPRINT, _PANELS, _ROADS, _HOLE, _RING, _UNBUILT, _FENCE, _ROOF = range(8)
_ROAD_M: Final = 5.0  # width of the internal access roads of a farm's shape
#: Plants of at least this many hectares count as large (roads, see ``PanelMix.road_share``).
_LARGE_HA: Final = 5.0
#: Roofs under rooftop plants, by kind (the look-alike end-member and layer they are drawn
#: in), and how often each is drawn: bright metal and membrane halls, dark flat roofs.
_ROOF_KINDS: Final = {"industrial_roof": 0.75, "dark_roof": 0.25}
#: Kinds of made-up irregular outlines, and how often each is drawn.
_OUTLINE_KINDS: Final = {"hull": 0.25, "star": 0.2, "ell": 0.2, "notched": 0.2, "blocks": 0.15}
_CLAIM_RING_M: Final = 45.0  # free ring around every farm: room for a pad, keeps farms apart
_PLACE_PREFIXES: Final = (
    "Hosa", "Kere", "Bel", "Chikka", "Dodda", "Mala", "Sira", "Kudu", "Hale", "Nan",
)  # fmt: skip
_PLACE_SUFFIXES: Final = (
    "halli", "pura", "gere", "palya", "kote", "hatti", "nagar", "wadi", "kal", "ur",
)  # fmt: skip
_OPERATORS: Final = (
    "Surya Urja Pvt Ltd",
    "Deccan Solar Parks",
    "Kaveri Renewables",
    "Sunfield Power",
    "Tungabhadra Green Energy",
)


@dataclass
class Farm:
    """One solar farm: geometry in the scene CRS, panel rows, what it is made of and what OSM
    knows.

    ``materials`` gives the share of every end-member: of the panel cover for panels
    (:data:`PANEL_MATERIALS`), of the ground between the rows for the others. Panel rows run
    at ``row_angle`` (radians counter-clockwise from east; 0: east-west rows facing south).
    A partly built farm keeps its whole site in ``site``; its ``footprint`` (the truth) is
    the built part, ``unbuilt`` the graded rest.

    A preset farm has a ``fence``: what the fence encloses (no holes), ``outer`` grown by the
    plant's fence strip; the strip is ground like that between the rows, and OSM maps the
    fence (``osm_outline``), while the truth stays the footprint. A rooftop plant's ``outer``
    and ``fence`` are its ``roof`` (of ``roof_kind``, an end-member and look-alike layer), its
    footprint the array on it.
    """

    index: int
    outer: BaseGeometry  # the whole site, no holes (world)
    footprint: BaseGeometry  # the built part of outer minus the hole (world)
    hole: BaseGeometry | None
    hole_kind: str
    roads: BaseGeometry
    panel_area: BaseGeometry
    n_blocks: int
    row_width: float
    row_gap: float
    row_phase: float
    window: tuple[int, int, int, int]  # row, col, height, width of the claimed box (pixels)
    materials: dict[str, float]
    as_relation: bool
    row_angle: float = 0.0
    site: BaseGeometry | None = None  # the whole site of a partly built farm (world)
    unbuilt: BaseGeometry | None = None  # its graded, unbuilt part (world)
    osm_outline: BaseGeometry | None = None  # what OSM maps, when not the footprint
    fence: BaseGeometry | None = None  # what the fence encloses (world; preset farms)
    roof: BaseGeometry | None = None  # the roof under a rooftop plant (world)
    roof_kind: str = ""
    mapped: bool = True
    orphan: bool = False
    with_generators: bool = False
    name: str = ""
    operator: str = ""

    @property
    def area_ha(self) -> float:
        return float(self.footprint.area) / 10_000.0


@dataclass
class _FarmShape:
    """A farm's outline in local metres (centred near 0), before it is placed; ``angle`` is
    the rotation of its frame (degrees), which aligned rows follow."""

    outer: BaseGeometry
    hole: BaseGeometry | None
    hole_kind: str
    roads: BaseGeometry
    n_blocks: int
    angle: float = 0.0


def _farm_shape(rng: np.random.Generator, area_m2: float, *, want_hole: bool) -> _FarmShape:
    """Union of rectangular blocks (local metres, centred near 0), slightly rotated."""
    blocks = _blocks(rng, area_m2)
    union = shapely.union_all(blocks)
    roads = _access_roads(rng, blocks)
    hole, hole_kind = _hole(rng, blocks, union, area_m2) if want_hole else (None, "")
    angle = rng.uniform(-8.0, 8.0)
    union = affinity.rotate(union, angle, origin=(0, 0))
    road_union = affinity.rotate(shapely.union_all(roads), angle, origin=(0, 0))
    if hole is not None:
        hole = affinity.rotate(hole, angle, origin=(0, 0))
    return _FarmShape(
        outer=union,
        hole=hole,
        hole_kind=hole_kind if hole else "",
        roads=road_union,
        n_blocks=len(blocks),
    )


def _blocks(rng: np.random.Generator, area_m2: float) -> list[Polygon]:
    """One to four rectangles of ``area_m2`` together, each beside an earlier one (sometimes
    across a gap), the first centred on 0; more blocks in larger farms."""
    area_ha = area_m2 / 10_000.0
    n_max = 1 + min(3, int(2 * math.log10(max(area_ha, 1.0))))
    n = int(rng.integers(1, n_max + 1))
    shares = np.sort(rng.dirichlet(np.full(n, 2.0)))[::-1]
    blocks: list[Polygon] = []
    for i, sh in enumerate(shares):
        a = sh * area_m2
        aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.2)))
        bw = math.sqrt(a * aspect)
        bh = a / bw
        if i == 0:
            blocks.append(box(-bw / 2, -bh / 2, bw / 2, bh / 2))
            continue
        px0, py0, px1, py1 = blocks[int(rng.integers(len(blocks)))].bounds
        gap = rng.uniform(25.0, 60.0) if rng.random() < 0.15 else 0.0
        side = int(rng.integers(4))
        if side < 2:  # east or west of the parent, overlapping it along y
            y0 = rng.uniform(py0 - 0.5 * bh, py1 - 0.5 * bh)
            x0 = px1 + gap if side == 0 else px0 - gap - bw
        else:  # north or south
            x0 = rng.uniform(px0 - 0.5 * bw, px1 - 0.5 * bw)
            y0 = py1 + gap if side == 2 else py0 - gap - bh
        blocks.append(box(x0, y0, x0 + bw, y0 + bh))
    # Overlaps shrink the union: scale it back to the area asked for.
    k = math.sqrt(area_m2 / shapely.union_all(blocks).area)
    return [affinity.scale(b, k, k, origin=(0, 0)) for b in blocks]


def _access_roads(rng: np.random.Generator, blocks: list[Polygon]) -> list[Polygon]:
    """Internal access roads (:data:`_ROAD_M` wide), in each block's frame: one or two
    north-south, one east-west in tall blocks."""
    half = _ROAD_M / 2
    roads: list[Polygon] = []
    for b in blocks:
        x0, y0, x1, y1 = b.bounds
        bw, bh = x1 - x0, y1 - y0
        for _ in range(1 if bw < 300 else 2):
            xr = x0 + bw * rng.uniform(0.3, 0.7)
            roads.append(box(xr - half, y0, xr + half, y1))
        if bh > 250:
            yr = y0 + bh * rng.uniform(0.3, 0.7)
            roads.append(box(x0, yr - half, x1, yr + half))
    return roads


def _hole(
    rng: np.random.Generator, blocks: list[Polygon], union: BaseGeometry, area_m2: float
) -> tuple[BaseGeometry | None, str]:
    """A pond or a substation well inside the largest block, and its kind; no hole when 30
    tries find no room."""
    big = max(blocks, key=lambda g: g.area)
    hs = float(np.clip(math.sqrt(area_m2 * rng.uniform(0.03, 0.07)), 40.0, 160.0))
    inner = union.buffer(-(hs / 2 + 25.0), join_style="mitre")
    x0, y0, x1, y1 = big.bounds
    hole_kind = "pond" if rng.random() < 0.5 else "substation"
    for _ in range(30):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if inner.contains(Point(cx, cy)):
            if hole_kind == "pond":
                return Point(cx, cy).buffer(hs / 2, quad_segs=8), hole_kind
            return box(cx - hs / 2, cy - hs / 2, cx + hs / 2, cy + hs / 2), hole_kind
    return None, hole_kind


def irregular_outline(rng: np.random.Generator, area_m2: float) -> Polygon:
    """A made-up irregular outline of ``area_m2`` (local metres, centroid at 0, unrotated):
    the convex hull of scattered points, a star-like polygon, an L-shape or a rectangle with
    notches (the kinds of ``_OUTLINE_KINDS`` but ``blocks``)."""
    kinds = [k for k in _OUTLINE_KINDS if k != "blocks"]
    p = np.array([_OUTLINE_KINDS[k] for k in kinds])
    kind = str(rng.choice(kinds, p=p / p.sum()))
    aspect = math.exp(rng.uniform(0.0, math.log(2.5)))
    if kind == "hull":
        n = int(rng.integers(6, 15))
        ang = rng.uniform(0.0, 2 * math.pi, n)
        rad = np.sqrt(rng.uniform(0.3, 1.0, n))
        pts = np.column_stack((aspect * rad * np.cos(ang), rad * np.sin(ang)))
        poly = shapely.MultiPoint(pts).convex_hull
    elif kind == "star":
        n = int(rng.integers(8, 17))
        ang = np.sort((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * (2 * math.pi / n))
        rad = np.clip(1.0 + 0.28 * rng.standard_normal(n), 0.45, 1.6)
        poly = Polygon(np.column_stack((aspect * rad * np.cos(ang), rad * np.sin(ang))))
    elif kind == "ell":
        a, b = aspect, rng.uniform(0.3, 0.6)
        c, d = rng.uniform(0.25, 0.55) * aspect, rng.uniform(0.8, 1.8)
        poly = shapely.union(box(0, 0, a, b), box(0, 0, c, d))
    else:  # notched
        poly = box(0, 0, aspect, 1.0)
        for _ in range(int(rng.integers(1, 3))):
            # A notch at a corner, or into the middle of a long or a short side.
            nw, nh = rng.uniform(0.2, 0.45) * aspect, rng.uniform(0.2, 0.45)
            where = int(rng.integers(3))
            side_x = float(rng.choice([-1e-3, aspect - nw + 1e-3]))
            side_y = float(rng.choice([-1e-3, 1.0 - nh + 1e-3]))
            x0 = side_x if where != 1 else rng.uniform(0.2, 0.6) * aspect
            y0 = side_y if where != 2 else rng.uniform(0.2, 0.6)
            poly = poly.difference(box(x0, y0, x0 + nw, y0 + nh))
    poly = max(
        (q for q in shapely.get_parts(shapely.make_valid(poly)) if isinstance(q, Polygon)),
        key=lambda q: q.area,
    )
    c = poly.centroid
    k = math.sqrt(area_m2 / poly.area)
    return affinity.scale(affinity.translate(poly, -c.x, -c.y), k, k, origin=(0, 0))


def _preset_shape(rng: np.random.Generator, area_m2: float, *, want_hole: bool) -> _FarmShape:
    """An irregular outline (:func:`irregular_outline`, or a union of blocks) with access
    roads and maybe a hole, rotated by any angle."""
    if rng.random() < _OUTLINE_KINDS["blocks"]:
        parts = _blocks(rng, area_m2)
        outline: BaseGeometry = shapely.union_all(parts)
    else:
        outline = irregular_outline(rng, area_m2)
        parts = [outline]
    return _finish_shape(rng, outline, parts, area_m2, want_hole=want_hole)


def _finish_shape(
    rng: np.random.Generator,
    outline: BaseGeometry,
    parts: list[Polygon],
    area_m2: float,
    *,
    want_hole: bool,
) -> _FarmShape:
    """Access roads (north-south in the shape's own frame) and maybe a hole, then the
    whole rotated by a random angle."""
    roads = shapely.union_all(_access_roads(rng, [box(*p.bounds) for p in parts]))
    roads = roads.intersection(outline)
    hole, hole_kind = _hole(rng, parts, outline, area_m2) if want_hole else (None, "")
    turn = float(rng.uniform(0.0, 180.0))
    rotate = functools.partial(affinity.rotate, angle=turn, origin=(0, 0))
    return _FarmShape(
        outer=rotate(outline),
        hole=rotate(hole) if hole is not None else None,
        hole_kind=hole_kind if hole is not None else "",
        roads=rotate(roads),
        n_blocks=len(parts),
        angle=turn,
    )


def _footprint_shape(
    rng: np.random.Generator, area_m2: float, *, want_hole: bool, shapes: FootprintShapes
) -> _FarmShape:
    """A real plant's outline from the footprints file, rescaled, rotated, with access roads
    (in its rotated frame) and a hole: the real outline's holes (the land left as it is), or a
    pond or substation when it has none and a hole is wanted."""
    shape, angle, _ = shapes.draw(rng, area_m2)
    parts = [p for p in shapely.get_parts(shape) if isinstance(p, Polygon)]
    outer = shapely.union_all([Polygon(p.exterior) for p in parts])
    gaps = shapely.union_all([Polygon(r) for p in parts for r in p.interiors])
    # Roads run in the outline's own frame: undo the rotation, lay them, turn them back.
    local = affinity.rotate(outer, -angle, origin=(0, 0))
    blocks = [box(*p.bounds) for p in shapely.get_parts(local)]
    roads = shapely.union_all(_access_roads(rng, blocks)).intersection(local)
    roads = affinity.rotate(roads, angle, origin=(0, 0))
    hole: BaseGeometry | None = None if gaps.is_empty else gaps
    hole_kind = "gap" if hole is not None else ""
    if hole is None and want_hole:
        hole, hole_kind = _hole(rng, parts, outer, area_m2)
    return _FarmShape(
        outer=outer,
        hole=hole,
        hole_kind=hole_kind if hole is not None else "",
        roads=roads,
        n_blocks=len(parts),
        angle=angle,
    )


def place_farms(
    config: RegionConfig,
    grid: Grid,
    land: Land,
    *,
    footprints: FootprintShapes | None = None,
) -> list[Farm]:
    """Place farms largest first where nothing forbids them; shrink or skip when crowded. In
    a preset region the preset's share of them (``PanelMix.rooftop_share``) are rooftop
    plants, placed last.

    Args:
        config: The region.
        grid: Its grid.
        land: Its landscape (the farms' claims are recorded in it).
        footprints: Real outlines to draw the farms' from (``config.footprints``, read).
    """
    rng = rng_for(config, "farms")
    n_target = (
        config.n_farms if config.n_farms is not None else max(3, round(config.area_km2 / 1.5))
    )
    spec = config.preset_spec
    ha_range = spec.panels.farm_ha if spec is not None else (1.0, 200.0)
    n_roof = 0
    if spec is not None:
        n_roof = min(round(spec.panels.rooftop_share * n_target), n_target - 1)
        areas = _farm_areas(
            rng, config, n_target - n_roof, ha_range, alpha=spec.panels.farm_ha_alpha
        )
    else:
        areas = _farm_areas(rng, config, n_target, ha_range)
    sites = _Sites(grid, land)
    make = _shape_maker(config, footprints)
    farms: list[Farm] = []
    for i, area_ha in enumerate(areas):
        farm = _place_farm(
            rng,
            sites,
            i,
            float(area_ha),
            index=len(farms),
            make=make,
            spec=spec,
            floor=1.05 * ha_range[0],
        )
        if farm is None:
            log.debug("no room for solar farm %d of %d (%.1f ha)", i + 1, n_target, area_ha)
        else:
            farms.append(farm)
    if spec is not None:
        for _ in range(n_roof):
            farm = _place_rooftop(rng, sites, index=len(farms), spec=spec)
            if farm is not None:
                farms.append(farm)
    if len(farms) < n_target:
        log.warning(
            "placed %d of %d solar farms: no room left for the others; give a larger size or "
            "fewer n_farms",
            len(farms),
            n_target,
        )
    land.claimed = sites.claimed
    return farms


def _farm_areas(
    rng: np.random.Generator,
    config: RegionConfig,
    n_target: int,
    ha_range: tuple[float, float],
    *,
    alpha: float = 0.0,
) -> NDArray[np.float64]:
    """Farm areas in hectares, largest first, from the smallest of ``ha_range`` (1 ha without
    a preset) to 6 % of the region (at most the largest, 200 ha): log-uniform, or with
    ``alpha`` > 0 a power law (the share larger than ``a`` falling as ``a ** -alpha``)."""
    lo, hi = ha_range
    region_ha = config.area_km2 * 100.0
    max_ha = min(hi, max(1.5 * lo, 0.06 * region_ha))
    if alpha > 0:  # the inverse of the truncated power law's distribution
        u = rng.uniform(0.0, 1.0, n_target)
        areas = np.sort((lo**-alpha - u * (lo**-alpha - max_ha**-alpha)) ** (-1.0 / alpha))[::-1]
    else:
        areas = np.sort(np.exp(rng.uniform(math.log(lo), math.log(max_ha), n_target)))[::-1]
    return np.clip(areas, 1.05 * lo, max_ha)


#: Makes a farm's shape of an area (m^2), with a hole or not.
_ShapeMaker = Callable[..., _FarmShape]


def _shape_maker(config: RegionConfig, footprints: FootprintShapes | None) -> _ShapeMaker:
    """Real outlines from the footprints file; else irregular ones with a preset; else
    unions of near-axis-aligned blocks."""
    if footprints is not None:
        return functools.partial(_footprint_shape, shapes=footprints)
    return _preset_shape if config.preset_spec is not None else _farm_shape


def _place_farm(
    rng: np.random.Generator,
    sites: _Sites,
    i: int,
    area_ha: float,
    *,
    index: int,
    make: _ShapeMaker,
    spec: Preset | None,
    floor: float,
) -> Farm | None:
    """The ``i``-th farm of ``area_ha``, placed; up to five shapes, each 40 % smaller than the
    last (down to ``floor``, 1.05 ha without a preset), before giving up. A preset farm's
    fence strip is drawn first, so that its claim makes room for the fence."""
    margin = float(rng.uniform(*spec.panels.fence_m)) if spec is not None else 0.0
    a = area_ha
    for _attempt in range(5):
        shape = make(
            rng,
            a * 10_000.0,
            want_hole=(i == 0 and a >= 2.0) or (a >= 8.0 and rng.random() < 0.25),
        )
        site = sites.claim(rng, shape, margin=margin)
        if site is not None:
            window, dx, dy = site
            if spec is None:
                return _make_farm(rng, index, shape, dx, dy, window)
            return _make_preset_farm(rng, index, shape, dx, dy, window, spec, margin=margin)
        if a <= floor:
            break
        a = max(floor, a * 0.6)
    return None


class _Sites:
    """Where farms may still go.

    Claims (footprint + free ring) may not touch water, villages, snow, no data or other
    claims (nor, in preset regions, the core of forests or rock); footprints (+10 m) may not
    touch paved roads. Candidate sites are tested on a 4x
    coarser max-pooled grid (40 m steps): conservative, and 16 times fewer cells to test for
    the thousands of rejected candidates of a large scene.
    """

    coarse: Final = 4

    def __init__(self, grid: Grid, land: Land) -> None:
        maps = land.maps
        blocked = (maps["water"] > 0.05) | (maps["settle"] > 0.05) | (maps["snow"] > 0.05)
        blocked |= ndimage.binary_dilation(land.nodata, iterations=3)
        if "forest" in maps:  # preset regions: plants are not built in forests or on rock
            blocked |= (maps["forest"] > 0.5) | (maps["rock"] > 0.5)
        self.grid = grid
        self.blocked_coarse = max_pool(blocked, self.coarse, fill=True)
        self.roads = maps["asphalt"] > 0.1
        self.claimed = np.zeros((grid.H, grid.W), bool)

    def claim(
        self, rng: np.random.Generator, shape: _FarmShape, *, margin: float = 0.0
    ) -> tuple[tuple[int, int, int, int], float, float] | None:
        """Claim a free site for ``shape`` among 120 random candidates; ``margin`` (m): the
        fence strip around it, which the claim and the road test include.

        Returns:
            The claimed window (row, col, height, width in pixels) and the shift (dx, dy) from
            the shape's local metres to the scene CRS; ``None`` when no candidate is free.
        """
        q = self.coarse
        H, W = self.grid.H, self.grid.W
        claim = shape.outer.buffer(_CLAIM_RING_M + margin)
        minx, miny, maxx, maxy = claim.bounds
        h = math.ceil((maxy - miny) / PIXEL_M) + 1
        w = math.ceil((maxx - minx) / PIXEL_M) + 1
        hq, wq = -(-h // q), -(-w // q)
        if not ((hq + 1) * q < H and (wq + 1) * q < W):
            return None
        t_local = Affine(PIXEL_M, 0, minx, 0, -PIXEL_M, maxy)
        foot = shape.outer.buffer(PIXEL_M + margin)
        bits = rasterize(
            [(claim, 1), (foot, 2)],
            (h, w),
            transform=t_local,
            all_touched=True,
            merge_alg=MergeAlg.add,
            dtype=np.uint8,
        )
        claim_mask = (bits & 1) > 0
        foot_mask = (bits & 2) > 0
        claim_q = max_pool(claim_mask, q, fill=False)
        rows = rng.integers(1, (H - h) // q, 120)
        cols = rng.integers(1, (W - w) // q, 120)
        cy, cx = _shape_centre_px(shape.outer, minx, maxy)
        blocked_q = self.blocked_coarse
        for rq, cq in zip(rows.tolist(), cols.tolist(), strict=True):
            if blocked_q[rq + cy // q, cq + cx // q]:  # cheap first test
                continue
            if (blocked_q[rq : rq + hq, cq : cq + wq] & claim_q).any():
                continue
            r, c = rq * q, cq * q
            if (self.roads[r : r + h, c : c + w] & foot_mask).any():
                continue
            self.claimed[r : r + h, c : c + w] |= claim_mask
            blocked_q[rq : rq + hq, cq : cq + wq] |= claim_q
            dx = self.grid.x0 + c * PIXEL_M - minx
            dy = self.grid.y0 - r * PIXEL_M - maxy
            return (r, c, h, w), dx, dy
        return None


def _shape_centre_px(geom: BaseGeometry, minx: float, maxy: float) -> tuple[int, int]:
    """Row and column, in a grid starting at (minx, maxy), of a point surely inside ``geom``."""
    p = geom.representative_point()
    return int((maxy - p.y) // PIXEL_M), int((p.x - minx) // PIXEL_M)


def _placed(
    shape: _FarmShape, dx: float, dy: float
) -> tuple[BaseGeometry, BaseGeometry | None, BaseGeometry, BaseGeometry]:
    """Outer, hole, footprint and roads of ``shape`` moved by (dx, dy) into the scene."""
    outer = affinity.translate(shape.outer, dx, dy)
    hole = affinity.translate(shape.hole, dx, dy) if shape.hole is not None else None
    footprint = outer.difference(hole) if hole is not None else outer
    roads = affinity.translate(shape.roads, dx, dy).intersection(outer)
    return outer, hole, footprint, roads


def _make_farm(
    rng: np.random.Generator,
    index: int,
    shape: _FarmShape,
    dx: float,
    dy: float,
    window: tuple[int, int, int, int],
) -> Farm:
    """A farm of the original region: east-west rows of 4 to 6 m, two panel spectra, grassy
    ground."""
    outer, hole, footprint, roads = _placed(shape, dx, dy)
    setback = rng.uniform(4.0, 10.0)
    panel_area = footprint.buffer(-setback, join_style="mitre").difference(roads)
    multipart = isinstance(outer, MultiPolygon)
    row_width = float(rng.uniform(4.0, 6.0))
    row_gap = float(rng.uniform(3.5, 6.5))
    row_phase = float(rng.uniform(0.0, 10.0))
    ground_green = float(rng.uniform(0.6, 0.95))
    ground_dry = float(rng.uniform(0.1, 0.6))
    # float32, as the spectra are mixed.
    green = np.float32(ground_green)
    dry = np.float32(min(ground_dry, 1 - ground_green))
    alt = np.float32(rng.uniform(0.0, 1.0))
    one = np.float32(1.0)
    materials = {
        "panel": float(one - alt),
        "panel_alt": float(alt),
        "grass": float(green),
        "dry_grass": float(dry),
        "bare_soil": float(np.clip(one - green - dry, 0.0, 1.0)),
    }
    return Farm(
        index=index,
        outer=outer,
        footprint=footprint,
        hole=hole,
        hole_kind=shape.hole_kind,
        roads=roads,
        panel_area=panel_area,
        n_blocks=shape.n_blocks,
        row_width=row_width,
        row_gap=row_gap,
        row_phase=row_phase,
        window=window,
        materials=materials,
        as_relation=hole is not None or multipart or bool(rng.random() < 0.25),
    )


def _make_preset_farm(
    rng: np.random.Generator,
    index: int,
    shape: _FarmShape,
    dx: float,
    dy: float,
    window: tuple[int, int, int, int],
    spec: Preset,
    *,
    margin: float,
) -> Farm:
    """A farm of a preset region: rows spaced by the module tilt and ground-cover ratio,
    east-west or along the outline, panels and ground of the preset's kinds, access roads or
    none, a fence ``margin`` metres outside the footprint (which OSM maps); maybe partly
    built.

    The footprint (the truth) is the panel array: the rows end 0 to 1.5 m inside it.
    """
    panels = spec.panels
    outer, hole, footprint, roads = _placed(shape, dx, dy)
    roads = _preset_roads(rng, roads, footprint.area / 10_000.0, panels)
    setback = rng.uniform(0.0, 1.5)
    panel_area = footprint.buffer(-setback, join_style="mitre").difference(roads)
    tilt = math.radians(rng.uniform(*panels.tilt_deg))
    slant = rng.uniform(*panels.module_m)
    pitch = slant / rng.uniform(*panels.gcr)
    row_width = slant * math.cos(tilt)  # the rows seen from above
    aligned = rng.random() < panels.aligned_rows
    row_angle = math.radians((shape.angle + 45.0) % 90.0 - 45.0) if aligned else 0.0
    farm = Farm(
        index=index,
        outer=outer,
        footprint=footprint,
        hole=hole,
        hole_kind=shape.hole_kind,
        roads=roads,
        panel_area=panel_area,
        n_blocks=shape.n_blocks,
        row_width=float(row_width),
        row_gap=float(pitch - row_width),
        row_phase=float(rng.uniform(0.0, pitch)),
        window=window,
        materials=_preset_materials(rng, panels),
        as_relation=hole is not None
        or isinstance(outer, MultiPolygon)
        or bool(rng.random() < 0.25),
        row_angle=row_angle,
        fence=_fence_around(outer, margin),
    )
    whole_site = False
    if rng.random() < spec.lookalikes.partial_share:
        whole_site = _build_partly(rng, farm)
    mapped = farm.site if whole_site and farm.site is not None else farm.footprint
    farm.osm_outline = _fence_around(mapped, margin, hole=hole)
    return farm


def _preset_roads(
    rng: np.random.Generator, roads: BaseGeometry, area_ha: float, panels: PanelMix
) -> BaseGeometry:
    """The internal access roads a preset plant of ``area_ha`` keeps: none in a share of
    plants (``panels.road_share``), else narrowed to 2.5-3.5 m in small plants (grassy tracks
    that barely show at 10 m) and 3.5-5 m in large ones."""
    large = area_ha >= _LARGE_HA
    if roads.is_empty or rng.random() >= panels.road_share[int(large)]:
        return Polygon()
    width = rng.uniform(3.5, _ROAD_M) if large else rng.uniform(2.5, 3.5)
    return _polygonal(roads.buffer(-(_ROAD_M - width) / 2, join_style="mitre"), min_area=1.0)


def _fence_around(
    geom: BaseGeometry, margin: float, *, hole: BaseGeometry | None = None
) -> BaseGeometry:
    """``geom``, its holes filled, grown by ``margin`` (m; mitred corners, as fences run), less
    ``hole`` (a pond, substation or land left out, which mappers leave out as it is)."""
    filled = shapely.union_all(
        [Polygon(p.exterior) for p in shapely.get_parts(geom) if isinstance(p, Polygon)]
    )
    fence = filled.buffer(margin, join_style="mitre", mitre_limit=2.0)
    return _polygonal(fence.difference(hole)) if hole is not None else fence


def _place_rooftop(
    rng: np.random.Generator, sites: _Sites, *, index: int, spec: Preset
) -> Farm | None:
    """A rooftop plant: an array (``spec.panels.rooftop_ha``, log-uniform) over half to nine
    tenths of a large hall's roof, from one end, 1 to 2.5 m off its edges; low-tilted rows of
    short modules at a high ground-cover ratio, along the hall or east-west. OSM maps the
    whole roof (as mappers tag the building) or the array and a metre or two around it.
    ``None`` when three roofs find no room."""
    panels = spec.panels
    lo, hi = panels.rooftop_ha
    for _attempt in range(3):
        array_m2 = 10_000.0 * math.exp(rng.uniform(math.log(lo), math.log(hi)))
        roof_m2 = array_m2 / rng.uniform(0.5, 0.9)
        aspect = math.exp(rng.uniform(math.log(1.5), math.log(4.0)))
        length = math.sqrt(roof_m2 * aspect)
        width = roof_m2 / length
        edge = rng.uniform(1.0, 2.5)
        along = min(length - 2 * edge, array_m2 / (width - 2 * edge))
        x0 = -length / 2 + edge if rng.random() < 0.5 else length / 2 - edge - along
        turn = float(rng.uniform(0.0, 180.0))
        roof = affinity.rotate(box(-length / 2, -width / 2, length / 2, width / 2), turn, (0, 0))
        array = affinity.rotate(
            box(x0, -width / 2 + edge, x0 + along, width / 2 - edge), turn, (0, 0)
        )
        shape = _FarmShape(outer=roof, hole=None, hole_kind="", roads=Polygon(), n_blocks=1)
        site = sites.claim(rng, shape)
        if site is not None:
            break
    else:
        return None
    window, dx, dy = site
    roof = affinity.translate(roof, dx, dy)
    footprint = affinity.translate(array, dx, dy)
    tilt = math.radians(rng.uniform(5.0, 15.0))
    slant = rng.uniform(1.0, 2.3)
    pitch = slant / rng.uniform(0.6, 0.9)
    row_width = slant * math.cos(tilt)
    row_angle = math.radians(turn) if rng.random() < 0.6 else 0.0
    kind = _pick(rng, _ROOF_KINDS)
    materials = _panel_types(rng, panels)
    materials[kind] = 1.0  # the roof between the rows
    if rng.random() < 0.3:
        osm_outline = roof
    else:
        osm_outline = footprint.buffer(rng.uniform(0.0, 2.0), join_style="mitre").intersection(roof)
    return Farm(
        index=index,
        outer=roof,
        footprint=footprint,
        hole=None,
        hole_kind="",
        roads=Polygon(),
        panel_area=footprint,
        n_blocks=1,
        row_width=float(row_width),
        row_gap=float(pitch - row_width),
        row_phase=float(rng.uniform(0.0, pitch)),
        window=window,
        materials=materials,
        as_relation=False,
        row_angle=row_angle,
        osm_outline=osm_outline,
        fence=roof,
        roof=roof,
        roof_kind=kind,
    )


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    """A key of ``weights`` drawn in proportion to its weight."""
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _panel_types(rng: np.random.Generator, panels: PanelMix) -> dict[str, float]:
    """Panel types: one, or two in a plant built in phases."""
    materials: dict[str, float] = {}
    first = _pick(rng, panels.types)
    second = _pick(rng, panels.types) if rng.random() < 1 / 3 else first
    share = float(rng.uniform(0.5, 0.8)) if second != first else 1.0
    materials[first] = share
    if second != first:
        materials[second] = 1.0 - share
    return materials


def _preset_materials(rng: np.random.Generator, panels: PanelMix) -> dict[str, float]:
    """Panel types (:func:`_panel_types`) and the ground between the rows (a main cover and a
    second one)."""
    materials = _panel_types(rng, panels)
    main, other = _pick(rng, panels.ground), _pick(rng, panels.ground)
    share = float(rng.uniform(0.6, 0.95)) if other != main else 1.0
    materials[_GROUND_ENDMEMBER[main]] = share
    if other != main:
        materials[_GROUND_ENDMEMBER[other]] = 1.0 - share
    return materials


def _polygonal(geom: BaseGeometry, *, min_area: float = 50.0) -> BaseGeometry:
    """The polygons of ``geom`` of at least ``min_area`` m^2, as one (multi)polygon."""
    parts = [p for p in shapely.get_parts(geom) if isinstance(p, Polygon) and p.area >= min_area]
    if not parts:
        return Polygon()
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _build_partly(rng: np.random.Generator, farm: Farm) -> bool:
    """Make ``farm`` partly built, in place: 30 to 75 % of its site, on one side of a line
    across its rows (or along them), carries panels; the rest is graded bare soil.

    Returns:
        Whether OSM maps the whole site (half such farms, as mappers trace the fence) rather
        than the built part; ``False`` when the farm stays whole.
    """
    site = farm.footprint
    target = float(rng.uniform(0.3, 0.75))
    c = site.centroid
    local = affinity.rotate(site, -farm.row_angle, origin=c, use_radians=True)
    x0, y0, x1, y1 = local.bounds
    across = bool(rng.random() < 0.5)  # cut across the rows (a north-south line) or along
    low_side = bool(rng.random() < 0.5)
    lo, hi = (x0, x1) if across else (y0, y1)

    def side(t: float) -> BaseGeometry:
        if across:
            half = box(x0 - 1, y0 - 1, t, y1 + 1) if low_side else box(t, y0 - 1, x1 + 1, y1 + 1)
        else:
            half = box(x0 - 1, y0 - 1, x1 + 1, t) if low_side else box(x0 - 1, t, x1 + 1, y1 + 1)
        return local.intersection(half)

    for _ in range(30):  # bisection on the cut for the built share
        t = (lo + hi) / 2
        share = side(t).area / local.area
        if (share < target) == low_side:
            lo = t
        else:
            hi = t
    built = _polygonal(
        affinity.rotate(side((lo + hi) / 2), farm.row_angle, origin=c, use_radians=True)
    )
    if built.is_empty or built.area >= site.area * 0.97:
        return False
    farm.site = site
    farm.footprint = built
    farm.unbuilt = _polygonal(site.difference(built), min_area=10.0)
    farm.panel_area = farm.panel_area.intersection(built.buffer(-3.0, join_style="mitre"))
    farm.roads = farm.roads.intersection(built)
    return bool(rng.random() < 0.5)


def assign_roles(config: RegionConfig, farms: list[Farm]) -> None:
    """Decide which farms OSM misses, which are mapped only as generators, and names."""
    rng = rng_for(config, "farms", 1)
    n = len(farms)
    if n == 0:
        return
    # The first (largest) farm always stays a mapped plant, so every region has a plant (and,
    # when it has room, a multipolygon with a hole).
    others = rng.permutation(np.arange(1, n)).tolist()
    n_unmapped = min(_count(config.unmapped_fraction, n), n - 1)
    unmapped = set(others[:n_unmapped])
    mapped = [0, *others[n_unmapped:]]
    n_orphan = min(_count(config.orphan_generator_fraction, len(mapped)), len(mapped) - 1)
    orphans = set(rng.permutation(mapped[1:]).tolist()[:n_orphan])
    for f in farms:
        f.mapped = f.index not in unmapped
        f.orphan = f.index in orphans
        f.with_generators = f.orphan or (f.mapped and bool(rng.random() < 0.4))
        place = (
            _PLACE_PREFIXES[int(rng.integers(len(_PLACE_PREFIXES)))]
            + _PLACE_SUFFIXES[int(rng.integers(10))]
        )
        f.name = f"{place} Solar Park"
        f.operator = _OPERATORS[int(rng.integers(len(_OPERATORS)))]
    plants = [f for f in farms if f.mapped and not f.orphan]
    if plants and not any(f.with_generators for f in plants):
        min(plants, key=lambda f: f.area_ha).with_generators = True
    if plants and not any(f.as_relation and f.hole is not None for f in plants):
        log.warning("no mapped plant has a hole; the region is too small for one")


def _stripe_cover(
    y_lo: NDArray[np.float64],
    y_hi: NDArray[np.float64],
    *,
    width: float,
    gap: float,
    phase: float,
) -> NDArray[np.float64]:
    """Share of each interval ``[y_lo, y_hi]`` across stripes (rows of ``width``, ``gap``
    apart, one starting at ``phase``) that the stripes cover."""
    pitch = width + gap

    def cum(yv: NDArray[np.float64]) -> NDArray[np.float64]:
        t = yv - phase
        return np.floor(t / pitch) * width + np.minimum(np.mod(t, pitch), width)

    return (cum(y_hi) - cum(y_lo)) / (y_hi - y_lo)


def stripe_share(
    inside: NDArray[Any],
    *,
    top: float,
    left: float,
    angle: float,
    width: float,
    gap: float,
    phase: float,
) -> FloatMap:
    """Share of every 10 m pixel covered by stripes within an area, from a 2 m rendering.

    Args:
        inside: ``[5 h, 5 w]`` 2 m sub-pixels inside the area (0 or 1), from (left, top).
        top: Northing of the top edge.
        left: Easting of the left edge.
        angle: Direction of the stripes (radians counter-clockwise from east).
        width: Stripe width across (m).
        gap: Gap between stripes (m).
        phase: Where one stripe starts, across the stripes (m from the origin of the CRS).

    Returns:
        ``[h, w]`` shares, 0-1.
    """
    sub = _SUBPIXEL_M
    n_r, n_c = inside.shape
    y = top - sub * (np.arange(n_r, dtype=np.float64) + 0.5)
    x = left + sub * (np.arange(n_c, dtype=np.float64) + 0.5)
    c, s = math.cos(angle), math.sin(angle)
    across = y[:, None] * c - x[None, :] * s  # the coordinate across the stripes
    half = 0.5 * sub * (abs(c) + abs(s))  # a sub-pixel's half extent across them
    cover = _stripe_cover(across - half, across + half, width=width, gap=gap, phase=phase)
    return block_mean(inside * cover.astype("f4"), _SUBPIXELS)


def render_farms(config: RegionConfig, grid: Grid, land: Land, farms: list[Farm]) -> None:
    """Footprint, panel and road fractions of every 10 m pixel, from 2 m renderings; with a
    preset also the fenced ground (``fence``: footprint, fence strip and a rooftop plant's
    roof, the layer the farm's materials cover) and the roofs under rooftop plants."""
    maps = land.maps
    for f in farms:
        r, c, h, w = f.window
        win = np.s_[r : r + h, c : c + w]
        top = grid.y0 - r * PIXEL_M
        ring = _spurious_ring(config, f)
        left = grid.x0 + c * PIXEL_M
        bits = _burn_layers(f, ring, top=top, left=left, h=h, w=w)
        foot = _layer_share(bits, _FOOTPRINT)
        maps["foot"][win] = np.maximum(maps["foot"][win], foot)
        maps["panel"][win] = np.maximum(maps["panel"][win], _panel_share(bits, f, top, left))
        maps["froad"][win] = np.maximum(maps["froad"][win], _layer_share(bits, _ROADS))
        land.farm_index[win][foot > 0] = f.index
        if f.fence is not None:
            fence = _layer_share(bits, _FENCE)
            maps["fence"][win] = np.maximum(maps["fence"][win], fence)
            land.farm_index[win][fence > 0] = f.index
        if f.roof is not None:
            roof = maps[LOOKALIKE_LAYERS[f.roof_kind]]
            roof[win] = np.maximum(roof[win], _layer_share(bits, _ROOF))
        if f.hole is not None:
            _add_hole(maps, win, f.hole_kind, _layer_share(bits, _HOLE))
        if ring is not None:
            key = "pad" if config.spurious == "pad" else "snow"
            maps[key][win] = np.maximum(maps[key][win], _layer_share(bits, _RING))
        if f.unbuilt is not None:
            maps["graded"][win] = np.maximum(maps["graded"][win], _layer_share(bits, _UNBUILT))


def _spurious_ring(config: RegionConfig, f: Farm) -> BaseGeometry | None:
    """The spurious cue of a mapped farm, if the config asks for one: a ring of 2/3 to 4/3 of
    ``spurious_width`` (20 to 40 m by default) around the fence (not the hole), a concrete
    apron or a snow bank."""
    if not f.mapped or config.spurious == "none":
        return None
    w = float(config.spurious_width)
    pad_w = float(rng_for(config, "farms", 2, f.index).uniform(2 * w / 3, 4 * w / 3))
    fence = f.fence if f.fence is not None else f.outer
    return fence.buffer(pad_w, join_style="mitre").difference(fence)


def _burn_layers(
    f: Farm, ring: BaseGeometry | None, *, top: float, left: float, h: int, w: int
) -> NDArray[np.uint8]:
    """The farm's layers at 2 m ``[5 h, 5 w]`` from (left, top), one bit per layer.

    One pass for all layers: each burns its own bit (a layer never overlaps itself). The
    fenced ground of a preset farm is its fence less the hole and the unbuilt part.
    """
    fenced = f.fence
    for cut in (f.hole, f.unbuilt):
        if fenced is not None and cut is not None:
            fenced = fenced.difference(cut)
    layers = [f.footprint, f.panel_area, f.roads, f.hole, ring, f.unbuilt, fenced, f.roof]
    shapes_ = [(g, 1 << i) for i, g in enumerate(layers) if g is not None and not g.is_empty]
    sub = _SUBPIXEL_M
    return rasterize(
        shapes_,
        (h * _SUBPIXELS, w * _SUBPIXELS),
        transform=Affine(sub, 0, left, 0, -sub, top),
        merge_alg=MergeAlg.add,
        dtype=np.uint8,
    )


def _layer_share(bits: NDArray[np.uint8], layer: int) -> FloatMap:
    """Share of every 10 m pixel covered by one layer of :func:`_burn_layers`."""
    return block_mean((bits >> layer) & 1, _SUBPIXELS)


def _panel_share(bits: NDArray[np.uint8], f: Farm, top: float, left: float) -> FloatMap:
    """Share of every 10 m pixel covered by panels: the panel area times the row cover of each
    2 m sub-pixel (northing ``top`` at the top edge, easting ``left`` at the left)."""
    inside = (bits >> _PANELS) & 1
    if f.row_angle != 0.0:
        return stripe_share(
            inside,
            top=top,
            left=left,
            angle=f.row_angle,
            width=f.row_width,
            gap=f.row_gap,
            phase=f.row_phase,
        )
    sub = _SUBPIXEL_M
    y_top = top - sub * np.arange(bits.shape[0], dtype=np.float64)
    cover = _stripe_cover(
        y_top - sub, y_top, width=f.row_width, gap=f.row_gap, phase=f.row_phase
    ).astype("f4")
    return block_mean(inside * cover[:, None], _SUBPIXELS)


def _add_hole(maps: dict[str, FloatMap], win: Any, kind: str, hole: FloatMap) -> None:
    """A pond (water) or a substation (a bright-roofed built-up patch) in the window; a gap
    in a real outline (kind ``gap``) keeps the land as it is."""
    if kind == "gap":
        return
    if kind == "pond":
        maps["water"][win] = np.maximum(maps["water"][win], hole)
    else:
        maps["settle"][win] = np.maximum(maps["settle"][win], hole)
        maps["bright_roof"][win] = np.where(hole > 0, 0.6, maps["bright_roof"][win])
        maps["metal_roof"][win] = np.where(hole > 0, 0.0, maps["metal_roof"][win])
        maps["tree"][win] = np.where(hole > 0, 0.0, maps["tree"][win])


def _count(fraction: float, n: int) -> int:
    """``round(fraction * n)``, but at least one when the fraction is positive and n >= 2."""
    k = round(fraction * n)
    if fraction > 0 and k == 0 and n >= 2:
        k = 1
    return min(k, n)
