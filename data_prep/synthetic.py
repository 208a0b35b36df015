"""A synthetic Sentinel-2 L2A-like demo region, so the whole pipeline runs offline.

:func:`generate_region` writes one square region: a 10-band L2A-like scene (uint16 digital
numbers with the L2A offset), its 20 m scene classification (SCL), OSM labels as OSM XML (tagged
the way OpenStreetMap tags solar plants and panel rows, and as incomplete as real OSM), the
complete ground truth of every solar farm, and a land-cover map for audits.

The landscape is built from smooth random fields: warped field parcels at different greenness
over several soils, scrub, water bodies, settlements with mixed roofs and metal sheds, roads and
tracks. Solar farms are unions of slightly rotated rectangular blocks with internal access roads
and east-west panel rows, rendered at 2 m and averaged to 10 m so that every 10 m pixel mixes
panels and the ground between the rows, as in real imagery. Reflectances are linear mixtures of
published Sentinel-2 surface-reflectance spectra, with per-field and per-farm variation,
spatially correlated and per-pixel noise, 20 m bands at 20 m, clouds with their shadows and a
no-data strip at a swath edge.

Example:
    >>> files = generate_region(Path("demo"), RegionConfig(seed=1, size=512))  # doctest: +SKIP
    >>> files.scene  # doctest: +SKIP
    PosixPath('demo/scene.tif')
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, get_args
from xml.sax.saxutils import quoteattr

import numpy as np
import rasterio
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from rasterio.enums import MergeAlg
from rasterio.features import rasterize, shapes
from rasterio.transform import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from skimage.draw import line_aa

from solarmap.bands import (
    BANDS,
    L2A_BOA_ADD_OFFSET,
    L2A_QUANTIFICATION,
    NATIVE_RESOLUTION_M,
    SCL_CLASSES,
    SclClass,
)
from solarmap.errors import InputError
from solarmap.geo import cog_writer, write_cog, write_json, write_text, write_vector

log = logging.getLogger(__name__)

__all__ = [
    "BOA_ADD_OFFSET",
    "BOA_QUANTIFICATION_VALUE",
    "DEFAULT_ORIGIN",
    "GENERATOR_VERSION",
    "LANDCOVER_CLASSES",
    "SCL_CLASSES",
    "SCL_WRITTEN",
    "SPECTRA",
    "RegionConfig",
    "RegionFiles",
    "SpuriousCue",
    "generate_region",
]

#: Version of the generator; bump it whenever the same config would give different files.
GENERATOR_VERSION: Final = "1.0.0"

SpuriousCue = Literal["none", "pad", "snow"]

#: Upper-left corner (easting, northing) of seed 0 in the default CRS (UTM 43N, Karnataka).
DEFAULT_ORIGIN: Final[tuple[float, float]] = (700000.0, 1560000.0)

#: L2A encoding, named as in the scene tags: reflectance = (DN + BOA_ADD_OFFSET) /
#: BOA_QUANTIFICATION_VALUE (:mod:`solarmap.bands`).
BOA_ADD_OFFSET: Final = L2A_BOA_ADD_OFFSET
BOA_QUANTIFICATION_VALUE: Final = L2A_QUANTIFICATION

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

#: The scene classification classes (:data:`~solarmap.bands.SCL_CLASSES`) the generator writes
#: in ``scene_SCL.tif`` (20 m, uint8).
SCL_WRITTEN: Final[tuple[int, ...]] = tuple(
    int(c)
    for c in (
        SclClass.NO_DATA,
        SclClass.CLOUD_SHADOW,
        SclClass.VEGETATION,
        SclClass.NOT_VEGETATED,
        SclClass.WATER,
        SclClass.CLOUD_MEDIUM_PROBABILITY,
        SclClass.CLOUD_HIGH_PROBABILITY,
        SclClass.THIN_CIRRUS,
        SclClass.SNOW,
    )
)

#: Surface reflectance (0-1) of the end-members, bands in :data:`BANDS` order. Vegetation, bare
#: soil, water, asphalt, settlement and snow follow published Sentinel-2 L2A values; panels are
#: dark, nearly flat and slightly blue (glass over silicon, with a small red-edge/NIR rise from
#: frames and the backsheet between cells); grass is the mown, lush cover kept under panel rows;
#: the others are plausible variants for per-field variety. Farm ground mixes grass, dry grass
#: and soil; with ~45 % panel cover the solar-pixel median falls near the median of real solar
#: pixels (Austria, 2022), blue up and NIR down against the vegetation around.
SPECTRA: Final[dict[str, tuple[float, ...]]] = {
    "vegetation": (0.03, 0.06, 0.04, 0.10, 0.25, 0.32, 0.35, 0.37, 0.22, 0.11),
    "dry_grass": (0.06, 0.085, 0.10, 0.14, 0.20, 0.23, 0.25, 0.27, 0.33, 0.23),
    "bare_soil": (0.10, 0.14, 0.18, 0.21, 0.24, 0.26, 0.28, 0.30, 0.36, 0.30),
    "red_soil": (0.07, 0.10, 0.16, 0.20, 0.23, 0.25, 0.27, 0.29, 0.35, 0.29),
    "dark_soil": (0.05, 0.07, 0.09, 0.11, 0.13, 0.15, 0.16, 0.17, 0.22, 0.18),
    "water": (0.06, 0.05, 0.03, 0.02, 0.015, 0.012, 0.01, 0.01, 0.005, 0.003),
    "turbid_water": (0.08, 0.10, 0.09, 0.07, 0.04, 0.03, 0.025, 0.02, 0.008, 0.004),
    "asphalt": (0.09, 0.10, 0.11, 0.12, 0.13, 0.13, 0.14, 0.14, 0.16, 0.15),
    "gravel": (0.14, 0.17, 0.20, 0.22, 0.24, 0.26, 0.27, 0.28, 0.32, 0.27),
    "settlement": (0.10, 0.11, 0.13, 0.15, 0.18, 0.20, 0.21, 0.22, 0.25, 0.21),
    "bright_roof": (0.22, 0.24, 0.26, 0.27, 0.28, 0.29, 0.30, 0.30, 0.32, 0.28),
    "metal_roof": (0.13, 0.12, 0.09, 0.10, 0.11, 0.11, 0.11, 0.11, 0.12, 0.10),
    "snow": (0.85, 0.85, 0.83, 0.80, 0.78, 0.76, 0.74, 0.72, 0.10, 0.08),
    "grass": (0.035, 0.07, 0.045, 0.12, 0.30, 0.38, 0.42, 0.44, 0.26, 0.13),
    "panel": (0.080, 0.080, 0.070, 0.075, 0.090, 0.105, 0.115, 0.120, 0.125, 0.095),
    "panel_alt": (0.095, 0.090, 0.075, 0.078, 0.092, 0.108, 0.118, 0.124, 0.130, 0.100),
    "pad": (0.30, 0.32, 0.34, 0.35, 0.36, 0.36, 0.37, 0.37, 0.38, 0.35),
}
_CLOUD: Final = np.array([0.45, 0.44, 0.43, 0.44, 0.45, 0.46, 0.47, 0.47, 0.34, 0.24], "f4")

_EM: Final[tuple[str, ...]] = tuple(SPECTRA)
_K: Final[dict[str, int]] = {name: i for i, name in enumerate(_EM)}
_E: Final = np.array([SPECTRA[n] for n in _EM], dtype="f4").T  # [10 bands, K end-members]

_PIXEL_M: Final = 10.0
_SS: Final = 5  # farms are rendered at 2 m: 5 x 5 sub-pixels per 10 m pixel
_STRIP: Final = 512  # rows per synthesis strip (even, COG block size)
_CLAIM_M: Final = 45.0  # free ring around every farm: room for a pad, keeps farms apart
_PSF_SIGMA: Final = 0.45  # pixels
_HALO: Final = 2  # rows beyond a strip needed by the PSF (3 sigma)
_SHADOW_PX: Final = 40  # cloud shadows fall this many pixels north and west (sun in the SE)
_OSM_VERSIONS: Final = (1, 2, 3)
_BANDS_20M: Final = tuple(i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 20)
_BANDS_10M: Final = tuple(i for i, b in enumerate(BANDS) if NATIVE_RESOLUTION_M[b] == 10)
_STREAMS: Final = {
    "land": 1,
    "water": 2,
    "settle": 3,
    "roads": 4,
    "snow": 5,
    "farms": 6,
    "sky": 7,
    "noise": 8,
    "osm": 9,
    "nodata": 10,
}

_PLACE_A: Final = ("Hosa", "Kere", "Bel", "Chikka", "Dodda", "Mala", "Sira", "Kudu", "Hale", "Nan")
_PLACE_B: Final = ("halli", "pura", "gere", "palya", "kote", "hatti", "nagar", "wadi", "kal", "ur")
_OPERATORS: Final = (
    "Surya Urja Pvt Ltd",
    "Deccan Solar Parks",
    "Kaveri Renewables",
    "Sunfield Power",
    "Tungabhadra Green Energy",
)

FloatMap = NDArray[np.float32]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class RegionConfig:
    """Everything that decides a synthetic region; same config, byte-identical files.

    Attributes:
        seed: Random seed (>= 0).
        size: Pixels per side (square, 10 m pixels), even, 64 to 16384. Peak memory is about
            200 bytes per pixel (0.8 GB at 2048, 13 GB at 8192).
        epsg: Projected CRS in metres (default UTM 43N, southern India).
        origin: Upper-left (easting, northing). ``None``: :data:`DEFAULT_ORIGIN` shifted by
            whole regions per seed, so different seeds are different places.
        date: Acquisition date, ISO ``YYYY-MM-DD``.
        n_farms: Farms to place; ``None``: about one per 1.5 km^2, at least 3. Fewer are placed
            when the landscape has no room (logged).
        unmapped_fraction: Share of farms absent from OSM.
        orphan_generator_fraction: Share of mapped farms whose panel rows are tagged only as
            generators, with no plant around them.
        cloud_fraction: Share of the scene under cloud (SCL 8, 9, 10); shadows come on top.
        nodata_fraction: Share of the scene in a no-data strip at the west or east edge.
        spurious: Plant a bright pad (``"pad"``) or snow (``"snow"``) around every OSM-mapped
            farm, a shortcut a model may learn instead of the panels.
        snow: Add snow patches to the landscape (land cover, SCL 11).
    """

    seed: int = 0
    size: int = 1024
    epsg: int = 32643
    origin: tuple[float, float] | None = None
    date: str = "2022-03-15"
    n_farms: int | None = None
    unmapped_fraction: float = 0.2
    orphan_generator_fraction: float = 0.1
    cloud_fraction: float = 0.03
    nodata_fraction: float = 0.02
    spurious: SpuriousCue = "none"
    snow: bool = False

    def __post_init__(self) -> None:
        def whole(name: str, value: Any, lo: int, hi: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise InputError(f"RegionConfig.{name}={value!r}: give a whole number")
            if not lo <= value <= hi:
                raise InputError(f"RegionConfig.{name}={value}: choose {lo} to {hi}")

        def share(name: str, value: Any, hi: float) -> None:
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
                raise InputError(f"RegionConfig.{name}={value!r}: give a number from 0 to {hi}")
            if not 0.0 <= float(value) <= hi:
                raise InputError(f"RegionConfig.{name}={value}: choose 0 to {hi}")

        whole("seed", self.seed, 0, 2**63 - 1)
        whole("size", self.size, 64, 16384)
        if self.size % 2:
            raise InputError(
                f"RegionConfig.size={self.size}: give an even size, so the 20 m SCL grid covers "
                "the same extent"
            )
        whole("epsg", self.epsg, 1024, 999999)
        try:
            crs = CRS.from_epsg(int(self.epsg))
        except CRSError as err:
            raise InputError(f"RegionConfig.epsg={self.epsg}: unknown EPSG code") from err
        units = {ax.unit_name for ax in crs.axis_info}
        if not crs.is_projected or units != {"metre"}:
            raise InputError(
                f"RegionConfig.epsg={self.epsg}: not a projected CRS in metres; "
                "give a UTM code such as 32643"
            )
        if self.origin is not None and (
            not isinstance(self.origin, tuple | list)
            or len(self.origin) != 2
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in self.origin
            )
        ):
            raise InputError(
                f"RegionConfig.origin={self.origin!r}: give (easting, northing) in metres"
            )
        try:
            dt.date.fromisoformat(str(self.date))
        except ValueError as err:
            raise InputError(
                f"RegionConfig.date={self.date!r}: give an ISO date YYYY-MM-DD"
            ) from err
        if self.n_farms is not None:
            whole("n_farms", self.n_farms, 1, 100000)
        share("unmapped_fraction", self.unmapped_fraction, 1.0)
        share("orphan_generator_fraction", self.orphan_generator_fraction, 1.0)
        share("cloud_fraction", self.cloud_fraction, 0.5)
        share("nodata_fraction", self.nodata_fraction, 0.5)
        if self.spurious not in get_args(SpuriousCue):
            raise InputError(
                f"RegionConfig.spurious={self.spurious!r}: choose one of "
                f"{', '.join(get_args(SpuriousCue))}"
            )
        if not isinstance(self.snow, bool):
            raise InputError(f"RegionConfig.snow={self.snow!r}: give true or false")
        # Plain Python types, so asdict() is JSON as is and equal configs compare equal.
        for name in ("seed", "size", "epsg"):
            object.__setattr__(self, name, int(getattr(self, name)))
        if self.n_farms is not None:
            object.__setattr__(self, "n_farms", int(self.n_farms))
        for name in (
            "unmapped_fraction",
            "orphan_generator_fraction",
            "cloud_fraction",
            "nodata_fraction",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.origin is not None:
            object.__setattr__(self, "origin", (float(self.origin[0]), float(self.origin[1])))
        lon_lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(*self.resolved_origin)
        if not all(math.isfinite(v) for v in lon_lat):
            raise InputError(
                f"RegionConfig.origin={self.resolved_origin}: outside EPSG:{self.epsg}; "
                "give an origin inside the CRS's area of use"
            )

    @property
    def resolved_origin(self) -> tuple[float, float]:
        """Upper-left (easting, northing) actually used: ``origin``, or the per-seed default."""
        if self.origin is not None:
            return (float(self.origin[0]), float(self.origin[1]))
        side = self.size * _PIXEL_M
        # Seeds walk east over 120 km, then a row further north (up to 1000 km), then repeat.
        per_row = max(1, int(120_000 // side))
        rows = max(1, int(1_000_000 // side))
        east = (self.seed % per_row) * side
        north = ((self.seed // per_row) % rows) * side
        return (DEFAULT_ORIGIN[0] + east, DEFAULT_ORIGIN[1] + north)

    @property
    def area_km2(self) -> float:
        """Area of the region in km^2."""
        return (self.size * _PIXEL_M / 1000.0) ** 2


@dataclass(frozen=True)
class RegionFiles:
    """Paths of the files :func:`generate_region` wrote."""

    root: Path
    scene: Path
    scl: Path
    osm: Path
    truth: Path
    landcover: Path
    config: Path


# --------------------------------------------------------------------------- random helpers


def _rng(config: RegionConfig, stream: str, *extra: int) -> np.random.Generator:
    # Independent streams per component: changing how roads are drawn leaves the farms alone.
    return np.random.default_rng([config.seed, _STREAMS[stream], *extra])


def _smooth(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> FloatMap:
    """Smooth Gaussian random field ``[H, W]`` with unit variance and correlation ~``scale`` px.

    Filtering white noise at full size with a wide kernel is slow for large scenes, so the field
    is made on a coarse grid and linearly interpolated to full size, one axis at a time (scipy's
    zoom is several times slower for this).
    """
    H, W = shape
    step = max(1, round(scale / 2))
    coarse = ndimage.gaussian_filter(rng.standard_normal((H // step + 3, W // step + 3)), 1.5)
    out = coarse[1 : H + 1, 1 : W + 1].astype("f4")
    if step > 1:
        out = _lerp_axis(_lerp_axis(coarse.astype("f4"), H, step, axis=0), W, step, axis=1)
    out -= out.mean()
    out /= max(float(out.std()), 1e-6)
    return out


def _lerp_axis(a: FloatMap, n: int, step: int, *, axis: int) -> FloatMap:
    """Linear interpolation of ``a`` along ``axis`` onto ``n`` samples ``step`` times denser."""
    pos = (np.arange(n, dtype=np.float64) + 0.5) / step + 0.5
    i0 = np.floor(pos).astype(np.intp)
    t = (pos - i0).astype("f4")
    if axis == 0:
        return a[i0] * (1 - t)[:, None] + a[i0 + 1] * t[:, None]
    return a[:, i0] * (1 - t)[None, :] + a[:, i0 + 1] * t[None, :]


def _max_pool(mask: NDArray[np.bool_], f: int, *, fill: bool) -> NDArray[np.bool_]:
    """Any-true over ``f`` x ``f`` blocks; edges padded with ``fill`` to whole blocks."""
    h, w = -(-mask.shape[0] // f), -(-mask.shape[1] // f)
    padded = np.full((h * f, w * f), fill, dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return np.asarray(padded.reshape(h, f, w, f).any(axis=(1, 3)))


def _count(fraction: float, n: int) -> int:
    """``round(fraction * n)``, but at least one when the fraction is positive and n >= 2."""
    k = round(fraction * n)
    if fraction > 0 and k == 0 and n >= 2:
        k = 1
    return min(k, n)


def _block_mean(a: NDArray[Any], f: int) -> FloatMap:
    """Mean over ``f`` x ``f`` blocks of the last two axes (sizes divisible by ``f``)."""
    h, w = a.shape[-2] // f, a.shape[-1] // f
    acc = np.uint16 if a.dtype == np.uint8 and f * f * 255 < 2**16 else np.float32
    # Two contiguous sums are several times faster than one mean over two strided axes.
    s = a.reshape(*a.shape[:-2], h, f, w * f).sum(axis=-2, dtype=acc)
    s = s.reshape(*a.shape[:-2], h, w, f).sum(axis=-1, dtype=acc)
    return s.astype("f4") * np.float32(1.0 / (f * f))


# --------------------------------------------------------------------------- grid and landscape


@dataclass
class _Grid:
    H: int
    W: int
    x0: float
    y0: float
    crs: CRS
    transform: Affine

    @classmethod
    def of(cls, config: RegionConfig) -> _Grid:
        x0, y0 = config.resolved_origin
        return cls(
            H=config.size,
            W=config.size,
            x0=x0,
            y0=y0,
            crs=CRS.from_epsg(config.epsg),
            transform=Affine(_PIXEL_M, 0.0, x0, 0.0, -_PIXEL_M, y0),
        )

    def world(self, px: NDArray[np.float64]) -> NDArray[np.float64]:
        """Pixel (col, row) continuous coordinates ``[N, 2]`` to world (x, y)."""
        return np.column_stack((self.x0 + _PIXEL_M * px[:, 0], self.y0 - _PIXEL_M * px[:, 1]))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0 - self.H * _PIXEL_M, self.x0 + self.W * _PIXEL_M, self.y0)


@dataclass
class _Road:
    kind: str  # primary, secondary, tertiary, track
    px: NDArray[np.float64]  # [N, 2] vertices in pixel (col, row)
    name: str


@dataclass
class _Land:
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
    roads: list[_Road] = field(default_factory=list)
    settlement_centres: list[tuple[float, float, float]] = field(default_factory=list)
    claimed: NDArray[np.bool_] | None = None  # farm claims (footprint + free ring)


def _nodata_strip(config: RegionConfig, H: int, W: int) -> NDArray[np.bool_]:
    """A slanted strip at the west or east edge, on the 20 m grid and repeated to 10 m."""
    h, w = H // 2, W // 2
    mask = np.zeros((h, w), bool)
    if config.nodata_fraction > 0:
        rng = _rng(config, "nodata")
        mean_w = config.nodata_fraction * w
        slope = min(0.15, 0.8 * mean_w / (h / 2)) * rng.choice([-1.0, 1.0])
        rows = np.arange(h)[:, None] + 0.5
        edge = mean_w + slope * (rows - h / 2)
        cols = np.arange(w)[None, :] + 0.5
        mask = cols < edge if rng.random() < 0.5 else cols > (w - edge)
    return np.repeat(np.repeat(mask, 2, axis=0), 2, axis=1)


def _make_land(config: RegionConfig, grid: _Grid) -> _Land:
    H, W = grid.H, grid.W
    rng = _rng(config, "land")
    y = np.arange(H, dtype="f4")[:, None] + 0.5
    x = np.arange(W, dtype="f4")[None, :] + 0.5

    # Field parcels: strips of random height, cut into parcels of a per-strip width, rotated
    # and gently warped so boundaries are not ruler-straight.
    theta = float(rng.uniform(-0.35, 0.35))
    xs = x + 2.5 * _smooth(rng, (H, W), 80)
    ys = y + 2.5 * _smooth(rng, (H, W), 80)
    c, s = math.cos(theta), math.sin(theta)
    u = xs * c + ys * s
    v = -xs * s + ys * c
    del xs, ys
    vmin, vmax = float(v.min()) - 50.0, float(v.max()) + 50.0
    n_bands = int((vmax - vmin) / 15.0) + 2
    heights = rng.uniform(15.0, 45.0, n_bands)
    edges = (vmin + np.concatenate(([0.0], np.cumsum(heights)))).astype("f4")
    band = np.searchsorted(edges, v, side="right").astype(np.int32)  # edges[b-1] <= v < edges[b]
    band_w = rng.uniform(12.0, 60.0, n_bands + 2).astype("f4")
    band_o = (rng.uniform(0.0, 1.0, n_bands + 2) * band_w).astype("f4")
    colf = (u + band_o[band]) / band_w[band]
    col = np.floor(colf).astype(np.int32)
    fu = (colf - col) * band_w[band]
    fv_lo = v - edges[np.clip(band - 1, 0, len(edges) - 1)]
    fv_hi = edges[np.clip(band, 0, len(edges) - 1)] - v
    edge_px = np.minimum(np.minimum(fu, band_w[band] - fu), np.minimum(fv_lo, fv_hi))
    bund = np.clip(1.0 - edge_px / 0.8, 0.0, 1.0).astype("f4") * 0.35
    del u, v, colf, fu, fv_lo, fv_hi, edge_px

    # Per-parcel attributes: a small table indexed by (strip, column), not per pixel.
    cmin = int(col.min())
    table = rng.random((4, n_bands + 2, int(col.max()) - cmin + 1), dtype="f4")
    u1, u2, u3, u4 = table[:, band, col - cmin]
    del table
    macro = _smooth(rng, (H, W), 150)
    p_green = np.clip(0.45 + 0.15 * macro, 0.2, 0.75)
    crop = u1 < p_green
    sparse = ~crop & (u1 < p_green + 0.2)
    green = np.where(crop, 0.55 + 0.45 * u2, np.where(sparse, 0.2 + 0.3 * u2, 0.1 * u2))
    dry = np.where(crop, 0.1 * (1 - green), np.where(sparse, 0.3, 0.5 * u3))
    green *= 1.0 + 0.12 * _smooth(rng, (H, W), 4)
    soil_macro = _smooth(rng, (H, W), 200)
    red = np.clip(0.5 + 0.4 * soil_macro + 0.3 * (u3 - 0.5), 0.0, 1.0)
    dark = 0.4 * u4 * (1.0 - red)
    del u1, u2, u3, u4, crop, sparse, p_green

    # Scrub and fallow commons: patchy natural cover without parcels.
    scrub = np.clip((_smooth(rng, (H, W), 120) - 0.8) / 0.5, 0.0, 1.0)
    g_scrub = 0.12 + 0.35 * np.clip(0.5 + 0.3 * _smooth(rng, (H, W), 8), 0.0, 1.0)
    green = green * (1 - scrub) + g_scrub * scrub
    dry = dry * (1 - scrub) + 0.45 * scrub
    dry = dry * (1 - bund) + bund  # bunds and field margins: dry grass
    green = green * (1 - bund)
    green = np.clip(green, 0.0, 1.0)
    dry = np.minimum(dry, 1.0 - green)

    maps: dict[str, FloatMap] = {
        "green": green.astype("f4"),
        "dry": dry.astype("f4"),
        "red": red.astype("f4"),
        "dark": dark.astype("f4"),
        "scrub": scrub.astype("f4"),
        "illum": _smooth(rng, (H, W), 3),
    }
    del green, dry, red, dark, scrub, g_scrub, macro, soil_macro
    for name in ("water", "turbid", "settle", "bright_roof", "metal_roof", "tree", "asphalt"):
        maps[name] = np.zeros((H, W), "f4")
    for name in ("track", "snow", "foot", "panel", "froad", "pad"):
        maps[name] = np.zeros((H, W), "f4")
    land = _Land(
        maps=maps,
        farm_index=np.full((H, W), -1, np.int32),
        nodata=_nodata_strip(config, H, W),
        band=band,
        col=col,
        rotation=theta,
        band_edges=edges,
        band_width=band_w,
        band_offset=band_o,
    )
    _add_water(config, land)
    _add_settlements(config, grid, land)
    _add_roads(config, grid, land)
    if config.snow:
        _add_snow(config, land)
    return land


def _add_water(config: RegionConfig, land: _Land) -> None:
    """Tanks and lakes: the top ~1-3 % of a smooth field, with soft shores and turbidity."""
    rng = _rng(config, "water")
    H, W = land.band.shape
    f = _smooth(rng, (H, W), 50)
    share = rng.uniform(0.01, 0.03)
    thr = float(np.quantile(f[::3, ::3], 1.0 - share))
    land.maps["water"] = np.clip((f - thr) / 0.05 + 0.5, 0.0, 1.0).astype("f4")
    land.maps["turbid"] = np.clip(0.4 + 0.3 * _smooth(rng, (H, W), 40), 0.0, 1.0)


def _add_settlements(config: RegionConfig, grid: _Grid, land: _Land) -> None:
    """Villages (Gaussian clusters with ragged edges) and a few metal-roofed sheds."""
    rng = _rng(config, "settle")
    H, W = grid.H, grid.W
    n = max(1, round(config.area_km2 / 12.0))
    field_ = np.zeros((H, W), "f4")
    water = land.maps["water"]
    centres: list[tuple[float, float, float]] = []
    for _ in range(n):
        for _try in range(20):
            r, c = rng.uniform(0.1 * H, 0.9 * H), rng.uniform(0.1 * W, 0.9 * W)
            if water[int(r), int(c)] < 0.05:
                break
        radius = rng.uniform(10.0, 30.0) * min(1.0, H / 256)
        centres.append((r, c, radius))
        r0, r1 = max(0, int(r - 4 * radius)), min(H, int(r + 4 * radius) + 1)
        c0, c1 = max(0, int(c - 4 * radius)), min(W, int(c + 4 * radius) + 1)
        yy = np.arange(r0, r1)[:, None] + 0.5 - r
        xx = np.arange(c0, c1)[None, :] + 0.5 - c
        bump = np.exp(-(yy**2 + xx**2) / (2 * radius**2)).astype("f4")
        field_[r0:r1, c0:c1] = np.maximum(field_[r0:r1, c0:c1], bump)
    raw = field_ + 0.25 * _smooth(rng, (H, W), 6)
    settle = np.clip((raw - 0.55) / 0.1, 0.0, 1.0) * (1.0 - np.clip(water * 3, 0.0, 1.0))
    u_roof = rng.random((H, W), dtype="f4")
    u_tree = rng.random((H, W), dtype="f4")
    bright = np.where(u_roof > 0.75, 0.45, 0.15 * u_roof).astype("f4")
    metal = np.where(u_roof < 0.06, 0.5, 0.0).astype("f4")
    tree = (0.35 * u_tree**2).astype("f4")
    # Sheds and warehouses near villages: bright or blue metal roofs, 30 to 120 m a side. Dark
    # flat roofs are the closest thing to panels in the landscape, so they keep the task honest.
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
    land.maps["settle"] = settle.astype("f4")
    land.maps["bright_roof"] = bright
    land.maps["metal_roof"] = metal
    land.maps["tree"] = tree
    land.settlement_centres = centres


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


def _add_roads(config: RegionConfig, grid: _Grid, land: _Land) -> None:
    """Main roads across the region (through villages) and dirt tracks between fields."""
    rng = _rng(config, "roads")
    H, W = grid.H, grid.W
    side_km = config.size * _PIXEL_M / 1000.0
    centres = land.settlement_centres
    n_main = max(2, round(side_km / 3.5))
    kinds = ["primary", "secondary"] + ["tertiary"] * max(0, n_main - 2)
    for i, kind in enumerate(kinds):
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
        px = np.array(verts)
        weight = {"primary": 0.95, "secondary": 0.85, "tertiary": 0.7}[kind]
        _draw_polyline(land.maps["asphalt"], px, weight, width=1 if kind == "tertiary" else 2)
        land.roads.append(
            _Road(
                kind=kind,
                px=px,
                name=f"{'SH' if kind == 'primary' else 'MDR'} {int(rng.integers(3, 99))}",
            )
        )
    n_track = max(3, round(config.area_km2 / 8.0))
    for _ in range(n_track):
        p = np.array([rng.uniform(0, W), rng.uniform(0, H)])
        ang = rng.uniform(0, 2 * np.pi)
        verts = [p]
        for _seg in range(int(rng.integers(2, 5))):
            ang += rng.normal(0, 0.4)
            step = rng.uniform(25, 80)
            p = p + step * np.array([np.cos(ang), np.sin(ang)])
            verts.append(p)
        px = np.array(verts)
        _draw_polyline(land.maps["track"], px, 0.45)
        land.roads.append(_Road(kind="track", px=px, name=""))


def _add_snow(config: RegionConfig, land: _Land) -> None:
    rng = _rng(config, "snow")
    f = _smooth(rng, land.band.shape, 30)
    thr = float(np.quantile(f[::3, ::3], 0.96))
    snow = np.clip((f - thr) / 0.08 + 0.5, 0.0, 1.0) * (land.maps["water"] < 0.5)
    land.maps["snow"] = np.maximum(land.maps["snow"], snow.astype("f4"))


# --------------------------------------------------------------------------- solar farms


@dataclass
class _Farm:
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
class _Shape:
    outer: BaseGeometry
    hole: BaseGeometry | None
    hole_kind: str
    roads: BaseGeometry
    n_blocks: int


def _farm_shape(rng: np.random.Generator, area_m2: float, *, want_hole: bool) -> _Shape:
    """Union of rectangular blocks (local metres, centred near 0), slightly rotated."""
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
    union = shapely.union_all(blocks)
    k = math.sqrt(area_m2 / union.area)
    blocks = [affinity.scale(b, k, k, origin=(0, 0)) for b in blocks]
    union = shapely.union_all(blocks)

    # Internal access roads (5 m), in each block's frame: one or two north-south, one east-west
    # in tall blocks.
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

    hole: BaseGeometry | None = None
    hole_kind = ""
    if want_hole:
        big = max(blocks, key=lambda g: g.area)
        hs = float(np.clip(math.sqrt(area_m2 * rng.uniform(0.03, 0.07)), 40.0, 160.0))
        inner = union.buffer(-(hs / 2 + 25.0), join_style="mitre")
        x0, y0, x1, y1 = big.bounds
        hole_kind = "pond" if rng.random() < 0.5 else "substation"
        for _ in range(30):
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if inner.contains(Point(cx, cy)):
                if hole_kind == "pond":
                    hole = Point(cx, cy).buffer(hs / 2, quad_segs=8)
                else:
                    hole = box(cx - hs / 2, cy - hs / 2, cx + hs / 2, cy + hs / 2)
                break
    angle = rng.uniform(-8.0, 8.0)
    union = affinity.rotate(union, angle, origin=(0, 0))
    road_union = affinity.rotate(shapely.union_all(roads), angle, origin=(0, 0))
    if hole is not None:
        hole = affinity.rotate(hole, angle, origin=(0, 0))
    return _Shape(
        outer=union, hole=hole, hole_kind=hole_kind if hole else "", roads=road_union, n_blocks=n
    )


def _place_farms(config: RegionConfig, grid: _Grid, land: _Land) -> list[_Farm]:
    """Place farms largest first where nothing forbids them; shrink or skip when crowded."""
    rng = _rng(config, "farms")
    H, W = grid.H, grid.W
    n_target = (
        config.n_farms if config.n_farms is not None else max(3, round(config.area_km2 / 1.5))
    )
    region_ha = config.area_km2 * 100.0
    max_ha = min(200.0, max(1.5, 0.06 * region_ha))
    areas = np.sort(np.exp(rng.uniform(math.log(1.0), math.log(max_ha), n_target)))[::-1]
    areas = np.clip(areas, 1.05, max_ha)

    m = land.maps
    # Claims (footprint + free ring) may not touch water, villages, snow, no data or other
    # claims; footprints (+10 m) may not touch paved roads.
    blocked = (m["water"] > 0.05) | (m["settle"] > 0.05) | (m["snow"] > 0.05)
    blocked |= ndimage.binary_dilation(land.nodata, iterations=3)
    # Candidate sites are tested on a 4x coarser max-pooled grid (40 m steps): conservative, and
    # 16 times fewer cells to test for the thousands of rejected candidates of a large scene.
    q = 4
    blocked_q = _max_pool(blocked, q, fill=True)
    roads = m["asphalt"] > 0.1
    claimed = np.zeros((H, W), bool)

    farms: list[_Farm] = []
    for i, area_ha in enumerate(areas):
        placed = False
        a = float(area_ha)
        for _attempt in range(5):
            shape = _farm_shape(
                rng,
                a * 10_000.0,
                want_hole=(i == 0 and a >= 2.0) or (a >= 8.0 and rng.random() < 0.25),
            )
            claim = shape.outer.buffer(_CLAIM_M)
            minx, miny, maxx, maxy = claim.bounds
            h = math.ceil((maxy - miny) / _PIXEL_M) + 1
            w = math.ceil((maxx - minx) / _PIXEL_M) + 1
            hq, wq = -(-h // q), -(-w // q)
            if (hq + 1) * q < H and (wq + 1) * q < W:
                t_local = Affine(_PIXEL_M, 0, minx, 0, -_PIXEL_M, maxy)
                foot = shape.outer.buffer(_PIXEL_M)
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
                claim_q = _max_pool(claim_mask, q, fill=False)
                rows = rng.integers(1, (H - h) // q, 120)
                cols = rng.integers(1, (W - w) // q, 120)
                cy, cx = _shape_centre_px(shape.outer, minx, maxy)
                for rq, cq in zip(rows.tolist(), cols.tolist(), strict=True):
                    if blocked_q[rq + cy // q, cq + cx // q]:  # cheap first test
                        continue
                    if (blocked_q[rq : rq + hq, cq : cq + wq] & claim_q).any():
                        continue
                    r, c = rq * q, cq * q
                    if (roads[r : r + h, c : c + w] & foot_mask).any():
                        continue
                    claimed[r : r + h, c : c + w] |= claim_mask
                    blocked_q[rq : rq + hq, cq : cq + wq] |= claim_q
                    dx = grid.x0 + c * _PIXEL_M - minx
                    dy = grid.y0 - r * _PIXEL_M - maxy
                    farms.append(_make_farm(rng, len(farms), shape, dx, dy, (r, c, h, w)))
                    placed = True
                    break
            if placed:
                break
            if a <= 1.05:
                break
            a = max(1.05, a * 0.6)
        if not placed:
            log.debug("no room for solar farm %d of %d (%.1f ha)", i + 1, n_target, area_ha)
    if len(farms) < n_target:
        log.warning(
            "placed %d of %d solar farms: no room left for the others; give a larger size or "
            "fewer n_farms",
            len(farms),
            n_target,
        )
    land.claimed = claimed
    return farms


def _shape_centre_px(geom: BaseGeometry, minx: float, maxy: float) -> tuple[int, int]:
    """Row and column, in a grid starting at (minx, maxy), of a point surely inside ``geom``."""
    p = geom.representative_point()
    return int((maxy - p.y) // _PIXEL_M), int((p.x - minx) // _PIXEL_M)


def _make_farm(
    rng: np.random.Generator,
    index: int,
    shape: _Shape,
    dx: float,
    dy: float,
    window: tuple[int, int, int, int],
) -> _Farm:
    outer = affinity.translate(shape.outer, dx, dy)
    hole = affinity.translate(shape.hole, dx, dy) if shape.hole is not None else None
    footprint = outer.difference(hole) if hole is not None else outer
    roads = affinity.translate(shape.roads, dx, dy).intersection(outer)
    setback = rng.uniform(4.0, 10.0)
    panel_area = footprint.buffer(-setback, join_style="mitre").difference(roads)
    multipart = isinstance(outer, MultiPolygon)
    return _Farm(
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


def _assign_roles(config: RegionConfig, farms: list[_Farm]) -> None:
    """Decide which farms OSM misses, which are mapped only as generators, and names."""
    rng = _rng(config, "farms", 1)
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
        place = _PLACE_A[int(rng.integers(len(_PLACE_A)))] + _PLACE_B[int(rng.integers(10))]
        f.name = f"{place} Solar Park"
        f.operator = _OPERATORS[int(rng.integers(len(_OPERATORS)))]
    plants = [f for f in farms if f.mapped and not f.orphan]
    if plants and not any(f.with_generators for f in plants):
        min(plants, key=lambda f: f.area_ha).with_generators = True
    if plants and not any(f.as_relation and f.hole is not None for f in plants):
        log.warning("no mapped plant has a hole; the region is too small for one")


def _stripe_cover(
    y_lo: NDArray[np.float64], y_hi: NDArray[np.float64], farm: _Farm
) -> NDArray[np.float64]:
    """Share of each northing interval ``[y_lo, y_hi]`` covered by the east-west panel rows."""
    pitch = farm.row_width + farm.row_gap

    def cum(yv: NDArray[np.float64]) -> NDArray[np.float64]:
        t = yv - farm.row_phase
        return np.floor(t / pitch) * farm.row_width + np.minimum(np.mod(t, pitch), farm.row_width)

    return (cum(y_hi) - cum(y_lo)) / (y_hi - y_lo)


def _render_farms(config: RegionConfig, grid: _Grid, land: _Land, farms: list[_Farm]) -> None:
    """Footprint, panel and road fractions of every 10 m pixel, from 2 m renderings."""
    m = land.maps
    sub = _PIXEL_M / _SS
    for f in farms:
        r, c, h, w = f.window
        win = np.s_[r : r + h, c : c + w]
        top, left = grid.y0 - r * _PIXEL_M, grid.x0 + c * _PIXEL_M
        shape_ss = (h * _SS, w * _SS)
        ring = None
        if f.mapped and config.spurious != "none":
            # The cue rings the fence (not the hole): a concrete apron or a snow bank.
            pad_w = float(_rng(config, "farms", 2, f.index).uniform(20.0, 40.0))
            ring = f.outer.buffer(pad_w, join_style="mitre").difference(f.outer)
        # One pass for all layers: each burns its own bit (a layer never overlaps itself).
        layers = [f.footprint, f.panel_area, f.roads, f.hole, ring]
        shapes_ = [(g, 1 << i) for i, g in enumerate(layers) if g is not None and not g.is_empty]
        bits = rasterize(
            shapes_,
            shape_ss,
            transform=Affine(sub, 0, left, 0, -sub, top),
            merge_alg=MergeAlg.add,
            dtype=np.uint8,
        )

        def frac(i: int, bits: NDArray[np.uint8] = bits) -> FloatMap:
            return _block_mean((bits >> i) & 1, _SS)

        y_top = top - sub * np.arange(shape_ss[0], dtype=np.float64)
        cover = _stripe_cover(y_top - sub, y_top, f).astype("f4")
        panel = _block_mean(((bits >> 1) & 1) * cover[:, None], _SS)
        foot = frac(0)
        m["foot"][win] = np.maximum(m["foot"][win], foot)
        m["panel"][win] = np.maximum(m["panel"][win], panel)
        m["froad"][win] = np.maximum(m["froad"][win], frac(2))
        land.farm_index[win][foot > 0] = f.index
        if f.hole is not None:
            hole = frac(3)
            if f.hole_kind == "pond":
                m["water"][win] = np.maximum(m["water"][win], hole)
            else:
                m["settle"][win] = np.maximum(m["settle"][win], hole)
                m["bright_roof"][win] = np.where(hole > 0, 0.6, m["bright_roof"][win])
                m["metal_roof"][win] = np.where(hole > 0, 0.0, m["metal_roof"][win])
                m["tree"][win] = np.where(hole > 0, 0.0, m["tree"][win])
        if ring is not None:
            key = "pad" if config.spurious == "pad" else "snow"
            m[key][win] = np.maximum(m[key][win], frac(4))


# --------------------------------------------------------------------------- sky


def _make_sky(config: RegionConfig, grid: _Grid) -> tuple[FloatMap, FloatMap]:
    """Cloud opacity and cloud-shadow strength ``[H, W]``, both 0-1."""
    H, W = grid.H, grid.W
    if config.cloud_fraction <= 0:
        z = np.zeros((H, W), "f4")
        return z, z.copy()
    rng = _rng(config, "sky")
    d = _SHADOW_PX
    shape = (H + d, W + d)  # clouds just off the south-east edge still cast shadows inside
    f = _smooth(rng, shape, 30) + 0.35 * _smooth(rng, shape, 6)
    sd = float(f.std())
    thr = float(np.quantile(f[:H:2, :W:2], 1.0 - config.cloud_fraction))
    a_pad = np.clip(0.1 + 0.9 * (f - thr) / (0.8 * sd), 0.0, 1.0)
    a_pad[f < thr - 0.05 * sd] = 0.0
    core = np.clip((a_pad - 0.3) / 0.4, 0.0, 1.0)
    shadow = ndimage.gaussian_filter(core[d : d + H, d : d + W], 1.5)
    return a_pad[:H, :W].astype("f4"), shadow.astype("f4")


# --------------------------------------------------------------------------- synthesis


def _landcover(land: _Land) -> NDArray[np.uint8]:
    m = land.maps
    lc = np.where(m["green"] >= 0.35, 1, 2).astype(np.uint8)
    lc[m["asphalt"] >= 0.5] = 4
    lc[m["settle"] >= 0.5] = 5
    lc[m["water"] >= 0.5] = 3
    lc[m["snow"] >= 0.5] = 6
    lc[m["foot"] >= 0.5] = 7
    lc[m["pad"] >= 0.5] = 8
    lc[land.nodata] = 0
    return lc


def _weights(land: _Land, farm_params: NDArray[np.float32], rows: slice) -> NDArray[np.float32]:
    """End-member weights ``[K, h, W]`` of a strip of rows.

    Layers are composited in order (land, water, settlement, tracks, roads, snow, farms, pads),
    each covering a fraction ``f`` of the pixel. Walking the layers from the top down with the
    running share ``keep`` that is still visible costs a few operations per layer instead of K.
    """
    m = {k: v[rows] for k, v in land.maps.items()}
    K = len(_EM)
    Wt = np.zeros((K, *m["green"].shape), "f4")

    def water() -> dict[str, FloatMap]:
        f, t = m["water"], m["turbid"]
        return {"water": f * (1 - t), "turbid_water": f * t}

    def settlement() -> dict[str, FloatMap]:
        f, b, mt, tr = m["settle"], m["bright_roof"], m["metal_roof"], m["tree"]
        rest = np.clip(1.0 - b - mt - tr, 0.0, 1.0)
        return {
            "settlement": f * rest,
            "bright_roof": f * b,
            "metal_roof": f * mt,
            "vegetation": f * tr,
        }

    def farm() -> dict[str, FloatMap]:
        ff = m["foot"]
        idx = land.farm_index[rows] + 1
        gg, gd, alt = farm_params[idx, 0], farm_params[idx, 1], farm_params[idx, 2]
        fp = np.minimum(m["panel"], ff)
        fr = np.minimum(m["froad"], ff - fp)
        ground = np.clip(ff - fp - fr, 0.0, 1.0)
        return {
            "panel": fp * (1.0 - alt),
            "panel_alt": fp * alt,
            "gravel": fr,
            "grass": ground * gg,
            "dry_grass": ground * gd,
            "bare_soil": ground * np.clip(1.0 - gg - gd, 0.0, 1.0),
        }

    layers = [
        ("water", water),
        ("settle", settlement),
        ("track", lambda: {"gravel": m["track"]}),
        ("asphalt", lambda: {"asphalt": m["asphalt"]}),
        ("snow", lambda: {"snow": m["snow"]}),
        ("foot", farm),
        ("pad", lambda: {"pad": m["pad"]}),
    ]
    keep = np.ones_like(m["green"])
    for key, parts in reversed(layers):
        f = m[key]
        if not f.any():
            continue
        for k, w in parts().items():
            Wt[_K[k]] += keep * w
        keep *= 1.0 - f
    g, d = m["green"], m["dry"]
    soil = np.clip(1.0 - g - d, 0.0, 1.0) * keep
    Wt[_K["vegetation"]] += g * keep
    Wt[_K["dry_grass"]] += d * keep
    Wt[_K["red_soil"]] += soil * m["red"]
    Wt[_K["dark_soil"]] += soil * m["dark"]
    Wt[_K["bare_soil"]] += soil * (1.0 - m["red"] - m["dark"])
    return Wt


def _synthesise_strip(
    config: RegionConfig,
    land: _Land,
    farm_params: NDArray[np.float32],
    cloud: FloatMap,
    shadow: FloatMap,
    landcover: NDArray[np.uint8],
    r0: int,
    r1: int,
    strip: int,
) -> tuple[NDArray[np.uint16], NDArray[np.uint8]]:
    """DN ``[10, h, W]`` and SCL ``[h/2, W/2]`` of rows ``r0:r1``."""
    rows = slice(r0, r1)
    H, W = land.band.shape
    h = r1 - r0
    # The instrument's point spread function: a Gaussian of sigma 0.45 px (MTF ~0.2 at Nyquist)
    # on the 10 m bands (20 m bands are averaged over 2 x 2 pixels below), with a few halo rows
    # so strips join seamlessly. It also damps the moire between panel rows and the 10 m grid.
    a0, a1 = max(0, r0 - _HALO), min(H, r1 + _HALO)
    wts = _weights(land, farm_params, slice(a0, a1))
    surface = (_E @ wts.reshape(len(_EM), -1)).reshape(-1, a1 - a0, W)
    del wts
    refl = np.ascontiguousarray(surface[:, r0 - a0 : r0 - a0 + h])
    for i in _BANDS_10M:
        blurred = ndimage.gaussian_filter(surface[i], _PSF_SIGMA, mode="nearest", truncate=3.0)
        refl[i] = blurred[r0 - a0 : r0 - a0 + h]
    del surface
    refl *= 1.0 + 0.025 * land.maps["illum"][rows]
    # Sensor and within-pixel noise: 1.2 % of the signal plus 0.0015 reflectance, one draw.
    rng = _rng(config, "noise", strip)
    sd = np.sqrt((0.012 * refl) ** 2 + np.float32(0.0015**2))
    refl += sd * rng.standard_normal(refl.shape, dtype="f4")

    # Scene classification from the surface (before clouds), at 20 m.
    red20 = _block_mean(refl[BANDS.index("B04")], 2)
    nir20 = _block_mean(refl[BANDS.index("B08")], 2)
    ndvi = (nir20 - red20) / np.maximum(nir20 + red20, 1e-4)
    lc20 = landcover[r0:r1:2, ::2]
    scl = np.where(ndvi > 0.4, SclClass.VEGETATION, SclClass.NOT_VEGETATED).astype(np.uint8)
    scl[lc20 == 3] = SclClass.WATER  # land cover water
    scl[lc20 == 6] = SclClass.SNOW  # land cover snow

    s = shadow[rows]
    a = cloud[rows]
    if s.any():
        refl *= 1.0 - 0.65 * s
    if a.any():
        refl *= 1.0 - a
        refl += a * (1.0 + 0.15 * land.maps["illum"][rows]) * _CLOUD[:, None, None]
    for i in _BANDS_20M:  # 20 m bands are seen at 20 m and resampled (nearest) onto 10 m
        refl[i] = np.repeat(np.repeat(_block_mean(refl[i], 2), 2, axis=0), 2, axis=1)

    a20, s20 = _block_mean(a, 2), _block_mean(s, 2)
    scl[(s20 >= 0.3) & (a20 < 0.1)] = SclClass.CLOUD_SHADOW
    scl[a20 >= 0.1] = SclClass.THIN_CIRRUS
    scl[a20 >= 0.3] = SclClass.CLOUD_MEDIUM_PROBABILITY
    scl[a20 >= 0.55] = SclClass.CLOUD_HIGH_PROBABILITY
    nd = land.nodata[rows]
    scl[nd[::2, ::2]] = SclClass.NO_DATA

    refl *= BOA_QUANTIFICATION_VALUE
    refl -= BOA_ADD_OFFSET
    np.rint(refl, out=refl)
    dn = np.clip(refl, 1, 65535, out=refl).astype(np.uint16)
    dn[:, nd] = 0
    return dn, scl


# --------------------------------------------------------------------------- OSM XML


class _OsmBuilder:
    """Collects nodes, ways and relations in UTM, writes OSM XML 0.6 in WGS84."""

    def __init__(self, grid: _Grid, rng: np.random.Generator, date: dt.date) -> None:
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


def _generator_rows(f: _Farm) -> list[NDArray[np.float64]]:
    """Panel rows (arrays of a few rows in large farms) inside the panel area: rings ``[N, 2]``."""
    if f.panel_area.is_empty:
        return []
    minx, miny, maxx, maxy = f.panel_area.bounds
    pitch = f.row_width + f.row_gap
    k0 = math.floor((miny - f.row_phase) / pitch) - 1
    k1 = math.ceil((maxy - f.row_phase) / pitch) + 1
    group = max(1, math.ceil((k1 - k0) / 40))  # at most ~40 generator strips per farm
    starts = f.row_phase + pitch * np.arange(k0, k1, group, dtype=np.float64)
    strips = shapely.box(minx - 1, starts, maxx + 1, starts + (group - 1) * pitch + f.row_width)
    pieces = shapely.get_parts(shapely.intersection(strips, f.panel_area))
    keep = (shapely.get_type_id(pieces) == 3) & (shapely.area(pieces) >= 30.0)
    rings = shapely.get_exterior_ring(shapely.simplify(pieces[keep], 0.3))
    coords, index = shapely.get_coordinates(rings, return_index=True)
    return np.split(coords, np.flatnonzero(np.diff(index)) + 1) if len(coords) else []


def _osm_xml(
    config: RegionConfig, grid: _Grid, land: _Land, farms: list[_Farm]
) -> tuple[str, dict[str, int]]:
    rng = _rng(config, "osm")
    osm = _OsmBuilder(grid, rng, dt.date.fromisoformat(config.date))
    image = box(*grid.bounds)
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
            osm.area(f.footprint, tags, relation=f.as_relation)
            counts["plants"] += 1
            counts["plant_relations"] += int(f.as_relation or f.hole is not None)
            counts["plants_with_hole"] += int(f.hole is not None)
        if f.with_generators:
            meta = osm.meta()  # one mapping session per farm
            for ring in _generator_rows(f):
                osm.way(ring, _GENERATOR_TAGS, closed=True, meta=meta)
                counts["generators"] += 1

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

    for poly, tags in _landuse_polygons(config, grid, land, farms):
        osm.area(poly, tags, relation=False)
    return osm.xml(), counts


def _mask_polygons(mask: NDArray[np.bool_], grid: _Grid, min_area_m2: float) -> list[Polygon]:
    polys = []
    for geom, _ in shapes(mask.astype(np.uint8), mask=mask, transform=grid.transform):
        p = shapely.geometry.shape(geom)
        p = Polygon(p.exterior).simplify(12.0)
        if isinstance(p, Polygon) and p.is_valid and p.area >= min_area_m2:
            polys.append(p)
    return polys


def _landuse_polygons(
    config: RegionConfig, grid: _Grid, land: _Land, farms: list[_Farm]
) -> Iterator[tuple[Polygon, dict[str, str]]]:
    """Unrelated areas mapped in OSM: villages, water bodies and some farmland parcels."""
    rng = _rng(config, "osm", 1)
    for p in _mask_polygons(land.maps["settle"] >= 0.5, grid, 20_000.0):
        yield p, {"landuse": "residential"}
    for p in _mask_polygons(land.maps["water"] >= 0.5, grid, 5_000.0):
        yield p, {"natural": "water", "water": "pond" if p.area < 50_000 else "reservoir"}
    # Farmland: whole parcels, from their strip / column rectangle (the gentle warp ignored, as
    # mappers trace roughly).
    lc_ok = (land.maps["green"] >= 0.35) & (land.maps["scrub"] < 0.2)
    if land.claimed is not None:
        lc_ok &= ~land.claimed
    rr, cc = np.nonzero(lc_ok[::7, ::7])
    if rr.size == 0:
        return
    n_want = max(3, min(40, round(config.area_km2 * 0.5)))
    pick = rng.permutation(rr.size)
    seen: set[tuple[int, int]] = set()
    farm_union = shapely.union_all([f.outer.buffer(20.0) for f in farms]) if farms else Polygon()
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


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _fixed_gpkg_date(date: str) -> Iterator[None]:
    """GeoPackages record a last-change time; fix it so the same seed gives the same bytes."""
    import pyogrio

    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{date}T00:00:00Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _scene_id(config: RegionConfig, crs: CRS, lat: float) -> str:
    day = dt.date.fromisoformat(config.date).strftime("%Y%m%d")
    zone = crs.utm_zone or "00N"
    zone_num = zone[:-1].zfill(2)
    band = "CDEFGHJKLMNPQRSTUVWX"[int(np.clip((lat + 80) // 8, 0, 19))]
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    s = config.seed
    tile = f"{zone_num}{band}{letters[s % 24]}{letters[(s // 24) % 24]}"
    orbit = s % 143 + 1
    t = (s // 143) % 86400
    hh, mm, ss = t // 3600, (t // 60) % 60, t % 60
    return f"S2A_MSIL2A_{day}T051651_N0509_R{orbit:03d}_T{tile}_{day}T{hh:02d}{mm:02d}{ss:02d}"


def generate_region(out_dir: Path, config: RegionConfig = RegionConfig()) -> RegionFiles:
    """Generate a synthetic Sentinel-2 L2A-like region with solar farms and OSM labels.

    Writes, into ``out_dir`` (created if missing; existing files of the same names replaced):

    - ``scene.tif``: COG ``uint16[10, size, size]``, bands in :data:`~solarmap.bands.BANDS`
      order (descriptions set), L2A digital numbers ``DN = reflectance * 10000 + 1000`` (tags
      ``BOA_ADD_OFFSET=-1000``, ``BOA_QUANTIFICATION_VALUE=10000``, GDAL scale 1e-4 and offset
      -0.1), nodata 0, plus ``SCENE_ID``, ``DATETIME``, ``SPACECRAFT``, ``PROCESSING_BASELINE``.
    - ``scene_SCL.tif``: COG ``uint8[size/2, size/2]``, Sen2Cor classes (:data:`SCL_WRITTEN`).
    - ``landcover.tif``: COG ``uint8[size, size]``, :data:`LANDCOVER_CLASSES`.
    - ``labels.osm``: OSM XML 0.6: mapped plants (closed ways and multipolygon relations),
      panel rows as generators, orphan generators, roads and land use. Unmapped farms are absent.
    - ``truth.gpkg``: layer ``farms``, every farm: farm_id, mapped, orphan, area_ha, n_blocks,
      osm_kind, geometry (footprint in the scene CRS).
    - ``region.json``: the config, counts, land-cover shares and the generator version.

    The same config gives byte-identical files.

    Args:
        out_dir: Folder to write into.
        config: The region to make.

    Returns:
        The paths written.

    Raises:
        InputError: if ``config`` is not a :class:`RegionConfig`.
    """
    if not isinstance(config, RegionConfig):
        raise InputError(f"config={config!r}: give a RegionConfig")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # One GDAL environment for the whole run (rasterize is called per farm), with
    # multi-threaded compression: several times faster, and GDAL writes the same bytes.
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        return _generate(out, config)


def _generate(out: Path, config: RegionConfig) -> RegionFiles:
    grid = _Grid.of(config)
    log.info("synthetic region: seed %d, %d x %d px at %s", config.seed, grid.W, grid.H, grid.crs)

    land = _make_land(config, grid)
    farms = _place_farms(config, grid, land)
    _assign_roles(config, farms)
    _render_farms(config, grid, land, farms)
    cloud, shadow = _make_sky(config, grid)
    landcover = _landcover(land)

    params = np.zeros((len(farms) + 1, 3), "f4")
    for f in farms:
        params[f.index + 1] = (f.ground_green, min(f.ground_dry, 1 - f.ground_green), f.panel_alt)

    to_ll = Transformer.from_crs(grid.crs, 4326, always_xy=True)
    _, lat_c = to_ll.transform(grid.x0 + grid.W * 5.0, grid.y0 - grid.H * 5.0)
    scene_id = _scene_id(config, grid.crs, lat_c)
    tags = {
        "SCENE_ID": scene_id,
        "DATETIME": f"{config.date}T05:16:51Z",
        "SPACECRAFT": "Sentinel-2A",
        "PROCESSING_BASELINE": "05.09",
        "BOA_ADD_OFFSET": BOA_ADD_OFFSET,
        "BOA_QUANTIFICATION_VALUE": BOA_QUANTIFICATION_VALUE,
        "REFLECTANCE_ENCODING": "L2A_DN",
        "SOLARMAP_SYNTHETIC": 1,
        "SOLARMAP_SEED": config.seed,
    }
    files = RegionFiles(
        root=out,
        scene=out / "scene.tif",
        scl=out / "scene_SCL.tif",
        osm=out / "labels.osm",
        truth=out / "truth.gpkg",
        landcover=out / "landcover.tif",
        config=out / "region.json",
    )
    scl = _write_scene(files, config, grid, land, params, (cloud, shadow), landcover, tags)
    write_cog(
        files.scl,
        scl,
        crs=grid.crs,
        transform=grid.transform * Affine.scale(2.0),
        nodata=0,
        descriptions=["SCL"],
        tags={"SCENE_ID": scene_id, "DATETIME": tags["DATETIME"]},
        overview_resampling="nearest",
    )
    write_cog(
        files.landcover,
        landcover,
        crs=grid.crs,
        transform=grid.transform,
        nodata=0,
        descriptions=["landcover"],
        tags={f"CLASS_{k}": v for k, v in LANDCOVER_CLASSES.items()},
        overview_resampling="nearest",
    )

    xml, osm_counts = _osm_xml(config, grid, land, farms)
    write_text(files.osm, xml)
    _write_truth(files.truth, grid, farms, config.date)

    n_px = landcover.size
    shares = np.bincount(landcover.ravel(), minlength=len(LANDCOVER_CLASSES)) / n_px
    scl_share = np.bincount(scl.ravel(), minlength=len(SCL_CLASSES)) / scl.size
    summary = {
        "generator": "data_prep.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "origin": list(grid.bounds[0::3]),
        "crs": f"EPSG:{config.epsg}",
        "transform": list(grid.transform)[:6],
        "scene_id": scene_id,
        "counts": {
            "farms": len(farms),
            "mapped": sum(f.mapped for f in farms),
            "unmapped": sum(not f.mapped for f in farms),
            "orphan": sum(f.orphan for f in farms),
            **osm_counts,
            "solar_area_ha": round(sum(f.area_ha for f in farms), 2),
        },
        "landcover_share": {
            LANDCOVER_CLASSES[k]: round(float(shares[k]), 5) for k in LANDCOVER_CLASSES
        },
        "scl_share": {SCL_CLASSES[k]: round(float(scl_share[k]), 5) for k in SCL_WRITTEN},
        "files": {k: v.name for k, v in dataclasses.asdict(files).items() if k != "root"},
    }
    write_json(files.config, summary)
    log.info(
        "wrote %s: %d farms (%d mapped), %.1f %% solar",
        out,
        len(farms),
        sum(f.mapped for f in farms),
        100 * shares[7],
    )
    return files


def _write_scene(
    files: RegionFiles,
    config: RegionConfig,
    grid: _Grid,
    land: _Land,
    params: NDArray[np.float32],
    sky: tuple[FloatMap, FloatMap],
    landcover: NDArray[np.uint8],
    tags: dict[str, Any],
) -> NDArray[np.uint8]:
    """Write ``scene.tif`` strip by strip; return the SCL ``[H/2, W/2]`` made on the way."""
    scl = np.zeros((grid.H // 2, grid.W // 2), np.uint8)
    with cog_writer(
        files.scene,
        width=grid.W,
        height=grid.H,
        count=len(BANDS),
        dtype="uint16",
        crs=grid.crs,
        transform=grid.transform,
        nodata=0,
        descriptions=BANDS,
        tags=tags,
        scales=[1.0 / BOA_QUANTIFICATION_VALUE] * len(BANDS),
        offsets=[BOA_ADD_OFFSET / BOA_QUANTIFICATION_VALUE] * len(BANDS),
    ) as dst:
        for strip, r0 in enumerate(range(0, grid.H, _STRIP)):
            r1 = min(grid.H, r0 + _STRIP)
            dn, scl_strip = _synthesise_strip(config, land, params, *sky, landcover, r0, r1, strip)
            dst.write(dn, window=Window(0, r0, grid.W, r1 - r0))
            scl[r0 // 2 : r1 // 2] = scl_strip
    return scl


def _write_truth(path: Path, grid: _Grid, farms: list[_Farm], date: str) -> None:
    import geopandas as gpd

    def kind(f: _Farm) -> str:
        if not f.mapped:
            return "none"
        if f.orphan:
            return "generators"
        return "relation" if f.as_relation or f.hole is not None else "way"

    gdf = gpd.GeoDataFrame(
        {
            "farm_id": np.array([f.index for f in farms], dtype=np.int32),
            "mapped": np.array([f.mapped for f in farms], dtype=bool),
            "orphan": np.array([f.orphan for f in farms], dtype=bool),
            "area_ha": np.array([round(f.area_ha, 4) for f in farms], dtype=np.float64),
            "n_blocks": np.array([f.n_blocks for f in farms], dtype=np.int32),
            "osm_kind": [kind(f) for f in farms],
        },
        geometry=[f.footprint for f in farms],
        crs=grid.crs,
    )
    with _fixed_gpkg_date(date):
        write_vector(gdf, path, layer="farms")
