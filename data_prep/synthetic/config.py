"""What decides a synthetic region: :class:`RegionConfig`, validated when it is made.

This module depends only on :mod:`~data_prep.synthetic.presets` (plain data) in the generator.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

import numpy as np
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from data_prep.synthetic.presets import PRESET_NAMES, PRESETS, Preset, PresetName
from solarmap.errors import InputError

__all__ = [
    "DEFAULT_DATE",
    "DEFAULT_EPSG",
    "DEFAULT_ORIGIN",
    "GENERATOR_VERSION",
    "PIXEL_M",
    "RegionConfig",
    "RegionConfigError",
    "SpuriousCue",
]

#: Version of the generator; bump it whenever the same config would give different files.
GENERATOR_VERSION: Final = "1.0.0"

SpuriousCue = Literal["none", "pad", "snow"]

#: Upper-left corner (easting, northing) of seed 0 in the default CRS (UTM 43N, Karnataka).
DEFAULT_ORIGIN: Final[tuple[float, float]] = (700000.0, 1560000.0)
#: The default CRS (UTM 43N, southern India) and date, without a preset.
DEFAULT_EPSG: Final = 32643
DEFAULT_DATE: Final = "2022-03-15"
#: How far seeds walk east, then north (km), without a preset.
_DEFAULT_WALK_KM: Final = (120.0, 1000.0)

#: Side of a scene pixel in metres.
PIXEL_M: Final = 10.0


class RegionConfigError(InputError):
    """A :class:`RegionConfig` field with a value it cannot take.

    The message names the field (``RegionConfig.size=0: choose 64 to 16384``); ``field``,
    ``value`` and ``fix`` let a front door name its own option instead (``--size 0: ...``).
    """

    def __init__(self, field: str, value: Any, fix: str, *, shown: str | None = None) -> None:
        self.field = field
        self.value = value
        self.fix = fix
        super().__init__(f"RegionConfig.{field}={shown or repr(value)}: {fix}")


@dataclass(frozen=True)
class RegionConfig:
    """Everything that decides a synthetic region; same config, byte-identical files.

    Attributes:
        seed: Random seed (>= 0).
        size: Pixels per side (square, 10 m pixels), even, 64 to 16384. Peak memory is about
            200 bytes per pixel (0.8 GB at 2048, 13 GB at 8192).
        epsg: Projected CRS in metres. ``None``: the preset's (UTM 43N, southern India,
            without one), filled in when the config is made.
        origin: Upper-left (easting, northing). ``None``: the preset's origin (or
            :data:`DEFAULT_ORIGIN`) shifted by whole regions per seed, so different seeds are
            different places.
        date: Acquisition date, ISO ``YYYY-MM-DD``. ``None``: the preset's (2022-03-15
            without one), filled in when the config is made. With a preset it sets the
            greenness of the vegetation.
        n_farms: Farms to place; ``None``: about one per 1.5 km^2, at least 3. Fewer are placed
            when the landscape has no room (logged).
        unmapped_fraction: Share of farms absent from OSM.
        orphan_generator_fraction: Share of mapped farms whose panel rows are tagged only as
            generators, with no plant around them.
        cloud_fraction: Share of the scene under cloud (SCL 8, 9, 10); shadows come on top.
        nodata_fraction: Share of the scene in a no-data strip at the west or east edge.
        spurious: Plant a bright pad (``"pad"``) or snow (``"snow"``) around every OSM-mapped
            farm, a shortcut a model may learn instead of the panels.
        spurious_width: Mean width of that cue's ring around the fence, metres (each farm's
            drawn between 2/3 and 4/3 of it).
        snow: Add snow patches to the landscape (land cover, SCL 11).
        preset: A climate and landscape preset (:data:`~data_prep.synthetic.presets.PRESETS`:
            deccan, central-europe, alpine, desert, rice-paddy): its land cover, spectra,
            seasons, plants, haze and look-alikes. ``None``: the original southern-India
            region, unchanged.
        footprints: A vector file of solar-farm polygons (GeoJSON, GeoPackage...): every
            farm's outline is one of them, drawn at random, rescaled to the farm's area,
            rotated and placed. ``None``: made-up outlines (unions of near-axis-aligned
            blocks; irregular polygons at any angle with a preset).
    """

    seed: int = 0
    size: int = 1024
    epsg: int | None = None
    origin: tuple[float, float] | None = None
    date: str | None = None
    n_farms: int | None = None
    unmapped_fraction: float = 0.2
    orphan_generator_fraction: float = 0.1
    cloud_fraction: float = 0.03
    nodata_fraction: float = 0.02
    spurious: SpuriousCue = "none"
    spurious_width: float = 30.0
    snow: bool = False
    preset: PresetName | None = None
    footprints: str | None = None

    def __post_init__(self) -> None:
        crs = self._check()
        self._to_plain_types()
        lon_lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(*self.resolved_origin)
        if not all(math.isfinite(v) for v in lon_lat):
            raise RegionConfigError(
                "origin",
                self.resolved_origin,
                f"outside EPSG:{self.resolved_epsg}; give an origin inside the CRS's area of use",
            )

    def _check(self) -> CRS:
        """Refuse values out of range or of the wrong type; return the CRS."""
        _check_whole("seed", self.seed, 0, 2**63 - 1)
        _check_whole("size", self.size, 64, 16384)
        if self.size % 2:
            raise RegionConfigError(
                "size", self.size, "give an even size, so the 20 m SCL grid covers the same extent"
            )
        if self.preset is not None and self.preset not in PRESET_NAMES:
            raise RegionConfigError(
                "preset", self.preset, f"choose one of {', '.join(PRESET_NAMES)}"
            )
        if self.footprints is not None and (
            not isinstance(self.footprints, str | os.PathLike) or not str(self.footprints).strip()
        ):
            raise RegionConfigError(
                "footprints", self.footprints, "give the path of a vector file of polygons"
            )
        crs = _check_epsg(self.epsg) if self.epsg is not None else CRS.from_epsg(self.resolved_epsg)
        _check_origin(self.origin)
        if self.date is not None:
            try:
                dt.date.fromisoformat(str(self.date))
            except ValueError as err:
                raise RegionConfigError("date", self.date, "give an ISO date YYYY-MM-DD") from err
        if self.n_farms is not None:
            _check_whole("n_farms", self.n_farms, 1, 100000)
        _check_share("unmapped_fraction", self.unmapped_fraction, 1.0)
        _check_share("orphan_generator_fraction", self.orphan_generator_fraction, 1.0)
        _check_share("cloud_fraction", self.cloud_fraction, 0.5)
        _check_share("nodata_fraction", self.nodata_fraction, 0.5)
        if self.spurious not in get_args(SpuriousCue):
            raise RegionConfigError(
                "spurious", self.spurious, f"choose one of {', '.join(get_args(SpuriousCue))}"
            )
        if not (
            isinstance(self.spurious_width, int | float)
            and not isinstance(self.spurious_width, bool)
            and math.isfinite(self.spurious_width)
            and 5 <= self.spurious_width <= 200
        ):
            raise RegionConfigError(
                "spurious_width", self.spurious_width, "give a width of 5 to 200 metres"
            )
        if not isinstance(self.snow, bool):
            raise RegionConfigError("snow", self.snow, "give true or false")
        return crs

    def _to_plain_types(self) -> None:
        """Plain Python types, so asdict() is JSON as is and equal configs compare equal."""
        for name in ("seed", "size"):
            object.__setattr__(self, name, int(getattr(self, name)))
        # The preset's (or the default) CRS and date, written into the config itself so it
        # says what was made. (So ``dataclasses.replace(config, preset=...)`` keeps them: make
        # a new config to move to another preset's place.)
        object.__setattr__(self, "epsg", self.resolved_epsg)
        object.__setattr__(self, "date", self.resolved_date)
        if self.n_farms is not None:
            object.__setattr__(self, "n_farms", int(self.n_farms))
        for name in (
            "spurious_width",
            "unmapped_fraction",
            "orphan_generator_fraction",
            "cloud_fraction",
            "nodata_fraction",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.origin is not None:
            object.__setattr__(self, "origin", (float(self.origin[0]), float(self.origin[1])))
        if self.footprints is not None:
            object.__setattr__(self, "footprints", os.fspath(self.footprints))

    @property
    def preset_spec(self) -> Preset | None:
        """The :class:`~data_prep.synthetic.presets.Preset` named by ``preset``, if any."""
        return PRESETS[self.preset] if self.preset is not None else None

    @property
    def resolved_epsg(self) -> int:
        """EPSG code actually used: ``epsg``, the preset's, or :data:`DEFAULT_EPSG`."""
        if self.epsg is not None:
            return int(self.epsg)
        spec = self.preset_spec
        return spec.epsg if spec is not None else DEFAULT_EPSG

    @property
    def resolved_date(self) -> str:
        """Acquisition date actually used: ``date``, the preset's, or :data:`DEFAULT_DATE`."""
        if self.date is not None:
            return str(self.date)
        spec = self.preset_spec
        return spec.date if spec is not None else DEFAULT_DATE

    @property
    def resolved_origin(self) -> tuple[float, float]:
        """Upper-left (easting, northing) actually used: ``origin``, or the per-seed default."""
        if self.origin is not None:
            return (float(self.origin[0]), float(self.origin[1]))
        spec = self.preset_spec
        base = spec.origin if spec is not None else DEFAULT_ORIGIN
        walk_east, walk_north = spec.walk_km if spec is not None else _DEFAULT_WALK_KM
        side = self.size * PIXEL_M
        # Seeds walk east (120 km without a preset), then a row further north (up to
        # 1000 km), then repeat.
        per_row = max(1, int(walk_east * 1000.0 // side))
        rows = max(1, int(walk_north * 1000.0 // side))
        east = (self.seed % per_row) * side
        north = ((self.seed // per_row) % rows) * side
        return (base[0] + east, base[1] + north)

    @property
    def area_km2(self) -> float:
        """Area of the region in km^2."""
        return (self.size * PIXEL_M / 1000.0) ** 2


def _check_whole(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise RegionConfigError(name, value, "give a whole number")
    if not lo <= value <= hi:
        raise RegionConfigError(name, value, f"choose {lo} to {hi}", shown=str(value))


def _check_share(name: str, value: Any, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
        raise RegionConfigError(name, value, f"give a number from 0 to {hi:g}")
    if not 0.0 <= float(value) <= hi:
        raise RegionConfigError(name, value, f"choose 0 to {hi:g}", shown=str(value))


def _check_epsg(epsg: Any) -> CRS:
    """The CRS of an EPSG code, which must be projected and in metres."""
    _check_whole("epsg", epsg, 1024, 999999)
    try:
        crs = CRS.from_epsg(int(epsg))
    except CRSError as err:
        raise RegionConfigError("epsg", epsg, "unknown EPSG code", shown=str(epsg)) from err
    units = {ax.unit_name for ax in crs.axis_info}
    if not crs.is_projected or units != {"metre"}:
        raise RegionConfigError(
            "epsg",
            epsg,
            "not a projected CRS in metres; give a UTM code such as 32643",
            shown=str(epsg),
        )
    return crs


def _check_origin(origin: Any) -> None:
    if origin is not None and (
        not isinstance(origin, tuple | list)
        or len(origin) != 2
        or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in origin
        )
    ):
        raise RegionConfigError("origin", origin, "give (easting, northing) in metres")
