"""Solar labels from OpenStreetMap: osmnx queries, OSM XML files and plain label files.

Loaders return the raw features; :func:`clean_labels` turns them into the label contract: one row
per solar plant (or group of orphan generators) with a polygonal geometry.

Online queries go through osmnx and its settings only (``osmnx.settings.overpass_url``,
``requests_timeout``, ``use_cache``, ``overpass_rate_limit``...), so whatever the user configured
there (a private Overpass server, a cache folder) is respected.

Example:
    >>> raw = labels_from_bbox((16.30, 48.19, 16.33, 48.21))  # doctest: +SKIP
    >>> labels = clean_labels(raw, crs="EPSG:32633")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal
from xml.sax import SAXException

import geopandas as gpd
import osmnx as ox
import pandas as pd
import requests
import shapely
from osmnx._errors import InsufficientResponseError, ResponseStatusCodeError
from pyproj import CRS, Geod
from pyproj.exceptions import CRSError
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from solarmap.errors import InputError, InputFileError, LabelError, first_line
from solarmap.geo import check_vector_crs, is_lonlat_bounds, read_vector

log = logging.getLogger(__name__)

#: OSM tags queried from osmnx: solar plants and generators (filtered further by
#: :func:`clean_labels`, since Overpass tag unions cannot express "plant AND source=solar").
SOLAR_TAGS: dict[str, list[str]] = {"power": ["plant", "generator"]}

#: Orphan generators closer than this to each other are grouped into one polygon (metres).
GROUP_DISTANCE_M: Final = 10.0

Kind = Literal["plant", "generator"]

_XML_SUFFIXES: Final = (".osm", ".xml", ".osm.bz2", ".osm.gz")
_FILE_SUFFIXES: Final = (".geojson", ".json", ".gpkg", ".shp")
_POLYGONAL: Final = ("Polygon", "MultiPolygon")
_POINTS: Final = ("Point", "MultiPoint")
_LINES: Final = ("LineString", "MultiLineString", "LinearRing")
_TAG_HINT: Final = "check the area or the tags power=plant + plant:source=solar"
_COLUMNS: Final = ["kind", "osm_id", "name", "geometry"]


# --------------------------------------------------------------------------- loaders


def labels_from_xml(path: str | Path) -> gpd.GeoDataFrame:
    """Read power plants and generators from an OSM XML file (``.osm``, ``.osm.bz2``...).

    Args:
        path: OSM XML 0.6 file, e.g. exported from openstreetmap.org or Overpass.

    Returns:
        Raw osmnx features in EPSG:4326, indexed by ``(element, id)``, one column per OSM tag.

    Raises:
        InputFileError: if the file is missing or is not OSM XML.
        LabelError: if the file holds no power=plant / power=generator features.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: OSM file not found; check the path")
    log.info("reading %s features from %s", _tags_text(), p)
    try:
        gdf = ox.features_from_xml(p, tags=_osmnx_tags())
    except InsufficientResponseError as err:
        raise LabelError(f"{p}: no solar features in this OSM file; {_TAG_HINT}") from err
    except (ET.ParseError, SAXException, UnicodeDecodeError, EOFError, OSError) as err:
        raise InputFileError(
            f"{p}: not an OSM XML file ({first_line(err)}); give an .osm file exported from "
            "OpenStreetMap or Overpass"
        ) from err
    except (KeyError, TypeError) as err:  # an element lacks lat/lon, a member ref...
        raise InputFileError(
            f"{p}: malformed OSM XML (missing {first_line(err)}); re-export the file"
        ) from err
    log.info("read %d power features from %s, bounds %s", len(gdf), p, _bounds_text(gdf))
    return gdf


def labels_from_polygon(polygon: BaseGeometry) -> gpd.GeoDataFrame:
    """Download power plants and generators inside a polygon from the Overpass API.

    The request goes through osmnx (``ox.features_from_polygon``) and its settings.

    Args:
        polygon: Polygon or MultiPolygon in EPSG:4326 (lon/lat).

    Returns:
        Raw osmnx features in EPSG:4326, indexed by ``(element, id)``.

    Raises:
        InputError: if ``polygon`` is not a valid lon/lat (Multi)Polygon.
        LabelError: if the area holds no power features or Overpass cannot be reached.
    """
    _check_lonlat_polygon(polygon)
    return _query_overpass(
        lambda: ox.features_from_polygon(polygon, tags=_osmnx_tags()),
        polygon,
        f"the polygon with bounds {_fmt_bounds(polygon.bounds)}",
    )


def labels_from_bbox(bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    """Download power plants and generators inside a lon/lat box from the Overpass API.

    Args:
        bbox: ``(west, south, east, north)`` in EPSG:4326 degrees.

    Returns:
        Raw osmnx features in EPSG:4326, indexed by ``(element, id)``.

    Raises:
        InputError: if the box is not ``(west, south, east, north)`` in degrees.
        LabelError: if the box holds no power features or Overpass cannot be reached.
    """
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise InputError(f"bbox {bbox!r}: give four numbers (west, south, east, north)") from err
    if not (west < east and south < north):
        raise InputError(
            f"bbox {bbox!r}: need west < east and south < north; give (west, south, east, north)"
        )
    area = box(west, south, east, north)
    _check_lonlat_polygon(area)
    return _query_overpass(
        lambda: ox.features_from_bbox((west, south, east, north), tags=_osmnx_tags()),
        area,
        f"bbox {_fmt_bounds((west, south, east, north))}",
    )


#: OSM keys whose values are concepts (``landuse=farmland``, ``natural=water``...) for naming
#: what a network's features respond to (:mod:`attribute.concepts`).
CONCEPT_KEYS: Final = ("landuse", "natural", "building", "man_made", "power", "surface")


def concept_features_from_bbox(bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    """Download every feature tagged with a :data:`CONCEPT_KEYS` key in a lon/lat box from
    the Overpass API (osmnx ``features_from_bbox``, its settings and cache).

    Raises:
        LabelError: if the box holds no such feature or Overpass cannot be reached.
    """
    west, south, east, north = (float(v) for v in bbox)
    tags: dict[str, bool | str | list[str]] = {k: True for k in CONCEPT_KEYS}
    return _query_overpass(
        lambda: ox.features_from_bbox((west, south, east, north), tags=tags),
        box(west, south, east, north),
        f"bbox {_fmt_bounds((west, south, east, north))}",
        what=" / ".join(CONCEPT_KEYS) + " features",
        hint="map a larger area or give a concept file",
    )


def concept_features_from_file(path: str | Path) -> gpd.GeoDataFrame:
    """Features with :data:`CONCEPT_KEYS` tags from an OSM XML file or a vector file whose
    columns are OSM keys.

    Raises:
        InputFileError: if the file is missing or unreadable.
        LabelError: if it holds no feature with such a tag.
    """
    p = Path(path)
    if p.name.lower().endswith(_XML_SUFFIXES):
        if not p.is_file():
            raise InputFileError(f"{p}: OSM file not found; check the path")
        tags: dict[str, bool | str | list[str]] = {k: True for k in CONCEPT_KEYS}
        try:
            return ox.features_from_xml(p, tags=tags)
        except InsufficientResponseError as err:
            raise LabelError(f"{p}: no {'/'.join(CONCEPT_KEYS)} features in it") from err
        except (ET.ParseError, SAXException, UnicodeDecodeError, EOFError, OSError,
                KeyError, TypeError) as err:  # fmt: skip
            raise InputFileError(f"{p}: not an OSM XML file ({first_line(err)})") from err
    gdf = read_vector(p, what="concept file")
    check_vector_crs(gdf, p)
    if not set(CONCEPT_KEYS) & set(gdf.columns):
        raise LabelError(
            f"{p}: no column named like an OSM key ({', '.join(CONCEPT_KEYS)}); give OSM "
            "features with their tags"
        )
    return gdf.to_crs("EPSG:4326")


def concept_layers(raw: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One row per feature and concept, ``key=value`` (``concept``), with the feature's
    polygonal part (points and lines are no area), in the features' CRS."""
    rows = []
    for key in CONCEPT_KEYS:
        if key not in raw.columns:
            continue
        for value, geom in zip(raw[key], raw.geometry, strict=True):
            if value is None or (isinstance(value, float) and pd.isna(value)):
                continue
            poly = _polygonal_part(geom)
            if poly is not None:
                rows.append({"concept": f"{key}={value}", "geometry": poly})
    return gpd.GeoDataFrame(rows, columns=["concept", "geometry"], geometry="geometry",
                            crs=raw.crs)  # fmt: skip


def labels_from_file(path: str | Path) -> gpd.GeoDataFrame:
    """Read a plain label file (GeoJSON, GeoPackage, Shapefile).

    A file without OSM tag columns (e.g. only ``id`` and ``geometry``) is a list of solar
    plants: :func:`clean_labels` keeps every polygon. With a ``power`` column it is filtered like
    OSM data.

    Args:
        path: the vector file.

    Returns:
        The file's features, unchanged.

    Raises:
        InputFileError: if the file is missing or not a vector file.
        LabelError: if it has no features or no CRS.
    """
    p = Path(path)
    gdf = read_vector(p, what="label file")
    check_vector_crs(gdf, p, error=LabelError)
    if len(gdf) == 0:
        raise LabelError(f"{p}: label file has no features; give a file with solar polygons")
    log.info("read %d label features from %s, bounds %s", len(gdf), p, _bounds_text(gdf))
    return gdf


def read_labels(source: str | Path) -> gpd.GeoDataFrame:
    """Read raw labels from a file, choosing the reader by its suffix.

    ``.osm``, ``.xml``, ``.osm.xml``, ``.osm.bz2``, ``.osm.gz`` go to :func:`labels_from_xml`;
    ``.geojson``, ``.json``, ``.gpkg``, ``.shp`` to :func:`labels_from_file`.

    Raises:
        InputError: if the suffix is none of those.
        InputFileError: if the file is missing or unreadable.
        LabelError: if it holds no features.
    """
    p = Path(source)
    name = p.name.lower()
    if name.endswith(_XML_SUFFIXES):
        return labels_from_xml(p)
    if name.endswith(_FILE_SUFFIXES):
        return labels_from_file(p)
    raise InputError(
        f"{p}: unknown label file type; give OSM XML ({', '.join(_XML_SUFFIXES)}) or a vector "
        f"file ({', '.join(_FILE_SUFFIXES)})"
    )


# --------------------------------------------------------------------------- cleaning


def clean_labels(
    raw: gpd.GeoDataFrame,
    *,
    crs: Any | None = None,
    clip: BaseGeometry | None = None,
    source: str | Path | None = None,
) -> gpd.GeoDataFrame:
    """Turn raw OSM (or label-file) features into solar label polygons.

    Steps: keep solar plants and generators only; drop points and lines; repair invalid
    geometries (``shapely.make_valid``, polygonal parts only); merge generators into the plants
    they intersect; group the remaining generators that lie within ~10 m of each other into one
    polygon each; reproject; keep features intersecting ``clip``.

    A frame without a ``power`` column (a plain label file) counts as solar plants throughout.

    Args:
        raw: output of one of the loaders (or any GeoDataFrame with a CRS).
        crs: output CRS (anything pyproj accepts); default: the input's CRS.
        clip: optional (Multi)Polygon in the output CRS; features not intersecting it are dropped.
        source: where the features came from (a file), named in the messages.

    Returns:
        GeoDataFrame with columns ``kind`` (``"plant"`` | ``"generator"``), ``osm_id``
        (``"way/123"``, ``"relation/5"`` or None), ``name`` (str or None) and ``geometry``
        (Polygon / MultiPolygon), in ``crs``, with a fresh RangeIndex.

    Raises:
        InputError: if ``crs`` or ``clip`` is unusable.
        LabelError: if ``raw`` has no CRS or nothing is left after cleaning.
    """
    if not isinstance(raw, gpd.GeoDataFrame):
        raise InputError(f"labels must be a GeoDataFrame, got {type(raw).__name__}")
    if raw.crs is None:
        raise LabelError("labels have no CRS; set one (e.g. gdf.set_crs('EPSG:4326'))")
    out_crs = _parse_crs(crs) if crs is not None else raw.crs
    if clip is not None and not (isinstance(clip, Polygon | MultiPolygon) and not clip.is_empty):
        got = getattr(clip, "geom_type", type(clip).__name__)
        raise InputError(f"clip must be a non-empty Polygon or MultiPolygon, got {got}")
    n_read = len(raw)

    df = _solar_rows(raw)
    df = _polygonal_rows(df)
    df = _dissolve_generators(df)
    df = df.to_crs(out_crs)
    if clip is not None:
        inside = df.intersects(clip)
        if (~inside).any():
            log.info("dropped %d features outside the clip area", int((~inside).sum()))
        df = df[inside]

    if len(df) == 0:
        overlap = ", and that the clip area overlaps the labels" if clip is not None else ""
        raise LabelError(
            f"{source or 'labels'}: no solar polygons after cleaning ({n_read} features read); "
            f"{_TAG_HINT}{overlap}"
        )
    df = df.reset_index(drop=True)[_COLUMNS]
    df["osm_id"] = _optional_text(df["osm_id"])
    df["name"] = _optional_text(df["name"])
    counts = df["kind"].value_counts().to_dict()
    log.info(
        "%d solar label polygons (%d plants, %d generator groups) from %d features",
        len(df),
        counts.get("plant", 0),
        counts.get("generator", 0),
        n_read,
    )
    return df


def _solar_rows(raw: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows that are solar plants/generators, as ``kind, osm_id, name, geometry``."""
    osm_id = _osm_ids(raw)
    name = _optional_text(raw["name"]) if "name" in raw.columns else _nones(raw.index)
    if "power" not in raw.columns:
        kind = pd.Series("plant", index=raw.index, dtype=object)
        keep = pd.Series(True, index=raw.index)
    else:
        power = _tag(raw, "power")
        plant_solar = (
            _has_value(_tag(raw, "plant:source"), "solar")
            | _has_value(_tag(raw, "generator:source"), "solar")
            | _has_value(_tag(raw, "plant:method"), "photovoltaic")
        )
        gen_solar = _has_value(_tag(raw, "generator:source"), "solar")
        is_plant = (power == "plant") & plant_solar
        is_gen = (power == "generator") & gen_solar
        keep = is_plant | is_gen
        kind = pd.Series(None, index=raw.index, dtype=object).mask(is_plant, "plant")
        kind = kind.mask(is_gen, "generator")
        dropped = int((~keep).sum())
        if dropped:
            log.info("dropped %d power features that are not solar (coal, wind...)", dropped)
    # plain arrays: a label file's index need not be unique, so do not align on it
    df = gpd.GeoDataFrame(
        {"kind": kind.to_numpy(), "osm_id": osm_id.to_numpy(), "name": name.to_numpy()},
        geometry=raw.geometry.to_numpy(),
        crs=raw.crs,
    )
    return df[keep.to_numpy()].reset_index(drop=True)


def _polygonal_rows(df: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Drop points, lines and empty geometries; repair invalid polygons."""
    geom = df.geometry
    types = geom.geom_type
    empty = (geom.isna() | geom.is_empty).to_numpy()
    points = types.isin(_POINTS).to_numpy() & ~empty
    lines = types.isin(_LINES).to_numpy() & ~empty
    if points.any() or lines.any():
        log.info(
            "dropped %d point and %d line features (labels must be areas; an unclosed way "
            "comes back as a line)",
            int(points.sum()),
            int(lines.sum()),
        )
    if empty.any():
        log.info("dropped %d features with an empty geometry", int(empty.sum()))
    df = df[~(empty | points | lines)].copy()

    invalid = (~df.geometry.is_valid).to_numpy()
    if invalid.any():
        df.loc[invalid, "geometry"] = df.geometry[invalid].make_valid()
        log.warning(
            "repaired %d invalid label geometries with shapely.make_valid (kept polygonal parts)",
            int(invalid.sum()),
        )
    # make_valid (or the input) may give GeometryCollections: keep only their polygonal parts
    mixed = (~df.geom_type.isin(_POLYGONAL)).to_numpy()
    if mixed.any():
        df.loc[mixed, "geometry"] = [_polygonal_part(g) for g in df.geometry[mixed]]
    collapsed = (df.geometry.isna() | df.geometry.is_empty).to_numpy()
    if collapsed.any():
        log.warning("dropped %d features with no area left after repair", int(collapsed.sum()))
    return df[~collapsed]


def _dissolve_generators(df: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Merge generators into the plants they intersect; group the orphans."""
    df = df.reset_index(drop=True)
    plants = df[df["kind"] == "plant"].copy()
    gens = df[df["kind"] == "generator"]
    if len(gens) == 0:
        return plants

    hits = gpd.sjoin(gens[["geometry"]], plants[["geometry"]], how="inner", predicate="intersects")
    if len(hits):
        # one (plant, part) row per plant outline and per generator touching it, then dissolve
        parts = gpd.GeoDataFrame(
            {"plant": list(plants.index) + list(hits["index_right"])},
            geometry=list(plants.geometry) + list(gens.geometry[hits.index]),
            crs=df.crs,
        )
        plants["geometry"] = parts.dissolve(by="plant").geometry.reindex(plants.index)
        log.info(
            "merged %d generators into %d plants",
            hits.index.nunique(),
            hits["index_right"].nunique(),
        )
    orphans = gens[~gens.index.isin(hits.index)]
    if len(orphans) == 0:
        return plants
    groups = _group_orphans(orphans)
    log.info("grouped %d orphan generators into %d polygons", len(orphans), len(groups))
    return gpd.GeoDataFrame(pd.concat([plants, groups], ignore_index=True), crs=df.crs)


def _group_orphans(orphans: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Dissolve generators within :data:`GROUP_DISTANCE_M` of each other into one polygon each.

    Morphological closing (grow by half the distance, union, shrink back) in a metric CRS: rows
    of panels with gaps below the distance become one field, isolated generators keep their
    shape (mitre joins keep rectangle corners square). Each group also keeps its members' exact
    union, so the closing never cuts a generator.
    """
    half = GROUP_DISTANCE_M / 2
    utm = orphans.estimate_utm_crs()
    metric = orphans.to_crs(utm)
    blobs = gpd.GeoDataFrame(
        geometry=shapely.get_parts(metric.buffer(half, join_style="mitre").union_all()), crs=utm
    )
    member = gpd.sjoin(metric, blobs, how="left", predicate="intersects")
    member = member[~member.index.duplicated(keep="first")]
    grouped = member.dissolve(
        by="index_right",
        aggfunc={"kind": "first", "osm_id": "first", "name": "first"},
    )
    closed = blobs.geometry.buffer(-half, join_style="mitre").reindex(grouped.index)
    # the union adds nearly collinear vertices where members touch the closing: drop them (1 cm)
    grouped["geometry"] = grouped.geometry.union(closed, align=True).simplify(0.01)
    grouped["kind"] = "generator"
    return grouped.reset_index(drop=True)[_COLUMNS].to_crs(orphans.crs)


# --------------------------------------------------------------------------- helpers


def _query_overpass(
    query: Callable[[], gpd.GeoDataFrame],
    area: BaseGeometry,
    where: str,
    *,
    what: str = "solar features",
    hint: str = _TAG_HINT,
) -> gpd.GeoDataFrame:
    """Run an osmnx Overpass query, logging the area and translating osmnx errors."""
    area_km2 = abs(Geod(ellps="WGS84").geometry_area_perimeter(area)[0]) / 1e6
    url = ox.settings.overpass_url
    log.info("querying %s for %s in %s (%.2f km²)", url, what, where, area_km2)
    try:
        gdf = query()
    except InsufficientResponseError as err:
        raise LabelError(f"no {what} in {where}; {hint}") from err
    except (requests.RequestException, ResponseStatusCodeError) as err:
        raise LabelError(
            f"could not get OSM features for {where} from {url} ({first_line(err)}); check "
            "osmnx.settings.overpass_url and the network, or give a label file instead"
        ) from err
    log.info("received %d power features, bounds %s", len(gdf), _bounds_text(gdf))
    return gdf


def _check_lonlat_polygon(polygon: BaseGeometry) -> None:
    if not isinstance(polygon, Polygon | MultiPolygon) or polygon.is_empty:
        raise InputError(
            f"query area must be a non-empty Polygon or MultiPolygon in EPSG:4326, got "
            f"{getattr(polygon, 'geom_type', type(polygon).__name__)}"
        )
    if not polygon.is_valid:
        raise InputError("query polygon is invalid; repair it first (shapely.make_valid)")
    if not is_lonlat_bounds(polygon.bounds):
        raise InputError(
            f"query area bounds {_fmt_bounds(polygon.bounds)} are not lon/lat degrees; "
            "reproject it to EPSG:4326"
        )


def _parse_crs(crs: Any) -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as err:
        raise InputError(f"unknown CRS {crs!r}; give e.g. 'EPSG:32633'") from err


def _osm_ids(raw: gpd.GeoDataFrame) -> pd.Series:
    """``"way/123"`` style ids from osmnx's ``(element, id)`` index or columns, else None."""
    idx = raw.index
    if isinstance(idx, pd.MultiIndex) and list(idx.names) == ["element", "id"]:
        element = idx.get_level_values("element").astype(str)
        ident = idx.get_level_values("id").astype(str)
        return pd.Series(element + "/" + ident, index=idx, dtype=object)
    if {"element", "id"} <= set(raw.columns):
        ids = raw["element"].astype(str) + "/" + raw["id"].astype(str)
        return ids.where(raw["element"].notna() & raw["id"].notna(), None).astype(object)
    if "osm_id" in raw.columns:
        return _optional_text(raw["osm_id"])
    return _nones(idx)


def _tag(raw: gpd.GeoDataFrame, key: str) -> pd.Series:
    """Lower-case values of an OSM tag column ("" where missing).

    Shapefiles cannot hold ':' in field names, so ``plant_source`` stands in for
    ``plant:source``.
    """
    for col in (key, key.replace(":", "_")):
        if col in raw.columns:
            return raw[col].astype("string").str.strip().str.lower().fillna("")
    return pd.Series("", index=raw.index, dtype="string")


def _has_value(values: pd.Series, wanted: str) -> pd.Series:
    # OSM separates several values with ';' ("solar;wind")
    return values.str.contains(rf"(?:^|;)\s*{wanted}\s*(?:;|$)", regex=True).fillna(False)


def _optional_text(values: pd.Series) -> pd.Series:
    """Strings, with None (not NaN) where missing."""
    return pd.Series(
        [None if pd.isna(v) else str(v) for v in values], index=values.index, dtype=object
    )


def _nones(index: pd.Index) -> pd.Series:
    return pd.Series([None] * len(index), index=index, dtype=object)


def _polygonal_part(geom: BaseGeometry | None) -> BaseGeometry | None:
    """Polygon/MultiPolygon made of the polygonal parts of ``geom`` (None if it has none)."""
    if geom is None:
        return None
    # twice: a GeometryCollection may hold MultiPolygons
    parts = shapely.get_parts(shapely.get_parts(geom))
    polys = [p for p in parts if p.geom_type == "Polygon" and not p.is_empty]
    return shapely.union_all(polys) if polys else None


def _osmnx_tags() -> dict[str, bool | str | list[str]]:
    # a fresh copy in the type osmnx declares, so nothing downstream can change SOLAR_TAGS
    return {key: list(values) for key, values in SOLAR_TAGS.items()}


def _tags_text() -> str:
    return " / ".join(f"{k}={v}" for k, values in SOLAR_TAGS.items() for v in values)


def _fmt_bounds(bounds: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{b:.5f}" for b in bounds) + ")"


def _bounds_text(gdf: gpd.GeoDataFrame) -> str:
    return _fmt_bounds(tuple(gdf.total_bounds)) if len(gdf) else "(empty)"
