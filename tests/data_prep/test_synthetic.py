"""Tests for data_prep.synthetic: the offline demo region generator."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmnx as ox
import pytest
import shapely
from rasterio.features import rasterize

from data_prep.synthetic import (
    BOA_ADD_OFFSET,
    BOA_QUANTIFICATION_VALUE,
    LANDCOVER_CLASSES,
    SCL_CLASSES,
    SCL_WRITTEN,
    RegionConfig,
    RegionFiles,
    generate_region,
)
from solarmap.bands import BANDS
from solarmap.errors import InputError
from solarmap.geo import open_raster, read_vector

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
AUSTRIA = REALDATA / "austria-s2-2022"
CRS = "EPSG:32643"

#: The region most tests look at: small, cloudy enough that every SCL class shows up, with
#: enough farms for unmapped, orphan and plant farms all to occur.
BASE = RegionConfig(seed=1, size=384, n_farms=10, cloud_fraction=0.05)


# --------------------------------------------------------------------------- helpers


def reflectance(path: Path) -> np.ndarray:
    """Scene ``[10, H, W]`` as reflectance 0-1 (NaN at no data), decoded as L2A says."""
    with open_raster(path) as src:
        dn = src.read().astype("f4")
    refl = (dn + BOA_ADD_OFFSET) / BOA_QUANTIFICATION_VALUE
    refl[:, dn[0] == 0] = np.nan
    return refl


def read1(path: Path) -> np.ndarray:
    with open_raster(path) as src:
        return src.read(1)


def clear_10m(scl: np.ndarray) -> np.ndarray:
    """SCL clear-sky classes, repeated onto the 10 m grid."""
    clear = np.isin(scl, [4, 5, 6, 11])
    return np.repeat(np.repeat(clear, 2, axis=0), 2, axis=1)


def osm_features(path: Path) -> gpd.GeoDataFrame:
    gdf = ox.features_from_xml(path, tags={"power": ["plant", "generator"]})
    return gdf.to_crs(CRS)


def truth_of(files: RegionFiles) -> gpd.GeoDataFrame:
    return read_vector(files.truth, layer="farms")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> RegionFiles:
    return generate_region(tmp_path_factory.mktemp("region"), BASE)


@pytest.fixture(scope="module")
def features(region: RegionFiles) -> gpd.GeoDataFrame:
    return osm_features(region.osm)


@pytest.fixture(scope="module")
def truth(region: RegionFiles) -> gpd.GeoDataFrame:
    return truth_of(region)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    cfg = RegionConfig(seed=7, size=128)
    a = generate_region(tmp_path / "a", cfg)
    b = generate_region(tmp_path / "b", cfg)
    for name in ("scene", "scl", "osm", "truth", "landcover", "config"):
        pa, pb = getattr(a, name), getattr(b, name)
        assert pa.read_bytes() == pb.read_bytes(), f"{pa.name} differs between runs"
    assert np.array_equal(reflectance(a.scene), reflectance(b.scene), equal_nan=True)


def test_different_seed_gives_different_region(tmp_path: Path) -> None:
    a = generate_region(tmp_path / "a", RegionConfig(seed=7, size=128))
    b = generate_region(tmp_path / "b", RegionConfig(seed=8, size=128))
    with open_raster(a.scene) as sa, open_raster(b.scene) as sb:
        assert not np.array_equal(sa.read(), sb.read())
        assert sa.transform != sb.transform  # different seeds are different places
    assert a.osm.read_bytes() != b.osm.read_bytes()


def test_origin_per_seed_unless_given() -> None:
    assert RegionConfig(seed=0).resolved_origin == (700000.0, 1560000.0)
    assert RegionConfig(seed=1).resolved_origin != RegionConfig(seed=2).resolved_origin
    given = RegionConfig(seed=5, origin=(650000.0, 1500000.0))
    assert given.resolved_origin == (650000.0, 1500000.0)


# --------------------------------------------------------------------------- rasters


def test_scene_file_contract(region: RegionFiles) -> None:
    with open_raster(region.scene) as src:
        assert src.count == 10
        assert src.descriptions == BANDS
        assert src.dtypes == ("uint16",) * 10
        assert src.crs.to_epsg() == 32643
        assert src.res == (10.0, 10.0)
        assert src.nodata == 0
        assert (src.width, src.height) == (BASE.size, BASE.size)
        assert src.transform.c == BASE.resolved_origin[0]
        assert src.transform.f == BASE.resolved_origin[1]
        tags = src.tags()
        assert tags["BOA_ADD_OFFSET"] == "-1000"
        assert tags["BOA_QUANTIFICATION_VALUE"] == "10000"
        assert tags["REFLECTANCE_ENCODING"] == "L2A_DN"
        assert tags["SPACECRAFT"] == "Sentinel-2A"
        assert tags["PROCESSING_BASELINE"] == "05.09"
        assert tags["SOLARMAP_SYNTHETIC"] == "1"
        assert tags["DATETIME"].startswith(BASE.date)
        assert tags["SCENE_ID"].startswith("S2A_MSIL2A_20220315T")
        assert src.scales == (1e-4,) * 10
        assert src.offsets == (-0.1,) * 10
        dn = src.read()
    valid = dn[0] > 0
    assert (dn[:, valid] > 0).all()  # no band is 0 where the others have data
    # GDAL-style unscaling gives the same reflectance as the L2A tags.
    refl = dn[:, valid] * 1e-4 - 0.1
    assert float(np.nanmin(refl)) > -0.1
    assert 0.0 < float(np.median(refl)) < 0.5


def test_scl_contract_clouds_shadows_nodata(region: RegionFiles) -> None:
    with open_raster(region.scl) as scl_src, open_raster(region.scene) as scene_src:
        assert scl_src.res == (20.0, 20.0)
        assert scl_src.crs == scene_src.crs
        assert scl_src.bounds == scene_src.bounds
        assert scl_src.dtypes == ("uint8",)
        scl = scl_src.read(1)
        dn = scene_src.read()
    assert set(np.unique(scl)) <= set(SCL_WRITTEN) <= set(SCL_CLASSES)
    present = set(np.unique(scl).tolist())
    assert {0, 3, 4, 5, 6} <= present
    assert present & {8, 9}
    cloud_share = np.isin(scl, [8, 9, 10]).mean()
    assert 0.5 * BASE.cloud_fraction < cloud_share < 2.0 * BASE.cloud_fraction
    # No data: the same pixels in every band and in SCL, along one edge.
    nodata = np.repeat(np.repeat(scl == 0, 2, axis=0), 2, axis=1)
    assert ((dn == 0).all(axis=0) == nodata).all()
    assert nodata[:, 0].all() or nodata[:, -1].all()
    # Clouds are bright and white-ish; shadows are dark.
    thick = np.repeat(np.repeat(scl == 9, 2, axis=0), 2, axis=1)
    shadow = np.repeat(np.repeat(scl == 3, 2, axis=0), 2, axis=1)
    clear = clear_10m(scl)
    b02 = dn[0].astype("f4") * 1e-4 - 0.1
    assert np.median(b02[thick]) > 0.3
    assert np.median(b02[shadow]) < np.median(b02[clear])


def test_no_clouds_no_nodata_when_asked(tmp_path: Path) -> None:
    files = generate_region(
        tmp_path, RegionConfig(seed=2, size=128, cloud_fraction=0.0, nodata_fraction=0.0)
    )
    scl = read1(files.scl)
    assert not np.isin(scl, [0, 3, 8, 9, 10]).any()
    with open_raster(files.scene) as src:
        assert (src.read() > 0).all()


def test_landcover_matches_truth(region: RegionFiles, truth: gpd.GeoDataFrame) -> None:
    with open_raster(region.landcover) as src:
        lc = src.read(1)
        assert src.res == (10.0, 10.0)
        transform, shape = src.transform, src.shape
    assert set(np.unique(lc)) <= set(LANDCOVER_CLASSES)
    assert {1, 2, 3, 5, 7} <= set(np.unique(lc).tolist())
    burned = rasterize(truth.geometry, out_shape=shape, transform=transform) > 0
    solar = lc == 7
    iou = (burned & solar).sum() / (burned | solar).sum()
    assert iou > 0.9


def test_snow_patches(tmp_path: Path) -> None:
    files = generate_region(tmp_path, RegionConfig(seed=4, size=256, snow=True))
    lc, scl = read1(files.landcover), read1(files.scl)
    assert (lc == 6).mean() > 0.01
    assert (scl == 11).any()
    refl = reflectance(files.scene)
    snow = (lc == 6) & clear_10m(scl)
    assert np.median(refl[0][snow]) > 0.6  # bright in the visible
    assert np.median(refl[8][snow]) < 0.2  # dark in SWIR (B11)


# --------------------------------------------------------------------------- OSM


def test_osm_xml_is_osm(region: RegionFiles) -> None:
    root = ET.parse(region.osm).getroot()
    assert root.tag == "osm"
    assert root.get("version") == "0.6"
    bounds = root.find("bounds")
    assert bounds is not None
    lat, lon = float(bounds.get("minlat", "nan")), float(bounds.get("minlon", "nan"))
    assert 13.0 < lat < 16.0 and 76.0 < lon < 79.0  # Karnataka, from UTM 43N via pyproj
    nodes = root.findall("node")
    assert nodes and all(int(n.get("id", "0")) > 0 for n in nodes)
    for el in (*nodes[:5], *root.findall("way")[:5], *root.findall("relation")[:5]):
        assert el.get("version") and el.get("timestamp", "").endswith("Z")
    keys = {(t.get("k"), t.get("v")) for t in root.iter("tag")}
    assert any(k == "highway" for k, _ in keys)
    assert ("landuse", "farmland") in keys
    assert ("landuse", "residential") in keys
    assert ("natural", "water") in keys
    assert ("plant:source", "solar") in keys
    assert ("plant:method", "photovoltaic") in keys
    assert ("generator:type", "solar_photovoltaic_panel") in keys


def test_osm_plants_and_generators(features: gpd.GeoDataFrame, truth: gpd.GeoDataFrame) -> None:
    plants = features[features["power"] == "plant"]
    gens = features[features["power"] == "generator"]
    kinds = set(plants.index.get_level_values("element"))
    assert kinds == {"way", "relation"}
    assert (plants["plant:source"] == "solar").all()
    rel = plants.xs("relation", level="element")
    holes = [
        g
        for g in rel.geometry
        for p in getattr(g, "geoms", [g])
        if isinstance(p, shapely.Polygon) and len(p.interiors) > 0
    ]
    assert holes, "no multipolygon plant with an inner ring"
    assert len(gens) > 0
    assert (gens["generator:source"] == "solar").all()
    assert (gens["generator:method"] == "photovoltaic").all()
    # Some generators lie outside every plant: the orphan farms.
    plant_union = shapely.union_all(plants.geometry.buffer(1.0).to_numpy())
    outside = ~gens.geometry.representative_point().within(plant_union)
    assert outside.any()
    assert not outside.all()  # and some plants carry their rows
    # Every mapped farm is either one plant or a group of orphan generators.
    mapped = truth[truth["mapped"]]
    assert len(plants) + int(mapped["orphan"].sum()) == len(mapped)
    assert 0 < mapped["orphan"].sum() < len(mapped)


def test_osm_plants_match_truth_and_skip_unmapped(
    features: gpd.GeoDataFrame, truth: gpd.GeoDataFrame
) -> None:
    plants = features[features["power"] == "plant"]
    unmapped = truth[~truth["mapped"]]
    assert len(unmapped) >= 1
    # Unmapped farms: no plant and no generator anywhere near them.
    near = shapely.union_all(unmapped.geometry.buffer(50.0).to_numpy())
    assert not features.geometry.intersects(near).any()
    # Mapped plants trace the true footprints (to OSM's 7-decimal precision).
    drawn = truth[truth["mapped"] & ~truth["orphan"]]
    for geom in drawn.geometry:
        best = plants.geometry.intersection(geom).area.max()
        union = shapely.union_all([geom, *plants.geometry[plants.intersects(geom)]])
        assert best / union.area > 0.99
    # Orphan farms: generators inside, no plant.
    for geom in truth[truth["orphan"]].geometry:
        assert not plants.intersects(geom).any()
        assert features.geometry.within(geom.buffer(1.0)).sum() > 0


# --------------------------------------------------------------------------- truth


def test_truth_table(region: RegionFiles, truth: gpd.GeoDataFrame) -> None:
    assert list(truth.columns[:5]) == ["farm_id", "mapped", "orphan", "area_ha", "n_blocks"]
    assert truth.crs.to_epsg() == 32643
    assert len(truth) == BASE.n_farms
    assert truth["farm_id"].is_unique
    assert truth["geometry"].is_valid.all()
    assert truth["area_ha"].between(1.0, 200.0).all()
    assert np.allclose(truth.area / 10_000.0, truth["area_ha"], rtol=1e-3)
    assert (truth["n_blocks"] >= 1).all()
    assert not (truth["orphan"] & ~truth["mapped"]).any()
    # Farms do not overlap one another (nor touch: each keeps a free ring).
    union = shapely.union_all(truth.geometry.to_numpy())
    assert math.isclose(union.area, truth.area.sum(), rel_tol=1e-9)
    pairs = truth.sjoin(truth, predicate="intersects")
    assert (pairs.index == pairs["index_right"]).all()
    summary = json.loads(region.config.read_text())
    assert summary["config"]["seed"] == BASE.seed
    assert summary["counts"]["farms"] == len(truth)
    assert summary["counts"]["mapped"] == int(truth["mapped"].sum())
    assert summary["generator_version"]
    assert math.isclose(sum(summary["landcover_share"].values()), 1.0, abs_tol=1e-3)


def test_truth_areas_span_sizes(tmp_path: Path) -> None:
    files = generate_region(tmp_path, RegionConfig(seed=3, size=1024, cloud_fraction=0.0))
    truth = truth_of(files)
    assert len(truth) >= 60
    assert truth["area_ha"].between(1.0, 200.0).all()
    assert truth["area_ha"].max() > 50.0
    assert truth["area_ha"].min() < 5.0
    assert truth.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()


# --------------------------------------------------------------------------- spectra


def real_solar_percentiles() -> tuple[np.ndarray, np.ndarray]:
    """Per-band 5th and 95th percentile of real solar pixels (reflectance 0-1)."""
    pixels = []
    for scene in sorted(AUSTRIA.glob("s2_*_*.tif")):
        if "median" in scene.name:
            continue
        mask_path = AUSTRIA / f"mask_{scene.name.split('_')[1]}.tif"
        with open_raster(scene) as src:
            refl = src.read().astype("f8") / 10_000.0
        pixels.append(refl[:, read1(mask_path) == 1])
    solar = np.concatenate(pixels, axis=1)
    p5, p95 = np.percentile(solar, [5, 95], axis=1)
    return p5, p95


@pytest.mark.realdata
@pytest.mark.skipif(not AUSTRIA.exists(), reason="shared/realdata is absent")
def test_solar_spectra_within_real_envelope(region: RegionFiles) -> None:
    p5, p95 = real_solar_percentiles()
    refl = reflectance(region.scene)
    lc, clear = read1(region.landcover), clear_10m(read1(region.scl))
    median = np.median(refl[:, (lc == 7) & clear], axis=1)
    inside = (median >= p5) & (median <= p95)
    assert inside.all(), f"bands outside the real envelope: {np.array(BANDS)[~inside]}"


def test_solar_blue_up_nir_down(region: RegionFiles) -> None:
    refl = reflectance(region.scene)
    lc, clear = read1(region.landcover), clear_10m(read1(region.scl))
    solar = np.median(refl[:, (lc == 7) & clear], axis=1)
    veg = np.median(refl[:, (lc == 1) & clear], axis=1)
    assert solar[BANDS.index("B02")] > veg[BANDS.index("B02")] + 0.005
    assert solar[BANDS.index("B08")] < veg[BANDS.index("B08")] - 0.02
    # Dark panels pull the whole red edge and NIR down, not only B08.
    for band in ("B06", "B07", "B8A"):
        assert solar[BANDS.index(band)] < veg[BANDS.index(band)]


# --------------------------------------------------------------------------- spurious cues


@pytest.mark.parametrize(("cue", "lc_class", "b04_min"), [("pad", 8, 0.25), ("snow", 6, 0.6)])
def test_spurious_cue_rings_mapped_farms_only(
    tmp_path: Path, cue: str, lc_class: int, b04_min: float
) -> None:
    cfg = replace(BASE, size=256, n_farms=6, cloud_fraction=0.0, spurious=cue)  # type: ignore[arg-type]
    files = generate_region(tmp_path, cfg)
    truth = truth_of(files)
    with open_raster(files.landcover) as src:
        lc, transform = src.read(1), src.transform
    refl = reflectance(files.scene)
    assert (lc == lc_class).any()
    assert np.median(refl[2][lc == lc_class]) > b04_min
    for row in truth.itertuples():
        outer = (
            shapely.Polygon(row.geometry.exterior)
            if row.geometry.geom_type == "Polygon"
            else (shapely.MultiPolygon([shapely.Polygon(p.exterior) for p in row.geometry.geoms]))
        )
        ring = outer.buffer(15.0).difference(outer.buffer(5.0))
        in_ring = rasterize([ring], out_shape=lc.shape, transform=transform) > 0
        share = (lc[in_ring] == lc_class).mean()
        if row.mapped:
            assert share > 0.8, f"farm {row.farm_id}: {cue} ring covers only {share:.0%}"
        else:
            assert share == 0.0, f"unmapped farm {row.farm_id} has a {cue} ring"
    assert (~truth["mapped"]).any() and truth["mapped"].any()


def test_spurious_cue_width_is_set_in_metres(tmp_path: Path) -> None:
    """With a 90 m mean ring (60-120 m) the land 45-55 m from a mapped farm is pad; with the
    default (20-40 m) it is not."""
    shares = {}
    for width in (30.0, 90.0):
        cfg = replace(BASE, size=256, n_farms=6, cloud_fraction=0.0, spurious="pad",
                      spurious_width=width)  # fmt: skip
        files = generate_region(tmp_path / str(width), cfg)
        truth = truth_of(files)
        with open_raster(files.landcover) as src:
            lc, transform = src.read(1), src.transform
        mapped = truth[truth["mapped"]]
        rings = [g.buffer(55.0).difference(g.buffer(45.0)) for g in mapped.geometry]
        far = rasterize(rings, out_shape=lc.shape, transform=transform) > 0
        shares[width] = (lc[far] == 8).mean()
    assert shares[90.0] > 0.6 > 0.1 > shares[30.0]


def test_no_spurious_cue_by_default(region: RegionFiles) -> None:
    assert not (read1(region.landcover) == 8).any()


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 62},
        {"size": 257},
        {"size": 20000},
        {"seed": -1},
        {"seed": 1.5},
        {"epsg": 4326},
        {"epsg": 1},
        {"origin": (float("nan"), 0.0)},
        {"date": "2022-13-01"},
        {"n_farms": 0},
        {"unmapped_fraction": 1.5},
        {"orphan_generator_fraction": -0.1},
        {"cloud_fraction": 0.9},
        {"nodata_fraction": -0.01},
        {"spurious": "glitter"},
        {"spurious_width": 1.0},
        {"spurious_width": float("inf")},
        {"snow": "yes"},
    ],
)
def test_bad_config_raises_input_error(bad: dict[str, object]) -> None:
    with pytest.raises(InputError):
        RegionConfig(**bad)  # type: ignore[arg-type]


def test_generate_region_rejects_non_config(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        generate_region(tmp_path, {"seed": 1})  # type: ignore[arg-type]
