"""Tests for the climate and landscape presets of data_prep.synthetic, real footprints, partly
built farms and look-alikes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import osmnx as ox
import pytest
import shapely
from rasterio.features import rasterize

from data_prep.synthetic import RegionConfig, RegionFiles, generate_region
from data_prep.synthetic.presets import (
    AT_BACKGROUND,
    AT_PLANT_HA_MEDIAN,
    AT_SOLAR,
    IN_BACKGROUND,
    IN_SOLAR,
    PRESET_ENDMEMBERS,
    PRESET_NAMES,
    PRESETS,
)
from solarmap.bands import BANDS
from solarmap.errors import InputError, InputFileError
from solarmap.geo import open_raster, read_vector
from tests.conftest import AUSTRIA, REALDATA, needs_realdata

INDIA_FOOTPRINTS = REALDATA / "india" / "solar_farms_india_2021_merged_simplified.geojson"
AUSTRIA_FOOTPRINTS = AUSTRIA / "osm_solar_polygons_austria.geojson"
B02, B03, B04, B08, B11 = (BANDS.index(b) for b in ("B02", "B03", "B04", "B08", "B11"))


def preset_config(name: str, **kw: object) -> RegionConfig:
    """A small clear preset region with enough farms for spectra statistics."""
    opts: dict[str, object] = {"seed": 3, "size": 256, "n_farms": 8, "cloud_fraction": 0.0}
    opts.update(kw)
    return RegionConfig(preset=name, **opts)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- helpers


def reflectance(path: Path) -> np.ndarray:
    with open_raster(path) as src:
        dn = src.read().astype("f4")
    refl = (dn - 1000.0) / 10_000.0
    refl[:, dn[0] == 0] = np.nan
    return refl


def read1(path: Path) -> np.ndarray:
    with open_raster(path) as src:
        return src.read(1)


def truth_of(files: RegionFiles) -> gpd.GeoDataFrame:
    return read_vector(files.truth, layer="farms")


def lookalikes_of(files: RegionFiles) -> gpd.GeoDataFrame:
    return read_vector(files.lookalikes, layer="lookalikes")


def clear_10m(files: RegionFiles) -> np.ndarray:
    scl = read1(files.scl)
    return np.repeat(np.repeat(np.isin(scl, [4, 5, 6, 11]), 2, axis=0), 2, axis=1)


def roofs_of(files: RegionFiles) -> gpd.GeoDataFrame:
    """The roofs under rooftop plants (look-alikes of kind ``roof``)."""
    look = lookalikes_of(files)
    return look[look["kind"] == "roof"]


def medians(*regions: RegionFiles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median spectra, over the pixels of all ``regions``, of the solar pixels of ground-mounted
    plants (as the real chips are; rooftop plants left out), of the land around the farms
    (vegetation and bare soil 50 to 250 m from a fence, as the real chips frame a plant) and of
    the vegetation there."""
    solar, background, vegetation = [], [], []
    for files in regions:
        refl = reflectance(files.scene)
        lc = read1(files.landcover)
        clear = clear_10m(files)
        with open_raster(files.scene) as src:
            transform = src.transform
        farms = shapely.union_all(truth_of(files).geometry.to_numpy())
        ring = farms.buffer(250.0).difference(farms.buffer(50.0))
        near = rasterize([ring], out_shape=lc.shape, transform=transform) > 0
        roofs = roofs_of(files).geometry
        on_roof = np.zeros(lc.shape, bool)
        if len(roofs):
            on_roof = (
                rasterize(roofs, out_shape=lc.shape, transform=transform, all_touched=True) > 0
            )
        solar.append(refl[:, (lc == 7) & clear & ~on_roof])
        background.append(refl[:, near & np.isin(lc, [1, 2]) & clear])
        vegetation.append(refl[:, near & (lc == 1) & clear])
    veg = np.concatenate(vegetation, axis=1)
    return (
        np.median(np.concatenate(solar, axis=1), axis=1),
        np.median(np.concatenate(background, axis=1), axis=1),
        np.median(veg, axis=1) if veg.shape[1] >= 50 else np.full(len(BANDS), np.nan),
    )


def rectangularity(geoms: gpd.GeoSeries) -> np.ndarray:
    """Area over the area of the minimum rotated rectangle, per polygon part."""
    parts = shapely.get_parts(geoms.to_numpy())
    return shapely.area(parts) / shapely.area(shapely.oriented_envelope(parts))


def orientations(geoms: gpd.GeoSeries) -> np.ndarray:
    """Angle (degrees, 0-90) of each part's minimum rotated rectangle to the grid axes."""
    out = []
    for p in shapely.get_parts(geoms.to_numpy()):
        ring = np.asarray(shapely.oriented_envelope(p).exterior.coords)
        dx, dy = ring[1] - ring[0]
        out.append(math.degrees(math.atan2(dy, dx)) % 90.0)
    return np.array(out)


def off_axis(angles: np.ndarray, tol: float = 10.0) -> np.ndarray:
    return np.minimum(angles, 90.0 - angles) > tol


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RegionFiles]:
    root = tmp_path_factory.mktemp("presets")
    return {name: generate_region(root / name, preset_config(name)) for name in PRESET_NAMES}


# --------------------------------------------------------------------------- config


def test_every_preset_gives_every_spectrum() -> None:
    for name, spec in PRESETS.items():
        assert spec.name == name
        assert set(spec.spectra) == set(PRESET_ENDMEMBERS), name
        for lo, hi in spec.spectra.values():
            assert len(lo) == len(hi) == len(BANDS)
            assert all(0.0 <= a <= b <= 1.0 for a, b in zip(lo, hi, strict=True)), name
        assert len(spec.greenness) == 12


@pytest.mark.parametrize(
    ("name", "epsg", "lat", "lon"),
    [
        ("deccan", 32643, (13.0, 16.0), (76.0, 79.0)),
        ("central-europe", 32633, (47.0, 49.5), (15.0, 18.0)),
        ("alpine", 32633, (46.5, 48.0), (12.0, 14.5)),
        ("desert", 32642, (26.0, 29.0), (70.0, 73.5)),
        ("rice-paddy", 32645, (22.0, 24.5), (87.0, 89.5)),
    ],
)
def test_preset_sets_place_and_date(
    name: str, epsg: int, lat: tuple[float, float], lon: tuple[float, float]
) -> None:
    from pyproj import Transformer

    cfg = RegionConfig(preset=name, size=128)  # type: ignore[arg-type]
    assert cfg.epsg == epsg
    assert cfg.date == PRESETS[name].date
    x, y = cfg.resolved_origin
    lo, la = Transformer.from_crs(epsg, 4326, always_xy=True).transform(x, y)
    assert lat[0] < la < lat[1] and lon[0] < lo < lon[1]
    # Given values win over the preset's.
    own = RegionConfig(preset=name, epsg=32632, origin=(500000.0, 5300000.0), date="2022-01-10")  # type: ignore[arg-type]
    assert (own.epsg, own.resolved_origin, own.date) == (32632, (500000.0, 5300000.0), "2022-01-10")


def test_no_preset_is_the_original_region() -> None:
    cfg = RegionConfig()
    assert (cfg.preset, cfg.footprints, cfg.epsg, cfg.date) == (None, None, 32643, "2022-03-15")
    assert cfg.resolved_origin == (700000.0, 1560000.0)


@pytest.mark.parametrize("bad", [{"preset": "tundra"}, {"preset": 3}, {"footprints": ""}])
def test_bad_preset_options_raise_input_error(bad: dict[str, object]) -> None:
    with pytest.raises(InputError) as info:
        RegionConfig(**bad)  # type: ignore[arg-type]
    if "preset" in bad:
        assert "choose one of deccan, central-europe, alpine, desert, rice-paddy" in str(info.value)


def test_greenness_follows_the_seasons() -> None:
    europe = PRESETS["central-europe"]
    assert europe.greenness_on("2022-06-15") > europe.greenness_on("2022-01-15") + 0.5
    deccan = PRESETS["deccan"]
    assert deccan.greenness_on("2022-09-15") > deccan.greenness_on("2022-04-15")
    # Dates between mid-months interpolate; the year wraps.
    assert min(europe.greenness[5:7]) <= europe.greenness_on("2022-07-01") <= 1.0
    assert europe.greenness_on("2022-12-31") == pytest.approx(
        (europe.greenness[11] + europe.greenness[0]) / 2, abs=0.02
    )


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_region_is_deterministic(tmp_path: Path, name: str) -> None:
    cfg = RegionConfig(seed=5, size=128, preset=name)  # type: ignore[arg-type]
    a = generate_region(tmp_path / "a", cfg)
    b = generate_region(tmp_path / "b", cfg)
    names = sorted(p.name for p in a.root.iterdir())
    assert names == sorted(p.name for p in b.root.iterdir())
    assert "lookalikes.gpkg" in names
    for n in names:
        assert (a.root / n).read_bytes() == (b.root / n).read_bytes(), f"{name}: {n} differs"
    summary = json.loads(a.config.read_text())
    assert summary["config"]["preset"] == name
    assert summary["crs"] == f"EPSG:{PRESETS[name].epsg}"


def test_same_seed_is_a_different_place_in_each_preset(regions: dict[str, RegionFiles]) -> None:
    outlines = [truth_of(f).geometry.iloc[0].area for f in regions.values()]
    assert len(set(np.round(outlines, 1))) == len(outlines)


# --------------------------------------------------------------------------- spectra


def test_presets_differ_in_background_in_the_documented_direction(
    regions: dict[str, RegionFiles],
) -> None:
    bg = {name: medians(files)[1] for name, files in regions.items()}
    # Desert sand is brighter in red and SWIR than the fields and meadows of central Europe.
    assert bg["desert"][B04] > bg["central-europe"][B04] + 0.05
    assert bg["desert"][B11] > bg["central-europe"][B11] + 0.05
    # July in Austria is greener than March on the Deccan.
    ndvi = {n: (v[B08] - v[B04]) / (v[B08] + v[B04]) for n, v in bg.items()}
    assert ndvi["central-europe"] > ndvi["deccan"] + 0.1
    assert ndvi["desert"] < min(ndvi[n] for n in ("central-europe", "alpine", "rice-paddy"))


def test_alpine_has_snow_and_rice_paddy_has_wet_fields(regions: dict[str, RegionFiles]) -> None:
    scl = {name: read1(files.scl) for name, files in regions.items()}
    lc = {name: read1(files.landcover) for name, files in regions.items()}
    assert (scl["alpine"] == 11).mean() > 0.02
    assert not (scl["central-europe"] == 11).any()
    # Flooded paddies: water in SCL and land cover, far more than the few ponds elsewhere.
    assert (scl["rice-paddy"] == 6).mean() > 0.05
    assert (lc["rice-paddy"] == 3).mean() > 3 * (lc["central-europe"] == 3).mean()
    snow = reflectance(regions["alpine"].scene)[:, lc["alpine"] == 6]
    assert np.median(snow[B02]) > 0.6 and np.median(snow[B11]) < 0.2


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_panels_bluer_than_background_and_darker_than_vegetation(
    regions: dict[str, RegionFiles], name: str
) -> None:
    solar, background, vegetation = medians(regions[name])
    # Bluer: B02 up against B03 and B04 (measured: Austria 0.80 against 0.54, India 0.98
    # against 0.75).
    assert solar[B02] / solar[B03] > background[B02] / background[B03] + 0.05
    assert solar[B02] / solar[B04] > background[B02] / background[B04]
    if name != "desert":  # bright sand outshines the panels in every band
        assert solar[B02] > background[B02]
    # Lower red edge and NIR than the vegetation around, SWIR high against NIR.
    if not np.isnan(vegetation[B08]):
        assert solar[B08] < vegetation[B08] - 0.02
    assert solar[B08] < background[B08]
    assert solar[B11] / solar[B08] > background[B11] / background[B08]


@pytest.mark.parametrize(
    ("name", "solar_measured", "background_measured"),
    [("deccan", IN_SOLAR, IN_BACKGROUND), ("central-europe", AT_SOLAR, AT_BACKGROUND)],
)
def test_presets_near_the_measured_medians(
    tmp_path: Path,
    regions: dict[str, RegionFiles],
    name: str,
    solar_measured: tuple[float, ...],
    background_measured: tuple[float, ...],
) -> None:
    """The medians the presets were drawn from come back, within the spread of one scene's
    gain and haze (solar pixels) and of the land around the farms (background NIR and SWIR).
    Over three scenes, so that the draw of the ground under a few plants does not decide it."""
    more = [
        generate_region(tmp_path / str(seed), preset_config(name, seed=seed)) for seed in (4, 5)
    ]
    solar, background, _ = medians(regions[name], *more)
    assert np.allclose(solar, solar_measured, rtol=0.25), solar
    red_edge_to_swir = slice(BANDS.index("B05"), None)
    assert np.allclose(
        background[red_edge_to_swir], np.array(background_measured)[red_edge_to_swir], rtol=0.2
    ), background


@pytest.mark.realdata
@needs_realdata
def test_central_europe_ratios_within_real_austrian_chips(
    regions: dict[str, RegionFiles],
) -> None:
    """Solar over background, band by band, inside the 10th-90th percentile of the real chips'
    per-chip ratios."""
    ratios = []
    for scene in sorted(AUSTRIA.glob("s2_*_2022-*.tif")):
        mask = read1(AUSTRIA / f"mask_{scene.name.split('_')[1]}.tif")
        with open_raster(scene) as src:
            refl = src.read().astype("f8") / 10_000.0
        ok = np.isfinite(refl).all(axis=0)
        solar = np.median(refl[:, (mask == 1) & ok], axis=1)
        ratios.append(solar / np.median(refl[:, (mask == 0) & ok], axis=1))
    lo, hi = np.percentile(np.array(ratios), [10, 90], axis=0)
    solar, background, _ = medians(regions["central-europe"])
    ratio = solar / background
    inside = (ratio >= lo) & (ratio <= hi)
    outside = dict(zip(np.array(BANDS)[~inside], ratio[~inside], strict=True))
    assert inside.all(), f"outside the real ratios: {outside}"


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_scenes_draw_their_blur(regions: dict[str, RegionFiles], name: str) -> None:
    """A preset scene's blur is drawn from the plausible range and recorded; the 20 m bands are
    2 x 2 blocks on the 10 m grid, as in the real chips."""
    summary = json.loads(regions[name].config.read_text())
    sigma = summary["psf_sigma_px"]
    assert 0.45 <= sigma["10m"] <= 0.7 and 0.45 <= sigma["20m"] <= 0.7
    with open_raster(regions[name].scene) as src:
        b8a = src.read(BANDS.index("B8A") + 1)
    assert (b8a[:, 0::2] == b8a[:, 1::2]).all() and (b8a[0::2] == b8a[1::2]).all()


def test_no_preset_records_no_blur(tmp_path: Path) -> None:
    summary = json.loads(generate_region(tmp_path, RegionConfig(size=64)).config.read_text())
    assert "psf_sigma_px" not in summary


# --------------------------------------------------------------------------- shapes


def test_preset_outlines_are_irregular_and_at_any_angle(regions: dict[str, RegionFiles]) -> None:
    geoms = gpd.GeoSeries(
        [g for files in regions.values() for g in truth_of(files).geometry], crs=None
    )
    rect = rectangularity(geoms)
    assert rect.min() < 0.85 and rect.std() > 0.05
    assert off_axis(orientations(geoms)).mean() > 0.4


def _footprint_file(path: Path) -> Path:
    """A GeoJSON of two real-looking outlines: a triangle and an L-shape (WGS 84, in Austria)."""
    lon, lat = 16.5, 48.2
    d = 0.004
    triangle = shapely.Polygon([(lon, lat), (lon + d, lat), (lon, lat + d)])
    ell = shapely.union(
        shapely.box(lon + 0.1, lat, lon + 0.1 + d, lat + d / 4),
        shapely.box(lon + 0.1, lat, lon + 0.1 + d / 4, lat + d),
    )
    gpd.GeoDataFrame(geometry=[triangle, ell], crs="EPSG:4326").to_file(path, driver="GeoJSON")
    return path


def test_footprints_from_a_file_keep_their_shapes(tmp_path: Path) -> None:
    cfg = RegionConfig(
        seed=2,
        size=256,
        n_farms=8,
        cloud_fraction=0.0,
        footprints=str(_footprint_file(tmp_path / "fp.geojson")),
    )
    files = generate_region(tmp_path / "region", cfg)
    truth = truth_of(files)
    assert len(truth) >= 4
    # Every outline is the triangle (half its bounding rectangle) or the L (7/16 of it), with
    # a pond or substation cut out of the largest, at any angle.
    rect = rectangularity(truth.geometry)
    assert (rect < 0.6).all(), rect
    assert off_axis(orientations(truth.geometry)).any()
    assert np.allclose(truth.area / 10_000.0, truth["area_ha"], rtol=1e-3)


@pytest.mark.realdata
@pytest.mark.skipif(not INDIA_FOOTPRINTS.exists(), reason="shared/realdata is absent")
@pytest.mark.parametrize("preset", [None, "deccan", "central-europe"])
def test_real_footprints_are_not_rectangles(tmp_path: Path, preset: str | None) -> None:
    path = AUSTRIA_FOOTPRINTS if preset == "central-europe" else INDIA_FOOTPRINTS
    cfg = RegionConfig(
        seed=4,
        size=256,
        n_farms=10,
        cloud_fraction=0.0,
        preset=preset,  # type: ignore[arg-type]
        footprints=str(path),
    )
    truth = truth_of(generate_region(tmp_path, cfg))
    assert len(truth) >= 5
    rect = rectangularity(truth.geometry)
    angles = orientations(truth.geometry)
    assert rect.std() > 0.02 or off_axis(angles).mean() > 0.3
    assert off_axis(angles).mean() > 0.3, angles


# --------------------------------------------------------------------------- plants


def osm_plants(files: RegionFiles) -> gpd.GeoDataFrame:
    """The plants of ``labels.osm`` in the scene CRS."""
    gdf = ox.features_from_xml(files.osm, tags={"power": "plant"})
    if "location" not in gdf.columns:
        gdf["location"] = None
    return gdf.to_crs(read_vector(files.truth, layer="farms").crs)


def fence_distances(outline: shapely.Geometry, footprint: shapely.Geometry) -> np.ndarray:
    """Distance (m) from points every metre along the outer rings of an OSM ``outline`` to the
    ``footprint``."""
    rings = [shapely.segmentize(p.exterior, 1.0) for p in shapely.get_parts(outline)]
    points = shapely.points(np.concatenate([shapely.get_coordinates(r) for r in rings]))
    return shapely.distance(points, footprint)


@pytest.mark.parametrize("name", ["central-europe", "deccan"])
def test_osm_outline_is_the_footprint_and_the_fence_strip(
    regions: dict[str, RegionFiles], name: str
) -> None:
    """OSM maps a preset plant by its fence: the footprint (the truth) grown by a strip in the
    preset's range; partly built plants and rooftop plants aside."""
    files = regions[name]
    lo, hi = PRESETS[name].panels.fence_m
    truth = truth_of(files)
    look = lookalikes_of(files)
    whole = truth[
        ~truth["farm_id"].isin(look.loc[look["kind"].isin(["unbuilt", "roof"]), "farm_id"])
    ]
    plants = osm_plants(files)
    checked = 0
    for footprint in whole[whole["osm_kind"].isin(["way", "relation"])].geometry:
        outline = plants.geometry[plants.intersects(footprint)].union_all()
        assert footprint.difference(outline).area < 1.0  # the footprint is inside its outline
        assert outline.area > footprint.area
        gap = fence_distances(outline, footprint)
        assert gap.min() > lo - 0.05, gap.min()
        assert lo - 0.05 < np.median(gap) < hi + 0.05, np.median(gap)
        checked += 1
    assert checked >= 2


def test_central_europe_plants_are_the_size_of_austrian_plants(tmp_path: Path) -> None:
    """The OSM outlines of central-europe's ground-mounted plants have about the median of the
    Austrian plants (within half of it either way), nearly all of 0.5 to 10 ha."""
    cfg = RegionConfig(
        seed=1,
        size=512,
        n_farms=40,
        preset="central-europe",
        cloud_fraction=0.0,
        unmapped_fraction=0.0,
        orphan_generator_fraction=0.0,
    )
    plants = osm_plants(generate_region(tmp_path, cfg))
    ha = plants.loc[plants["location"] != "roof"].area.to_numpy() / 10_000.0
    assert len(ha) >= 20
    assert 0.5 * AT_PLANT_HA_MEDIAN < np.median(ha) < 1.5 * AT_PLANT_HA_MEDIAN, np.median(ha)
    assert ((ha >= 0.5) & (ha <= 10.0)).mean() > 0.8, ha


def test_central_europe_has_rooftop_plants_on_roofs(regions: dict[str, RegionFiles]) -> None:
    """Rooftop plants are solar in the truth and in OSM (``location=roof``), an array on part
    of a roof: land cover solar under the array, a roof (settlement) around it."""
    files = regions["central-europe"]
    truth = truth_of(files).set_index("farm_id")
    roofs = roofs_of(files)
    assert len(roofs) >= 1
    lc = read1(files.landcover)
    with open_raster(files.landcover) as src:
        transform = src.transform
    for row in roofs.itertuples():
        array = truth.loc[row.farm_id].geometry
        assert row.geometry.buffer(0.01).contains(array)
        assert array.area < 0.95 * row.geometry.area
        # The array is solar; the roof is settlement around it, nothing else.
        under = rasterize([array.buffer(-5.0)], out_shape=lc.shape, transform=transform) > 0
        if under.any():
            assert (lc[under] == 7).mean() > 0.8
        rest = rasterize([row.geometry], out_shape=lc.shape, transform=transform) > 0
        rest &= ~(rasterize([array.buffer(5.0)], out_shape=lc.shape, transform=transform) > 0)
        if rest.sum() >= 3:
            assert (lc[rest] == 5).mean() > 0.6, (row.farm_id, np.unique(lc[rest]))
    plants = osm_plants(files)
    mapped = truth.loc[truth.index.isin(roofs["farm_id"]) & (truth["osm_kind"] != "none")]
    on_roof = plants[plants["location"] == "roof"]
    for geom in mapped[mapped["osm_kind"] != "generators"].geometry:
        assert on_roof.intersects(geom).any()


def test_preset_plants_fence_strip_is_rendered() -> None:
    """The fence strip is covered like the ground between the rows: the fenced-ground layer
    holds the footprint and the strip, its area that of the fence less holes and unbuilt
    ground; many small plants keep no internal roads, and those that do keep narrow ones."""
    from data_prep.synthetic.farms import place_farms, render_farms
    from data_prep.synthetic.grid import Grid
    from data_prep.synthetic.landscape import make_land

    cfg = preset_config("deccan", size=384, n_farms=10)
    grid = Grid.of(cfg)
    land = make_land(cfg, grid)
    farms = place_farms(cfg, grid, land)
    render_farms(cfg, grid, land, farms)
    fence, foot = land.maps["fence"], land.maps["foot"]
    assert (fence >= foot - 1e-6).all()
    want = 0.0
    for f in farms:
        assert f.fence is not None
        g = f.fence
        for cut in (f.hole, f.unbuilt):
            if cut is not None:
                g = g.difference(cut)
        want += g.area
    assert fence.sum() * 100.0 == pytest.approx(want, rel=0.02)
    assert fence.sum() > 1.05 * foot.sum()

    cfg = preset_config("central-europe", size=512, n_farms=40)
    grid = Grid.of(cfg)
    land = make_land(cfg, grid)
    small = [f for f in place_farms(cfg, grid, land) if f.roof is None and f.area_ha < 5.0]
    bare = [f for f in small if f.roads.is_empty]
    assert len(bare) > 0.4 * len(small)
    for f in small:
        if not f.roads.is_empty:  # width: area over half the perimeter, of long thin roads
            assert 2 * f.roads.area / f.roads.length < 3.6


# --------------------------------------------------------------------------- look-alikes


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_lookalikes_exist_and_lie_outside_the_truth(
    regions: dict[str, RegionFiles], name: str
) -> None:
    files = regions[name]
    look = lookalikes_of(files)
    truth = truth_of(files)
    assert set(look["kind"]) <= {
        "greenhouse",
        "dark_roof",
        "industrial_roof",
        "graded_land",
        "unbuilt",
        "roof",
    }
    others = look[~look["kind"].isin(["unbuilt", "roof"])]
    assert len(others) >= 3
    solar = shapely.union_all(truth.geometry.to_numpy())
    assert not others.geometry.intersects(solar).any()
    assert (others.geometry.distance(solar) > 40.0).all()
    # No solar pixel under a look-alike; built ones are land cover settlement, graded land bare.
    with open_raster(files.landcover) as src:
        lc, transform = src.read(1), src.transform
    for kind, cls in (("dark_roof", 5), ("industrial_roof", 5), ("graded_land", 2)):
        of_kind = others[others["kind"] == kind]
        if of_kind.empty:
            continue
        core = [g.buffer(-10.0) for g in of_kind.geometry if not g.buffer(-10.0).is_empty]
        if not core:
            continue
        inside = rasterize(core, out_shape=lc.shape, transform=transform) > 0
        assert not (lc[inside] == 7).any()
        assert (lc[inside] == cls).mean() > 0.8, (name, kind)
    # Some stand next to a farm.
    assert (others["farm_id"] >= 0).any()


def test_every_kind_of_lookalike_occurs(tmp_path: Path) -> None:
    files = generate_region(tmp_path, preset_config("central-europe", size=512, n_farms=12))
    kinds = set(lookalikes_of(files)["kind"])
    assert {"greenhouse", "dark_roof", "industrial_roof", "graded_land"} <= kinds
    refl = reflectance(files.scene)
    lc = read1(files.landcover)
    with open_raster(files.landcover) as src:
        transform = src.transform
    look = lookalikes_of(files)
    green = look[look["kind"] == "greenhouse"].geometry.buffer(-10.0)
    inside = (
        rasterize([g for g in green if not g.is_empty], out_shape=lc.shape, transform=transform) > 0
    )
    houses = np.median(refl[:, inside], axis=1)
    solar = np.median(refl[:, lc == 7], axis=1)
    assert houses[B02] > solar[B02] + 0.05  # plastic: bright in the visible


def test_partly_built_farms(tmp_path: Path) -> None:
    files = generate_region(tmp_path, preset_config("desert", size=384, n_farms=14))
    truth = truth_of(files).set_index("farm_id")
    unbuilt = lookalikes_of(files)
    unbuilt = unbuilt[unbuilt["kind"] == "unbuilt"]
    assert len(unbuilt) >= 1
    summary = json.loads(files.config.read_text())
    assert summary["counts"]["partly_built"] == len(unbuilt)
    with open_raster(files.landcover) as src:
        lc, transform = src.read(1), src.transform
    for row in unbuilt.itertuples():
        built = truth.loc[row.farm_id].geometry
        # The truth is the built part only: smaller than the site, not overlapping the rest.
        assert built.area < built.area + row.geometry.area
        assert built.intersection(row.geometry).area < 1.0
        assert built.area / (built.area + row.geometry.area) < 0.8
        core = row.geometry.buffer(-15.0)
        if core.is_empty:
            continue
        inside = rasterize([core], out_shape=lc.shape, transform=transform) > 0
        assert not (lc[inside] == 7).any()
        assert (lc[inside] == 2).mean() > 0.8  # graded bare soil


def test_preset_osm_labels_read(regions: dict[str, RegionFiles]) -> None:
    files = regions["central-europe"]
    gdf = ox.features_from_xml(files.osm, tags={"power": ["plant", "generator"]})
    assert (gdf["power"] == "plant").any()
    assert (gdf["power"] == "generator").any()
    # Generators of farms with rows along their outline run at an angle.
    gens = gdf[gdf["power"] == "generator"].to_crs(PRESETS["central-europe"].epsg)
    assert off_axis(orientations(gens.geometry), tol=3.0).any()


# --------------------------------------------------------------------------- bad input


def test_missing_or_empty_footprints_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="footprints file not found"):
        generate_region(
            tmp_path / "a", RegionConfig(size=64, footprints=str(tmp_path / "no.geojson"))
        )
    points = tmp_path / "points.geojson"
    gpd.GeoDataFrame(geometry=[shapely.Point(16.5, 48.2)], crs="EPSG:4326").to_file(points)
    with pytest.raises(InputError, match="no polygons"):
        generate_region(tmp_path / "b", RegionConfig(size=64, footprints=str(points)))
