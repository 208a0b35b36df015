"""Solar farms: their shapes, where they go, what OSM knows of them, and how they look at 10 m.

Farms are unions of slightly rotated rectangular blocks with internal access roads, a hole
(a pond or a substation) in some, and east-west panel rows. :func:`place_farms` puts them,
largest first, where no water, village, snow, no data, paved road or other farm is in the way;
:func:`assign_roles` decides which OSM misses or maps only as generators; :func:`render_farms`
renders them at 2 m and averages to 10 m, so that every 10 m pixel mixes panels and the ground
between the rows, as in real imagery.
"""

from __future__ import annotations

import logging
import math
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
from data_prep.synthetic.grid import Grid
from data_prep.synthetic.landscape import Land

log = logging.getLogger(__name__)

__all__ = ["Farm", "assign_roles", "place_farms", "render_farms"]

_SUBPIXELS: Final = 5  # farms are rendered at 2 m: 5 x 5 sub-pixels per 10 m pixel
_SUBPIXEL_M: Final = PIXEL_M / _SUBPIXELS
#: The layers of a farm rendering, by bit.
_FOOTPRINT, _PANELS, _ROADS, _HOLE, _RING = range(5)
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
    """One solar farm: geometry in the scene CRS, panel rows, ground mix and what OSM knows."""

    index: int
    outer: BaseGeometry  # union of blocks, no holes (world)
    footprint: BaseGeometry  # outer minus the hole (world)
    hole: BaseGeometry | None
    hole_kind: str
    roads: BaseGeometry
    panel_area: BaseGeometry
    n_blocks: int
    row_width: float
    row_gap: float
    row_phase: float
    window: tuple[int, int, int, int]  # row, col, height, width of the claimed box (pixels)
    ground_green: float
    ground_dry: float
    panel_alt: float
    as_relation: bool
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
    """A farm's outline in local metres (centred near 0), before it is placed."""

    outer: BaseGeometry
    hole: BaseGeometry | None
    hole_kind: str
    roads: BaseGeometry
    n_blocks: int


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
    """Internal access roads (5 m), in each block's frame: one or two north-south, one
    east-west in tall blocks."""
    roads: list[Polygon] = []
    for b in blocks:
        x0, y0, x1, y1 = b.bounds
        bw, bh = x1 - x0, y1 - y0
        for _ in range(1 if bw < 300 else 2):
            xr = x0 + bw * rng.uniform(0.3, 0.7)
            roads.append(box(xr - 2.5, y0, xr + 2.5, y1))
        if bh > 250:
            yr = y0 + bh * rng.uniform(0.3, 0.7)
            roads.append(box(x0, yr - 2.5, x1, yr + 2.5))
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


def place_farms(config: RegionConfig, grid: Grid, land: Land) -> list[Farm]:
    """Place farms largest first where nothing forbids them; shrink or skip when crowded."""
    rng = rng_for(config, "farms")
    n_target = (
        config.n_farms if config.n_farms is not None else max(3, round(config.area_km2 / 1.5))
    )
    areas = _farm_areas(rng, config, n_target)
    sites = _Sites(grid, land)
    farms: list[Farm] = []
    for i, area_ha in enumerate(areas):
        farm = _place_farm(rng, sites, i, float(area_ha), index=len(farms))
        if farm is None:
            log.debug("no room for solar farm %d of %d (%.1f ha)", i + 1, n_target, area_ha)
        else:
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
    rng: np.random.Generator, config: RegionConfig, n_target: int
) -> NDArray[np.float64]:
    """Farm areas in hectares, largest first: log-uniform from 1 ha to 6 % of the region
    (at most 200 ha)."""
    region_ha = config.area_km2 * 100.0
    max_ha = min(200.0, max(1.5, 0.06 * region_ha))
    areas = np.sort(np.exp(rng.uniform(math.log(1.0), math.log(max_ha), n_target)))[::-1]
    return np.clip(areas, 1.05, max_ha)


def _place_farm(
    rng: np.random.Generator, sites: _Sites, i: int, area_ha: float, *, index: int
) -> Farm | None:
    """The ``i``-th farm of ``area_ha``, placed; up to five shapes, each 40 % smaller than the
    last (down to 1.05 ha), before giving up."""
    a = area_ha
    for _attempt in range(5):
        shape = _farm_shape(
            rng,
            a * 10_000.0,
            want_hole=(i == 0 and a >= 2.0) or (a >= 8.0 and rng.random() < 0.25),
        )
        site = sites.claim(rng, shape)
        if site is not None:
            window, dx, dy = site
            return _make_farm(rng, index, shape, dx, dy, window)
        if a <= 1.05:
            break
        a = max(1.05, a * 0.6)
    return None


class _Sites:
    """Where farms may still go.

    Claims (footprint + free ring) may not touch water, villages, snow, no data or other
    claims; footprints (+10 m) may not touch paved roads. Candidate sites are tested on a 4x
    coarser max-pooled grid (40 m steps): conservative, and 16 times fewer cells to test for
    the thousands of rejected candidates of a large scene.
    """

    coarse: Final = 4

    def __init__(self, grid: Grid, land: Land) -> None:
        maps = land.maps
        blocked = (maps["water"] > 0.05) | (maps["settle"] > 0.05) | (maps["snow"] > 0.05)
        blocked |= ndimage.binary_dilation(land.nodata, iterations=3)
        self.grid = grid
        self.blocked_coarse = max_pool(blocked, self.coarse, fill=True)
        self.roads = maps["asphalt"] > 0.1
        self.claimed = np.zeros((grid.H, grid.W), bool)

    def claim(
        self, rng: np.random.Generator, shape: _FarmShape
    ) -> tuple[tuple[int, int, int, int], float, float] | None:
        """Claim a free site for ``shape`` among 120 random candidates.

        Returns:
            The claimed window (row, col, height, width in pixels) and the shift (dx, dy) from
            the shape's local metres to the scene CRS; ``None`` when no candidate is free.
        """
        q = self.coarse
        H, W = self.grid.H, self.grid.W
        claim = shape.outer.buffer(_CLAIM_RING_M)
        minx, miny, maxx, maxy = claim.bounds
        h = math.ceil((maxy - miny) / PIXEL_M) + 1
        w = math.ceil((maxx - minx) / PIXEL_M) + 1
        hq, wq = -(-h // q), -(-w // q)
        if not ((hq + 1) * q < H and (wq + 1) * q < W):
            return None
        t_local = Affine(PIXEL_M, 0, minx, 0, -PIXEL_M, maxy)
        foot = shape.outer.buffer(PIXEL_M)
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


def _make_farm(
    rng: np.random.Generator,
    index: int,
    shape: _FarmShape,
    dx: float,
    dy: float,
    window: tuple[int, int, int, int],
) -> Farm:
    outer = affinity.translate(shape.outer, dx, dy)
    hole = affinity.translate(shape.hole, dx, dy) if shape.hole is not None else None
    footprint = outer.difference(hole) if hole is not None else outer
    roads = affinity.translate(shape.roads, dx, dy).intersection(outer)
    setback = rng.uniform(4.0, 10.0)
    panel_area = footprint.buffer(-setback, join_style="mitre").difference(roads)
    multipart = isinstance(outer, MultiPolygon)
    return Farm(
        index=index,
        outer=outer,
        footprint=footprint,
        hole=hole,
        hole_kind=shape.hole_kind,
        roads=roads,
        panel_area=panel_area,
        n_blocks=shape.n_blocks,
        row_width=float(rng.uniform(4.0, 6.0)),
        row_gap=float(rng.uniform(3.5, 6.5)),
        row_phase=float(rng.uniform(0.0, 10.0)),
        window=window,
        ground_green=float(rng.uniform(0.6, 0.95)),
        ground_dry=float(rng.uniform(0.1, 0.6)),
        panel_alt=float(rng.uniform(0.0, 1.0)),
        as_relation=hole is not None or multipart or bool(rng.random() < 0.25),
    )


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
    y_lo: NDArray[np.float64], y_hi: NDArray[np.float64], farm: Farm
) -> NDArray[np.float64]:
    """Share of each northing interval ``[y_lo, y_hi]`` covered by the east-west panel rows."""
    pitch = farm.row_width + farm.row_gap

    def cum(yv: NDArray[np.float64]) -> NDArray[np.float64]:
        t = yv - farm.row_phase
        return np.floor(t / pitch) * farm.row_width + np.minimum(np.mod(t, pitch), farm.row_width)

    return (cum(y_hi) - cum(y_lo)) / (y_hi - y_lo)


def render_farms(config: RegionConfig, grid: Grid, land: Land, farms: list[Farm]) -> None:
    """Footprint, panel and road fractions of every 10 m pixel, from 2 m renderings."""
    maps = land.maps
    for f in farms:
        r, c, h, w = f.window
        win = np.s_[r : r + h, c : c + w]
        top = grid.y0 - r * PIXEL_M
        ring = _spurious_ring(config, f)
        bits = _burn_layers(f, ring, top=top, left=grid.x0 + c * PIXEL_M, h=h, w=w)
        foot = _layer_share(bits, _FOOTPRINT)
        maps["foot"][win] = np.maximum(maps["foot"][win], foot)
        maps["panel"][win] = np.maximum(maps["panel"][win], _panel_share(bits, f, top))
        maps["froad"][win] = np.maximum(maps["froad"][win], _layer_share(bits, _ROADS))
        land.farm_index[win][foot > 0] = f.index
        if f.hole is not None:
            _add_hole(maps, win, f.hole_kind, _layer_share(bits, _HOLE))
        if ring is not None:
            key = "pad" if config.spurious == "pad" else "snow"
            maps[key][win] = np.maximum(maps[key][win], _layer_share(bits, _RING))


def _spurious_ring(config: RegionConfig, f: Farm) -> BaseGeometry | None:
    """The spurious cue of a mapped farm, if the config asks for one: a ring of 20 to 40 m
    around the fence (not the hole), a concrete apron or a snow bank."""
    if not f.mapped or config.spurious == "none":
        return None
    pad_w = float(rng_for(config, "farms", 2, f.index).uniform(20.0, 40.0))
    return f.outer.buffer(pad_w, join_style="mitre").difference(f.outer)


def _burn_layers(
    f: Farm, ring: BaseGeometry | None, *, top: float, left: float, h: int, w: int
) -> NDArray[np.uint8]:
    """The farm's layers at 2 m ``[5 h, 5 w]`` from (left, top), one bit per layer.

    One pass for all layers: each burns its own bit (a layer never overlaps itself).
    """
    layers = [f.footprint, f.panel_area, f.roads, f.hole, ring]  # in _FOOTPRINT.._RING order
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


def _panel_share(bits: NDArray[np.uint8], f: Farm, top: float) -> FloatMap:
    """Share of every 10 m pixel covered by panels: the panel area times the row cover of each
    2 m row (northing ``top`` at the top edge)."""
    sub = _SUBPIXEL_M
    y_top = top - sub * np.arange(bits.shape[0], dtype=np.float64)
    cover = _stripe_cover(y_top - sub, y_top, f).astype("f4")
    return block_mean(((bits >> _PANELS) & 1) * cover[:, None], _SUBPIXELS)


def _add_hole(maps: dict[str, FloatMap], win: Any, kind: str, hole: FloatMap) -> None:
    """A pond (water) or a substation (a bright-roofed built-up patch) in the window."""
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
