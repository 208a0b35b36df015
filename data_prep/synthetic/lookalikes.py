"""Things that are not solar but look like it: the usual false positives of solar mappers.

In a preset region, :func:`place_lookalikes` puts, next to some farms and elsewhere, plastic
greenhouses and tunnels (bright in the visible, bluish, in rows like panels), dark flat roofs,
metallic or bright industrial roofs and bare graded land, as many as the preset's
:class:`~data_prep.synthetic.presets.LookAlikeMix` asks for, never on a farm's site or its free
ring. :func:`render_lookalikes` draws them (at 2 m, averaged to 10 m) into the land's
look-alike layers (:data:`~data_prep.synthetic.landscape.LOOKALIKE_LAYERS`). The graded,
unbuilt part of partly built farms (kind ``unbuilt``) and the roofs under rooftop plants (kind
``roof``: the plant's array, in the truth, covers part of it) are listed with them, though
the farms draw them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import shapely
from rasterio.features import rasterize
from rasterio.transform import Affine
from shapely import affinity
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from data_prep.synthetic.config import PIXEL_M, RegionConfig
from data_prep.synthetic.farms import Farm, irregular_outline, stripe_share
from data_prep.synthetic.fields import block_mean, rng_for
from data_prep.synthetic.grid import Grid
from data_prep.synthetic.landscape import LOOKALIKE_LAYERS, Land

__all__ = ["LOOKALIKE_KINDS", "LookAlike", "place_lookalikes", "render_lookalikes"]

#: The kinds of look-alike, the kind of the unbuilt part of a partly built farm and of the roof
#: under a rooftop plant.
LOOKALIKE_KINDS: Final[tuple[str, ...]] = (*LOOKALIKE_LAYERS, "unbuilt", "roof")
#: The kinds the farms draw themselves.
_DRAWN_BY_FARMS: Final = frozenset({"unbuilt", "roof"})
_SUBPIXELS: Final = 5
_TRIES: Final = 30
#: Size of each kind (hectares, log-uniform).
_AREA_HA: Final = {
    "greenhouse": (0.3, 4.0),
    "dark_roof": (0.05, 1.0),
    "industrial_roof": (0.08, 1.5),
    "graded_land": (0.8, 8.0),
}


@dataclass
class LookAlike:
    """One look-alike: its kind, outline (scene CRS) and the farm it stands next to (or
    belongs to, when ``unbuilt`` or ``roof``; -1: none). Greenhouse tunnels are ``stripes``:
    direction (radians), tunnel width, gap and phase (m)."""

    kind: str
    geometry: BaseGeometry
    farm_id: int = -1
    stripes: tuple[float, float, float, float] | None = None


def _shape(rng: np.random.Generator, kind: str, area_m2: float) -> BaseGeometry:
    """A look-alike's outline in local metres (centred near 0, rotated by any angle): one to
    three aligned halls for roofs, a rectangle for a greenhouse block, an irregular patch for
    graded land."""
    if kind == "graded_land":
        shape: BaseGeometry = irregular_outline(rng, area_m2)
    elif kind == "greenhouse":
        aspect = math.exp(rng.uniform(0.0, math.log(3.0)))
        w = math.sqrt(area_m2 * aspect)
        shape = box(-w / 2, -area_m2 / w / 2, w / 2, area_m2 / w / 2)
    else:
        n = int(rng.integers(1, 4))
        halls = []
        y = 0.0
        for _ in range(n):
            a = area_m2 / n * rng.uniform(0.6, 1.4)
            aspect = math.exp(rng.uniform(0.0, math.log(4.0)))
            w = math.sqrt(a * aspect)
            h = a / w
            halls.append(box(-w / 2, y, w / 2, y + h))
            y += h + rng.uniform(8.0, 25.0)  # a yard between halls
        shape = affinity.translate(shapely.union_all(halls), 0.0, -y / 2)
    return affinity.rotate(shape, float(rng.uniform(0.0, 180.0)), origin=(0, 0))


class _Room:
    """Where look-alikes may go: not on no data, water, villages, paved roads, farm claims
    or other look-alikes (checked on the 10 m grid)."""

    def __init__(self, grid: Grid, land: Land) -> None:
        maps = land.maps
        taken = land.nodata | (maps["water"] > 0.05) | (maps["settle"] > 0.3)
        taken |= (maps["asphalt"] > 0.1) | (maps["snow"] > 0.3)
        if land.claimed is not None:
            taken |= land.claimed
        self.taken = taken
        self.grid = grid

    def take(self, geom: BaseGeometry) -> bool:
        """Claim ``geom`` (and a 10 m margin) if it is inside the scene and free."""
        g = self.grid
        minx, miny, maxx, maxy = geom.bounds
        c0, c1 = math.floor((minx - g.x0) / PIXEL_M) - 1, math.ceil((maxx - g.x0) / PIXEL_M) + 1
        r0, r1 = math.floor((g.y0 - maxy) / PIXEL_M) - 1, math.ceil((g.y0 - miny) / PIXEL_M) + 1
        if c0 < 0 or r0 < 0 or c1 > g.W or r1 > g.H:
            return False
        mask = rasterize(
            [(geom.buffer(PIXEL_M), 1)],
            (r1 - r0, c1 - c0),
            transform=Affine(PIXEL_M, 0, g.x0 + c0 * PIXEL_M, 0, -PIXEL_M, g.y0 - r0 * PIXEL_M),
            all_touched=True,
            dtype=np.uint8,
        ).astype(bool)
        win = self.taken[r0:r1, c0:c1]
        if (win & mask).any():
            return False
        win |= mask
        return True


def place_lookalikes(
    config: RegionConfig, grid: Grid, land: Land, farms: list[Farm]
) -> list[LookAlike]:
    """The look-alikes of a preset region (none without a preset), the unbuilt parts of its
    partly built farms and the roofs under its rooftop plants.

    Next to a share of the farms (30 to 250 m from their fence), one look-alike each; then,
    anywhere free, the preset's number per km^2 of each kind.
    """
    spec = config.preset_spec
    items = [
        LookAlike("unbuilt", f.unbuilt, farm_id=f.index)
        for f in farms
        if f.unbuilt is not None and not f.unbuilt.is_empty
    ]
    items += [LookAlike("roof", f.roof, farm_id=f.index) for f in farms if f.roof is not None]
    if spec is None:
        return items
    mix = spec.lookalikes
    rng = rng_for(config, "lookalikes")
    room = _Room(grid, land)
    weights = dict(mix.per_km2)
    kinds = list(weights)
    if not kinds:
        return items
    p = np.array([weights[k] for k in kinds], dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full(len(kinds), 1.0 / len(kinds))
    for f in farms:
        if rng.random() >= mix.near_farm_share:
            continue
        kind = kinds[int(rng.choice(len(kinds), p=p))]
        item = _near(rng, room, kind, f)
        if item is not None:
            items.append(item)
    x0, y0, x1, y1 = grid.bounds
    for kind in kinds:
        n = int(rng.poisson(weights[kind] * config.area_km2))
        for _ in range(n):
            for _try in range(_TRIES):
                centre = (rng.uniform(x0, x1), rng.uniform(y0, y1))
                item = _made(rng, kind, centre)
                if room.take(item.geometry):
                    items.append(item)
                    break
    return items


def _made(rng: np.random.Generator, kind: str, centre: tuple[float, float]) -> LookAlike:
    """A look-alike of ``kind`` centred at ``centre`` (scene CRS)."""
    lo, hi = _AREA_HA[kind]
    area_m2 = 10_000.0 * math.exp(rng.uniform(math.log(lo), math.log(hi)))
    geom = affinity.translate(_shape(rng, kind, area_m2), *centre)
    stripes = None
    if kind == "greenhouse":
        # Tunnels 6 to 9 m wide, 1 to 3 m apart, along the block's long side or across it.
        ring = np.asarray(geom.exterior.coords)
        edge = ring[1] - ring[0]
        angle = math.atan2(edge[1], edge[0]) + (math.pi / 2 if rng.random() < 0.5 else 0.0)
        stripes = (angle, float(rng.uniform(6.0, 9.0)), float(rng.uniform(1.0, 3.0)), 0.0)
    return LookAlike(kind, geom, stripes=stripes)


def _near(rng: np.random.Generator, room: _Room, kind: str, farm: Farm) -> LookAlike | None:
    """A look-alike of ``kind`` 30 to 250 m from the fence of ``farm``, if there is room."""
    c = farm.outer.centroid
    reach = math.sqrt(farm.outer.area / math.pi)
    for _ in range(_TRIES):
        ang = rng.uniform(0.0, 2 * math.pi)
        dist = reach + rng.uniform(30.0, 250.0) + 60.0
        item = _made(rng, kind, (c.x + dist * math.cos(ang), c.y + dist * math.sin(ang)))
        if room.take(item.geometry):
            item.farm_id = farm.index
            return item
    return None


def render_lookalikes(grid: Grid, land: Land, items: list[LookAlike]) -> None:
    """Draw the look-alikes into the land's look-alike layers (cover fractions of every
    10 m pixel, from a 2 m rendering; greenhouse blocks as rows of tunnels)."""
    sub = PIXEL_M / _SUBPIXELS
    for item in items:
        if item.kind in _DRAWN_BY_FARMS:
            continue  # the farm draws its own unbuilt ground and roof
        minx, miny, maxx, maxy = item.geometry.bounds
        c0 = max(0, math.floor((minx - grid.x0) / PIXEL_M))
        c1 = min(grid.W, math.ceil((maxx - grid.x0) / PIXEL_M))
        r0 = max(0, math.floor((grid.y0 - maxy) / PIXEL_M))
        r1 = min(grid.H, math.ceil((grid.y0 - miny) / PIXEL_M))
        if c1 <= c0 or r1 <= r0:
            continue
        top, left = grid.y0 - r0 * PIXEL_M, grid.x0 + c0 * PIXEL_M
        inside = rasterize(
            [(item.geometry, 1)],
            ((r1 - r0) * _SUBPIXELS, (c1 - c0) * _SUBPIXELS),
            transform=Affine(sub, 0, left, 0, -sub, top),
            dtype=np.uint8,
        )
        if item.stripes is not None:
            angle, width, gap, phase = item.stripes
            share = stripe_share(
                inside, top=top, left=left, angle=angle, width=width, gap=gap, phase=phase
            )
        else:
            share = block_mean(inside, _SUBPIXELS)
        layer = land.maps[LOOKALIKE_LAYERS[item.kind]]
        win = layer[r0:r1, c0:c1]
        np.maximum(win, share, out=win)
