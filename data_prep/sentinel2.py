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
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds
from rasterio.windows import intersection as window_intersection
from scipy import ndimage

from solarmap.bands import (
    BANDS,
    L2A_BOA_ADD_OFFSET,
    L2A_OFFSET_BASELINE,
    L2A_OFFSET_SINCE,
    L2A_QUANTIFICATION,
    NATIVE_RESOLUTION_M,
    SCL_CLASSES,
    SCL_INVALID,
    normalise_band_name,
)
from solarmap.errors import InputError, InputFileError
from solarmap.geo import open_raster

log = logging.getLogger(__name__)

__all__ = [
    "MAX_FULL_READ_PIXELS",
    "SCL_CLASSES",
    "SCL_INVALID",
    "Scene",
    "SceneForm",
    "SceneInfo",
    "open_scene",
    "read_scene",
]

SceneForm = Literal["geotiff", "folder", "safe"]

#: ``Scene.read(None)`` refuses scenes with more pixels than this unless ``allow_full=True``.
MAX_FULL_READ_PIXELS: Final[int] = 4096 * 4096

#: Band order of ``band_id`` 0..12 in the L2A product metadata.
_L2A_BAND_IDS: Final[tuple[str, ...]] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
_QUANTIFICATION: Final[float] = float(L2A_QUANTIFICATION)
_NEW_OFFSET: Final[float] = float(L2A_BOA_ADD_OFFSET)
_RASTER_SUFFIXES: Final[frozenset[str]] = frozenset({".tif", ".tiff", ".jp2"})
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
_BASELINE = re.compile(r"_N(\d{2})(\d{2})_")
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
            ds = self._sources[members[0]].ds
            raw = ds.read([self._sources[i].bidx for i in members], window=win)
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
                scl = self._scl.ds.read(self._scl.bidx, window=win)
            else:
                scl = self._resampled(self._scl, win, Resampling.nearest)
            valid &= ~np.isin(scl, _SCL_INVALID_CODES)
        return out, valid

    def _convert(self, i: int, raw: np.ndarray, out: np.ndarray) -> None:
        np.multiply(raw, np.float32(self.info.scale[i]), out=out[i], casting="unsafe")
        out[i] += np.float32(self.info.offset[i])

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
        return src.ds.read(
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


def open_scene(path: str | Path, *, scl: str | Path | None = None) -> Scene:
    """Open a Sentinel-2 L2A scene stored as a GeoTIFF, a folder of band files or a .SAFE.

    Args:
        path: a multi-band raster file, a folder of per-band files, a ``.SAFE`` folder or its
            ``MTD_MSIL2A.xml``.
        scl: a scene classification raster to mask clouds with; by default the SCL found beside
            the bands (``<stem>_SCL.tif``, a file named with ``SCL``, or the SAFE's R20m SCL).

    Returns:
        An open :class:`Scene`; close it or use it in a ``with`` block.

    Raises:
        InputFileError: if a path is missing or a file is not a raster GDAL can read.
        InputError: if bands are missing or in an unknown order, a file has no CRS, band files
            do not share CRS and extent, or product metadata is corrupt.
    """
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
        encodings = _encodings(sources, meta)
        for src, enc in zip(sources, encodings, strict=True):
            src.zero_is_nodata = enc.l2a_dn
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
    except BaseException:
        for ds in opened:
            ds.close()
        raise
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
    return Scene(info, sources, scl_source, opened)


def read_scene(
    path: str | Path,
    *,
    window: Window | None = None,
    scl: str | Path | None = None,
    allow_full: bool = False,
) -> tuple[np.ndarray, np.ndarray, SceneInfo]:
    """Open a scene, read one window (or all of it) and close it again.

    Returns:
        ``(reflectance float32[10, h, w], valid bool[h, w], info)``; see :meth:`Scene.read`.

    Raises:
        InputFileError: see :func:`open_scene`.
        InputError: see :func:`open_scene` and :meth:`Scene.read`.
    """
    with open_scene(path, scl=scl) as scene:
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
        if m := _BASELINE.search(name):
            return int(m.group(1)) + int(m.group(2)) / 100
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
        off = _NEW_OFFSET if meta.baseline >= L2A_OFFSET_BASELINE else 0.0
        return off, f"processing baseline {meta.baseline:05.2f}"
    if meta.date is not None:
        off = _NEW_OFFSET if meta.date >= L2A_OFFSET_SINCE else 0.0
        return off, f"sensing date {meta.date.isoformat()}"
    return 0.0, "no date or processing baseline known"


def _dn_encoding(q: float, off: float, *, integer: bool, note: str = "") -> _Encoding:
    text = f"L2A DN, offset {off:g}, quantification {q:g}{note}"
    return _Encoding(scale=1.0 / q, offset=off / q, text=text, l2a_dn=integer)


def _encodings(sources: Sequence[_Source], meta: _Meta) -> list[_Encoding]:
    """How each band's raw values turn into reflectance."""
    result: list[_Encoding | None] = []
    assumed: tuple[float, str] | None = None
    for src in sources:
        integer = not src.is_float
        tags = src.tags()
        q = _tag_number(src, tags, "BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE")
        off = _tag_number(src, tags, "BOA_ADD_OFFSET")
        if meta.quantification is not None or src.band in meta.offsets:
            q = meta.quantification
            off = meta.offsets.get(src.band)
        if q is not None or off is not None:
            if off is None:
                off, why = _default_offset(meta)
                log.info("%s: no BOA_ADD_OFFSET; using %g from %s", src.path, off, why)
            result.append(_dn_encoding(q or _QUANTIFICATION, off, integer=integer))
            continue
        scale, offset = src.ds.scales[src.bidx - 1], src.ds.offsets[src.bidx - 1]
        if (scale, offset) != (1.0, 0.0):
            text = f"GDAL scale {scale:g}, offset {offset:g}"
            result.append(_Encoding(scale=scale, offset=offset, text=text, l2a_dn=False))
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
            result.append(_dn_encoding(_QUANTIFICATION, assumed[0], integer=True, note=note))
            continue
        result.append(None)
    pending = [s for s, e in zip(sources, result, strict=True) if e is None]
    if pending:
        x10000 = _float_is_x10000(pending)
        float_enc = (
            _Encoding(1.0 / _QUANTIFICATION, 0.0, "float reflectance x10000", False)
            if x10000
            else _Encoding(1.0, 0.0, "float reflectance 0-1", False)
        )
        result = [float_enc if e is None else e for e in result]
    return [e for e in result if e is not None]


def _float_is_x10000(sources: Sequence[_Source]) -> bool:
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
    # A sample: the first 1024 x 1024 window of each file, all its float bands at once.
    by_ds: dict[int, list[_Source]] = {}
    for src in sources:
        by_ds.setdefault(id(src.ds), []).append(src)
    samples = []
    for group in by_ds.values():
        ds = group[0].ds
        win = Window(0, 0, min(ds.width, 1024), min(ds.height, 1024))
        raw = ds.read([s.bidx for s in group], window=win)
        for src, band in zip(group, raw, strict=True):
            samples.append(band[~_nodata_mask(band, src)])
    values = np.concatenate(samples) if samples else np.empty(0)
    median = float(np.median(values)) if values.size else math.nan
    x10000 = median > 1.5
    log.info(
        "%s: float bands with median %.4g; reading them as %s",
        sources[0].path,
        median,
        "reflectance x10000" if x10000 else "reflectance 0-1",
    )
    return x10000
