"""The one place that opens rasters and vector files, and writes them atomically.

Readers translate library errors into :class:`~solarmap.errors.SolarmapError` subclasses with a
message that names the file. Writers never leave half-written outputs: they write to a temporary
name in the destination folder and rename on success. Also the one home of the equal-area CRS
(:func:`equal_area_crs`) and of polygonizing a mask (:func:`polygonize_mask`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError

from solarmap.errors import InputError, InputFileError, OutputExistsError

if TYPE_CHECKING:
    from affine import Affine
    from pyproj import CRS

    from solarmap.styles import RasterStyle, VectorStyle

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: Creation options of the Cloud-Optimized GeoTIFFs solarmap writes.
COG_OPTIONS: dict[str, str] = {
    "COMPRESS": "DEFLATE",
    # level 1: 30 % faster than the default 6 for 1-2 % larger files (a 3072² probability)
    "LEVEL": "1",
    "BLOCKSIZE": "512",
    "OVERVIEWS": "AUTO",
    "BIGTIFF": "IF_SAFER",
}


#: The GeoPackage table of QGIS layer styles (see :func:`write_layer_style`).
LAYER_STYLES = "layer_styles"

#: Largest staging copy of a COG written uncompressed (see :func:`cog_writer`), bytes.
STAGING_RAW_BYTES = 512 * 1024**2
#: GDAL block cache while writing COGs (rasterio takes an integer as bytes).
GDAL_CACHE_BYTES = 256 * 1024**2


def require_file(path: PathLike, what: str) -> Path:
    """``path`` as a Path, checked to be an existing file (not a folder).

    Raises:
        InputFileError: naming the file and what it should have been.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: {what} not found; check the path")
    if p.is_dir():
        raise InputFileError(f"{p}: is a folder; give a file (the {what})")
    return p


#: Leading bytes of file kinds a user may pass where a raster or a vector file is expected.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"BZh", "a bzip2 file"),
    (b"%PDF", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database (GeoPackage?)"),
    (b"<", "an XML or HTML file"),
    (b"{", "a JSON file"),
)
_TIFF_MAGIC: tuple[bytes, ...] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _file_kind(path: Path) -> str | None:
    """What a file holds, judged by its first bytes: ``"a PNG image"``, ``"a TIFF file"``,
    ``"empty"``, ``"plain text"``..., or None when the bytes say nothing."""
    try:
        with path.open("rb") as f:
            head = f.read(512)
    except OSError:
        return None
    if not head:
        return "empty"
    if head.startswith(_TIFF_MAGIC):
        return "a TIFF file"
    stripped = head.lstrip()
    for magic, kind in _MAGIC:
        if stripped.startswith(magic):
            return kind
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "plain text"


def damaged_raster_error(path: PathLike, err: BaseException) -> InputFileError:
    """The error for a raster GDAL opened but cannot read: the file is damaged or truncated.

    The message gives GDAL's innermost reason (rasterio's own says only "Read failed").
    """
    cause = err
    for _ in range(20):  # rasterio chains GDAL's messages, the innermost last
        if (inner := cause.__cause__ or cause.__context__) is None:
            break
        cause = inner
    first = str(cause).splitlines()[0] if str(cause) else type(err).__name__
    for name in (str(path), Path(path).name):  # GDAL and libtiff start with the file name
        first = first.replace(f"'{name}'", "the file").removeprefix(f"{name}: ")
    return InputFileError(
        f"{path}: the file is damaged or truncated ({first}); re-download or re-export it"
    )


def _check_tiff_complete(ds: rasterio.DatasetReader, path: Path) -> None:
    """Refuse a GeoTIFF whose last data blocks lie past its end (a truncated download).

    GDAL opens such a file (its header is intact) and fails only when the missing blocks are
    read. The first and last block of every band are checked: writers place blocks in order,
    so a cut tail shows there; damage elsewhere is caught when the block is read.
    """
    size = path.stat().st_size
    rows, cols = ds.block_shapes[0] if ds.block_shapes else (ds.height, ds.width)
    nx, ny = -(-ds.width // max(cols, 1)), -(-ds.height // max(rows, 1))
    for bidx in range(1, min(ds.count, 64) + 1):
        for x, y in ((0, 0), (nx - 1, ny - 1)):
            offset = ds.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=bidx)
            length = ds.get_tag_item(f"BLOCK_SIZE_{x}_{y}", "TIFF", bidx=bidx)
            if not offset or not length or int(offset) == 0:  # sparse: no block written
                continue
            end = int(offset) + int(length)
            if end > size:
                raise InputFileError(
                    f"{path}: the file is damaged or truncated (it has {size:,} bytes but its "
                    f"data reach byte {end:,}); re-download or re-export it"
                )


def _why_unreadable(path: Path, err: BaseException, kind: str | None) -> str:
    """Why GDAL could not open ``path``, in a few words: what the file is, or GDAL's reason."""
    if kind is not None:
        return f"it is {kind}"
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "not recognized" in first or "not recognised" in first:
        return "its format is not one GDAL knows"
    return first.replace(f"'{path}'", "the file").replace(f"{path}: ", "")


def open_raster(path: PathLike, *, what: str = "raster") -> rasterio.DatasetReader:
    """Open a raster for reading.

    A GeoTIFF whose data blocks reach past the end of the file (a truncated download) is
    refused here, before any work; read errors later on are the caller's to translate (see
    :func:`damaged_raster_error`).

    Raises:
        InputFileError: if the file is missing, a folder, truncated, or GDAL cannot read it as
            a raster (the message says what the file holds instead, where its bytes tell).
    """
    p = Path(path)
    require_file(p, what)
    try:
        ds = rasterio.open(p)
    except RasterioIOError as err:
        kind = _file_kind(p)
        if kind == "a TIFF file":
            raise damaged_raster_error(p, err) from err
        if kind == "empty":
            raise InputFileError(
                f"{p}: the file is empty (0 bytes); re-download or re-export the {what}"
            ) from err
        raise InputFileError(
            f"{p}: not a raster GDAL can read ({_why_unreadable(p, err, kind)}); give a GeoTIFF "
            "or JP2 file"
        ) from err
    if ds.driver == "GTiff":
        try:
            _check_tiff_complete(ds, p)
        except BaseException:
            ds.close()
            raise
    return ds


def read_vector(path: PathLike, *, what: str = "vector file", **kwargs: Any) -> Any:
    """Read a vector file (GeoJSON, GeoPackage, Shapefile...) into a GeoDataFrame.

    Without ``layer=``, a GeoPackage whose only other table is its QGIS ``layer_styles`` reads
    its one data layer. Warnings of the reader (e.g. that a file holds several layers and the
    first is read) are logged, not printed.

    Raises:
        InputFileError: if the file is missing, a folder, empty, or not a vector file GDAL can
            read.
    """
    import geopandas as gpd
    import pyogrio.errors

    p = Path(path)
    require_file(p, what)
    if _file_kind(p) == "empty":
        raise InputFileError(f"{p}: the file is empty (0 bytes); re-export it or give another")
    try:
        if "layer" not in kwargs and p.suffix.lower() == ".gpkg":
            names = [str(n) for n, _ in pyogrio.list_layers(p)]
            data = [n for n in names if n != LAYER_STYLES]
            if len(data) == 1 and len(names) > 1:
                kwargs["layer"] = data[0]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gdf = gpd.read_file(p, engine="pyogrio", **kwargs)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        kind = _file_kind(p)
        why = f"it is {kind}" if kind and kind not in ("plain text", "a JSON file") else None
        raise InputFileError(
            f"{p}: not a vector file GDAL can read ({why or _why_unreadable(p, err, None)}); "
            "give GeoJSON or GeoPackage"
        ) from err
    for w in caught:
        log.warning("%s: %s", p, str(w.message).splitlines()[0])
    return gdf


def is_lonlat_bounds(bounds: Sequence[float]) -> bool:
    """Whether ``(west, south, east, north)`` lie within longitude/latitude ranges (NaN bounds,
    e.g. of empty geometries, are not counted against them)."""
    west, south, east, north = (float(v) for v in bounds)
    return not (west < -180.0 or east > 180.0 or south < -90.0 or north > 90.0)


def check_vector_crs(gdf: Any, path: PathLike, *, error: type[InputError] = InputError) -> None:
    """Refuse a vector file whose coordinates cannot be placed on a map.

    Raises ``error`` when the file has no CRS, or claims a geographic CRS while its coordinates
    lie outside longitude/latitude ranges: a GeoJSON without a ``crs`` member is WGS 84 by
    definition, so projected coordinates written to one without it arrive mislabelled.
    """
    p = Path(path)
    if gdf.crs is None:
        raise error(f"{p}: the file has no CRS; save it with one (e.g. GeoJSON in EPSG:4326)")
    if gdf.crs.is_geographic and len(gdf) and not is_lonlat_bounds(gdf.total_bounds):
        _, _, x1, y1 = gdf.total_bounds
        raise error(
            f"{p}: coordinates reach ({x1:.6g}, {y1:.6g}), which are not longitude/latitude,"
            f" but the file's CRS is {gdf.crs.to_string()} (a GeoJSON without a 'crs' member"
            " is WGS 84); save it with its real CRS, e.g. as GeoPackage"
        )


def write_vector(
    gdf: Any,
    path: PathLike,
    *,
    layer: str | None = None,
    style: VectorStyle | None = None,
    date_columns: Sequence[str] = (),
) -> Path:
    """Write a GeoDataFrame as a GeoPackage (or by extension), atomically.

    ``style`` (see :mod:`solarmap.styles`) makes the layer's QGIS style from ``gdf``: stored as
    the layer's default in a GeoPackage's ``layer_styles`` table, or beside a GeoJSON as a
    ``.qml`` file of the same stem. Layer and style are written under one temporary name:
    a failure in either leaves nothing.

    Args:
        gdf: the frame.
        path: ``.gpkg`` or ``.geojson``.
        layer: layer name (default: the file's stem).
        style: the layer's QGIS style, made from ``gdf``.
        date_columns: columns written as a Date field (not a string): each value a
            ``datetime.date``, an ISO ``YYYY-MM-DD`` text or ``None`` (a null date).

    Raises:
        InputError: on another extension, or a value of ``date_columns`` that is no date.
    """
    p = Path(path)
    driver = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}.get(p.suffix.lower())
    if driver is None:
        raise InputError(f"{p}: unsupported vector format; use .gpkg or .geojson")
    # GeoPackage 1.2 opens without warnings in older GDAL/QGIS builds too.
    options = {"VERSION": "1.2"} if driver == "GPKG" else {}
    name = layer or p.stem
    qml = None if style is None else style(gdf)
    with contextlib.ExitStack() as stack:
        if qml is not None and driver != "GPKG":
            sidecar = stack.enter_context(atomic_path(p.with_suffix(".qml")))
        tmp = stack.enter_context(atomic_path(p))  # renamed first, then the sidecar
        if date_columns:
            _write_with_dates(
                gdf, tmp, driver=driver, layer=name, dates=date_columns, options=options
            )
        else:
            gdf.to_file(tmp, driver=driver, layer=name, engine="pyogrio", **options)
        if qml is not None:
            if driver == "GPKG":
                write_layer_style(tmp, name, qml)
            else:
                sidecar.write_text(qml)
    return p


def _as_dates(values: Any, column: str) -> np.ndarray:
    """``datetime64[D]`` of a column of dates, ISO date texts and ``None`` (``NaT``)."""
    import datetime as dt

    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[D]")
    for i, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        try:
            day = v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)[:10])
        except ValueError as err:
            raise InputError(f"column {column!r}: {v!r} is not a date (YYYY-MM-DD)") from err
        out[i] = np.datetime64(day.isoformat(), "D")
    return out


def _layer_geometry_type(geoms: Any) -> tuple[str, bool]:
    """The layer geometry type of a GeoSeries as GDAL wants it, and whether single parts
    must become multi-part (a layer holds either, not both)."""
    present = geoms[geoms.notna() & ~geoms.is_empty]
    kinds = set(present.geom_type.unique())
    z = " Z" if len(present) and bool(present.has_z.any()) else ""
    if len(kinds) == 1:
        return kinds.pop() + z, False
    for single in ("Point", "LineString", "Polygon"):
        if kinds == {single, f"Multi{single}"}:
            return f"Multi{single}{z}", True
    return "Unknown", False


def _write_with_dates(
    gdf: Any,
    path: Path,
    *,
    driver: str,
    layer: str,
    dates: Sequence[str],
    options: Mapping[str, str],
) -> None:
    """Write through pyogrio's array writer, which keeps a ``datetime64[D]`` field a Date (a
    data frame cannot hold day precision, so its writer makes such a column a string)."""
    import shapely
    from pyogrio.raw import write

    geom_name = gdf.geometry.name
    fields = [c for c in gdf.columns if c != geom_name]
    missing = [c for c in dates if c not in fields]
    if missing:
        raise InputError(f"{path.name}: no column {missing[0]!r} to write as a date")
    data = [_as_dates(gdf[c].tolist(), c) if c in dates else gdf[c].to_numpy() for c in fields]
    kind, promote = _layer_geometry_type(gdf.geometry)
    crs = None
    if gdf.crs is not None:
        epsg = gdf.crs.to_epsg()
        crs = f"EPSG:{epsg}" if epsg else gdf.crs.to_wkt("WKT1_GDAL")
    write(
        str(path),
        geometry=shapely.to_wkb(np.asarray(gdf.geometry.values)),
        field_data=data,
        fields=fields,
        layer=layer,
        driver=driver,
        geometry_type=kind,
        crs=crs,
        promote_to_multi=promote,
        **options,
    )


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _file_in_the_way(folders: Sequence[Path]) -> Path | None:
    """The first of ``folders`` that exists but is a file (or a link to one), if any."""
    return next((f for f in folders if os.path.lexists(f) and not f.is_dir()), None)


def _unwritable(folder: Path, err: OSError, *, hint: str) -> InputError:
    """The one-line error for a folder that cannot be made or written: names the file that is
    in the way, or the folder and why."""
    if (blocker := _file_in_the_way([folder, *folder.parents])) is not None:
        return InputError(f"{blocker}: is a file, not a folder; {hint}")
    return InputError(f"{folder}: cannot write there ({err.strerror or err}); {hint}")


def make_folder(folder: PathLike, *, hint: str = "choose a folder you can write") -> Path:
    """Create ``folder`` and its parents (if missing).

    Raises:
        InputError: naming the folder (or the file in its way) when it cannot be made.
    """
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _unwritable(p, err, hint=hint) from err
    return p


#: The columns of a GeoPackage's ``layer_styles`` table, as QGIS creates it.
_LAYER_STYLES_DDL = """CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    f_table_catalog TEXT(256),
    f_table_schema TEXT(256),
    f_table_name TEXT(256),
    f_geometry_column TEXT(256),
    styleName TEXT(30),
    styleQML TEXT,
    styleSLD TEXT,
    useAsDefault BOOLEAN,
    description TEXT,
    owner TEXT(30),
    ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)"""


def _gpkg_datetime(value: str | None) -> str:
    """A time as a GeoPackage DATETIME (``YYYY-MM-DDTHH:MM:SS.SSSZ``, UTC); now if unreadable."""
    import datetime as dt

    try:
        t = dt.datetime.fromisoformat(str(value))
    except ValueError:
        t = dt.datetime.now(dt.UTC)
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


def write_layer_style(
    gpkg: PathLike, layer: str, qml: str, *, name: str | None = None, description: str = ""
) -> None:
    """Store ``qml`` as the default QGIS style of ``layer`` in the GeoPackage ``gpkg``.

    Follows the QGIS convention: a ``layer_styles`` attribute table (registered in
    ``gpkg_contents``) with one row per style; QGIS applies the row with ``useAsDefault`` when
    it opens the layer. An earlier default of the layer stops being the default. The row's
    time is the layer's ``last_change``, so a fixed GDAL date gives the same bytes.

    Raises:
        InputError: if ``gpkg`` has no feature layer ``layer``.
    """
    import sqlite3

    with contextlib.closing(sqlite3.connect(gpkg)) as db, db:
        row = db.execute(
            "SELECT c.last_change, g.column_name FROM gpkg_contents c"
            " LEFT JOIN gpkg_geometry_columns g ON g.table_name = c.table_name"
            " WHERE c.table_name = ?",
            (layer,),
        ).fetchone()
        if row is None:
            raise InputError(f"{gpkg}: no layer {layer!r} to style")
        changed, geometry_column = row
        changed = _gpkg_datetime(changed)
        db.execute(_LAYER_STYLES_DDL)
        db.execute(
            "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier,"
            " description, last_change) VALUES ('layer_styles', 'attributes', 'layer_styles',"
            " 'QGIS layer styles', ?)",
            (changed,),
        )
        db.execute("UPDATE layer_styles SET useAsDefault = 0 WHERE f_table_name = ?", (layer,))
        db.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name,"
            " f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, description,"
            " owner, ui, update_time) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', NULL, ?)",
            (layer, geometry_column or "", name or layer, qml, description, changed),
        )


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The file ends with the permissions of any new file (``0666`` less the umask), whatever
    the writer gave its temporary file.

    Raises:
        InputError: when the folder of ``path`` cannot be made or written.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{p.stem}.", suffix=f".tmp{p.suffix}", dir=p.parent
        )
    except OSError as err:
        raise _unwritable(p.parent, err, hint="choose a folder you can write") from err
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # writers such as GDAL want to create the file themselves
    try:
        yield tmp
        if tmp.is_file():
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, p)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".aux.xml")):
            if leftover.exists():
                leftover.unlink()


def jsonable(obj: Any, *, nonfinite_as_none: bool = False) -> Any:
    """``obj`` in JSON's types: mappings (keys as strings), lists, numpy scalars as Python
    numbers, arrays and tensors as nested lists; with ``nonfinite_as_none`` NaN and infinity
    become None (JSON has neither)."""
    if isinstance(obj, float) and nonfinite_as_none and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v, nonfinite_as_none=nonfinite_as_none) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v, nonfinite_as_none=nonfinite_as_none) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item(), nonfinite_as_none=nonfinite_as_none)
    if isinstance(obj, np.ndarray) or hasattr(obj, "detach"):  # a numpy array or a tensor
        return jsonable(obj.tolist(), nonfinite_as_none=nonfinite_as_none)
    return obj


def sha256_file(path: PathLike) -> str:
    """The SHA-256 of a file's bytes, hex (what ``sha256sum`` prints), read 1 MiB at a time."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: PathLike, obj: Any) -> Path:
    """Write JSON atomically, pretty-printed, with a trailing newline."""
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return p


def write_text(path: PathLike, text: str) -> Path:
    """Write text atomically."""
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(text)
    return p


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs (ours or, as far as signals can tell, anyone's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_partials(path: PathLike) -> list[Path]:
    """Remove the half-written siblings ``.NAME.<pid>-*.partial`` of ``path`` whose process is
    gone (killed before it could clean up); return what was removed.

    A partial folder whose owner still runs, or whose name carries no process id, is kept.
    """
    p = Path(path)
    removed = []
    for stale in sorted(p.parent.glob(f".{glob_escape(p.name)}.*.partial")):
        owner = stale.name[len(p.name) + 2 :].partition("-")[0]
        if not owner.isdigit() or process_alive(int(owner)):
            continue
        shutil.rmtree(stale, ignore_errors=True)
        log.warning("removed %s, left half-written by process %s, which is gone", stale, owner)
        removed.append(stale)
    return removed


def live_writer(path: PathLike) -> int | None:
    """The process id of another running process that is writing ``path`` (a half-written
    sibling ``.NAME.<pid>-*.partial`` whose owner is alive), or None."""
    p = Path(path)
    for partial in sorted(p.parent.glob(f".{glob_escape(p.name)}.*.partial")):
        owner = partial.name[len(p.name) + 2 :].partition("-")[0]
        if owner.isdigit() and int(owner) != os.getpid() and process_alive(int(owner)):
            return int(owner)
    return None


def glob_escape(name: str) -> str:
    """``name`` with glob wildcards escaped."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


#: What the errors of :func:`output_dir` advise.
_OUT_HINT = "choose an --out in a folder you can write"


def _holds(folder: Path, inputs: Sequence[PathLike]) -> Path | None:
    """The first of ``inputs`` that is ``folder`` or lies inside it."""
    root = folder.resolve()
    for given in inputs:
        inp = Path(given).resolve()
        if inp == root or root in inp.parents:
            return Path(given)
    return None


def check_output_dir(
    path: PathLike, *, overwrite: bool = False, inputs: Sequence[PathLike] = ()
) -> Path:
    """The checks :func:`output_dir` makes before it writes anything, for a command to make
    first, before its work: ``path`` is no file, exists only with ``overwrite`` (and then holds
    none of ``inputs``), and no file stands where one of its parent folders should be.

    Raises:
        OutputExistsError, InputError: as :func:`output_dir`.
    """
    p = Path(path)
    if os.path.lexists(p) and not p.is_dir():
        raise InputError(f"{p}: is a file, not an output folder; choose another --out")
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p}: output folder exists; pass --overwrite or choose another")
    if p.exists() and (held := _holds(p, inputs)) is not None:
        raise InputError(
            f"{p}: holds the input {held}, which --overwrite would delete; choose another --out"
        )
    if (blocker := _file_in_the_way(list(p.parents))) is not None:
        raise InputError(f"{blocker}: is a file, not a folder; {_OUT_HINT}")
    return p


@contextlib.contextmanager
def output_dir(
    path: PathLike, *, overwrite: bool = False, inputs: Sequence[PathLike] = ()
) -> Iterator[Path]:
    """Build an output folder atomically.

    Yields a temporary folder ``.NAME.<pid>-<random>.partial`` beside ``path``. If the block
    succeeds the temporary folder replaces ``path``; if it raises (an interrupt too), the
    temporary folder is removed and ``path`` is untouched. Partial folders that an earlier,
    killed process left beside ``path`` are removed first (:func:`remove_stale_partials`).
    The folder gets the permissions of any new folder (``0777`` less the umask).

    Args:
        path: the folder to build.
        overwrite: replace ``path`` if it exists.
        inputs: files and folders the run reads; replacing a ``path`` that holds one of them
            is refused (it would delete the run's own input).

    Raises:
        OutputExistsError: if ``path`` exists and ``overwrite`` is false.
        InputError: if ``path`` is a file or holds one of ``inputs``, or its folder cannot be
            made or written (the message names the folder, or the file in the way).
    """
    p = check_output_dir(path, overwrite=overwrite, inputs=inputs)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(p)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{p.name}.{os.getpid()}-", suffix=".partial", dir=p.parent)
        )
    except OSError as err:
        raise _unwritable(p.parent, err, hint=_OUT_HINT) from err
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the output should look like any mkdir
    try:
        yield tmp
        try:
            if p.exists():
                old = p.with_name(f".{p.name}.old-{os.getpid()}")
                os.replace(p, old)
                try:
                    os.replace(tmp, p)
                except OSError:
                    os.replace(old, p)  # put the old output back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, p)
        except OSError as err:
            raise _unwritable(p.parent, err, hint=_OUT_HINT) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def cog_writer(
    path: PathLike,
    *,
    width: int,
    height: int,
    count: int,
    dtype: str,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    band_tags: Sequence[Mapping[str, Any]] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
    units: Sequence[str] | None = None,
    overview_resampling: str = "average",
    predictor: int | None = None,
    style: RasterStyle | None = None,
) -> Iterator[rasterio.io.DatasetWriter]:
    """Write a Cloud-Optimized GeoTIFF window by window.

    Yields a tiled GeoTIFF open for writing (write it in windows, e.g. with
    ``dst.write(block, window=w)``). On exit the file is converted to a COG with internal
    overviews and renamed onto ``path``; on error nothing is left behind.

    ``band_tags`` hold one mapping of metadata per band, ``units`` each band's unit.
    ``style`` (see :mod:`solarmap.styles`) makes a QGIS style from the finished COG, written
    beside it as ``<stem>.qml``, which QGIS applies when it opens the raster.
    """
    p = Path(path)
    make_folder(p.parent)
    if predictor is None:
        predictor = 3 if np.dtype(dtype).kind == "f" else 2
    try:
        staging_dir = tempfile.TemporaryDirectory(prefix=f".{p.stem}.", dir=p.parent)
    except OSError as err:
        raise _unwritable(p.parent, err, hint="choose a folder you can write") from err
    with staging_dir as tmpdir:
        staging = Path(tmpdir) / "staging.tif"
        profile = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
            "dtype": dtype,
            "crs": crs,
            "transform": transform,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "BIGTIFF": "IF_SAFER",
        }
        # the staging copy is read once, by the COG conversion: uncompressed while it is
        # small (measured: 0.04 s against 0.8 s with ZSTD for a 3072² float32 band), so only
        # the COG is compressed; compressed above STAGING_RAW_BYTES, to bound the disk it takes
        if width * height * count * np.dtype(dtype).itemsize > STAGING_RAW_BYTES:
            profile["compress"] = "zstd" if "ZSTD" in _compressions() else "deflate"
        if width < 512 or height < 512:
            profile.pop("blockxsize")
            profile.pop("blockysize")
            profile["tiled"] = False
        # A small GDAL block cache keeps memory flat however large the raster is.
        with (
            rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
            rasterio.open(staging, "w", **profile) as dst,
        ):
            yield dst
            if descriptions is not None:
                for i, d in enumerate(descriptions, start=1):
                    dst.set_band_description(i, d)
            if tags:
                dst.update_tags(**{k: str(v) for k, v in tags.items()})
            if band_tags:
                for i, bt in enumerate(band_tags, start=1):
                    dst.update_tags(i, **{k: str(v) for k, v in bt.items()})
            if scales is not None:
                dst.scales = tuple(scales)
            if offsets is not None:
                dst.offsets = tuple(offsets)
            if units is not None:
                dst.units = tuple(units)
        with contextlib.ExitStack() as stack:
            stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES))
            if style is not None:
                sidecar = stack.enter_context(atomic_path(p.with_suffix(".qml")))
            tmp = stack.enter_context(atomic_path(p))  # renamed first, then the sidecar
            rasterio.shutil.copy(
                staging,
                tmp,
                driver="COG",
                RESAMPLING=overview_resampling.upper(),
                PREDICTOR=str(predictor),
                **COG_OPTIONS,
            )
            if style is not None:
                with rasterio.open(tmp) as written:
                    sidecar.write_text(style(written))


def _compressions() -> set[str]:
    # Codecs vary between GDAL builds; fall back to DEFLATE when ZSTD is missing.
    from rasterio.enums import Compression

    return {c.name.upper() for c in Compression}


def write_cog(
    path: PathLike,
    array: np.ndarray,
    *,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    descriptions: Sequence[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    band_tags: Sequence[Mapping[str, Any]] | None = None,
    units: Sequence[str] | None = None,
    overview_resampling: str = "average",
    style: RasterStyle | None = None,
) -> Path:
    """Write an in-memory array ``[bands, H, W]`` (or ``[H, W]``) as a COG, atomically, with
    an optional QGIS style beside it (see :func:`cog_writer`)."""
    arr = array[None] if array.ndim == 2 else array
    with cog_writer(
        path,
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=str(arr.dtype),
        crs=crs,
        transform=transform,
        nodata=nodata,
        descriptions=descriptions,
        tags=tags,
        band_tags=band_tags,
        units=units,
        overview_resampling=overview_resampling,
        style=style,
    ) as dst:
        dst.write(arr)
    return Path(path)


def write_gtiff(
    path: PathLike,
    array: np.ndarray,
    *,
    crs: Any,
    transform: Any,
    nodata: float | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``array [bands, H, W]`` as a plain tiled GeoTIFF, ZSTD level 1 (DEFLATE where
    GDAL lacks ZSTD), atomically: a fast working file (a cache), not a deliverable, so no
    overviews and no COG layout (:func:`write_cog` makes those)."""
    p = Path(path)
    zstd = "ZSTD" in _compressions()
    profile = {
        "driver": "GTiff", "width": array.shape[2], "height": array.shape[1],
        "count": array.shape[0], "dtype": str(array.dtype), "crs": crs, "transform": transform,
        "nodata": nodata, "tiled": True, "blockxsize": 256, "blockysize": 256,
        "compress": "zstd" if zstd else "deflate", "predictor": 2 if array.dtype.kind in "iu"
        else 3, **({"zstd_level": 1} if zstd else {"zlevel": 1}),
    }  # fmt: skip
    with atomic_path(p) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array)
        if tags:
            dst.update_tags(**{k: str(v) for k, v in tags.items()})
    return p


def resampling(name: str) -> Resampling:
    """Resampling enum from its name (``"nearest"``, ``"bilinear"``, ``"average"``...)."""
    try:
        return Resampling[name]
    except KeyError as err:
        raise InputError(f"unknown resampling {name!r}") from err


def equal_area_crs(bounds: Sequence[float] | None, crs: Any = "EPSG:4326") -> CRS:
    """A Lambert azimuthal equal-area CRS centred on a box, to measure areas in metres.

    Args:
        bounds: ``(west, south, east, north)`` in ``crs``; the centre of the box, taken in
            ``crs`` and converted to longitude/latitude, becomes the projection centre. ``None``
            centres the projection on (0, 0).
        crs: CRS of ``bounds`` (anything pyproj accepts).

    Returns:
        The CRS, ``+proj=laea`` on WGS 84 with the centre rounded to 1e-6 degrees.
    """
    from pyproj import CRS, Transformer

    lon = lat = 0.0
    if bounds is not None:
        west, south, east, north = (float(v) for v in bounds)
        x, y = (west + east) / 2, (south + north) / 2
        if CRS.from_user_input(crs) == CRS.from_epsg(4326):
            lon, lat = x, y
        else:
            lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return CRS.from_proj4(
        f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +x_0=0 +y_0=0 +datum=WGS84 +units=m"
    )


def polygonize_mask(
    mask: np.ndarray, transform: Affine, *, connectivity: Literal[4, 8] = 4
) -> list[Any]:
    """Polygons of the connected True regions of a mask.

    Args:
        mask: ``bool[H, W]`` (anything else is compared with 0).
        transform: pixel (col, row) → output coordinates, e.g. a raster's transform, or
            ``Affine.translation(0, row0)`` for pixel coordinates of a strip starting at ``row0``.
        connectivity: 4 (edge neighbours, the default) or 8 (corners too).

    Returns:
        Shapely polygons (with holes where the mask has them), in ``rasterio.features.shapes``
        order.
    """
    from rasterio.features import shapes
    from shapely.geometry import shape

    solar = np.asarray(mask).astype(bool, copy=False)
    return [
        shape(geom)
        for geom, _ in shapes(
            solar.astype(np.uint8), mask=solar, transform=transform, connectivity=connectivity
        )
    ]


class _VrtSource(NamedTuple):
    """What a VRT needs to know of one of its sources."""

    path: Path
    crs: Any
    transform: Any
    width: int
    height: int
    dtype: str
    nodata: float | None
    block: tuple[int, int]


def write_vrt(
    path: PathLike,
    sources: Sequence[PathLike],
    *,
    description: str = "",
    style: RasterStyle | None = None,
) -> Path:
    """A mosaic of one-band rasters on one grid (same CRS, pixel size and alignment) as a GDAL
    VRT, atomically, with the sources named relative to it and an optional QGIS style beside.

    rasterio has no VRT builder and the GDAL Python bindings are not a dependency, so the
    (small, documented) VRT XML is written here; GDAL opens it like any raster.

    Raises:
        InputError: if there are no sources or they do not share a grid.
    """
    import xml.etree.ElementTree as ET

    p = Path(path)
    if not sources:
        raise InputError(f"{p}: no rasters to mosaic")
    srcs = []
    for s in sources:
        with open_raster(s) as ds:
            srcs.append(_VrtSource(Path(s), ds.crs, ds.transform, ds.width, ds.height,
                                   ds.dtypes[0], ds.nodata, ds.block_shapes[0]))  # fmt: skip
    first = srcs[0]
    crs, res_x, res_y = first.crs, first.transform.a, first.transform.e
    for src in srcs:
        t = src.transform
        if src.crs != crs or (t.a, t.e, t.b, t.d) != (res_x, res_y, 0.0, 0.0):
            raise InputError(
                f"{src.path}: not on the grid of {first.path}; a mosaic needs one grid"
            )
    left = min(src.transform.c for src in srcs)
    top = max(src.transform.f for src in srcs)
    right = max(src.transform.c + src.width * res_x for src in srcs)
    bottom = min(src.transform.f + src.height * res_y for src in srcs)
    width, height = round((right - left) / res_x), round((bottom - top) / res_y)
    gdal_type = {"float32": "Float32", "uint8": "Byte", "uint16": "UInt16", "float64": "Float64"}
    dtype = gdal_type[first.dtype]
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = crs.to_wkt()
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (left, res_x, 0.0, top, 0.0, res_y)
    )
    band = ET.SubElement(root, "VRTRasterBand", dataType=dtype, band="1")
    if first.nodata is not None:
        nodata = "nan" if np.isnan(first.nodata) else repr(first.nodata)
        ET.SubElement(band, "NoDataValue").text = nodata
    if description:
        ET.SubElement(band, "Description").text = description
    ET.SubElement(band, "ColorInterp").text = "Gray"
    for src in srcs:
        w, h, (bh, bw) = str(src.width), str(src.height), src.block
        el = ET.SubElement(band, "SimpleSource")
        rel = os.path.relpath(src.path.resolve(), p.resolve().parent)
        ET.SubElement(el, "SourceFilename", relativeToVRT="1").text = rel
        ET.SubElement(el, "SourceBand").text = "1"
        ET.SubElement(el, "SourceProperties", RasterXSize=w, RasterYSize=h, DataType=dtype,
                      BlockXSize=str(bw), BlockYSize=str(bh))  # fmt: skip
        ET.SubElement(el, "SrcRect", xOff="0", yOff="0", xSize=w, ySize=h)
        col, row = round((src.transform.c - left) / res_x), round((src.transform.f - top) / res_y)
        ET.SubElement(el, "DstRect", xOff=str(col), yOff=str(row), xSize=w, ySize=h)
    ET.indent(root)
    with contextlib.ExitStack() as stack:
        if style is not None:
            sidecar = stack.enter_context(atomic_path(p.with_suffix(".qml")))
        tmp = stack.enter_context(atomic_path(p))
        tmp.write_text(ET.tostring(root, encoding="unicode") + "\n")
        if style is not None:
            with rasterio.open(tmp) as ds:  # beside the final name: the sources resolve
                sidecar.write_text(style(ds))
    return p
