"""Read Sentinel-2 L2A scenes into float reflectance with a validity mask, window by window.

A scene comes in one of three forms, told apart by the path:

- ``"geotiff"``: one raster file with the ten contract bands (band descriptions give the order);
  the scene classification (SCL) is the ``scl`` argument or a sibling ``<stem>_SCL.tif``.
- ``"folder"``: a folder of per-band files (GeoTIFF or JPEG 2000) whose names hold the band
  token, e.g. ``B02.tif`` or ``T43PGQ_20220315T050701_B8A_20m.jp2``, and optionally an SCL file.
- ``"safe"``: an unzipped L2A ``.SAFE`` product; the offsets come from ``MTD_MSIL2A.xml``.

The 10 m grid of a scene is the grid of the file (``"geotiff"``) or of B02 (other forms). Bands
and SCL on another grid (the 20 m bands) are resampled onto it while a window is read: the
matching window of the coarse file is read with ``out_shape`` and bilinear (reflectance) or
nearest (SCL) resampling, so no full-scene resample is held in memory.

Digital numbers are turned into reflectance with, in order of preference: the L2A tags
``BOA_ADD_OFFSET``/``BOA_QUANTIFICATION_VALUE`` or the product XML; GDAL scales and offsets; for
integers the L2A defaults (quantification 10000, offset -1000 from processing baseline 04.00,
2022-01-25); for floats a ``scale`` tag or the data range (reflectance x10000 or 0-1).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import numpy as np
from affine import Affine
from rasterio.coords import BoundingBox
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds
from rasterio.windows import intersection as window_intersection
from scipy import ndimage

from solarmap.bands import (
    BANDS,
    L2A_BOA_ADD_OFFSET,
    L2A_OFFSET_SINCE,
    L2A_QUANTIFICATION,
    NATIVE_RESOLUTION_M,
    SCL_CLASSES,
    SCL_INVALID,
    baseline_in_name,
    l2a_offset_dn,
    normalise_band_name,
)
from solarmap.errors import InputError, InputFileError
from solarmap.geo import damaged_raster_error, open_raster

log = logging.getLogger(__name__)

__all__ = [
    "MAX_FULL_READ_PIXELS",
    "RESOLUTION_RANGE_M",
    "SCL_CLASSES",
    "SCL_INVALID",
    "Scene",
    "SceneForm",
    "SceneInfo",
    "SceneOptions",
    "open_scene",
    "read_scene",
]

SceneForm = Literal["geotiff", "folder", "safe", "composite"]

#: ``Scene.read(None)`` refuses scenes with more pixels than this unless ``allow_full=True``.
MAX_FULL_READ_PIXELS: Final[int] = 4096 * 4096

#: Ground pixel sides (metres) read without ``SceneOptions.allow_resolution``: Sentinel-2's 10 m
#: within a factor 1.5, the pixel size the model was made for.
RESOLUTION_RANGE_M: Final[tuple[float, float]] = (20.0 / 3.0, 15.0)
#: Median reflectance of a band (in the sample at the scene centre) outside this range is not
#: surface reflectance: a wrong offset or scale, or not an L2A scene at all.
_PLAUSIBLE_MEDIAN: Final[tuple[float, float]] = (-0.02, 1.5)
#: Largest value of a scene classification layer (11, snow).
_SCL_MAX: Final = max(SCL_CLASSES)

#: Band order of ``band_id`` 0..12 in the L2A product metadata.
_L2A_BAND_IDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
_QUANTIFICATION: Final[float] = float(L2A_QUANTIFICATION)
_NEW_OFFSET: Final[float] = float(L2A_BOA_ADD_OFFSET)
_RASTER_SUFFIXES: Final[frozenset[str]] = frozenset({".tif", ".tiff", ".jp2"})
#: GDAL drivers of the formats a scene comes in; a file of another driver without a CRS is an
#: image of another kind (a PNG renamed .tif...), not an ungeoreferenced scene.
_GEOREFERENCED_DRIVERS: Final[frozenset[str]] = frozenset(
    {"GTiff", "COG", "JP2OpenJPEG", "JP2KAK", "JP2ECW", "JP2MrSID", "JPEG2000", "VRT"}
)
_DATE_TAGS: Final[tuple[str, ...]] = (
    "DATETIME", "SENSING_TIME", "PRODUCT_START_TIME", "DATATAKE_SENSING_START",
    "ACQUISITION_DATE", "DATE",
)  # fmt: skip
_ID_TAGS: Final[tuple[str, ...]] = ("PRODUCT_ID", "PRODUCT_URI", "SCENE_ID")
_SCL_INVALID_CODES: Final[np.ndarray] = np.array(sorted(SCL_INVALID), dtype=np.uint8)

# The band token must stand alone (start, end, or a non-alphanumeric neighbour) so that B8A is
# not read as B08 and tile ids such as T31UBU do not match.
_BAND_TOKEN = re.compile(r"(?<![A-Za-z0-9])B(8A|0[1-9]|1[0-2]|[1-9])(?![A-Za-z0-9])", re.I)
_SCL_TOKEN = re.compile(r"(?<![A-Za-z0-9])SCL(?![A-Za-z0-9])", re.I)
_RES_TOKEN = re.compile(r"_(\d+)m(?![A-Za-z0-9])", re.I)
_TILE_TIME = re.compile(r"T\d{2}[A-Z]{3}_\d{8}T\d{6}")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})[-:](\d{2})[-:](\d{2})(?!\d)")
_COMPACT_DATE = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})T\d{6}")


@dataclass(frozen=True)
class SceneInfo:
    """What is known about a scene once it is opened.

    Attributes:
        source: the path that was opened (file, folder or ``.SAFE`` folder).
        form: how the scene is stored.
        scene_id: product id, tile and sensing time, or the file stem.
        date: ISO date (``YYYY-MM-DD``) of acquisition when known.
        crs: coordinate reference system of the grid.
        transform: affine transform of the (10 m) grid.
        width: columns of the grid.
        height: rows of the grid.
        bands: always :data:`solarmap.bands.BANDS`.
        scale: per band, ``reflectance = raw * scale + offset``.
        offset: per band, see ``scale``.
        encoding: how raw values were read, e.g. ``"L2A DN, offset -1000, quantification 10000"``.
        has_scl: whether a scene classification layer masks clouds.
    """

    source: Path
    form: SceneForm
    scene_id: str
    date: str | None
    crs: CRS
    transform: Affine
    width: int
    height: int
    bands: tuple[str, ...]
    scale: tuple[float, ...]
    offset: tuple[float, ...]
    encoding: str
    has_scl: bool

    @property
    def bounds(self) -> BoundingBox:
        """Bounds of the grid in its CRS."""
        left, bottom, right, top = window_bounds(
            Window(0, 0, self.width, self.height), self.transform
        )
        return BoundingBox(left, bottom, right, top)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the grid."""
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units."""
        return (abs(self.transform.a), abs(self.transform.e))


@dataclass(frozen=True)
class SceneOptions:
    """How to read a scene where its files leave a choice; prepare, predict and explain take
    the same options (``--scale``, ``--allow-resolution``).

    Attributes:
        scale: reflectance of one raw unit (``reflectance = value * scale``) for every band,
            instead of what the tags and the data say; the way to read 8-bit bands. None: from
            the tags and the data.
        allow_resolution: read a scene whose ground pixels lie outside
            :data:`RESOLUTION_RANGE_M` (the model was made for 10 m pixels).

    Raises:
        InputError: if ``scale`` is not a finite number above 0.
    """

    scale: float | None = None
    allow_resolution: bool = False

    def __post_init__(self) -> None:
        scale = self.scale
        if scale is not None and (
            isinstance(scale, bool)
            or not isinstance(scale, int | float)
            or not math.isfinite(scale)
            or scale <= 0
        ):
            shown = f"{scale:g}" if isinstance(scale, int | float) else repr(scale)
            raise InputError(
                f"--scale {shown}: give the reflectance of one raw unit, a number above 0 "
                "(e.g. 0.0001 for reflectance x10000)"
            )


@dataclass
class _Source:
    """One band of one open dataset, and how it maps onto the scene grid."""

    band: str
    path: Path
    ds: Any  # rasterio.DatasetReader
    bidx: int
    on_grid: bool = True
    halo: int = 1  # 10 m pixels a resampled no-data pixel reaches with bilinear resampling
    zero_is_nodata: bool = False

    @property
    def nodata(self) -> float | None:
        value = self.ds.nodatavals[self.bidx - 1]
        return None if value is None else float(value)

    @property
    def is_float(self) -> bool:
        return np.dtype(self.ds.dtypes[self.bidx - 1]).kind == "f"

    @property
    def may_have_nodata(self) -> bool:
        return self.is_float or self.nodata is not None or self.zero_is_nodata

    def tags(self) -> dict[str, str]:
        """Dataset tags overlaid with band tags, keys upper-case."""
        merged = {k.upper(): v for k, v in self.ds.tags().items()}
        merged.update({k.upper(): v for k, v in self.ds.tags(self.bidx).items()})
        return merged


@dataclass(frozen=True)
class _Encoding:
    scale: float
    offset: float
    text: str
    l2a_dn: bool  # integer L2A digital numbers, where 0 marks no data
    origin: str = ""  # where scale and offset came from, for messages ("its tag ...")
    fix: str = ""  # what to do when they turn the values into implausible reflectance


@dataclass
class _Meta:
    """Metadata gathered while opening: from product XML, tags and names."""

    scene_id: str
    date: dt.date | None = None
    baseline: float | None = None
    quantification: float | None = None
    offsets: dict[str, float] = field(default_factory=dict)
    metadata_file: str | None = None


class Scene:
    """An open Sentinel-2 L2A scene; read it whole or in windows.

    Create one with :func:`open_scene`. The datasets stay open until :meth:`close` (or the end
    of a ``with`` block).
    """

    def __init__(
        self,
        info: SceneInfo,
        sources: Sequence[_Source],
        scl: _Source | None,
        datasets: Sequence[Any],
    ) -> None:
        self.info = info
        self._sources = list(sources)
        self._scl = scl
        self._datasets = list(datasets)
        self._closed = False

    def __enter__(self) -> Scene:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        i = self.info
        return f"Scene({i.scene_id!r}, form={i.form!r}, {i.width}x{i.height}, {i.encoding!r})"

    def close(self) -> None:
        """Close the datasets; reading afterwards raises ``ValueError``."""
        for ds in self._datasets:
            ds.close()
        self._closed = True

    def windows(self, size: int = 1024) -> Iterator[Window]:
        """Tiles of at most ``size`` x ``size`` pixels covering the scene, row by row.

        Raises:
            InputError: if ``size`` is smaller than 1.
        """
        if size < 1:
            raise InputError(f"window size {size} is too small; use 1 or more pixels")
        W, H = self.info.width, self.info.height
        return (
            Window(col, row, min(size, W - col), min(size, H - row))
            for row in range(0, H, size)
            for col in range(0, W, size)
        )

    def read(
        self, window: Window | None = None, *, allow_full: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Read reflectance and validity for a window of the scene grid (the whole scene if None).

        Returns:
            ``(reflectance, valid)``: reflectance ``float32[10, h, w]`` in contract band order,
            0-1, NaN in a band where that band has no data or is not finite (for a resampled
            20 m band also where a no-data pixel was blended in); valid ``bool[h, w]``, false
            where any band is NaN or the SCL marks cloud, cloud shadow, cirrus, saturation or
            no data (cloudy pixels keep their reflectance).

        Raises:
            InputError: if the window is not inside the scene, or ``window`` is None on a scene
                larger than :data:`MAX_FULL_READ_PIXELS` without ``allow_full``.
            ValueError: if the scene is closed.
        """
        if self._closed:
            raise ValueError(f"{self.info.source}: scene is closed; open it again to read")
        win = self._checked_window(window, allow_full=allow_full)
        h, w = int(win.height), int(win.width)
        out = np.empty((len(self._sources), h, w), dtype=np.float32)
        nodata = np.zeros((h, w), dtype=bool)

        # Bands on the scene grid: one read per dataset (a multi-band GeoTIFF is read at once).
        groups: dict[int, list[int]] = {}
        for i, src in enumerate(self._sources):
            if src.on_grid:
                groups.setdefault(id(src.ds), []).append(i)
        for members in groups.values():
            first = self._sources[members[0]]
            raw = _read_checked(
                first.path, first.ds, [self._sources[i].bidx for i in members], window=win
            )
            for i, band_raw in zip(members, raw, strict=True):
                self._convert(i, band_raw, out)
                band_nodata = _nodata_mask(band_raw, self._sources[i])
                out[i][band_nodata] = np.nan
                nodata |= band_nodata

        # Bands on another grid: resample the matching window; mark the pixels that a
        # no-data source pixel reaches through the bilinear kernel.
        for i, src in enumerate(self._sources):
            if src.on_grid:
                continue
            raw = self._resampled(src, win, Resampling.bilinear)
            self._convert(i, raw, out)
            if src.may_have_nodata:
                band_nodata = self._coarse_nodata(src, win)
                out[i][band_nodata] = np.nan
                nodata |= band_nodata

        valid = ~nodata
        if self._scl is not None:
            if self._scl.on_grid:
                scl = _read_checked(self._scl.path, self._scl.ds, self._scl.bidx, window=win)
            else:
                scl = self._resampled(self._scl, win, Resampling.nearest)
            valid &= ~np.isin(scl, _SCL_INVALID_CODES)
        return out, valid

    def read_overview(
        self, bands: Sequence[str] | None = None, *, max_side: int = 1024
    ) -> np.ndarray:
        """Reflectance of the whole scene at most ``max_side`` pixels on a side, for a picture.

        Each band is read decimated with nearest-neighbour sampling (GDAL answers from an
        overview when the file has one), so a scene of any size costs about ``max_side²``
        values per band and no-data stays no-data (an average would blend the 0 of L2A no
        data into its neighbours).

        Args:
            bands: band names in the order wanted (default: every band, contract order).
            max_side: longest side of the result, pixels.

        Returns:
            ``float32[len(bands), h, w]`` reflectance 0-1, NaN where there is no data.

        Raises:
            InputError: if a band is not in the scene or ``max_side`` is below 1.
            ValueError: if the scene is closed.
        """
        if self._closed:
            raise ValueError(f"{self.info.source}: scene is closed; open it again to read")
        if max_side < 1:
            raise InputError(f"overview side {max_side} is too small; use 1 or more pixels")
        names = [s.band for s in self._sources]
        wanted = list(names) if bands is None else list(bands)
        missing = [b for b in wanted if b not in names]
        if missing:
            raise InputError(f"{self.info.source}: no band {missing[0]} (bands {names})")
        W, H = self.info.width, self.info.height
        step = max(1.0, max(W, H) / max_side)
        shape = (max(1, round(H / step)), max(1, round(W / step)))
        out = np.empty((len(wanted), *shape), dtype=np.float32)
        for j, band in enumerate(wanted):
            i = names.index(band)
            src = self._sources[i]
            raw = _read_checked(
                src.path, src.ds, src.bidx, out_shape=shape, resampling=Resampling.nearest
            )
            self._convert_into(i, raw, out[j])
            out[j][_nodata_mask(raw, src)] = np.nan
        return out

    def _convert_into(self, i: int, raw: np.ndarray, out: np.ndarray) -> None:
        np.multiply(raw, np.float32(self.info.scale[i]), out=out, casting="unsafe")
        out += np.float32(self.info.offset[i])

    def _convert(self, i: int, raw: np.ndarray, out: np.ndarray) -> None:
        self._convert_into(i, raw, out[i])

    def _checked_window(self, window: Window | None, *, allow_full: bool) -> Window:
        W, H = self.info.width, self.info.height
        if window is None:
            if W * H > MAX_FULL_READ_PIXELS and not allow_full:
                raise InputError(
                    f"{self.info.source}: scene is {W}x{H} pixels, too large to read at once; "
                    "read it in windows (Scene.windows()) or pass allow_full=True"
                )
            return Window(0, 0, W, H)
        if isinstance(window, tuple):
            window = Window.from_slices(*window)
        col, row = round(window.col_off), round(window.row_off)
        w, h = round(window.width), round(window.height)
        if w < 1 or h < 1 or col < 0 or row < 0 or col + w > W or row + h > H:
            raise InputError(
                f"{self.info.source}: window (col {col}, row {row}, {w}x{h}) is not inside the "
                f"scene ({W}x{H} pixels); use Scene.windows() or clip the window"
            )
        return Window(col, row, w, h)

    def _resampled(self, src: _Source, win: Window, resampling: Resampling) -> np.ndarray:
        """Read the part of ``src`` under ``win`` (scene grid), resampled to the window shape."""
        left, bottom, right, top = window_bounds(win, self.info.transform)
        sw = from_bounds(left, bottom, right, top, transform=src.ds.transform)
        # Extents agree within 1 % of a pixel (checked at open); clamp rounding overshoot.
        c0 = min(max(float(sw.col_off), 0.0), src.ds.width)
        r0 = min(max(float(sw.row_off), 0.0), src.ds.height)
        c1 = min(float(sw.col_off + sw.width), src.ds.width)
        r1 = min(float(sw.row_off + sw.height), src.ds.height)
        return _read_checked(
            src.path,
            src.ds,
            src.bidx,
            window=Window(c0, r0, c1 - c0, r1 - r0),
            out_shape=(int(win.height), int(win.width)),
            resampling=resampling,
        )

    def _coarse_nodata(self, src: _Source, win: Window) -> np.ndarray:
        """No-data footprint of a resampled band under ``win``, grown by the bilinear reach."""
        full = Window(0, 0, self.info.width, self.info.height)
        halo = src.halo
        padded = window_intersection(
            Window(
                win.col_off - halo, win.row_off - halo, win.width + 2 * halo, win.height + 2 * halo
            ),
            full,
        )
        raw = self._resampled(src, padded, Resampling.nearest)
        grown = ndimage.binary_dilation(
            _nodata_mask(raw, src), structure=np.ones((2 * halo + 1, 2 * halo + 1), dtype=bool)
        )
        r0 = int(win.row_off - padded.row_off)
        c0 = int(win.col_off - padded.col_off)
        return grown[r0 : r0 + int(win.height), c0 : c0 + int(win.width)]


def _nodata_mask(raw: np.ndarray, src: _Source) -> np.ndarray:
    """Pixels of one band read that hold no data: non-finite, dataset nodata, L2A DN 0."""
    mask = np.zeros(raw.shape, dtype=bool)
    if raw.dtype.kind == "f":
        mask |= ~np.isfinite(raw)
    nd = src.nodata
    if nd is not None and not math.isnan(nd):
        mask |= raw == nd
    if src.zero_is_nodata:
        mask |= raw == 0
    return mask


def open_scene(
    path: str | Path, *, scl: str | Path | None = None, options: SceneOptions | None = None
) -> Scene:
    """Open a Sentinel-2 L2A scene stored as a GeoTIFF, a folder of band files or a .SAFE.

    Before the scene is returned it is checked, so that a command fails before any work: the
    pixel size on the ground (10 m, see :data:`RESOLUTION_RANGE_M`), the reflectance a sample
    at the scene centre comes out with (band medians from -0.02 to 1.5: an offset applied
    twice, or a wrong scale, is refused), the SCL values, and that the scene has a valid pixel
    and every band a value (windows are read from the centre out until both are seen).

    Args:
        path: a multi-band raster file, a folder of per-band files, a ``.SAFE`` folder or its
            ``MTD_MSIL2A.xml``.
        scl: a scene classification raster to mask clouds with; by default the SCL found beside
            the bands (``<stem>_SCL.tif``, a file named with ``SCL``, or the SAFE's R20m SCL).
        options: how to read where the files leave a choice (:class:`SceneOptions`).

    Returns:
        An open :class:`Scene`; close it or use it in a ``with`` block.

    Raises:
        InputFileError: if a path is missing, a file is not a raster GDAL can read, or it is
            damaged or truncated.
        InputError: if bands are missing or in an unknown order, a file has no CRS, band files
            do not share CRS and extent, product metadata is corrupt, bands are 8-bit (without
            ``options.scale``), pixels are far from 10 m (without
            ``options.allow_resolution``), the values are not plausible reflectance, the SCL
            holds other values than its classes, a band holds no data or no pixel is valid.
    """
    opts = options or SceneOptions()
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: scene not found; check the path")
    if p.is_file() and p.name.upper() == "MTD_MSIL2A.XML":
        p = p.parent
    if p.is_file() and p.suffix.lower() == ".zip":
        raise InputFileError(f"{p}: zipped product; unzip it and give the .SAFE folder")

    form: SceneForm
    if p.is_dir():
        is_safe = p.suffix.upper() == ".SAFE" or (p / "MTD_MSIL2A.xml").exists()
        form = "safe" if is_safe or (p / "GRANULE").is_dir() else "folder"
    else:
        form = "geotiff"

    opened: list[Any] = []
    deferred: list[logging.LogRecord] = []
    held = _HoldWarnings(deferred)
    log.addFilter(held)
    try:
        if form == "geotiff":
            sources, meta, scl_path = _open_geotiff(p, opened)
        elif form == "folder":
            sources, meta, scl_path = _open_folder(p, opened)
        else:
            sources, meta, scl_path = _open_safe(p, opened)
        if scl is not None:
            scl_path = Path(scl)
        grid = sources[0].ds
        if not opts.allow_resolution:
            _check_resolution(sources[0].path, grid)
        for src in sources[1:]:
            _check_same_grid(src, grid, sources[0].path)
            _place_on_grid(src, grid)
        scl_source = None
        if scl_path is not None:
            scl_ds = _open(scl_path, opened, what="SCL file")
            if scl_ds.count != 1:
                raise InputError(
                    f"{scl_path}: SCL file has {scl_ds.count} bands; expected 1 (the L2A scene "
                    "classification)"
                )
            scl_source = _Source("SCL", scl_path, scl_ds, 1)
            _check_same_grid(scl_source, grid, sources[0].path)
            _place_on_grid(scl_source, grid)
            _check_scl_values(scl_source)
        samples = _Samples(sources)
        encodings = _encodings(sources, meta, samples, scale=opts.scale)
        for src, enc in zip(sources, encodings, strict=True):
            src.zero_is_nodata = enc.l2a_dn
        _check_plausible(sources, encodings, samples)
        texts = list(dict.fromkeys(e.text for e in encodings))
        info = SceneInfo(
            source=p,
            form=form,
            scene_id=meta.scene_id,
            date=None if meta.date is None else meta.date.isoformat(),
            crs=grid.crs,
            transform=grid.transform,
            width=grid.width,
            height=grid.height,
            bands=BANDS,
            scale=tuple(e.scale for e in encodings),
            offset=tuple(e.offset for e in encodings),
            encoding="; ".join(texts),
            has_scl=scl_source is not None,
        )
        scene = Scene(info, sources, scl_source, opened)
        _check_has_data(scene)
    except BaseException:
        for ds in opened:
            ds.close()
        raise
    finally:
        log.removeFilter(held)
    for record in deferred:  # the scene opened: its warnings and notes stand
        log.handle(record)
    log.info(
        "%s: %s scene %s (%s), %dx%d, %s%s",
        p,
        form,
        info.scene_id,
        info.date or "date unknown",
        info.width,
        info.height,
        info.encoding,
        ", with SCL" if info.has_scl else ", no SCL",
    )
    return scene


class _HoldWarnings(logging.Filter):
    """Holds back this module's log records (warnings and notes on how the scene is read)
    while a scene is opened: when the scene is refused, the refusal is the one line the user
    sees; when it opens, the records are logged."""

    def __init__(self, held: list[logging.LogRecord]) -> None:
        super().__init__()
        self.held = held

    def filter(self, record: logging.LogRecord) -> bool:
        self.held.append(record)
        return False


def read_scene(
    path: str | Path,
    *,
    window: Window | None = None,
    scl: str | Path | None = None,
    allow_full: bool = False,
    options: SceneOptions | None = None,
) -> tuple[np.ndarray, np.ndarray, SceneInfo]:
    """Open a scene, read one window (or all of it) and close it again.

    Returns:
        ``(reflectance float32[10, h, w], valid bool[h, w], info)``; see :meth:`Scene.read`.

    Raises:
        InputFileError: see :func:`open_scene`.
        InputError: see :func:`open_scene` and :meth:`Scene.read`.
    """
    with open_scene(path, scl=scl, options=options) as scene:
        reflectance, valid = scene.read(window, allow_full=allow_full)
        return reflectance, valid, scene.info


# --- opening the three forms -------------------------------------------------------------------


def _open(path: Path, opened: list[Any], *, what: str) -> Any:
    """Open a raster, remember it for closing, and check it is georeferenced and north-up."""
    with warnings.catch_warnings():
        # A file without georeferencing gets a clear InputError below instead.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        ds = open_raster(path, what=what)
    opened.append(ds)
    if ds.crs is None and ds.driver not in _GEOREFERENCED_DRIVERS:
        raise InputError(
            f"{path}: a {ds.driver} image, not a GeoTIFF: it has no georeferencing (CRS and "
            "transform); give the scene as a GeoTIFF or JP2 of the L2A bands"
        )
    if ds.crs is None:
        raise InputError(
            f"{path}: has no CRS; assign one with gdal_edit.py -a_srs or write a georeferenced file"
        )
    if ds.transform.b != 0 or ds.transform.d != 0:
        raise InputError(f"{path}: rotated or sheared grid; warp it north-up with gdalwarp first")
    return ds


def _open_geotiff(p: Path, opened: list[Any]) -> tuple[list[_Source], _Meta, Path | None]:
    ds = _open(p, opened, what="scene")
    if ds.count != len(BANDS):
        raise InputError(
            f"{p}: has {ds.count} bands; expected {len(BANDS)} ({' '.join(BANDS)}), or give a "
            "folder of per-band files"
        )
    order = _band_order(p, ds.descriptions)
    sources = [_Source(band, p, ds, bidx) for band, bidx in zip(BANDS, order, strict=True)]
    tags = {k.upper(): v for k, v in ds.tags().items()}
    scene_id = next((tags[k].removesuffix(".SAFE") for k in _ID_TAGS if tags.get(k)), p.stem)
    meta = _Meta(
        scene_id=scene_id,
        date=_date_from_tags(tags) or _parse_date(p.name),
        baseline=_baseline_from(tags, p.name, scene_id),
    )
    scl = next(
        (
            s
            for s in (p.with_name(f"{p.stem}{suffix}") for suffix in ("_SCL.tif", "_SCL.tiff"))
            if s.exists()
        ),
        None,
    )
    return sources, meta, scl


def _band_order(p: Path, descriptions: Sequence[str | None]) -> list[int]:
    """1-based band indexes of the contract bands, read from band descriptions."""
    if not any(descriptions):
        log.warning("%s: no band descriptions; assuming contract order %s", p, " ".join(BANDS))
        return list(range(1, len(BANDS) + 1))
    names = [normalise_band_name(d) if d else "?" for d in descriptions]
    if sorted(names) != sorted(BANDS):
        raise InputError(
            f"{p}: unknown band order ({', '.join(d or '?' for d in descriptions)}); expected "
            f"band descriptions {', '.join(BANDS)}"
        )
    if tuple(names) != BANDS:
        log.info("%s: bands stored as %s; reordering to %s", p, " ".join(names), " ".join(BANDS))
    return [names.index(b) + 1 for b in BANDS]


def _band_of_name(name: str) -> str | None:
    """The contract band a file name stands for, or None (other bands, TCI, AOT, WVP...)."""
    tokens = {normalise_band_name(f"B{m}") for m in _BAND_TOKEN.findall(Path(name).stem)}
    if len(tokens) != 1:
        return None
    band = tokens.pop()
    return band if band in BANDS else None


def _name_resolution(path: Path) -> float:
    m = _RES_TOKEN.search(path.stem)
    return float(m.group(1)) if m else math.inf


def _finest(band: str, candidates: list[Path], folder: Path) -> Path:
    """Of several files for one band (e.g. B02_10m and B02_20m), the finest by name."""
    if len(candidates) == 1:
        return candidates[0]
    ranked = sorted(candidates, key=_name_resolution)
    if _name_resolution(ranked[0]) == _name_resolution(ranked[1]):
        names = ", ".join(c.name for c in candidates)
        raise InputError(f"{folder}: several files for {band} ({names}); keep one per band")
    log.info("%s: %d files for %s; using the finest, %s", folder, len(ranked), band, ranked[0].name)
    return ranked[0]


def _open_folder(p: Path, opened: list[Any]) -> tuple[list[_Source], _Meta, Path | None]:
    # The folder itself and one level of sub-folders (an IMG_DATA folder holds R10m, R20m...).
    files = [
        f
        for f in sorted(
            [*p.iterdir(), *(g for d in p.iterdir() if d.is_dir() for g in d.iterdir())]
        )
        if f.is_file() and f.suffix.lower() in _RASTER_SUFFIXES and not f.name.startswith(".")
    ]
    by_band: dict[str, list[Path]] = {}
    scl_files: list[Path] = []
    for f in files:
        if _SCL_TOKEN.search(f.stem):
            scl_files.append(f)
        elif (band := _band_of_name(f.name)) is not None:
            by_band.setdefault(band, []).append(f)
    missing = [b for b in BANDS if b not in by_band]
    if missing:
        raise InputError(
            f"{p}: missing bands {', '.join(missing)}; give one file per band named with its "
            "token, e.g. B02.tif or T43PGQ_20220315T050701_B8A_20m.jp2"
        )
    sources = []
    for band in BANDS:
        path = _finest(band, by_band[band], p)
        sources.append(_Source(band, path, _open(path, opened, what=f"{band} file"), 1))
    first = sources[0]
    tags = first.tags()
    tile_time = _TILE_TIME.search(first.path.name)
    scene_id = tile_time.group(0) if tile_time else p.name
    meta = _Meta(
        scene_id=scene_id,
        date=_date_from_tags(tags) or _parse_date(first.path.name) or _parse_date(p.name),
        baseline=_baseline_from(tags, first.path.name, p.name),
    )
    scl = _finest("SCL", scl_files, p) if scl_files else None
    return sources, meta, scl


def _open_safe(p: Path, opened: list[Any]) -> tuple[list[_Source], _Meta, Path | None]:
    img_dirs = sorted((p / "GRANULE").glob("*/IMG_DATA"))
    if len(img_dirs) != 1:
        found = "no" if not img_dirs else f"{len(img_dirs)}"
        raise InputError(
            f"{p}: {found} GRANULE/*/IMG_DATA folders; give an unzipped Sentinel-2 L2A .SAFE "
            "product with one granule"
        )
    img = img_dirs[0]
    paths: dict[str, Path] = {}
    missing = []
    for band in BANDS:
        res = f"{NATIVE_RESOLUTION_M[band]}m"
        matches = sorted((img / f"R{res}").glob(f"*_{band}_{res}.jp2"))
        if matches:
            paths[band] = matches[0]
        else:
            missing.append(f"{band} (R{res})")
    if missing:
        raise InputError(
            f"{img}: missing bands {', '.join(missing)}; the product is incomplete, download it "
            "again"
        )
    meta = _read_safe_metadata(p)
    sources = [_Source(b, paths[b], _open(paths[b], opened, what=f"{b} file"), 1) for b in BANDS]
    scl = next(iter(sorted((img / "R20m").glob("*_SCL_20m.jp2"))), None)
    return sources, meta, scl


def _read_safe_metadata(p: Path) -> _Meta:
    """Quantification, offsets, baseline, id and date of a .SAFE product."""
    name = p.name.removesuffix(".SAFE").removesuffix(".safe")
    meta = _Meta(scene_id=name, date=_parse_date(name), baseline=_baseline_from({}, name))
    xml = p / "MTD_MSIL2A.xml"
    if not xml.exists():
        log.warning("%s: no MTD_MSIL2A.xml; offsets inferred from the product name", p)
        return meta
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as err:
        raise InputError(f"{xml}: not valid XML ({err}); download the product again") from err
    meta.metadata_file = xml.name
    uri = start = None
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        text = (el.text or "").strip()
        try:
            if tag == "BOA_QUANTIFICATION_VALUE":
                meta.quantification = float(text)
            elif tag == "BOA_ADD_OFFSET":
                meta.offsets[_L2A_BAND_IDS[int(el.get("band_id", ""))]] = float(text)
            elif tag == "PROCESSING_BASELINE":
                meta.baseline = float(text)
            elif tag == "PRODUCT_START_TIME":
                start = text
            elif tag == "PRODUCT_URI":
                uri = text
        except (ValueError, IndexError) as err:
            raise InputError(
                f"{xml}: bad value {text!r} in <{tag}>; the metadata is corrupt, download the "
                "product again"
            ) from err
    if uri and not name.startswith("S2"):
        meta.scene_id = uri.removesuffix(".SAFE")
    meta.date = (_parse_date(start) if start else None) or meta.date
    if meta.baseline is None:
        meta.baseline = _baseline_from({}, meta.scene_id)
    return meta


def _check_same_grid(src: _Source, grid: Any, grid_path: Path) -> None:
    if src.ds.crs != grid.crs:
        raise InputError(
            f"{src.path}: CRS {src.ds.crs} differs from {grid_path.name} ({grid.crs}); all band "
            "files must share CRS and extent"
        )
    tol = 0.01 * abs(grid.transform.a)
    if any(abs(a - b) > tol for a, b in zip(src.ds.bounds, grid.bounds, strict=True)):
        raise InputError(
            f"{src.path}: extent {tuple(src.ds.bounds)} differs from {grid_path.name} "
            f"({tuple(grid.bounds)}); all band files must share CRS and extent"
        )


def _place_on_grid(src: _Source, grid: Any) -> None:
    same = src.ds.width == grid.width and src.ds.height == grid.height
    src.on_grid = same and src.ds.transform.almost_equals(grid.transform)
    ratio = max(
        abs(src.ds.transform.a / grid.transform.a), abs(src.ds.transform.e / grid.transform.e)
    )
    # Bilinear upsampling by r blends a source pixel into output pixels up to r/2 away.
    src.halo = max(1, math.ceil(ratio / 2))


# --- checks at open: a scene the model can read ----------------------------------------------


def _ground_pixel_m(grid: Any) -> tuple[float, float] | None:
    """Pixel side ``(x, y)`` in metres on the ground at the grid centre (None if unknown)."""
    from pyproj import Geod, Transformer
    from pyproj.exceptions import ProjError

    t = grid.transform
    cx, cy = grid.width / 2, grid.height / 2
    xs, ys = zip(*(t * (cx, cy), t * (cx + 1, cy), t * (cx, cy + 1)), strict=True)
    try:
        lon, lat = Transformer.from_crs(grid.crs.to_wkt(), "EPSG:4326", always_xy=True).transform(
            xs, ys
        )
    except ProjError:
        return None
    if not all(math.isfinite(v) for v in (*lon, *lat)):
        return None
    geod = Geod(ellps="WGS84")
    dx = geod.inv(lon[0], lat[0], lon[1], lat[1])[2]
    dy = geod.inv(lon[0], lat[0], lon[2], lat[2])[2]
    return float(dx), float(dy)


def _metres(value: float) -> str:
    return f"{value:,.0f} m" if value >= 100 else f"{value:.3g} m"


def _check_resolution(path: Path, grid: Any) -> None:
    """Refuse pixels far from Sentinel-2's 10 m: the model sees farms at the wrong size there
    (10 km pixels made 13 "farms" of 500,000 km^2)."""
    sides = _ground_pixel_m(grid)
    if sides is None:
        return
    lo, hi = RESOLUTION_RANGE_M
    if all(lo <= side <= hi for side in sides):
        return
    raise InputError(
        f"{path}: pixels are {_metres(sides[0])} x {_metres(sides[1])} on the ground, but the "
        f"model works on Sentinel-2's 10 m pixels ({lo:.2g} to {hi:.2g} m accepted); resample "
        "the scene to 10 m (gdalwarp -tr 10 10) or pass --allow-resolution to read it as it is"
    )


def _check_scl_values(scl: _Source) -> None:
    """Refuse an SCL file whose values are not scene classes (e.g. a reflectance band)."""
    values = _Samples([scl]).values(scl)
    if not values.size:
        return
    top = float(values.max())
    if top > _SCL_MAX or float(values.min()) < 0 or not np.all(values == np.round(values)):
        raise InputError(
            f"{scl.path}: values such as {top:g} are not scene classes (0 to {_SCL_MAX}); give "
            "the L2A scene classification (SCL) band, e.g. *_SCL_20m.jp2"
        )


def _check_plausible(
    sources: Sequence[_Source], encodings: Sequence[_Encoding], samples: _Samples
) -> None:
    """Refuse values that come out as no surface reflectance could: a band's median in the
    sample at the scene centre below -0.02 (an L2A offset applied twice gives about -0.1) or
    above 1.5 (reflectance x10000 read as 0-1)."""
    lo, hi = _PLAUSIBLE_MEDIAN
    for src, enc in zip(sources, encodings, strict=True):
        values = samples.values(src)
        if not values.size:
            continue
        median = float(np.median(values)) * enc.scale + enc.offset
        if lo <= median <= hi:
            continue
        how = f"with {enc.origin}" if enc.origin else f"read as {enc.text}"
        side = "below 0" if median < lo else "far above 1"
        raise InputError(
            f"{src.path}: {how}, {src.band} comes out with median reflectance {median:.3g} "
            f"({side}: no surface reflectance); {enc.fix or 'give an L2A scene'}"
        )


def _check_has_data(scene: Scene, size: int = 1024) -> None:
    """Refuse a scene with no valid pixel or a band without any value.

    Windows are read from the scene centre outwards and the scan stops as soon as a valid
    pixel and a value in every band have been seen: one window for most scenes, the whole
    scene only for one that is then refused.
    """
    info = scene.info
    cy, cx = info.height / 2, info.width / 2
    windows = sorted(
        scene.windows(size),
        key=lambda w: (w.row_off + w.height / 2 - cy) ** 2 + (w.col_off + w.width / 2 - cx) ** 2,
    )
    filled = np.zeros(len(info.bands), dtype=bool)
    any_valid = False
    for win in windows:
        refl, valid = scene.read(win)
        filled |= np.isfinite(refl).reshape(len(info.bands), -1).any(axis=1)
        any_valid = any_valid or bool(valid.any())
        if any_valid and filled.all():
            return
    empty = [b for b, ok in zip(info.bands, filled, strict=True) if not ok]
    if empty and len(empty) < len(info.bands):
        raise InputError(
            f"{info.source}: band(s) {', '.join(empty)} hold only NaN/no data; re-export the "
            "scene with every band filled"
        )
    raise InputError(
        f"{info.source}: no valid pixel (all no data, cloud or shadow); choose a clearer scene "
        "or a different date"
    )


# --- metadata: dates, baselines, encodings -----------------------------------------------------


def _parse_date(text: str | None) -> dt.date | None:
    """The first plausible date in a text: 2022-06-30, 2022:06:30 or 20220630T101031."""
    if not text:
        return None
    for pattern in (_ISO_DATE, _COMPACT_DATE):
        for m in pattern.finditer(text):
            try:
                d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            except ValueError:
                continue
            if 1990 <= d.year <= 2100:
                return d
    return None


def _date_from_tags(tags: dict[str, str]) -> dt.date | None:
    # TIFFTAG_DATETIME is when the file was written, not when the scene was sensed: not used.
    for key in _DATE_TAGS:
        if (d := _parse_date(tags.get(key))) is not None:
            return d
    return None


def _baseline_from(tags: dict[str, str], *names: str) -> float | None:
    value = tags.get("PROCESSING_BASELINE")
    if value:
        try:
            return float(value)
        except ValueError:
            log.warning("ignoring PROCESSING_BASELINE=%r: not a number", value)
    for name in names:
        if (baseline := baseline_in_name(name)) is not None:
            return baseline
    return None


def _tag_number(src: _Source, tags: dict[str, str], *keys: str) -> float | None:
    for key in keys:
        if key in tags:
            try:
                return float(tags[key])
            except ValueError as err:
                raise InputError(
                    f"{src.path}: tag {key}={tags[key]!r} is not a number; fix or remove the tag"
                ) from err
    return None


def _default_offset(meta: _Meta) -> tuple[float, str]:
    """L2A BOA_ADD_OFFSET implied by the processing baseline or the date, and why."""
    if meta.baseline is not None:
        return l2a_offset_dn(meta.baseline), f"processing baseline {meta.baseline:05.2f}"
    if meta.date is not None:
        off = _NEW_OFFSET if meta.date >= L2A_OFFSET_SINCE else 0.0
        return off, f"sensing date {meta.date.isoformat()}"
    return 0.0, "no date or processing baseline known"


def _dn_encoding(
    q: float, off: float, *, integer: bool, note: str = "", origin: str = "", fix: str = ""
) -> _Encoding:
    text = f"L2A DN, offset {off:g}, quantification {q:g}{note}"
    return _Encoding(
        scale=1.0 / q, offset=off / q, text=text, l2a_dn=integer, origin=origin, fix=fix
    )


def _user_encoding(scale: float) -> _Encoding:
    option = f"--scale {scale:g}"
    return _Encoding(
        scale=scale,
        offset=0.0,
        text=f"reflectance = value x {scale:g} ({option})",
        l2a_dn=False,
        origin=option,
        fix="give --scale the reflectance of one raw unit (e.g. 0.0001 for reflectance x10000)",
    )


def _encodings(
    sources: Sequence[_Source], meta: _Meta, samples: _Samples, *, scale: float | None = None
) -> list[_Encoding]:
    """How each band's raw values turn into reflectance (``scale``: the user's, for all)."""
    if scale is not None:
        return [_user_encoding(scale) for _ in sources]
    _refuse_8_bit(sources)
    result: list[_Encoding | None] = []
    assumed: tuple[float, str] | None = None
    for src in sources:
        integer = not src.is_float
        tags = src.tags()
        q = _tag_number(src, tags, "BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")
        off = _tag_number(src, tags, "BOA_ADD_OFFSET")
        origin = f"its tag BOA_ADD_OFFSET={tags['BOA_ADD_OFFSET']}" if off is not None else ""
        fix = (
            "if the values have the offset applied already, remove the tag (or set it to 0); "
            "else give the raw L2A digital numbers"
        )
        if meta.quantification is not None or src.band in meta.offsets:
            q = meta.quantification
            off = meta.offsets.get(src.band)
            origin = f"BOA_ADD_OFFSET {off:g} in {meta.metadata_file}" if off is not None else ""
            fix = "the bands do not match the product metadata; download the product again"
        if q is not None or off is not None:
            if off is None:
                off, why = _default_offset(meta)
                log.info("%s: no BOA_ADD_OFFSET; using %g from %s", src.path, off, why)
                origin = f"the offset {off:g} assumed from {why}"
                fix = "if the values have the offset applied already, tag BOA_ADD_OFFSET=0"
            result.append(
                _dn_encoding(q or _QUANTIFICATION, off, integer=integer, origin=origin, fix=fix)
            )
            continue
        scale_, offset = src.ds.scales[src.bidx - 1], src.ds.offsets[src.bidx - 1]
        if (scale_, offset) != (1.0, 0.0):
            text = f"GDAL scale {scale_:g}, offset {offset:g}"
            fix = "fix the band scales and offsets (gdal_edit.py -scale -offset)"
            result.append(_Encoding(scale_, offset, text, False, origin=text, fix=fix))
            continue
        if integer:
            if assumed is None:
                assumed = _default_offset(meta)
                log.warning(
                    "%s: integer bands without offset tags; assuming L2A DN with quantification "
                    "10000 and offset %g (%s)",
                    src.path,
                    assumed[0],
                    assumed[1],
                )
            note = f" (assumed from {assumed[1]})"
            result.append(
                _dn_encoding(
                    _QUANTIFICATION,
                    assumed[0],
                    integer=True,
                    note=note,
                    origin=f"the offset {assumed[0]:g} assumed from {assumed[1]}",
                    fix="tag the file with BOA_ADD_OFFSET (0 if the offset is applied already) "
                    "and BOA_QUANTIFICATION_VALUE",
                )
            )
            continue
        result.append(None)
    pending = [s for s, e in zip(sources, result, strict=True) if e is None]
    if pending:
        x10000 = _float_is_x10000(pending, samples)
        fix = "tag the file scale=reflectance*10000 or scale=1, or pass --scale"
        float_enc = (
            _Encoding(1.0 / _QUANTIFICATION, 0.0, "float reflectance x10000", False, fix=fix)
            if x10000
            else _Encoding(1.0, 0.0, "float reflectance 0-1", False, fix=fix)
        )
        result = [float_enc if e is None else e for e in result]
    return [e for e in result if e is not None]


def _refuse_8_bit(sources: Sequence[_Source]) -> None:
    """8-bit bands cannot hold L2A reflectance: refuse them (``--scale`` reads them anyway)."""
    for src in sources:
        dtype = np.dtype(src.ds.dtypes[src.bidx - 1])
        if dtype.kind == "c":
            raise InputError(
                f"{src.path}: complex values ({dtype}) are not reflectance; give the L2A bands "
                "as uint16 digital numbers or float reflectance"
            )
        if dtype.itemsize == 1:
            raise InputError(
                f"{src.path}: 8-bit values ({dtype}) are not L2A reflectance (a display product "
                "such as TCI, or a stretched export); give the L2A bands as uint16 digital "
                "numbers or float reflectance, or pass --scale with the reflectance of one raw "
                "unit (e.g. --scale 0.00392 if 255 is reflectance 1)"
            )


class _Samples:
    """Raw values of each band in a window at the scene centre, read once at open (the encoding
    guess and the plausibility check both look at them)."""

    SIZE: Final = 512

    def __init__(self, sources: Sequence[_Source]) -> None:
        self._sources = list(sources)
        self._index = {id(src): i for i, src in enumerate(self._sources)}
        self._raw: dict[int, np.ndarray] | None = None

    def _read(self) -> dict[int, np.ndarray]:
        if self._raw is None:
            raw: dict[int, np.ndarray] = {}
            by_ds: dict[int, list[int]] = {}
            for i, src in enumerate(self._sources):
                by_ds.setdefault(id(src.ds), []).append(i)
            for members in by_ds.values():
                first = self._sources[members[0]]
                ds = first.ds
                w, h = min(ds.width, self.SIZE), min(ds.height, self.SIZE)
                win = Window((ds.width - w) // 2, (ds.height - h) // 2, w, h)
                bidx = [self._sources[i].bidx for i in members]
                data = _read_checked(first.path, ds, bidx, window=win)
                for i, band in zip(members, data, strict=True):
                    raw[i] = band
            self._raw = raw
        return self._raw

    def values(self, src: _Source) -> np.ndarray:
        """Raw values of one band in the sample window that are not no data (1-D)."""
        band = self._read()[self._index[id(src)]]
        return band[~_nodata_mask(band, src)]


def _read_checked(path: Path, ds: Any, *args: Any, **kwargs: Any) -> np.ndarray:
    """``ds.read(*args, **kwargs)``; a read error names the file as damaged or truncated."""
    try:
        return ds.read(*args, **kwargs)
    except RasterioIOError as err:
        raise damaged_raster_error(path, err) from err


def _float_is_x10000(sources: Sequence[_Source], samples: _Samples) -> bool:
    """Whether float bands hold reflectance x10000: a ``scale`` tag says so, or the data do."""
    for src in sources:
        for key, value in src.tags().items():
            if "SCALE" not in key:
                continue
            if "10000" in value:
                log.info("%s: tag %s=%r; reading float reflectance x10000", src.path, key, value)
                return True
            if value.strip() in ("1", "1.0"):
                log.info("%s: tag %s=%r; reading float reflectance 0-1", src.path, key, value)
                return False
    # A sample: the window at the centre of each file, all its float bands.
    parts = [samples.values(src) for src in sources]
    values = np.concatenate(parts) if parts else np.empty(0)
    median = float(np.median(values)) if values.size else math.nan
    x10000 = median > 1.5
    log.info(
        "%s: float bands with median %.4g; reading them as %s",
        sources[0].path,
        median,
        "reflectance x10000" if x10000 else "reflectance 0-1",
    )
    return x10000
