"""Survey a region: region → UTM tiles → one task per tile and period on Dask → merged layers.

A survey maps every solar farm in a region for one or more periods. The region (a lon/lat
box, a polygon file or a place name) is split by UTM zone, and each zone part into a grid of
square tiles anchored at whole multiples of the tile size in that zone's UTM CRS. Each tile
and period is one independent task (:func:`run_tile`): search results → clear-sky median
composite (:mod:`data_prep.stac`) on the tile's grid plus a halo → the sliding-window
prediction of :func:`solarmap.predict.predict_scene` → the tile's probability COG (the halo
cut off) and its polygons, written atomically into the tile's own folder.

Tasks run on Dask distributed, a ``LocalCluster`` of worker processes by default or an
existing scheduler; each worker runs its model on the threads it is given, so workers do not
oversubscribe the cores. A manifest records every tile's state, and a rerun of the same
command recomputes no finished tile: a tile is finished when its folder exists, and folders
appear only whole. Failed tiles are retried by a rerun.

When the tiles are done, the survey writes (each file atomically): per period and UTM zone a
probability mosaic (a VRT over the tile COGs, with a QGIS style); one GeoPackage of solar
farms, merged across tile edges (a farm crossing a seam is one polygon) with its QGIS style;
a summary of count and area per period, zone and admin unit; and a STAC catalog (pystac)
describing every output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np

import solarmap
from solarmap.errors import InputError, SolarmapError, first_line
from solarmap.geo import (
    is_lonlat_bounds,
    jsonable,
    make_folder,
    output_dir,
    read_vector,
    write_json,
    write_vector,
)

log = logging.getLogger(__name__)

#: Pixel size of the survey grid, metres (the model's).
RES_M: Final = 10.0
#: Default tile side: 1024 px of 10 m (10.24 km).
TILE_PX: Final = 1024
#: Pixels of imagery around each tile the model sees but the tile's outputs leave out.
HALO_PX: Final = 32
MANIFEST_FILE: Final = "manifest.json"
LOCK_FILE: Final = ".survey.pid"
SURVEY_FILE: Final = "survey.json"
TILE_RECORD: Final = "tile.json"
FARMS_FILE: Final = "solar_farms.gpkg"
FARMS_LAYER: Final = "solar_farms"
SUMMARY_FILE: Final = "summary.json"
SITES_FILE: Final = "sites.gpkg"
CHANGE_FILE: Final = "change.csv"
CHANGE_PLOT: Final = "change.png"
LABELS_FILE: Final = "labels.gpkg"
CATALOG_DIR: Final = "stac"
#: The most tiles one survey takes (a state of 200,000 km² is about 2,000 tiles of 10 km).
MAX_TILES: Final = 20_000

_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# --- periods ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Period:
    """A composite period: ``name`` (``2022``, ``2022-Q1``...), first and last day."""

    name: str
    start: dt.date
    end: dt.date


def parse_period(text: str) -> Period:
    """A period from ``2022``, ``2022-Q3``, ``2022-07`` or ``2022-01-15/2022-04-30``.

    Raises:
        InputError: for anything else, or a range that ends before it starts.
    """
    t = text.strip()
    try:
        if m := _YEAR.match(t):
            y = int(m.group(1))
            return Period(t, dt.date(y, 1, 1), dt.date(y, 12, 31))
        if m := _QUARTER.match(t):
            y, q = int(m.group(1)), int(m.group(2))
            end = dt.date(y + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - dt.timedelta(days=1)
            return Period(f"{y}-Q{q}", dt.date(y, 3 * q - 2, 1), end)
        if m := _MONTH.match(t):
            y, mo = int(m.group(1)), int(m.group(2))
            nxt = dt.date(y + (mo == 12), mo % 12 + 1, 1)
            return Period(t, dt.date(y, mo, 1), nxt - dt.timedelta(days=1))
        if "/" in t:
            a, b = (dt.date.fromisoformat(x.strip()) for x in t.split("/", 1))
            if b < a:
                raise InputError(f"--dates {text}: the range ends before it starts")
            return Period(f"{a.isoformat()}_{b.isoformat()}", a, b)
    except ValueError as err:
        raise InputError(f"--dates {text}: not a date ({err})") from err
    raise InputError(
        f"--dates {text!r}: give a year (2022), a quarter (2022-Q3), a month (2022-07) or a "
        "range (2022-01-15/2022-04-30)"
    )


def parse_periods(texts: Sequence[str]) -> list[Period]:
    """The periods, in time order; the same period twice is refused."""
    if not texts:
        raise InputError("give --dates at least once (e.g. --dates 2022)")
    periods = sorted((parse_period(t) for t in texts), key=lambda p: (p.start, p.end))
    names = [p.name for p in periods]
    if len(set(names)) != len(names):
        raise InputError(f"--dates: a period is given twice ({', '.join(names)})")
    if periods[0].start < dt.date(2015, 6, 23):
        raise InputError(
            f"--dates {periods[0].name}: Sentinel-2 imagery starts on 2015-06-23; give later dates"
        )
    return periods


# --- the region ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Region:
    """The surveyed area: ``name`` and a valid lon/lat (EPSG:4326) polygon geometry."""

    name: str
    geometry: Any


def _bbox_region(text: str) -> Region | None:
    parts = text.split(",")
    if len(parts) != 4:
        return None
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        return None
    import shapely.geometry

    if not is_lonlat_bounds((w, s, e, n)) or not (w < e and s < n):
        raise InputError(
            f"--region {text}: give west,south,east,north in degrees (west < east, south < "
            "north, longitudes -180 to 180, latitudes -90 to 90)"
        )
    return Region(f"bbox {text}", shapely.geometry.box(w, s, e, n))


def _file_region(path: Path) -> Region:
    gdf = read_vector(path, what="region file")
    if gdf.crs is None:
        raise InputError(f"--region {path}: the file has no CRS; give it one (e.g. EPSG:4326)")
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty]
    polys = gdf[gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if polys.empty:
        raise InputError(f"--region {path}: no polygon in it; give the area as a polygon")
    geom = polys.to_crs("EPSG:4326").geometry.make_valid().union_all()
    if not is_lonlat_bounds(geom.bounds):
        raise InputError(
            f"--region {path}: its coordinates are not degrees in {gdf.crs.to_string()} "
            f"(bounds {', '.join(f'{v:.6g}' for v in geom.bounds)}); set the file's real CRS"
        )
    return Region(path.stem, geom)


def _place_region(name: str) -> Region:
    import osmnx as ox

    try:
        gdf = ox.geocode_to_gdf(name)
    except (ox._errors.InsufficientResponseError, TypeError, ValueError) as err:
        raise InputError(f"--region {name!r}: no place of that name found") from err
    except Exception as err:
        raise InputError(
            f"--region {name!r}: the place name could not be looked up ({first_line(err)}); "
            "give a bbox or a polygon file when offline"
        ) from err
    return Region(name, gdf.to_crs("EPSG:4326").geometry.make_valid().union_all())


def parse_region(text: str) -> Region:
    """The region from a bbox ``west,south,east,north``, a polygon file or a place name.

    Raises:
        InputError: an empty or invalid box or polygon, an unreadable file or an unknown place.
    """
    t = text.strip()
    if not t:
        raise InputError("--region is empty: give west,south,east,north, a file or a place")
    region = _bbox_region(t)
    if region is None:
        path = Path(t).expanduser()
        if path.exists() or path.suffix.lower() in (".geojson", ".json", ".gpkg", ".shp"):
            region = _file_region(path)
        else:
            region = _place_region(t)
    geom = region.geometry
    if geom is None or geom.is_empty or geom.area <= 0:
        raise InputError(f"--region {text}: the area is empty")
    if not geom.is_valid:
        raise InputError(f"--region {text}: the polygon is invalid and cannot be repaired")
    return region


# --- tiles --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tile:
    """One square tile of a zone's grid: ``tile_px`` pixels of :data:`RES_M` from the corner
    ``(ix × size, (iy + 1) × size)`` of UTM zone ``epsg``."""

    epsg: int
    ix: int
    iy: int
    tile_px: int

    @property
    def id(self) -> str:
        return f"{self.epsg}_{self.ix}_{self.iy}"

    @property
    def size_m(self) -> float:
        return self.tile_px * RES_M

    def grid(self, halo: int = 0) -> Any:
        from data_prep.stac import TileGrid

        return TileGrid(
            crs=f"EPSG:{self.epsg}",
            left=self.ix * self.size_m - halo * RES_M,
            top=(self.iy + 1) * self.size_m + halo * RES_M,
            shape=(self.tile_px + 2 * halo, self.tile_px + 2 * halo),
            res=RES_M,
        )


def utm_parts(geometry: Any) -> list[tuple[int, Any]]:
    """The region cut by UTM zone (6° of longitude, north or south): ``(epsg, lon/lat part)``."""
    import shapely.geometry

    w, _, e, _ = geometry.bounds
    parts = []
    for zone in range(int((w + 180) // 6) + 1, int(min((e + 180) // 6 + 1, 60)) + 1):
        lon0 = -180 + 6 * (zone - 1)
        for south, (lat0, lat1) in ((False, (0.0, 84.0)), (True, (-80.0, 0.0))):
            piece = geometry.intersection(shapely.geometry.box(lon0, lat0, lon0 + 6, lat1))
            if not piece.is_empty and piece.area > 0:
                parts.append(((32700 if south else 32600) + zone, piece))
    return parts


def region_tiles(region: Region, tile_px: int = TILE_PX) -> list[Tile]:
    """The tiles whose square meets the region, zone by zone.

    Raises:
        InputError: if the region needs more than :data:`MAX_TILES` tiles.
    """
    import shapely.geometry
    from pyproj import Transformer
    from shapely.ops import transform

    tiles: list[Tile] = []
    size = tile_px * RES_M
    for epsg, part in utm_parts(region.geometry):
        fwd = Transformer.from_crs(4326, epsg, always_xy=True).transform
        utm = transform(fwd, part.segmentize(0.05))
        x0, y0, x1, y1 = utm.bounds
        ixs = range(math.floor(x0 / size), math.ceil(x1 / size))
        iys = range(math.floor(y0 / size), math.ceil(y1 / size))
        if len(tiles) + len(ixs) * len(iys) > 4 * MAX_TILES:
            raise InputError(f"--region: more than {MAX_TILES} tiles; survey it in parts")
        for iy in reversed(iys):  # north to south, west to east
            for ix in ixs:
                sq = shapely.geometry.box(ix * size, iy * size, (ix + 1) * size, (iy + 1) * size)
                if sq.intersects(utm):
                    tiles.append(Tile(epsg, ix, iy, tile_px))
    if len(tiles) > MAX_TILES:
        raise InputError(f"--region: {len(tiles)} tiles, more than {MAX_TILES}; survey it in parts")
    if not tiles:
        raise InputError("--region: the area holds no tile")
    return tiles


# --- the configuration --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SurveyConfig:
    """Everything a survey run is decided by (written to ``survey.json``).

    Attributes:
        region: the ``--region`` text (bbox, file or place name).
        dates: the periods, as given.
        catalog: STAC API URL or local static catalog (see :class:`data_prep.stac.StacSource`).
        checkpoint: the checkpoint folder (default: the shipped general model).
        collection, max_cloud, timeout_s, retries, sign, search_max_age_h: how imagery is
            found and read.
        tile_px: tile side in 10 m pixels.
        halo_px: pixels of context around each tile.
        workers: Dask worker processes of the local cluster.
        threads: model threads per worker.
        scheduler: an existing Dask scheduler (``tcp://host:port``); ``None``: a local cluster.
        min_area_m2: polygons smaller than this are dropped.
        engine: what runs the model (see :mod:`solarmap.inference`).
        units: a vector file of admin units to summarise by; ``units_field`` names them.
        labels: ``"overpass"`` (OpenStreetMap through osmnx) or a label file (OSM XML,
            GeoJSON, GeoPackage): solar plants to compare the farms with (``in_osm``, and
            per period the labelled plants found and the farms no label covers).
    """

    region: str
    dates: tuple[str, ...]
    catalog: str
    checkpoint: str | None = None
    collection: str = "sentinel-2-l2a"
    max_cloud: float = 80.0
    timeout_s: float = 20.0
    retries: int = 2
    sign: str = ""
    search_max_age_h: float = 24.0
    tile_px: int = TILE_PX
    halo_px: int = HALO_PX
    workers: int = 1
    threads: int = 1
    scheduler: str | None = None
    min_area_m2: float = 0.0
    engine: str = "auto"
    units: str | None = None
    units_field: str | None = None
    labels: str | None = None

    def __post_init__(self) -> None:
        if not 64 <= self.tile_px <= 8192 or self.tile_px % 32:
            raise InputError(f"--tile-px {self.tile_px}: give 64 to 8192, a multiple of 32")
        if not 0 <= self.halo_px <= 256:
            raise InputError(f"--halo {self.halo_px}: give 0 to 256 pixels")
        if not 1 <= self.workers <= 256:
            raise InputError(f"--workers {self.workers}: give 1 to 256")
        if not 1 <= self.threads <= 256:
            raise InputError(f"--threads {self.threads}: give 1 to 256")
        if self.units_field and not self.units:
            raise InputError("--units-field needs --units (the file of admin units)")

    def source(self) -> Any:
        from data_prep.stac import StacSource

        return StacSource(
            catalog=self.catalog,
            collection=self.collection,
            max_cloud=self.max_cloud,
            timeout_s=self.timeout_s,
            retries=self.retries,
            sign=self.sign,
            search_max_age_h=self.search_max_age_h,
        )

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a rerun into the same folder to resume (workers may differ)."""
        d = dataclasses.asdict(self)
        for k in ("workers", "threads", "scheduler", "timeout_s", "retries", "search_max_age_h"):
            d.pop(k)
        return d


# --- one tile -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TileTask:
    """What a worker needs to run one tile of one period (picklable)."""

    tile: Tile
    period: Period
    items: tuple[str, ...]  # item JSON texts
    source: Any
    checkpoint: str
    folder: str
    cache: str
    halo_px: int
    engine: str
    threads: int


@functools.lru_cache(maxsize=4)
def _checkpoint(path: str) -> Any:
    from solarmap.model import load_checkpoint

    return load_checkpoint(path, defer_model=True)


def run_tile(task: TileTask) -> dict[str, Any]:
    """Composite, predict and polygonize one tile; returns its record (also ``tile.json``).

    States: ``done``; ``no-imagery`` (no usable item or no clear pixel; not an error); or
    ``failed`` with the reason (unreadable assets, a damaged file...), in the record only, so
    that a rerun tries the tile again. Errors come back as records, not exceptions: a
    solarmap error need not unpickle where the client runs.
    """
    logging.getLogger("odc.loader").setLevel(logging.CRITICAL)  # its error becomes the reason
    try:
        return _run_tile(task)
    except (SolarmapError, OSError, ValueError, RuntimeError) as err:
        return {**_record(task), "state": "failed", "reason": first_line(err)}


def _run_tile(task: TileTask) -> dict[str, Any]:
    from data_prep.stac import CompositeScene, ItemError, composite_tile
    from solarmap import inference
    from solarmap.predict import REPORT_FILE, PredictConfig, predict_scene

    started, cpu0 = time.perf_counter(), time.process_time()
    _reset_peak_rss()
    inference.set_threads(task.threads)
    tile, period, halo = task.tile, task.period, task.halo_px
    items = [json.loads(t) for t in task.items]
    grid = tile.grid(halo)
    record = _record(task)
    try:
        from distributed import get_worker

        record["worker"] = get_worker().address
    except ValueError:  # not run by a Dask worker
        pass
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    try:
        comp = composite_tile(
            items, grid, source=task.source, cache=Path(task.cache), threads=task.threads
        )
    except ItemError as err:
        return _no_imagery(task, record, str(err))
    seconds["composite"] = time.perf_counter() - t
    core = (slice(halo, halo + tile.tile_px),) * 2
    clear_share = float((comp.clear[core] > 0).mean())
    record.update(items=comp.items, skipped=comp.skipped, clear_share=clear_share)
    if clear_share == 0:
        return _no_imagery(task, record, "no clear observation in the period")
    scene_id = f"survey_{tile.id}_{period.name}"
    scene = CompositeScene(comp, grid, scene_id=scene_id, date=None)
    ckpt = _checkpoint(task.checkpoint)
    # the model sees the halo; the outputs cover the tile alone, so tiles meet without overlap
    keep = (halo, halo, tile.tile_px, tile.tile_px)
    config = PredictConfig(engine=task.engine, keep=keep)  # type: ignore[arg-type]
    with output_dir(task.folder) as tmp:
        t = time.perf_counter()
        result = predict_scene(scene, ckpt, tmp / "_predict", config=config)
        for f in (tmp / "_predict").iterdir():  # its outputs are the tile's
            f.rename(tmp / f.name)
        (tmp / "_predict").rmdir()
        seconds["predict"] = time.perf_counter() - t
        predict_record = json.loads((tmp / REPORT_FILE).read_text())
        threshold = float(predict_record["threshold"])
        seconds["total"] = time.perf_counter() - started
        record.update(
            state="done",
            threshold=threshold,
            polygons=result.n_polygons,
            engine=predict_record.get("engine"),
            ood=predict_record.get("ood"),
            predict_seconds=predict_record.get("seconds"),
            seconds=seconds,
            cpu_seconds=time.process_time() - cpu0,
            task_peak_rss_mb=_peak_rss_mb(),
            km2=(tile.size_m / 1000) ** 2,
        )
        write_json(tmp / TILE_RECORD, record)
    return record


def _reset_peak_rss() -> None:
    """Start this process's peak-memory count afresh (Linux), so a task's peak is its own."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mb() -> float:
    """This process's peak resident memory since :func:`_reset_peak_rss`, MB (Linux
    ``VmHWM``; elsewhere the process's peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _no_imagery(task: TileTask, record: dict[str, Any], why: str) -> dict[str, Any]:
    record.update(state="no-imagery", reason=why)
    with output_dir(task.folder) as tmp:
        write_json(tmp / TILE_RECORD, record)
    return record


# --- merging ------------------------------------------------------------------------------------


def merge_polygons(parts: Sequence[Any], *, min_area_m2: float = 0.0) -> Any:
    """The tiles' polygons of one period and zone, merged where they share an edge (a farm cut
    by a tile seam becomes one polygon again), with area, mean and max probability and the
    tiles it spans. Input and output in the zone's CRS."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    from solarmap.geo import equal_area_crs

    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    gdf = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=parts[0].crs)
    merged = gpd.GeoDataFrame(geometry=shapely.get_parts(gdf.union_all()), crs=gdf.crs)
    pts = gpd.GeoDataFrame(
        gdf.drop(columns="geometry"), geometry=gdf.representative_point(), crs=gdf.crs
    )
    joined = gpd.sjoin(pts, merged, predicate="within", how="left")
    ea = equal_area_crs(merged.to_crs(4326).total_bounds)
    piece_area = gdf.to_crs(ea).area.to_numpy()
    joined["_w"] = piece_area
    joined["_wm"] = piece_area * joined["mean_prob"].to_numpy()
    g = joined.groupby("index_right")
    merged["area_m2"] = merged.to_crs(ea).area
    merged["mean_prob"] = (g["_wm"].sum() / g["_w"].sum()).reindex(merged.index)
    merged["max_prob"] = g["max_prob"].max().reindex(merged.index)
    merged["tiles"] = g["tile"].agg(lambda s: ",".join(sorted(set(s)))).reindex(merged.index)
    cent = merged.geometry.centroid.to_crs(4326)
    merged["centroid_lon"], merged["centroid_lat"] = cent.x, cent.y
    merged = merged[merged["area_m2"] >= min_area_m2]
    return merged.reset_index(drop=True)


# --- the survey ---------------------------------------------------------------------------------


@dataclasses.dataclass
class SurveyResult:
    """What a survey wrote and how its tiles ended."""

    out: Path
    states: dict[str, int]
    failed: dict[str, str]
    farms: int
    seconds: float


def _assign_items(
    tiles: Sequence[Tile], items: Sequence[dict[str, Any]], halo: int
) -> dict[str, list[dict[str, Any]]]:
    """The items whose footprint meets each tile (with its halo), by an R-tree of footprints."""
    import shapely
    import shapely.geometry

    tree = shapely.STRtree([shapely.geometry.shape(d["geometry"]) for d in items])
    found: dict[str, list[dict[str, Any]]] = {}
    for t in tiles:
        hits = tree.query(shapely.geometry.box(*t.grid(halo).lonlat_bounds()), "intersects")
        found[t.id] = [items[i] for i in sorted(hits)]
    return found


def _plan(
    config: SurveyConfig, tiles: Sequence[Tile], periods: Sequence[Period], cache: Path
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The items over each tile and period: one search per zone and period."""
    from shapely.geometry import box
    from shapely.ops import unary_union

    from data_prep.stac import search_items
    from solarmap.progress import track

    source = config.source()
    plan: dict[tuple[str, str], list[dict[str, Any]]] = {}
    by_zone: dict[int, list[Tile]] = {}
    for t in tiles:
        by_zone.setdefault(t.epsg, []).append(t)

    searches = [(p, zone_tiles) for p in periods for zone_tiles in by_zone.values()]
    for period, zone_tiles in track(searches, "searching imagery", total=len(searches)):
        hull = unary_union([box(*t.grid(config.halo_px).lonlat_bounds()) for t in zone_tiles])
        items = search_items(source, hull.bounds, period.start, period.end, cache=cache)
        for tid, its in _assign_items(zone_tiles, items, config.halo_px).items():
            plan[(period.name, tid)] = its
    return plan


def _client(config: SurveyConfig) -> Any:
    """A client of ``config.scheduler``, or of a new local cluster of worker processes."""
    import dask.config
    from distributed import Client, LocalCluster

    # a task holds its worker's interpreter for seconds (the model): no warning for that
    dask.config.set({"distributed.admin.tick.limit": "60s"})
    if config.scheduler:
        try:
            return Client(config.scheduler, timeout=f"{max(1, int(config.timeout_s))}s")
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(
                f"--scheduler {config.scheduler}: no Dask scheduler answered in "
                f"{config.timeout_s:g} s ({first_line(err)}); check the address"
            ) from err
    cluster = LocalCluster(
        n_workers=config.workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        # its HTTP routes (health, metrics) on a free loopback port, no dashboard
        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        worker_dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster)


def _tile_folder(out: Path, period: Period, tile: Tile) -> Path:
    return out / "tiles" / period.name / tile.id


def _finished(folder: Path) -> dict[str, Any] | None:
    rec = folder / TILE_RECORD
    if not rec.is_file():
        return None
    try:
        return json.loads(rec.read_text())
    except (OSError, ValueError):
        return None


def _check_folder(out: Path, config: SurveyConfig, *, overwrite: bool) -> bool:
    """A new folder, or one holding a survey of the same settings (resumed); ``True`` when
    ``out`` is a survey to replace (``overwrite``)."""
    record = out / SURVEY_FILE
    if not out.exists():
        return False
    if not out.is_dir():
        raise InputError(f"--out {out}: a file is in the way; give a folder")
    if overwrite:
        if record.is_file() or not any(out.iterdir()):
            return True
        raise InputError(f"--out {out}: not a survey folder; --overwrite replaces only a survey")
    if not record.is_file():
        if any(out.iterdir()):
            raise InputError(f"--out {out}: exists and is not a survey folder; give a new folder")
        return False
    try:
        before = json.loads(record.read_text())["fingerprint"]
    except (OSError, ValueError, KeyError) as err:
        raise InputError(f"--out {out}: its {SURVEY_FILE} is damaged; use --overwrite") from err
    now = jsonable(config.fingerprint())
    if before != now:
        diff = sorted(k for k in now if before.get(k) != now[k])
        raise InputError(
            f"--out {out}: holds a survey with other settings ({', '.join(diff)}); rerun with "
            "the same settings to resume, or give a new folder or --overwrite"
        )
    return False


def survey(config: SurveyConfig, out: str | Path, *, overwrite: bool = False) -> SurveyResult:
    """Run (or resume) a survey into ``out``; see the module docstring.

    Raises:
        InputError: a bad region, dates, catalog, checkpoint, scheduler or folder; all checked
            before any tile runs (and before ``out`` is made, but for the scheduler).
        CatalogError: the catalog does not answer within the timeout.
    """
    from solarmap.model import load_checkpoint, shipped_checkpoint
    from solarmap.progress import track
    from solarmap.styles import outline_style

    started = time.perf_counter()
    out = Path(out)
    periods = parse_periods(config.dates)
    region = parse_region(config.region)
    tiles = region_tiles(region, config.tile_px)
    ckpt_path = str(Path(config.checkpoint) if config.checkpoint else shipped_checkpoint())
    load_checkpoint(ckpt_path, defer_model=True)  # a bad checkpoint stops here
    units = _read_units(config.units, config.units_field) if config.units else None
    replace = _check_folder(out, config, overwrite=overwrite)
    cache = _cache_dir()
    log.info("survey of %s: %d tiles x %d periods", region.name, len(tiles), len(periods))
    labels = _survey_labels(config, region, out, fresh=replace)
    plan = _plan(config, tiles, periods, cache)  # the catalog answers before anything is made
    manifest: dict[str, Any] = {}
    tasks: list[TileTask] = []
    empty: list[TileTask] = []
    source = config.source()
    for period in periods:
        for tile in tiles:
            key = f"{period.name}/{tile.id}"
            folder = _tile_folder(out, period, tile)
            rec = None if replace else _finished(folder)
            if rec is not None:
                manifest[key] = {**rec, "resumed": True}
                continue
            items = plan[(period.name, tile.id)]
            task = TileTask(
                tile=tile,
                period=period,
                items=tuple(json.dumps(d) for d in items),
                source=source,
                checkpoint=ckpt_path,
                folder=str(folder),
                cache=str(cache),
                halo_px=config.halo_px,
                engine=config.engine,
                threads=config.threads,
            )
            (tasks if items else empty).append(task)
            manifest[key] = {"tile": tile.id, "period": period.name, "state": "pending"}
    client = _client(config) if tasks else None  # a scheduler that does not answer: nothing made
    try:
        if replace:
            shutil.rmtree(out)
        make_folder(out)
        _take_folder(out)
        if labels is not None and not (out / LABELS_FILE).is_file():
            write_vector(labels, out / LABELS_FILE, layer="labels",
                         style=outline_style(colour="#ff00ff"))  # fmt: skip
        write_json(
            out / SURVEY_FILE,
            {
                "solarmap_version": solarmap.__version__,
                "config": dataclasses.asdict(config),
                "fingerprint": config.fingerprint(),
                "region": region.geometry.__geo_interface__,
            },
        )
        for task in empty:
            shutil.rmtree(task.folder, ignore_errors=True)
            why = f"no items from {task.period.start} to {task.period.end}"
            manifest[f"{task.period.name}/{task.tile.id}"] = _no_imagery(task, _record(task), why)
        _write_manifest(out, manifest)
        if client is not None:
            log.info("%d tiles to run, %d finished before", len(tasks), len(manifest) - len(tasks))
            _run_tasks(client, tasks, manifest, out, track)
    finally:
        if client is not None:
            _close(client)
    farms = _write_outputs(config, out, periods, tiles, manifest, units, region, labels)
    (out / LOCK_FILE).unlink(missing_ok=True)
    states: dict[str, int] = {}
    for rec in manifest.values():
        states[rec["state"]] = states.get(rec["state"], 0) + 1
    failed = {k: r.get("reason", "") for k, r in manifest.items() if r["state"] == "failed"}
    return SurveyResult(out, states, failed, farms, time.perf_counter() - started)


def _survey_labels(config: SurveyConfig, region: Region, out: Path, *, fresh: bool) -> Any:
    """The solar labels over the region in EPSG:4326 (``None`` without ``--labels``): read
    from the survey folder when an earlier run of it fetched them, else from OpenStreetMap
    (osmnx, with its own settings and cache) or the file, cleaned as the data stage does."""
    from data_prep import osm
    from solarmap.errors import LabelError

    if config.labels is None:
        return None
    kept = out / LABELS_FILE
    if kept.is_file() and not fresh:
        return read_vector(kept, what="survey labels", layer="labels")
    if config.labels == "overpass":
        try:
            raw = osm.labels_from_polygon(region.geometry)
        except LabelError as err:
            if "no solar features" not in str(err):
                raise
            log.warning("no OSM solar plants in the region")
            return _no_labels()
    else:
        raw = osm.read_labels(config.labels)
    try:
        return osm.clean_labels(raw, crs="EPSG:4326", clip=region.geometry, source=config.labels)
    except LabelError as err:
        log.warning("%s", err)
        return _no_labels()


def _no_labels() -> Any:
    import geopandas as gpd

    return gpd.GeoDataFrame({"kind": [], "osm_id": [], "name": []}, geometry=[], crs=4326)


def _take_folder(out: Path) -> None:
    """Mark ``out`` as this process's, and clear what a survey killed before left half-written
    there (temporary files of the merged outputs; a tile's half-built folder is cleared when
    the tile is built).

    Raises:
        InputError: if another running survey writes into ``out``.
    """
    from solarmap.geo import process_alive

    lock = out / LOCK_FILE
    try:
        owner = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        owner = 0
    if owner and owner != os.getpid() and process_alive(owner):
        raise InputError(f"--out {out}: another survey (process {owner}) is writing it")
    for leftover in [*out.glob(".*.tmp*"), *out.glob("mosaic/.*.tmp*")]:
        leftover.unlink(missing_ok=True)
    shutil.rmtree(out / f".{CATALOG_DIR}.partial", ignore_errors=True)
    lock.write_text(f"{os.getpid()}\n")


def _done(manifest: dict[str, Any], period: Period, tiles: Sequence[Tile]) -> list[Tile]:
    """The tiles of ``period`` that the manifest has done."""
    return [t for t in tiles if manifest.get(f"{period.name}/{t.id}", {}).get("state") == "done"]


def _record(task: TileTask) -> dict[str, Any]:
    return {"tile": task.tile.id, "period": task.period.name, "epsg": task.tile.epsg}


def _cache_dir() -> Path:
    from solarmap.inference import cache_dir

    return cache_dir().parent / "stac"


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    write_json(out / MANIFEST_FILE, {"tiles": manifest})


def _run_tasks(
    client: Any, tasks: list[TileTask], manifest: dict[str, Any], out: Path, track: Any
) -> None:
    from distributed import as_completed

    futures = {client.submit(run_tile, t, pure=False, retries=0): t for t in tasks}
    for fut in track(as_completed(futures), "survey tiles", total=len(futures)):
        task = futures[fut]
        key = f"{task.period.name}/{task.tile.id}"
        try:
            rec = fut.result()
        except Exception as err:  # a worker died or the task was lost
            rec = {**_record(task), "state": "failed", "reason": first_line(err)}
        if rec["state"] == "failed":
            log.warning("tile %s failed: %s (a rerun retries it)", key, rec["reason"])
        manifest[key] = rec
        _write_manifest(out, manifest)


def _close(client: Any) -> None:
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def _read_units(path: str, field: str | None) -> Any:
    """The admin units (EPSG:4326) with their name in ``unit``: ``field``, else the file's
    first text column."""
    gdf = read_vector(path, what="units file")
    if gdf.crs is None:
        raise InputError(f"--units {path}: the file has no CRS")
    if field is None:
        names = [c for c in gdf.columns if c != "geometry" and gdf[c].dtype == object]
        if not names:
            raise InputError(f"--units {path}: no text column to name units by")
        field = names[0]
    elif field not in gdf.columns:
        raise InputError(
            f"--units-field {field}: not a column of {path} "
            f"({', '.join(c for c in gdf.columns if c != 'geometry')})"
        )
    return gdf[[field, "geometry"]].rename(columns={field: "unit"}).to_crs(4326)


def _write_outputs(
    config: SurveyConfig,
    out: Path,
    periods: Sequence[Period],
    tiles: Sequence[Tile],
    manifest: dict[str, Any],
    units: Any,
    region: Region,
    labels: Any = None,
) -> int:
    """Mosaics, merged polygons, summary and STAC catalog from the finished tiles."""
    import geopandas as gpd
    import pandas as pd

    from solarmap.geo import write_vrt
    from solarmap.predict import POLYGONS_FILE, POLYGONS_LAYER, PROBABILITY_FILE
    from solarmap.progress import track
    from solarmap.styles import detections_style, probability_style

    layers = []
    mosaics: dict[str, list[str]] = {}
    threshold = None

    for period in track(periods, "merging tiles", total=len(periods)):
        by_zone: dict[int, list[Tile]] = {}
        for t in _done(manifest, period, tiles):
            by_zone.setdefault(t.epsg, []).append(t)
            threshold = manifest[f"{period.name}/{t.id}"].get("threshold", threshold)
        for epsg, zone_tiles in sorted(by_zone.items()):
            folders = [_tile_folder(out, period, t) for t in zone_tiles]
            vrt = out / "mosaic" / f"probability_{period.name}_{epsg}.vrt"
            write_vrt(
                vrt,
                [f / PROBABILITY_FILE for f in folders],
                description="solar probability",
                style=probability_style(threshold=threshold),
            )
            mosaics.setdefault(period.name, []).append(str(vrt.relative_to(out)))
            parts = [
                read_vector(f / POLYGONS_FILE, layer=POLYGONS_LAYER).assign(tile=t.id)
                for f, t in zip(folders, zone_tiles, strict=True)
            ]
            merged = merge_polygons(parts, min_area_m2=config.min_area_m2)
            if merged is not None and len(merged):
                merged = merged.to_crs(4326)
                merged["period"] = period.name
                merged["utm_epsg"] = epsg
                layers.append(merged)
    if layers:
        farms = gpd.GeoDataFrame(pd.concat(layers, ignore_index=True), crs="EPSG:4326")
    else:
        farms = gpd.GeoDataFrame(
            {
                c: []
                for c in (
                    "area_m2",
                    "mean_prob",
                    "max_prob",
                    "tiles",
                    "centroid_lon",
                    "centroid_lat",
                    "period",
                    "utm_epsg",
                )
            },
            geometry=[],
            crs="EPSG:4326",
        )
    farms.insert(0, "id", np.arange(1, len(farms) + 1))
    if units is not None and len(farms):
        pts = gpd.GeoDataFrame(
            geometry=gpd.points_from_xy(farms.centroid_lon, farms.centroid_lat), crs=4326
        )
        hit = gpd.sjoin(pts, units, predicate="within", how="left")
        farms["unit"] = hit.groupby(level=0)["unit"].first().reindex(farms.index).to_numpy()
    if labels is not None:
        farms["in_osm"] = farms.intersects(labels.union_all()) if len(labels) else False
    write_vector(
        farms,
        out / FARMS_FILE,
        layer=FARMS_LAYER,
        style=detections_style(threshold=threshold or 0.5),
    )
    change = _write_change(out, periods, tiles, manifest, farms) if len(periods) > 1 else None
    summary = _summary(config, periods, manifest, farms, mosaics, region)
    if labels is not None:
        _compare_labels(summary, farms, labels)
    if change is not None:
        for entry, row in zip(summary["periods"], change.to_dict("records"), strict=True):
            entry.update(new_sites=row["new_sites"], new_area_ha=row["new_area_ha"],
                         vanished_sites=row["vanished_sites"])  # fmt: skip
        summary["outputs"].update(sites=f"{SITES_FILE} (layer sites)", change=CHANGE_FILE,
                                  change_plot=CHANGE_PLOT)  # fmt: skip
    write_json(out / SUMMARY_FILE, summary)
    _write_catalog(out, periods, tiles, manifest, mosaics, region)
    return len(farms)


def _write_change(
    out: Path,
    periods: Sequence[Period],
    tiles: Sequence[Tile],
    manifest: dict[str, Any],
    farms: Any,
) -> Any:
    """Sites over the periods (a GeoPackage), the per-period table (CSV) and its plot (PNG)."""
    from solarmap.app.change import period_table, plot_change, track_sites
    from solarmap.geo import atomic_path
    from solarmap.styles import sites_style

    observed = {p.name: {t.id for t in _done(manifest, p, tiles)} for p in periods}
    sites = track_sites(farms, periods, observed)
    table = period_table(sites, farms, periods)
    dates = ("constructed_after", "constructed_before", "gone_after", "gone_before")
    write_vector(sites.drop(columns=["gone_in"], errors="ignore"), out / SITES_FILE,
                 layer="sites", style=sites_style(), date_columns=dates)  # fmt: skip
    with atomic_path(out / CHANGE_FILE) as tmp:
        table.to_csv(tmp, index=False)
    plot_change(table, out / CHANGE_PLOT)
    return table


def _compare_labels(summary: dict[str, Any], farms: Any, labels: Any) -> None:
    """Per period: the labelled plants a farm covers, and the farms (and area) no label does,
    the candidates for mapping."""
    for entry in summary["periods"]:
        f = farms[farms["period"] == entry["period"]]
        found = (
            labels.intersects(f.union_all()).to_numpy()
            if len(f) and len(labels)
            else np.zeros(len(labels), dtype=bool)
        )
        unlabelled = f[~f["in_osm"].astype(bool)] if len(f) else f
        entry["labels"] = {
            "plants": len(labels),
            "found": int(sum(found)),
            "recall": float(np.mean(found)) if len(labels) else None,
            "farms_not_in_labels": len(unlabelled),
            "area_not_in_labels_ha": float(unlabelled["area_m2"].sum() / 1e4),
        }
    summary["outputs"]["labels"] = f"{LABELS_FILE} (layer labels)"


def _summary(
    config: SurveyConfig,
    periods: Sequence[Period],
    manifest: dict[str, Any],
    farms: Any,
    mosaics: dict[str, list[str]],
    region: Region,
) -> dict[str, Any]:
    per_period = []
    for p in periods:
        f = farms[farms["period"] == p.name] if len(farms) else farms
        recs = [r for k, r in manifest.items() if k.startswith(f"{p.name}/")]
        entry: dict[str, Any] = {
            "period": p.name,
            "start": p.start,
            "end": p.end,
            "farms": len(f),
            "area_ha": float(f["area_m2"].sum() / 1e4) if len(f) else 0.0,
            "tiles": {
                s: sum(r["state"] == s for r in recs)
                for s in ("done", "no-imagery", "failed", "pending")
            },
            "by_zone": {
                str(z): {"farms": len(g), "area_ha": float(g["area_m2"].sum() / 1e4)}
                for z, g in f.groupby("utm_epsg")
            }
            if len(f)
            else {},
            "mosaics": mosaics.get(p.name, []),
        }
        if "unit" in f.columns:
            entry["by_unit"] = {
                str(u): {"farms": len(g), "area_ha": float(g["area_m2"].sum() / 1e4)}
                for u, g in f.groupby(f["unit"].fillna("(outside every unit)"))
            }
        per_period.append(entry)
    done = [r for r in manifest.values() if r["state"] == "done"]
    cpu = sum(r.get("cpu_seconds", 0.0) for r in done)
    km2 = sum(r.get("km2", 0.0) for r in done)
    return {
        "solarmap_version": solarmap.__version__,
        "region": region.name,
        "periods": per_period,
        "failed": {k: r.get("reason") for k, r in manifest.items() if r["state"] == "failed"},
        "no_imagery": {
            k: r.get("reason") for k, r in manifest.items() if r["state"] == "no-imagery"
        },
        "task_cpu_seconds_per_km2": cpu / km2 if km2 else None,
        "task_peak_rss_mb": max((r.get("task_peak_rss_mb", 0.0) for r in done), default=None),
        "outputs": {"farms": f"{FARMS_FILE} (layer {FARMS_LAYER})", "catalog": f"{CATALOG_DIR}/"},
    }


def _write_catalog(
    out: Path,
    periods: Sequence[Period],
    tiles: Sequence[Tile],
    manifest: dict[str, Any],
    mosaics: dict[str, list[str]],
    region: Region,
) -> None:
    """A self-contained STAC catalog of the outputs: a collection per period, an item per tile."""
    import pystac

    root = out / CATALOG_DIR
    tmp = out / f".{CATALOG_DIR}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    import shapely.geometry

    from solarmap.predict import POLYGONS_FILE, PROBABILITY_FILE

    def span(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
        return (dt.datetime.combine(start, dt.time(0), tzinfo=dt.UTC),
                dt.datetime.combine(end, dt.time(23, 59, 59), tzinfo=dt.UTC))  # fmt: skip

    bbox = list(region.geometry.bounds)
    first, last = span(periods[0].start, periods[-1].end)
    cat = pystac.Collection(  # a collection, not a bare catalog: it holds the merged layers
        id="solarmap-survey",
        description=f"solarmap survey of {region.name}",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[first, last]])),
        license="proprietary",
    )
    cat.add_asset(
        "solar_farms",
        pystac.Asset(
            f"../{FARMS_FILE}",
            media_type=pystac.MediaType.GEOPACKAGE,
            roles=["data"],
            title="solar farms, merged across tiles",
        ),
    )
    cat.add_asset(
        "summary",
        pystac.Asset(f"../{SUMMARY_FILE}", media_type=pystac.MediaType.JSON, roles=["metadata"]),
    )
    for p in periods:
        start, end = span(p.start, p.end)
        coll = pystac.Collection(
            id=f"survey-{p.name}",
            description=f"solar probability and farms, {p.start} to {p.end}",
            extent=pystac.Extent(
                pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[start, end]])
            ),
            license="proprietary",
        )
        for m in mosaics.get(p.name, []):
            coll.add_asset(
                Path(m).stem,
                pystac.Asset(
                    f"../../{m}",
                    media_type="application/xml",
                    roles=["data", "overview"],
                    title="probability mosaic (VRT)",
                ),
            )
        cat.add_child(coll)
        for t in _done(manifest, p, tiles):
            rec = manifest[f"{p.name}/{t.id}"]
            w, s, e, n = t.grid(0).lonlat_bounds()

            item = pystac.Item(
                id=f"{p.name}_{t.id}",
                geometry=shapely.geometry.mapping(shapely.geometry.box(w, s, e, n)),
                bbox=[w, s, e, n],
                datetime=None,
                properties={
                    "start_datetime": start.isoformat(),
                    "end_datetime": end.isoformat(),
                    "proj:code": f"EPSG:{t.epsg}",
                    "solarmap:polygons": rec.get("polygons"),
                    "solarmap:clear_share": rec.get("clear_share"),
                },
            )
            rel = f"../../../tiles/{p.name}/{t.id}"
            item.add_asset(
                "probability",
                pystac.Asset(
                    f"{rel}/{PROBABILITY_FILE}", media_type=pystac.MediaType.COG, roles=["data"]
                ),
            )
            item.add_asset(
                "polygons",
                pystac.Asset(
                    f"{rel}/{POLYGONS_FILE}", media_type=pystac.MediaType.GEOPACKAGE, roles=["data"]
                ),
            )
            coll.add_item(item)
    tmp.mkdir(parents=True)
    cat.normalize_hrefs(tmp.as_posix() + "/")  # a folder (its name has a dot)
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    if root.exists():
        shutil.rmtree(root)
    tmp.rename(root)
