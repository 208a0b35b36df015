"""The landscape of a synthetic region: field parcels, scrub, water, villages, roads and snow.

:func:`make_land` builds full-size per-pixel cover fractions from smooth random fields: warped
field parcels at different greenness over several soils, scrub, water bodies, settlements with
mixed roofs and metal sheds, roads and tracks, in the proportions of the region's
:class:`~data_prep.synthetic.presets.LandMix`. A preset adds its season (the greenness of the
vegetation on the date) and its terrain: forest, rock and snow on the high ground, flooded
paddies. The farm layers (footprint, panels, farm roads, spurious pads; with a preset the
fenced ground too) start empty and are filled by
:func:`~data_prep.synthetic.farms.render_farms`; with a preset, so do the layers of the
look-alikes (:data:`LOOKALIKE_LAYERS`, filled by
:func:`~data_prep.synthetic.lookalikes.render_lookalikes`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray
from skimage.draw import line_aa

from data_prep.synthetic.config import PIXEL_M, RegionConfig
from data_prep.synthetic.fields import FloatMap, rng_for, smooth_field
from data_prep.synthetic.grid import Grid
from data_prep.synthetic.presets import LandMix

__all__ = [
    "LANDCOVER_CLASSES",
    "LOOKALIKE_LAYERS",
    "Land",
    "Road",
    "classify_landcover",
    "make_land",
]

#: Classes of ``landcover.tif`` (10 m, uint8). 0 marks the no-data strip.
LANDCOVER_CLASSES: Final[dict[int, str]] = {
    0: "no data",
    1: "cropland / vegetation",
    2: "dry bare soil",
    3: "water",
    4: "road",
    5: "settlement",
    6: "snow",
    7: "solar",
    8: "spurious pad",
}

#: The cover maps of the look-alikes (preset regions only), by look-alike kind; the bare
#: graded ground of partly built farms is drawn into ``graded`` too.
LOOKALIKE_LAYERS: Final[dict[str, str]] = {
    "greenhouse": "greenhouse",
    "dark_roof": "dark_roof",
    "industrial_roof": "industrial_roof",
    "graded_land": "graded",
}
#: The terrain maps of a preset region.
_TERRAIN_LAYERS: Final = ("forest", "rock", "wet")
#: The land of a region without a preset: the generator's original southern India.
_ORIGINAL_LAND: Final = LandMix()
#: Share of the green cover lost to the season that turns to dry cover (the rest shows soil).
_SENESCENT_TO_DRY: Final = 0.6


@dataclass
class Road:
    """A road or track as drawn into the land, for the OSM labels."""

    kind: str  # primary, secondary, tertiary, track
    px: NDArray[np.float64]  # [N, 2] vertices in pixel (col, row)
    name: str


@dataclass
class Land:
    """Full-size per-pixel maps ``[H, W]`` (fractions 0-1 unless noted) and vector extras."""

    maps: dict[str, FloatMap]
    farm_index: NDArray[np.int32]  # -1 outside farms
    nodata: NDArray[np.bool_]
    band: NDArray[np.int32]
    col: NDArray[np.int32]
    rotation: float
    band_edges: NDArray[np.float32]
    band_width: NDArray[np.float32]
    band_offset: NDArray[np.float32]
    roads: list[Road] = field(default_factory=list)
    settlement_centres: list[tuple[float, float, float]] = field(default_factory=list)
    claimed: NDArray[np.bool_] | None = None  # farm claims (footprint + free ring)


def _nodata_strip(config: RegionConfig, H: int, W: int) -> NDArray[np.bool_]:
    """A slanted strip at the west or east edge, on the 20 m grid and repeated to 10 m."""
    h, w = H // 2, W // 2
    mask = np.zeros((h, w), bool)
    if config.nodata_fraction > 0:
        rng = rng_for(config, "nodata")
        mean_w = config.nodata_fraction * w
        slope = min(0.15, 0.8 * mean_w / (h / 2)) * rng.choice([-1.0, 1.0])
        rows = np.arange(h)[:, None] + 0.5
        edge = mean_w + slope * (rows - h / 2)
        cols = np.arange(w)[None, :] + 0.5
        mask = cols < edge if rng.random() < 0.5 else cols > (w - edge)
    return np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1)


@dataclass
class _Parcels:
    """Field parcels: strips along ``v`` cut into columns along ``u`` (a frame rotated by
    ``rotation``), as strip ``band`` and column ``col`` of every pixel ``[H, W]``."""

    rotation: float
    band: NDArray[np.int32]
    col: NDArray[np.int32]
    edges: NDArray[np.float32]  # strip b spans edges[b-1] <= v < edges[b]
    width: NDArray[np.float32]  # parcel width per strip
    offset: NDArray[np.float32]  # parcel offset per strip
    bund: FloatMap  # share of bunds and field margins


def make_land(config: RegionConfig, grid: Grid) -> Land:
    """The landscape before farms: parcels, scrub, water, villages, roads and snow; with a
    preset, in its season and with its terrain (forest, rock, snow, flooded paddies)."""
    H, W = grid.H, grid.W
    spec = config.preset_spec
    mix = spec.land if spec is not None else _ORIGINAL_LAND
    rng = rng_for(config, "land")
    parcels = _field_parcels(rng, H, W, mix)
    green, dry, red, dark = _crop_cover(rng, parcels, mix)
    green, dry, scrub = _add_scrub_and_margins(rng, green, dry, parcels.bund, mix)
    if spec is not None:
        green, dry = _in_season(
            config, parcels, green, dry, spec.greenness_on(config.resolved_date)
        )
    maps: dict[str, FloatMap] = {
        "green": green.astype("f4"),
        "dry": dry.astype("f4"),
        "red": red.astype("f4"),
        "dark": dark.astype("f4"),
        "scrub": scrub.astype("f4"),
        "illum": smooth_field(rng, (H, W), 3),
    }
    del green, dry, red, dark, scrub
    for name in ("water", "turbid", "settle", "bright_roof", "metal_roof", "tree", "asphalt"):
        maps[name] = np.zeros((H, W), "f4")
    for name in ("track", "snow", "foot", "panel", "froad", "pad"):
        maps[name] = np.zeros((H, W), "f4")
    if spec is not None:
        for name in (*_TERRAIN_LAYERS, *LOOKALIKE_LAYERS.values(), "fence"):
            maps[name] = np.zeros((H, W), "f4")
    land = Land(
        maps=maps,
        farm_index=np.full((H, W), -1, np.int32),
        nodata=_nodata_strip(config, H, W),
        band=parcels.band,
        col=parcels.col,
        rotation=parcels.rotation,
        band_edges=parcels.edges,
        band_width=parcels.width,
        band_offset=parcels.offset,
    )
    high = _elevation(config, (H, W)) if spec is not None and mix.snow_share > 0 else None
    _add_water(config, land, mix)
    _add_settlements(config, grid, land, mix, high=high)
    _add_roads(config, grid, land)
    if config.snow:
        _add_snow(config, land)
    if spec is not None:
        _add_terrain(config, land, mix, high)
    return land


def _field_parcels(rng: np.random.Generator, H: int, W: int, mix: LandMix) -> _Parcels:
    """Strips of random height, cut into parcels of a per-strip width, rotated and gently
    warped so boundaries are not ruler-straight."""
    y = np.arange(H, dtype="f4")[:, None] + 0.5
    x = np.arange(W, dtype="f4")[None, :] + 0.5
    theta = float(rng.uniform(-mix.parcel_turn, mix.parcel_turn))
    xs = x + 2.5 * smooth_field(rng, (H, W), 80)
    ys = y + 2.5 * smooth_field(rng, (H, W), 80)
    c, s = math.cos(theta), math.sin(theta)
    u = xs * c + ys * s
    v = -xs * s + ys * c
    del xs, ys
    vmin, vmax = float(v.min()) - 50.0, float(v.max()) + 50.0
    n_bands = int((vmax - vmin) / mix.parcel_height_px[0]) + 2
    heights = rng.uniform(*mix.parcel_height_px, n_bands)
    edges = (vmin + np.concatenate(([0.0], np.cumsum(heights)))).astype("f4")
    band = np.searchsorted(edges, v, side="right").astype(np.int32)  # edges[b-1] <= v < edges[b]
    band_w = rng.uniform(*mix.parcel_width_px, n_bands + 2).astype("f4")
    band_o = (rng.uniform(0.0, 1.0, n_bands + 2) * band_w).astype("f4")
    colf = (u + band_o[band]) / band_w[band]
    col = np.floor(colf).astype(np.int32)
    fu = (colf - col) * band_w[band]
    fv_lo = v - edges[np.clip(band - 1, 0, len(edges) - 1)]
    fv_hi = edges[np.clip(band, 0, len(edges) - 1)] - v
    edge_px = np.minimum(np.minimum(fu, band_w[band] - fu), np.minimum(fv_lo, fv_hi))
    bund = np.clip(1.0 - edge_px / 0.8, 0.0, 1.0).astype("f4") * 0.35
    return _Parcels(theta, band, col, edges, band_w, band_o, bund)


def _crop_cover(
    rng: np.random.Generator, parcels: _Parcels, mix: LandMix
) -> tuple[FloatMap, FloatMap, FloatMap, FloatMap]:
    """Green, dry-grass, red-soil and dark-soil shares ``[H, W]`` of the parcels.

    Crops, sparse and bare parcels in proportions that drift across the region, over soils
    that drift too.
    """
    band, col = parcels.band, parcels.col
    H, W = band.shape
    # Per-parcel attributes: a small table indexed by (strip, column), not per pixel.
    cmin = int(col.min())
    table = rng.random((4, len(parcels.width), int(col.max()) - cmin + 1), dtype="f4")
    u1, u2, u3, u4 = table[:, band, col - cmin]
    del table
    macro = smooth_field(rng, (H, W), 150)
    p_green = np.clip(mix.crop_share + 0.15 * macro, *mix.crop_share_range)
    crop = u1 < p_green
    sparse = ~crop & (u1 < p_green + mix.sparse_share)
    (c0, c1), (s0, s1) = mix.crop_green, mix.sparse_green
    green = np.where(crop, c0 + c1 * u2, np.where(sparse, s0 + s1 * u2, 0.1 * u2))
    dry = np.where(crop, 0.1 * (1 - green), np.where(sparse, 0.3, 0.5 * u3))
    green *= 1.0 + 0.12 * smooth_field(rng, (H, W), 4)
    soil_macro = smooth_field(rng, (H, W), 200)
    red = np.clip(mix.red_soil + 0.4 * soil_macro + 0.3 * (u3 - 0.5), 0.0, 1.0)
    dark = 0.4 * u4 * (1.0 - red)
    return green, dry, red, dark


def _add_scrub_and_margins(
    rng: np.random.Generator, green: FloatMap, dry: FloatMap, bund: FloatMap, mix: LandMix
) -> tuple[FloatMap, FloatMap, FloatMap]:
    """Green and dry shares with scrub and fallow commons (patchy natural cover without
    parcels) and dry-grass bunds and field margins laid over them; and the scrub share."""
    shape = green.shape
    scrub = np.clip((smooth_field(rng, shape, 120) - mix.scrub_cut) / 0.5, 0.0, 1.0)
    g_scrub = 0.12 + 0.35 * np.clip(0.5 + 0.3 * smooth_field(rng, shape, 8), 0.0, 1.0)
    green = green * (1 - scrub) + g_scrub * scrub
    dry = dry * (1 - scrub) + 0.45 * scrub
    dry = dry * (1 - bund) + bund  # bunds and field margins: dry grass
    green = green * (1 - bund)
    green = np.clip(green, 0.0, 1.0)
    dry = np.minimum(dry, 1.0 - green)
    return green, dry, scrub


def _in_season(
    config: RegionConfig, parcels: _Parcels, green: FloatMap, dry: FloatMap, greenness: float
) -> tuple[FloatMap, FloatMap]:
    """Green and dry shares on a date of ``greenness`` (0-1). Each parcel is in season (a
    per-parcel draw below ``greenness``: green) or not (ripe, harvested or dormant: 85 % of
    its green lost); the rest of the cover (margins, scrub) loses ``1 - greenness`` of it.
    Part of what is lost turns to dry cover (straw, stubble, dry grass), the rest to soil."""
    g = float(np.clip(greenness, 0.0, 1.0))
    rng = rng_for(config, "terrain", 2)
    cmin = int(parcels.col.min())
    table = rng.random((len(parcels.width), int(parcels.col.max()) - cmin + 1), dtype="f4")
    in_season = table[parcels.band, parcels.col - cmin] < g
    keep = np.where(in_season, np.float32(1.0), np.float32(0.15))
    keep = keep * (1.0 - parcels.bund) + np.float32(g) * parcels.bund
    new_green = green * keep
    lost = green - new_green
    dry = np.minimum(dry + np.float32(_SENESCENT_TO_DRY) * lost, 1.0 - new_green)
    return new_green.astype("f4"), dry.astype("f4")


def _add_water(config: RegionConfig, land: Land, mix: LandMix) -> None:
    """Tanks and lakes: the top ~1-3 % of a smooth field, with soft shores and turbidity."""
    rng = rng_for(config, "water")
    H, W = land.band.shape
    f = smooth_field(rng, (H, W), 50)
    share = rng.uniform(*mix.water_share)
    thr = float(np.quantile(f[::3, ::3], 1.0 - share))
    land.maps["water"] = np.clip((f - thr) / 0.05 + 0.5, 0.0, 1.0).astype("f4")
    land.maps["turbid"] = np.clip(0.4 + 0.3 * smooth_field(rng, (H, W), 40), 0.0, 1.0)


def _add_settlements(
    config: RegionConfig,
    grid: Grid,
    land: Land,
    mix: LandMix,
    *,
    high: FloatMap | None = None,
) -> None:
    """Villages (Gaussian clusters with ragged edges) and a few metal-roofed sheds; in the
    valleys when the region has high ground (``high``, the elevation, 0-1)."""
    rng = rng_for(config, "settle")
    H, W = grid.H, grid.W
    water = land.maps["water"]
    taken = water >= 0.05
    if high is not None:
        taken |= high > np.float32(np.quantile(high[::4, ::4], 0.5))
    villages, centres = _villages(rng, max(1, round(config.area_km2 / mix.km2_per_village)), taken)
    raw = villages + 0.25 * smooth_field(rng, (H, W), 6)
    settle = np.clip((raw - 0.55) / 0.1, 0.0, 1.0) * (1.0 - np.clip(water * 3, 0.0, 1.0))
    u_roof = rng.random((H, W), dtype="f4")
    u_tree = rng.random((H, W), dtype="f4")
    bright = np.where(u_roof > 0.75, 0.45, 0.15 * u_roof).astype("f4")
    metal = np.where(u_roof < 0.06, 0.5, 0.0).astype("f4")
    tree = (mix.tree_in_village * u_tree**2).astype("f4")
    _add_sheds(rng, centres, water, settle=settle, bright=bright, metal=metal, tree=tree)
    land.maps["settle"] = settle.astype("f4")
    land.maps["bright_roof"] = bright
    land.maps["metal_roof"] = metal
    land.maps["tree"] = tree
    land.settlement_centres = centres


def _villages(
    rng: np.random.Generator, n: int, taken: NDArray[np.bool_]
) -> tuple[FloatMap, list[tuple[float, float, float]]]:
    """``n`` Gaussian bumps ``[H, W]`` (max-composited) centred where nothing has ``taken``
    the ground (water, high ground), and their (row, column, radius)."""
    H, W = taken.shape
    field_ = np.zeros((H, W), "f4")
    centres: list[tuple[float, float, float]] = []
    for _ in range(n):
        for _try in range(20):
            r, c = rng.uniform(0.1 * H, 0.9 * H), rng.uniform(0.1 * W, 0.9 * W)
            if not taken[int(r), int(c)]:
                break
        radius = rng.uniform(10.0, 30.0) * min(1.0, H / 256)
        centres.append((r, c, radius))
        r0, r1 = max(0, int(r - 4 * radius)), min(H, int(r + 4 * radius) + 1)
        c0, c1 = max(0, int(c - 4 * radius)), min(W, int(c + 4 * radius) + 1)
        yy = np.arange(r0, r1)[:, None] + 0.5 - r
        xx = np.arange(c0, c1)[None, :] + 0.5 - c
        bump = np.exp(-(yy**2 + xx**2) / (2 * radius**2)).astype("f4")
        field_[r0:r1, c0:c1] = np.maximum(field_[r0:r1, c0:c1], bump)
    return field_, centres


def _add_sheds(
    rng: np.random.Generator,
    centres: list[tuple[float, float, float]],
    water: FloatMap,
    *,
    settle: FloatMap,
    bright: FloatMap,
    metal: FloatMap,
    tree: FloatMap,
) -> None:
    """Sheds and warehouses near villages, in place: bright or blue metal roofs, 30 to 120 m a
    side. Dark flat roofs are the closest thing to panels in the landscape, so they keep the
    task honest."""
    H, W = water.shape
    for r, c, radius in centres:
        for _ in range(int(rng.integers(1, 4))):
            ang = rng.uniform(0, 2 * np.pi)
            dist = rng.uniform(1.5, 3.0) * radius
            rr, cc = int(r + dist * np.sin(ang)), int(c + dist * np.cos(ang))
            hh, ww = int(rng.integers(3, 9)), int(rng.integers(3, 13))
            if not (0 <= rr < H - hh and 0 <= cc < W - ww):
                continue
            if water[rr : rr + hh, cc : cc + ww].max() > 0.05:
                continue
            settle[rr : rr + hh, cc : cc + ww] = 1.0
            is_metal = rng.random() < 0.5
            metal[rr : rr + hh, cc : cc + ww] = 0.8 if is_metal else 0.0
            bright[rr : rr + hh, cc : cc + ww] = 0.0 if is_metal else 0.8
            tree[rr : rr + hh, cc : cc + ww] = 0.0


def _draw_polyline(
    target: FloatMap, px: NDArray[np.float64], weight: float, *, width: int = 1
) -> None:
    """Anti-aliased polyline into ``target`` (max-composited), ``width`` 1 or 2 pixels."""
    H, W = target.shape
    for (c0, r0), (c1, r1) in itertools.pairwise(px):
        offsets = (
            [(0, 0)] if width == 1 else [(0, 0), (1, 0) if abs(c1 - c0) < abs(r1 - r0) else (0, 1)]
        )
        for dc, dr in offsets:
            rr, cc, val = line_aa(round(r0) + dr, round(c0) + dc, round(r1) + dr, round(c1) + dc)
            ok = (rr >= 0) & (rr < H) & (cc >= 0) & (cc < W)
            rr, cc, val = rr[ok], cc[ok], val[ok].astype("f4") * weight
            np.maximum.at(target, (rr, cc), val)


def _add_roads(config: RegionConfig, grid: Grid, land: Land) -> None:
    """Main roads across the region (through villages) and dirt tracks between fields."""
    rng = rng_for(config, "roads")
    side_km = config.size * PIXEL_M / 1000.0
    n_main = max(2, round(side_km / 3.5))
    kinds = ["primary", "secondary"] + ["tertiary"] * max(0, n_main - 2)
    for i, kind in enumerate(kinds):
        road = _main_road(rng, grid, kind, i, land.settlement_centres)
        weight = {"primary": 0.95, "secondary": 0.85, "tertiary": 0.7}[kind]
        _draw_polyline(land.maps["asphalt"], road.px, weight, width=1 if kind == "tertiary" else 2)
        land.roads.append(road)
    n_track = max(3, round(config.area_km2 / 8.0))
    for _ in range(n_track):
        track = _track(rng, grid)
        _draw_polyline(land.maps["track"], track.px, 0.45)
        land.roads.append(track)


def _main_road(
    rng: np.random.Generator,
    grid: Grid,
    kind: str,
    i: int,
    centres: list[tuple[float, float, float]],
) -> Road:
    """The ``i``-th main road: edge to edge, alternately east-west and north-south, often
    through a village, bending gently."""
    H, W = grid.H, grid.W
    horizontal = (i % 2 == 0) != bool(rng.random() < 0.5)
    a, b = rng.uniform(0.1, 0.9, 2)
    start = np.array([-5.0, a * H]) if horizontal else np.array([a * W, -5.0])
    end = np.array([W + 5.0, b * H]) if horizontal else np.array([b * W, H + 5.0])
    mids = []
    if centres and rng.random() < 0.7:
        r, c, _ = centres[int(rng.integers(len(centres)))]
        mids.append(np.array([c, r]))
    pts = [start, *mids, end]
    # Densify with gentle perpendicular jitter: country roads bend.
    verts = [pts[0]]
    for p, q in itertools.pairwise(pts):
        d = q - p
        normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        for t in (1 / 3, 2 / 3):
            verts.append(p + t * d + normal * rng.normal(0, 0.03) * np.hypot(*d))
        verts.append(q)
    name = f"{'SH' if kind == 'primary' else 'MDR'} {int(rng.integers(3, 99))}"
    return Road(kind=kind, px=np.array(verts), name=name)


def _track(rng: np.random.Generator, grid: Grid) -> Road:
    """A dirt track: a few wandering segments of 250 to 800 m from a random point."""
    p = np.array([rng.uniform(0, grid.W), rng.uniform(0, grid.H)])
    ang = rng.uniform(0, 2 * np.pi)
    verts = [p]
    for _seg in range(int(rng.integers(2, 5))):
        ang += rng.normal(0, 0.4)
        step = rng.uniform(25, 80)
        p = p + step * np.array([np.cos(ang), np.sin(ang)])
        verts.append(p)
    return Road(kind="track", px=np.array(verts), name="")


def _add_snow(config: RegionConfig, land: Land) -> None:
    rng = rng_for(config, "snow")
    f = smooth_field(rng, land.band.shape, 30)
    thr = float(np.quantile(f[::3, ::3], 0.96))
    snow = np.clip((f - thr) / 0.08 + 0.5, 0.0, 1.0) * (land.maps["water"] < 0.5)
    land.maps["snow"] = np.maximum(land.maps["snow"], snow.astype("f4"))


def _elevation(config: RegionConfig, shape: tuple[int, int]) -> FloatMap:
    """Relative elevation ``[H, W]`` (0 lowest, 1 highest): broad ridges and valleys with
    rougher slopes."""
    rng = rng_for(config, "terrain")
    e = smooth_field(rng, shape, 160) + 0.35 * smooth_field(rng, shape, 40)
    lo, hi = float(e.min()), float(e.max())
    return ((e - lo) / max(hi - lo, 1e-6)).astype("f4")


def _top_share(f: FloatMap, share: float, *, soft: float) -> FloatMap:
    """Soft mask ``[H, W]`` of the ``share`` of pixels where ``f`` is highest (edges ``soft``
    wide in ``f``'s units)."""
    thr = float(np.quantile(f[::3, ::3], 1.0 - share))
    return np.clip((f - thr) / soft + 0.5, 0.0, 1.0).astype("f4")


def _add_terrain(config: RegionConfig, land: Land, mix: LandMix, high: FloatMap | None) -> None:
    """Forest, rock and snow (on the high ground, when there is any) and flooded paddies,
    kept off water and villages."""
    rng = rng_for(config, "terrain", 1)
    maps = land.maps
    shape = land.band.shape
    free = (1.0 - np.clip(3.0 * maps["water"], 0.0, 1.0)) * (1.0 - maps["settle"])
    forest_f = smooth_field(rng, shape, 60) + 0.4 * smooth_field(rng, shape, 8)
    if high is not None:
        # Snow on the peaks, rock and scree below it, forest on the slopes below that.
        rough = 0.04 * smooth_field(rng, shape, 6)
        snow = _top_share(high + rough, mix.snow_share, soft=0.02)
        rock = _top_share(high + rough, mix.snow_share + mix.rock_share, soft=0.03) - snow
        rock = np.clip(rock + 0.25 * np.clip(smooth_field(rng, shape, 10) - 1.5, 0, 1), 0, 1)
        forest_f = forest_f + 2.5 * (1.0 - np.abs(high - 0.55) / 0.3)
        maps["snow"] = np.maximum(maps["snow"], snow * free)
        maps["rock"] = (rock * (1.0 - snow) * free).astype("f4")
    if mix.forest_share > 0:
        forest = _top_share(forest_f, mix.forest_share, soft=0.3)
        maps["forest"] = (forest * free * (1.0 - maps["snow"]) * (1.0 - maps["rock"])).astype("f4")
    if mix.wet_share > 0:
        # Whole parcels flooded (a per-parcel draw), the water showing between young rice.
        cmin = int(land.col.min())
        table = rng.random((2, len(land.band_width), int(land.col.max()) - cmin + 1), dtype="f4")
        u_wet, u_depth = table[:, land.band, land.col - cmin]
        flooded = u_wet < mix.wet_share
        wet = np.where(flooded, 0.3 + 0.6 * u_depth, 0.0) * free
        maps["wet"] = (wet * (1.0 - 0.5 * maps["scrub"])).astype("f4")


def classify_landcover(land: Land) -> NDArray[np.uint8]:
    """Land cover ``[H, W]`` (:data:`LANDCOVER_CLASSES`): the layer covering at least half of
    each pixel, the later in this order winning: (forest: vegetation, rock: bare, flooded
    paddies: water), road, settlement, (built look-alikes: settlement, graded ground: bare),
    water, snow, solar, pad. The bracketed layers exist in preset regions only."""
    maps = land.maps
    lc = np.where(maps["green"] >= 0.35, 1, 2).astype(np.uint8)
    if "forest" in maps:
        lc[maps["forest"] >= 0.5] = 1
        lc[maps["rock"] >= 0.5] = 2
        lc[maps["wet"] >= 0.5] = 3
    lc[maps["asphalt"] >= 0.5] = 4
    lc[maps["settle"] >= 0.5] = 5
    if "graded" in maps:
        for kind, layer in LOOKALIKE_LAYERS.items():
            lc[maps[layer] >= 0.5] = 2 if kind == "graded_land" else 5
    lc[maps["water"] >= 0.5] = 3
    lc[maps["snow"] >= 0.5] = 6
    lc[maps["foot"] >= 0.5] = 7
    lc[maps["pad"] >= 0.5] = 8
    lc[land.nodata] = 0
    return lc
