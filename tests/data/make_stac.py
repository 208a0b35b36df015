"""Sentinel-2 L2A STAC items made from a synthetic region, for the STAC and survey tests.

:func:`write_items` turns one region from ``data_prep.synthetic.generate_region`` into several
acquisitions of it: per item, one uint16 COG per band (10 m; SCL at 20 m), each date with its
own clouds (SCL 9, bright) and its own encoding, and a STAC item per acquisition in the
Earth Search style (common-name asset keys, ``raster:bands``) or the Planetary Computer style
(band-name keys, no ``raster:bands``). :func:`write_static_catalog` links them into a
self-contained static catalog (pystac); :class:`tests.data.stac_standin.StacStandin` serves
the same items over HTTP.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
from rasterio.warp import transform_bounds, transform_geom
from shapely.geometry import box, mapping

from solarmap.bands import BANDS
from solarmap.geo import write_cog

_COMMON = {
    "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1", "B06": "rededge2",
    "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B11": "swir16", "B12": "swir22",
    "SCL": "scl",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class ItemSpec:
    """One acquisition.

    Attributes:
        date: sensing date.
        baseline: processing baseline stated (``None``: none stated at all).
        data_offset: DN added to ``reflectance × 10000`` in the files (1000 from 04.00 on;
            0 for a product whose offset was applied already).
        stated_offset: ``raster:bands`` offset stated (``None``: no ``raster:bands``).
        cloud: share of the tile under cloud.
        style: asset keys of Earth Search (common names) or Planetary Computer (band names).
        name_baseline: baseline written into ``s2:product_uri`` (``None``: the same as
            ``baseline``; ``""``: no product name).
        cloud_cover: ``eo:cloud_cover`` stated.
    """

    date: dt.date
    baseline: str | None = "05.10"
    data_offset: int = 1000
    stated_offset: float | None = None
    cloud: float = 0.15
    style: Literal["earth-search", "planetary-computer"] = "planetary-computer"
    name_baseline: str | None = None
    cloud_cover: float = 15.0


def _clouds(shape: tuple[int, int], share: float, seed: int) -> np.ndarray:
    """A boolean cloud mask of about ``share`` of the grid, in blobs."""
    from scipy.ndimage import gaussian_filter

    if share <= 0:
        return np.zeros(shape, dtype=bool)
    noise = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma=6)
    return noise > np.quantile(noise, 1 - share)


def item_id(spec: ItemSpec, tile: str = "43PDA") -> str:
    return f"S2B_{tile}_{spec.date:%Y%m%d}_0_L2A"


def write_items(
    scene: Path,
    scl: Path,
    out: Path,
    specs: list[ItemSpec],
    *,
    href_base: str | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Write each spec's band COGs under ``out/<item id>/`` and return the item dicts.

    Asset hrefs are ``href_base/<item id>/<band>.tif`` when ``href_base`` is given (a
    server's URL), else absolute file paths.
    """
    with rasterio.open(scene) as src:
        dn = src.read().astype(np.int32)
        offset = int(float(src.tags().get("BOA_ADD_OFFSET", 0)))
        crs, transform, bounds = src.crs, src.transform, src.bounds
    refl10k = np.where(dn > 0, dn + offset, 0)  # reflectance x 10000 (0: no data)
    with rasterio.open(scl) as src:
        scl_base = src.read(1)
        scl_transform = src.transform
    lonlat = transform_bounds(crs, "EPSG:4326", *bounds)
    footprint = transform_geom(crs, "EPSG:4326", mapping(box(*bounds)))
    items = []
    for k, spec in enumerate(specs):
        ident = item_id(spec)
        folder = out / ident
        folder.mkdir(parents=True, exist_ok=True)
        cloud20 = _clouds(scl_base.shape, spec.cloud, seed * 1000 + k)
        cloud10 = np.kron(cloud20, np.ones((2, 2), dtype=bool))[: dn.shape[1], : dn.shape[2]]
        rng = np.random.default_rng(seed * 1000 + k + 500)
        assets: dict[str, Any] = {}
        for b, band in enumerate((*BANDS, "SCL")):
            if band == "SCL":
                arr = np.where(cloud20, 9, scl_base).astype(np.uint8)
                tf, res = scl_transform, 20
            else:
                noise = rng.normal(0, 20, refl10k[b].shape)
                v = np.where(cloud10, 6000 + noise, refl10k[b] + noise)
                arr = np.where(refl10k[b] > 0, np.clip(v + spec.data_offset, 1, 65535), 0)
                arr = arr.astype(np.uint16)
                tf, res = transform, 10
            path = folder / f"{band}.tif"
            write_cog(path, arr, crs=crs, transform=tf, nodata=0)
            key = _COMMON[band] if spec.style == "earth-search" else band
            asset: dict[str, Any] = {
                "href": f"{href_base}/{ident}/{band}.tif" if href_base else str(path.resolve()),
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
                "proj:shape": list(arr.shape),
                "proj:transform": list(tf)[:6],
                "gsd": res,
            }
            if band != "SCL":
                asset["eo:bands"] = [{"name": band, "common_name": _COMMON[band]}]
                if spec.stated_offset is not None:
                    asset["raster:bands"] = [
                        {"nodata": 0, "data_type": "uint16", "scale": 0.0001,
                         "offset": spec.stated_offset}
                    ]  # fmt: skip
            assets[key] = asset
        props: dict[str, Any] = {
            "datetime": f"{spec.date.isoformat()}T05:16:51Z",
            "eo:cloud_cover": spec.cloud_cover,
            "proj:epsg": crs.to_epsg(),
            "platform": "sentinel-2b",
        }
        if spec.baseline is not None:
            props["s2:processing_baseline"] = spec.baseline
        name_baseline = spec.baseline if spec.name_baseline is None else spec.name_baseline
        if name_baseline:
            props["s2:product_uri"] = (
                f"S2B_MSIL2A_{spec.date:%Y%m%d}T051651_N{name_baseline.replace('.', '')}"
                f"_R004_T43PDA_{spec.date:%Y%m%d}T081022.SAFE"
            )
        items.append(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "stac_extensions": [
                    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
                ],
                "id": ident,
                "collection": "sentinel-2-l2a",
                "bbox": list(lonlat),
                "geometry": footprint,
                "properties": props,
                "assets": assets,
                "links": [],
            }
        )
    return items


def write_static_catalog(out: Path, items: list[dict[str, Any]]) -> Path:
    """A self-contained static catalog (``out/catalog.json``) with a collection of ``items``."""
    import pystac

    cat = pystac.Catalog(id="test-catalog", description="synthetic L2A items")
    extent = pystac.Extent(
        pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]),
        pystac.TemporalExtent([[None, None]]),
    )
    coll = pystac.Collection(id="sentinel-2-l2a", description="synthetic L2A", extent=extent)
    cat.add_child(coll)
    for d in items:
        coll.add_item(pystac.Item.from_dict(json.loads(json.dumps(d))))
    cat.normalize_hrefs(str(out))
    cat.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return out / "catalog.json"


def erase_farms(scene: Path, truth: Path, hidden: list[int], out: Path) -> Path:
    """A copy of ``scene`` with the farms ``hidden`` (rows of ``truth``) not there: their
    pixels, and 20 m around them, take the median of the ground 20-60 m outside, with noise
    (a plot before construction, or after the panels went)."""
    import geopandas as gpd
    from rasterio.features import rasterize

    with rasterio.open(scene) as src:
        dn = src.read()
        profile = src.profile
        tags = src.tags()
        descriptions = src.descriptions
        tf, shape, crs = src.transform, (src.height, src.width), src.crs
    farms = gpd.read_file(truth, layer="farms").to_crs(crs)
    rng = np.random.default_rng(len(hidden))
    for k in hidden:
        geom = farms.geometry.iloc[k]
        inside = rasterize([geom.buffer(20)], out_shape=shape, transform=tf).astype(bool)
        ring = rasterize([geom.buffer(60).difference(geom.buffer(20))], out_shape=shape,
                         transform=tf).astype(bool)  # fmt: skip
        for b in range(dn.shape[0]):
            ground = np.median(dn[b][ring & (dn[b] > 0)])
            noise = rng.normal(0, 0.01 * ground, int(inside.sum()))
            dn[b][inside] = np.clip(ground + noise, 1, 65535).astype(dn.dtype)
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(dn)
        dst.update_tags(**tags)
        for i, d in enumerate(descriptions, start=1):
            if d:
                dst.set_band_description(i, d)
    return out
