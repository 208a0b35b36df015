"""`prepare`: labelled scene, chip index, statistics and config from scene + labels."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import box

from data_prep.prepare import PrepareConfig, prepare
from solarmap.bands import BANDS
from solarmap.errors import InputError, OutputExistsError
from tests.conftest import AUSTRIA, box_polygon_4326, needs_realdata, write_float_scene


def test_tiny_scene_end_to_end(tiny_scene: Path, tiny_labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = prepare([tiny_scene], tiny_labels, out, config=PrepareConfig(chip_size=32, block_size=32))
    assert res.out == out and res.chips > 0
    sid = res.scenes[0].scene_id
    with (
        rasterio.open(out / "scenes" / sid / "image.tif") as img,
        rasterio.open(out / "scenes" / sid / "mask.tif") as msk,
        rasterio.open(tiny_scene) as src,
    ):
        assert img.descriptions == BANDS
        assert img.dtypes[0] == "float32" and img.tags()["REFLECTANCE_SCALE"] == "1"
        assert img.crs == src.crs == msk.crs
        assert img.transform == src.transform == msk.transform
        assert img.shape == src.shape == msk.shape
        np.testing.assert_allclose(img.read(), src.read() / 10000, rtol=1e-6)
        mask = msk.read(1)
        assert msk.nodata == 255
    assert set(np.unique(mask)) <= {0, 1}
    assert (mask[20:60, 30:80] == 1).all() and mask.sum() == 40 * 50

    chips = gpd.read_file(out / "chips.gpkg")
    assert chips.crs.to_epsg() == 32643
    assert set(chips["split"]) <= {"train", "val", "test", "dropped"}
    assert {"train", "val", "test"} <= set(chips["split"])
    assert ((chips["solar_fraction"] > 0) == chips["positive"]).all()
    assert chips["solar_fraction"].between(0, 1).all()
    for split in ("val", "test"):  # no subsampling outside train
        assert chips.loc[chips.split == split, "selected"].all()

    stats = json.loads((out / "stats.json").read_text())
    assert stats["bands"] == list(BANDS) and len(stats["mean"]) == 10
    assert all(0 < m < 1 for m in stats["mean"]) and all(s > 0 for s in stats["std"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["chip_size"] == 32 and cfg["scenes"] == [str(tiny_scene.resolve())]


def test_refuses_existing_output_and_overwrites_when_asked(
    tiny_scene: Path, tiny_labels: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        prepare([tiny_scene], tiny_labels, out)
    assert (out / "keep.txt").exists()
    prepare([tiny_scene], tiny_labels, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "chips.gpkg").exists()


def test_failure_leaves_no_output(tmp_path: Path, tiny_labels: Path) -> None:
    scene = write_float_scene(tmp_path / "nan_band.tif", nan_band=4)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="B06"):
        prepare([scene], tiny_labels, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_boundary_ring_and_small_scene_padding(tmp_path: Path) -> None:
    scene = write_float_scene(tmp_path / "small.tif", size=(13, 40), solar_box=(2, 5, 10, 30))
    labels = tmp_path / "l.geojson"
    gpd.GeoDataFrame(geometry=[box_polygon_4326(2, 5, 10, 30)], crs=4326).to_file(labels)
    res = prepare([scene], labels, tmp_path / "o", config=PrepareConfig(chip_size=64,
                  block_size=64, boundary=1))  # fmt: skip
    assert res.chips == 1  # a 13×40 scene is padded into one 64×64 chip, not dropped
    with rasterio.open(res.scenes[0].mask) as src:
        m = src.read(1)
    assert (m == 255).any() and (m == 1).sum() == (8 - 2) * (25 - 2)
    chips = gpd.read_file(tmp_path / "o" / "chips.gpkg")
    assert chips.loc[0, "valid_fraction"] < 13 * 40 / 64**2


def test_two_crs_index_in_lonlat(tmp_path: Path) -> None:
    a = write_float_scene(tmp_path / "a.tif", crs="EPSG:32643")
    b = write_float_scene(tmp_path / "b.tif", crs="EPSG:32644", seed=1)
    import geopandas as gpd
    from shapely.geometry import box

    polys = [
        gpd.GeoSeries([box(700300, 1559400, 700800, 1559800)], crs=c).to_crs(4326).iloc[0]
        for c in ("EPSG:32643", "EPSG:32644")
    ]
    labels = tmp_path / "l.gpkg"
    gpd.GeoDataFrame(geometry=polys, crs=4326).to_file(labels)
    res = prepare([a, b], labels, tmp_path / "o", config=PrepareConfig(chip_size=32, block_size=32))
    assert len(res.scenes) == 2 and all(s.counts["solar"] > 0 for s in res.scenes)
    chips = gpd.read_file(tmp_path / "o" / "chips.gpkg")
    assert chips.crs.to_epsg() == 4326
    assert set(chips["crs"]) == {"EPSG:32643", "EPSG:32644"}


def test_bad_config() -> None:
    with pytest.raises(InputError):
        PrepareConfig(chip_size=30)
    with pytest.raises(InputError):
        PrepareConfig(chip_size=256, block_size=128)


@pytest.mark.realdata
@needs_realdata
def test_real_austrian_chips(tmp_path: Path) -> None:
    scenes = sorted(AUSTRIA.glob("s2_*.tif"))
    res = prepare(
        scenes,
        AUSTRIA / "osm_solar_polygons_austria.geojson",
        tmp_path / "at",
        config=PrepareConfig(chip_size=64, block_size=64),
    )
    assert len(res.scenes) == len(scenes) == 52
    # Our masks agree with the reference rasterization on every chip.
    for rec in res.scenes:
        site = rec.scene_id.split("_")[1]
        with rasterio.open(rec.mask) as a, rasterio.open(AUSTRIA / f"mask_{site}.tif") as b:
            np.testing.assert_array_equal(a.read(1), b.read(1), err_msg=rec.scene_id)
        with rasterio.open(rec.image) as img:
            data = img.read()
        assert np.nanmax(data) < 1.5 and np.nanmedian(data) > 0.01  # ×10000 detected
    chips = gpd.read_file(tmp_path / "at" / "chips.gpkg")
    assert len(chips) == 52 and {"train", "val", "test"} <= set(chips.split)
    # The date image and the median of a site never land in different splits.
    site = chips.scene_id.str.split("_").str[1]
    assert (chips.groupby(site)["split"].nunique() == 1).all()


@pytest.mark.parametrize("form", ["safe", "folder", "geotiff"])
def test_all_three_scene_forms_prepare_alike(form: str, tmp_path: Path) -> None:
    from tests.data import make_safe as ms

    if form == "safe":
        scene = ms.make_safe(tmp_path, size=64)
    elif form == "folder":
        scene, _ = ms.make_band_folder(tmp_path, size=64)
    else:
        scene, _ = ms.make_geotiff(tmp_path, size=64)
    x0, y0 = ms.ORIGIN
    labels = tmp_path / "labels.geojson"
    poly = gpd.GeoSeries([box(x0 + 100, y0 - 400, x0 + 300, y0 - 100)], crs=ms.CRS)
    gpd.GeoDataFrame(geometry=poly.to_crs(4326)).to_file(labels)
    res = prepare(
        [scene], labels, tmp_path / "o", config=PrepareConfig(chip_size=32, block_size=32)
    )
    with rasterio.open(res.scenes[0].mask) as src:
        m = src.read(1)
    assert res.scenes[0].info.form == form
    assert (m[10:40, 10:30] != 0).all() and (m[10:40, 10:30] == 1).sum() > 0.8 * 600
    assert (m == 1).sum() <= 600


def test_demo_region_prepares_and_labels_only_mapped_farms(tmp_path: Path) -> None:
    from data_prep.synthetic import RegionConfig, generate_region

    files = generate_region(tmp_path / "region", RegionConfig(seed=3, size=512))
    res = prepare([files.scene], files.osm, tmp_path / "o", config=PrepareConfig(chip_size=64))
    truth = gpd.read_file(files.truth)
    with rasterio.open(res.scenes[0].mask) as src:
        mask = src.read(1)
        from rasterio.features import rasterize

        def burn(rows: gpd.GeoDataFrame) -> np.ndarray:
            if rows.empty:
                return np.zeros(mask.shape, bool)
            return rasterize(rows.geometry, out_shape=mask.shape, transform=src.transform) > 0

    mapped, unmapped = burn(truth[truth.mapped]), burn(truth[~truth.mapped])
    solar = mask == 1
    assert solar.sum() > 0
    assert (solar & mapped).sum() / solar.sum() > 0.95  # labels sit on the mapped farms
    assert (solar & unmapped).sum() == 0  # OSM knows nothing of the unmapped ones
    assert (mask == 255).any()  # clouds and the no-data strip are ignored
    chips = gpd.read_file(tmp_path / "o" / "chips.gpkg")
    assert chips.positive.any() and (~chips.positive).any()


def test_labels_from_overpass_through_osmnx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--labels overpass` queries the scene footprint through osmnx (stand-in on 127.0.0.1)."""

    from pyproj import Transformer

    from tests.data import make_osm
    from tests.data.overpass_standin import OverpassStandin, point_osmnx_at

    # A scene in UTM 33N whose upper-left corner is 100 m west and 800 m north of the fixture.
    e0, n0 = Transformer.from_crs(4326, 32633, always_xy=True).transform(*make_osm.ORIGIN)
    origin = (round(e0) - 100.0, round(n0) + 800.0)
    scene = write_float_scene(
        tmp_path / "s.tif", size=(100, 130), crs="EPSG:32633", origin=origin, solar_box=None
    )
    with OverpassStandin(make_osm.solar_scene().sorted_elements()) as server:
        point_osmnx_at(monkeypatch, server)
        res = prepare([scene], "overpass", tmp_path / "o", config=PrepareConfig(chip_size=64))
        assert any("power" in q for q in server.queries)
    with rasterio.open(res.scenes[0].mask) as src:
        m = src.read(1)
    # Plant way/100 spans 0..200 m east and 0..150 m north of the fixture origin.
    # Rows 65..80 and columns 10..30 of the scene; keep 2 px off the edges (the fixture's
    # metres-per-degree approximation and UTM grid convergence move edges by about a pixel).
    assert (m[65 + 2 : 80 - 2, 10 + 2 : 30 - 2] == 1).all()
    assert (m[:60] == 1).sum() > 0  # the orphan generator rows lie further north
    cfg = (tmp_path / "o" / "config.json").read_text()
    assert '"labels": "overpass"' in cfg
