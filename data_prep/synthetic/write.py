"""Write a synthetic region: the scene strip by strip, SCL, land cover, OSM labels, truth, summary.

:func:`generate_region` runs the generator's steps in order (landscape, farms, look-alikes,
sky, surface reflectance) and writes every file; the same config gives byte-identical files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import rasterio
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from rasterio.transform import Affine
from rasterio.windows import Window

from data_prep.synthetic.atmosphere import (
    SCL_WRITTEN,
    Haze,
    apply_haze,
    apply_sky,
    classify_sky,
    classify_surface,
    make_haze,
    make_sky,
)
from data_prep.synthetic.config import GENERATOR_VERSION, RegionConfig
from data_prep.synthetic.farms import Farm, assign_roles, place_farms, render_farms
from data_prep.synthetic.fields import FloatMap
from data_prep.synthetic.footprints import read_footprints
from data_prep.synthetic.grid import Grid
from data_prep.synthetic.landscape import LANDCOVER_CLASSES, Land, classify_landcover, make_land
from data_prep.synthetic.lookalikes import LookAlike, place_lookalikes, render_lookalikes
from data_prep.synthetic.osm_xml import build_osm_xml
from data_prep.synthetic.spectra import (
    FarmMix,
    Palette,
    Psf,
    add_sensor_noise,
    farm_mix,
    palette_for,
    psf_for,
    resample_20m_bands,
    surface_reflectance,
)
from solarmap.bands import (
    BANDS,
    L2A_BOA_ADD_OFFSET,
    L2A_QUANTIFICATION,
    SCL_CLASSES,
    SclClass,
)
from solarmap.errors import InputError
from solarmap.geo import cog_writer, write_cog, write_json, write_text, write_vector
from solarmap.styles import image_style, outline_style, palette_style, scl_style

log = logging.getLogger(__name__)

__all__ = ["RegionFiles", "generate_region"]

_STRIP_ROWS: Final = 512  # rows per synthesis strip (even, COG block size)
_DEFAULT_CONFIG: Final = RegionConfig()
#: Colours of the land-cover classes in ``landcover.tif``'s QGIS style.
_LANDCOVER_COLOURS: Final = {
    1: "#4daf4a", 2: "#d8b365", 3: "#377eb8", 4: "#525252", 5: "#e41a1c", 6: "#f0f0f0",
    7: "#253494", 8: "#c51b7d",
}  # fmt: skip


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
    lookalikes: Path

    def written(self, *, lookalikes: bool) -> dict[str, Path]:
        """The files by name (``root`` aside); ``lookalikes`` only when it was written."""
        files = {k: v for k, v in dataclasses.asdict(self).items() if k != "root"}
        if not lookalikes:
            del files["lookalikes"]
        return files

    @classmethod
    def in_folder(cls, out: Path) -> RegionFiles:
        """The file names :func:`generate_region` writes in ``out``."""
        return cls(
            root=out,
            scene=out / "scene.tif",
            scl=out / "scene_SCL.tif",
            osm=out / "labels.osm",
            truth=out / "truth.gpkg",
            landcover=out / "landcover.tif",
            config=out / "region.json",
            lookalikes=out / "lookalikes.gpkg",
        )


@contextlib.contextmanager
def _fixed_gpkg_date(date: str) -> Iterator[None]:
    """GeoPackages record a last-change time; fix it so the same seed gives the same bytes."""
    import pyogrio

    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": f"{date}T00:00:00.000Z"})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _scene_id(config: RegionConfig, crs: CRS, lat: float) -> str:
    """A Sentinel-2 L2A product name for the region: its UTM tile at latitude ``lat``, an
    orbit and a time made from the seed."""
    day = dt.date.fromisoformat(config.resolved_date).strftime("%Y%m%d")
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


def generate_region(out_dir: Path, config: RegionConfig = _DEFAULT_CONFIG) -> RegionFiles:
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
      A preset plant is mapped by its fence, its footprint grown by a strip of a few metres
      (the labels training rasterizes); rooftop plants are tagged ``location=roof``.
    - ``truth.gpkg``: layer ``farms``, every farm: farm_id, mapped, orphan, area_ha, n_blocks,
      osm_kind, geometry (footprint in the scene CRS: the panel array, without the fence strip
      OSM maps; the built part of a partly built farm; the array of a rooftop plant).
    - ``lookalikes.gpkg`` (preset regions, or any region with partly built farms): layer
      ``lookalikes``, everything that is not solar but may look like it: kind (greenhouse,
      dark_roof, industrial_roof, graded_land, unbuilt, roof), farm_id (the farm it stands
      next to or, when unbuilt or a roof, belongs to; -1: none), geometry. None of it is in
      the truth but the part of a ``roof`` under its plant's array.
    - ``region.json``: the config, counts, land-cover shares and the generator version; with a
      preset also the blur of the scene (``psf_sigma_px``, 10 m and 20 m bands, each in its
      own pixels) and the count of rooftop plants.

    The same config gives byte-identical files.

    Args:
        out_dir: Folder to write into.
        config: The region to make.

    Returns:
        The paths written.

    Raises:
        InputError: if ``config`` is not a :class:`RegionConfig`, or its footprints file has
            no CRS or no polygons.
        InputFileError: if its footprints file is missing, empty or not a vector file.
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
    """Make the region step by step and write its files into ``out``."""
    footprints = read_footprints(config.footprints) if config.footprints is not None else None
    grid = Grid.of(config)
    log.info(
        "synthetic region: seed %d, %d x %d px at %s%s",
        config.seed,
        grid.W,
        grid.H,
        grid.crs,
        f", preset {config.preset}" if config.preset is not None else "",
    )

    land = make_land(config, grid)
    farms = place_farms(config, grid, land, footprints=footprints)
    assign_roles(config, farms)
    render_farms(config, grid, land, farms)
    lookalikes = place_lookalikes(config, grid, land, farms)
    render_lookalikes(grid, land, lookalikes)
    sky = make_sky(config, grid)
    landcover = classify_landcover(land)

    files = RegionFiles.in_folder(out)
    tags = _scene_tags(config, grid)
    look = _Look(farm_mix(farms), palette_for(config), make_haze(config, grid), psf_for(config))
    scl = _write_scene(files, config, grid, land, look, sky, landcover, tags)
    _write_class_maps(files, grid, scl, landcover, tags)
    xml, osm_counts = build_osm_xml(config, grid, land, farms)
    write_text(files.osm, xml)
    date = config.resolved_date
    _write_truth(files.truth, grid, farms, date)
    with_lookalikes = config.preset is not None or bool(lookalikes)
    if with_lookalikes:
        _write_lookalikes(files.lookalikes, grid, lookalikes, date)

    landcover_share = _class_shares(landcover, len(LANDCOVER_CLASSES))
    scl_share = _class_shares(scl, len(SCL_CLASSES))
    summary = _summary(
        config,
        grid,
        files.written(lookalikes=with_lookalikes),
        tags["SCENE_ID"],
        farms,
        osm_counts,
        landcover_share,
        scl_share,
    )
    if config.preset is not None:
        summary["psf_sigma_px"] = {"10m": round(look.psf.sigma_10m, 4)}
        if look.psf.sigma_20m is not None:
            summary["psf_sigma_px"]["20m"] = round(look.psf.sigma_20m, 4)
        summary["counts"]["rooftop"] = sum(f.roof is not None for f in farms)
    if with_lookalikes:
        kinds = [it.kind for it in lookalikes]
        summary["counts"]["lookalikes"] = {k: kinds.count(k) for k in sorted(set(kinds))}
        summary["counts"]["partly_built"] = sum(f.unbuilt is not None for f in farms)
    write_json(files.config, summary)
    log.info(
        "wrote %s: %d farms (%d mapped), %.1f %% solar",
        out,
        len(farms),
        sum(f.mapped for f in farms),
        100 * landcover_share[7],
    )
    return files


def _scene_tags(config: RegionConfig, grid: Grid) -> dict[str, Any]:
    """Dataset tags of ``scene.tif``: id, time, platform, L2A encoding, provenance."""
    to_ll = Transformer.from_crs(grid.crs, 4326, always_xy=True)
    _, lat_c = to_ll.transform(grid.x0 + grid.W * 5.0, grid.y0 - grid.H * 5.0)
    return {
        "SCENE_ID": _scene_id(config, grid.crs, lat_c),
        "DATETIME": f"{config.resolved_date}T05:16:51Z",
        "SPACECRAFT": "Sentinel-2A",
        "PROCESSING_BASELINE": "05.09",
        "BOA_ADD_OFFSET": L2A_BOA_ADD_OFFSET,
        "BOA_QUANTIFICATION_VALUE": L2A_QUANTIFICATION,
        "REFLECTANCE_ENCODING": "L2A_DN",
        "SOLARMAP_SYNTHETIC": 1,
        "SOLARMAP_SEED": config.seed,
    }


def _write_class_maps(
    files: RegionFiles,
    grid: Grid,
    scl: NDArray[np.uint8],
    landcover: NDArray[np.uint8],
    tags: dict[str, Any],
) -> None:
    """Write ``scene_SCL.tif`` (20 m) and ``landcover.tif`` (10 m)."""
    write_cog(
        files.scl,
        scl,
        crs=grid.crs,
        transform=grid.transform * Affine.scale(2.0),
        nodata=0,
        descriptions=["SCL"],
        tags={"SCENE_ID": tags["SCENE_ID"], "DATETIME": tags["DATETIME"]},
        overview_resampling="nearest",
        style=scl_style(),
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
        style=palette_style(LANDCOVER_CLASSES, colours=_LANDCOVER_COLOURS, hidden=(0,)),
    )


def _class_shares(classes: NDArray[np.uint8], n: int) -> NDArray[np.float64]:
    """Share of the pixels in each class ``0..n-1`` (or more, when higher classes occur)."""
    return np.bincount(classes.ravel(), minlength=n) / classes.size


@dataclass(frozen=True)
class _Look:
    """How the region looks: what the farms are made of, the end-members, the haze, the
    instrument's blur."""

    farms: FarmMix
    palette: Palette
    haze: Haze | None
    psf: Psf


def _summary(
    config: RegionConfig,
    grid: Grid,
    files: dict[str, Path],
    scene_id: str,
    farms: list[Farm],
    osm_counts: dict[str, int],
    landcover_share: NDArray[np.float64],
    scl_share: NDArray[np.float64],
) -> dict[str, Any]:
    """The content of ``region.json``: generator, config, grid, scene id, counts, class shares
    and file names."""
    return {
        "generator": "data_prep.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": dataclasses.asdict(config),
        "origin": list(grid.bounds[0::3]),
        "crs": f"EPSG:{config.resolved_epsg}",
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
            LANDCOVER_CLASSES[k]: round(float(landcover_share[k]), 5) for k in LANDCOVER_CLASSES
        },
        "scl_share": {SCL_CLASSES[k]: round(float(scl_share[k]), 5) for k in SCL_WRITTEN},
        "files": {k: v.name for k, v in files.items()},
    }


def _write_scene(
    files: RegionFiles,
    config: RegionConfig,
    grid: Grid,
    land: Land,
    look: _Look,
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
        scales=[1.0 / L2A_QUANTIFICATION] * len(BANDS),
        offsets=[L2A_BOA_ADD_OFFSET / L2A_QUANTIFICATION] * len(BANDS),
        style=image_style(),
    ) as dst:
        for strip, r0 in enumerate(range(0, grid.H, _STRIP_ROWS)):
            r1 = min(grid.H, r0 + _STRIP_ROWS)
            dn, scl_strip = _synthesise_strip(config, land, look, *sky, landcover, r0, r1, strip)
            dst.write(dn, window=Window(0, r0, grid.W, r1 - r0))
            scl[r0 // 2 : r1 // 2] = scl_strip
    return scl


def _write_truth(path: Path, grid: Grid, farms: list[Farm], date: str) -> None:
    import geopandas as gpd

    def kind(f: Farm) -> str:
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
        write_vector(gdf, path, layer="farms", style=outline_style(colour="#ffff00"))


def _write_lookalikes(path: Path, grid: Grid, items: list[LookAlike], date: str) -> None:
    """Write ``lookalikes.gpkg``: kind, farm_id and outline of every look-alike."""
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(
        {
            "kind": [it.kind for it in items],
            "farm_id": np.array([it.farm_id for it in items], dtype=np.int32),
        },
        geometry=[it.geometry for it in items],
        crs=grid.crs,
    )
    with _fixed_gpkg_date(date):
        write_vector(gdf, path, layer="lookalikes", style=outline_style(colour="#ff00ff"))


def _synthesise_strip(
    config: RegionConfig,
    land: Land,
    look: _Look,
    cloud: FloatMap,
    shadow: FloatMap,
    landcover: NDArray[np.uint8],
    r0: int,
    r1: int,
    strip: int,
) -> tuple[NDArray[np.uint16], NDArray[np.uint8]]:
    """DN ``[10, h, W]`` and SCL ``[h/2, W/2]`` of rows ``r0:r1``."""
    rows = slice(r0, r1)
    refl = surface_reflectance(land, look.farms, r0, r1, look.palette, psf=look.psf)
    add_sensor_noise(config, refl, strip)
    if look.haze is not None:
        apply_haze(refl, look.haze, rows)
    # Scene classification from the surface (before clouds), at 20 m.
    scl = classify_surface(refl, landcover[r0:r1:2, ::2])
    apply_sky(refl, cloud[rows], shadow[rows], land.maps["illum"][rows])
    resample_20m_bands(refl)
    classify_sky(scl, cloud[rows], shadow[rows])
    nodata = land.nodata[rows]
    scl[nodata[::2, ::2]] = SclClass.NO_DATA
    return _encode_dn(refl, nodata), scl


def _encode_dn(refl: FloatMap, nodata: NDArray[np.bool_]) -> NDArray[np.uint16]:
    """L2A digital numbers ``[10, h, W]`` of ``refl`` (overwritten), 0 at no data."""
    refl *= L2A_QUANTIFICATION
    refl -= L2A_BOA_ADD_OFFSET
    np.rint(refl, out=refl)
    dn = np.clip(refl, 1, 65535, out=refl).astype(np.uint16)
    dn[:, nodata] = 0
    return dn
