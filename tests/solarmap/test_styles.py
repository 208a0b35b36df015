"""QGIS styles: the QML documents, and how the writers store them (``layer_styles``, ``.qml``).

QGIS itself opens them in ``tests/test_qgis_styles.py``; here the documents and the files are
checked without it.
"""

from __future__ import annotations

import sqlite3
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine
from shapely.geometry import Point, box

from solarmap.bands import (
    BANDS,
    CENTRAL_WAVELENGTHS_NM,
    reflectance_band_tags,
    spacecraft_of,
)
from solarmap.errors import InputError
from solarmap.geo import cog_writer, read_vector, write_cog, write_layer_style, write_vector
from solarmap.styles import (
    attribution_style,
    chips_style,
    detections_style,
    image_style,
    outline_style,
    palette_style,
    probability_style,
    superpixels_style,
)
from tests.conftest import CRS, ORIGIN

GRID = Affine(10, 0, ORIGIN[0], 0, -10, ORIGIN[1])


def _detections(n: int = 3) -> gpd.GeoDataFrame:
    x0, y0 = ORIGIN
    return gpd.GeoDataFrame(
        {
            "id": np.arange(1, n + 1),
            "area_m2": np.full(n, 1e4),
            "mean_prob": np.linspace(0.55, 0.95, n),
            "max_prob": np.full(n, 0.99),
        },
        geometry=[box(x0 + 100 * i, y0 - 100, x0 + 100 * i + 50, y0) for i in range(n)],
        crs=CRS,
    )


def _renderer(qml: str) -> ET.Element:
    root = ET.fromstring(qml.split("\n", 1)[1])  # past the DOCTYPE line
    assert root.tag == "qgis"
    found = root.find("renderer-v2")
    if found is None:
        found = root.find("pipe/rasterrenderer")
    assert found is not None
    return found


def _written(tmp_path: Path, array: np.ndarray, style, **kwargs) -> str:
    path = write_cog(tmp_path / "r.tif", array, crs=CRS, transform=GRID, style=style, **kwargs)
    return path.with_suffix(".qml").read_text()


# --------------------------------------------------------------------------- vector documents


def test_detections_are_graduated_by_mean_probability_from_the_threshold() -> None:
    qml = detections_style(threshold=0.4)(_detections())
    r = _renderer(qml)
    assert (r.get("type"), r.get("attr")) == ("graduatedSymbol", "mean_prob")
    ranges = r.findall("ranges/range")
    assert len(ranges) == 5
    assert float(ranges[0].get("lower")) <= 0.4 < float(ranges[0].get("upper"))
    assert float(ranges[-1].get("upper")) == 1.0
    root = ET.fromstring(qml.split("\n", 1)[1])
    assert root.get("labelsEnabled") == "1"
    label = root.find("labeling/settings/text-style").get("fieldName")
    assert '"area_m2" / 10000' in label and "ha" in label and '"mean_prob"' in label
    tip = root.find("mapTip").text
    assert "ha" in tip and "mean_prob" in tip and "0.40" in tip
    with pytest.raises(InputError, match="not in"):
        detections_style(threshold=1.0)


def test_chips_are_categorized_by_split_with_unknown_values_kept() -> None:
    gdf = gpd.GeoDataFrame(
        {"split": ["train", "val", "test", "dropped", "holdout"]}, geometry=[box(0, 0, 1, 1)] * 5
    )
    r = _renderer(chips_style()(gdf))
    assert (r.get("type"), r.get("attr")) == ("categorizedSymbol", "split")
    values = [c.get("value") for c in r.findall("categories/category")]
    assert values == ["train", "val", "test", "dropped", "holdout"]
    colours = {s.find("layer/prop[@k='color']").get("v") for s in r.findall("symbols/symbol")}
    assert len(colours) == 5


def test_outlines_have_no_fill_and_points_get_rings() -> None:
    polys = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 1, 1)])
    qml = outline_style(label='"id"')(polys)
    r = _renderer(qml)
    assert r.get("type") == "singleSymbol"
    layer = r.find("symbols/symbol/layer")
    assert layer.get("class") == "SimpleFill"
    assert layer.find("prop[@k='style']").get("v") == "no"
    assert ET.fromstring(qml.split("\n", 1)[1]).find("layerGeometryType").text == "2"
    points = gpd.GeoDataFrame({"id": [1]}, geometry=[Point(0, 0)])
    qml = outline_style()(points)
    assert _renderer(qml).find("symbols/symbol/layer").get("class") == "SimpleMarker"
    assert ET.fromstring(qml.split("\n", 1)[1]).find("layerGeometryType").text == "0"


def test_superpixels_diverge_symmetrically_around_zero() -> None:
    gdf = gpd.GeoDataFrame({"value": [-0.2, 0.05, 0.8]}, geometry=[box(0, 0, 1, 1)] * 3)
    r = _renderer(superpixels_style()(gdf))
    assert (r.get("type"), r.get("attr")) == ("graduatedSymbol", "value")
    ranges = r.findall("ranges/range")
    lo, hi = float(ranges[0].get("lower")), float(ranges[-1].get("upper"))
    assert lo == -hi and 0.8 < hi < 0.8001  # ±max |value|, every value inside
    uppers = [float(g.get("upper")) for g in ranges]
    assert uppers == sorted(uppers) and len(ranges) % 2 == 1  # a class centred on 0
    empty = gpd.GeoDataFrame({"value": []}, geometry=[])
    assert float(_renderer(superpixels_style()(empty)).find("ranges/range").get("lower")) < 0


# --------------------------------------------------------------------------- raster documents


def test_probability_ramp_steps_at_the_threshold_from_the_tag(tmp_path: Path) -> None:
    prob = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    qml = _written(tmp_path, prob, probability_style(), tags={"THRESHOLD": "0.3"})
    r = _renderer(qml)
    assert r.get("type") == "singlebandpseudocolor"
    items = [(float(i.get("value")), int(i.get("alpha"))) for i in r.iter("item")]
    assert items[0][0] == 0.0 and items[-1][0] == 1.0
    (at,) = [k for k, (v, _) in enumerate(items) if v == 0.3]
    assert 0.3 - 1e-5 < items[at - 1][0] < 0.3  # a step: just below, then at the threshold
    assert items[at - 1][1] < items[at][1] == 255
    qml = _written(tmp_path, prob, probability_style(threshold=0.6), tags={"THRESHOLD": "0.3"})
    assert any(float(i.get("value")) == 0.6 for i in _renderer(qml).iter("item"))


def test_attribution_ramp_is_symmetric_and_robust(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    band = rng.normal(0, 1, (64, 64)).astype(np.float32)
    band[0, 0] = 1000.0  # one outlier does not set the limits
    band[1, 1] = np.nan
    r = _renderer(_written(tmp_path, np.stack([band, band * 0]), attribution_style()))
    lo, hi = float(r.get("classificationMin")), float(r.get("classificationMax"))
    assert lo == -hi and 2.0 < hi < 4.0
    values = [float(i.get("value")) for i in r.iter("item")]
    assert values[len(values) // 2] == 0.0 and values == sorted(values)
    zeros = np.zeros((2, 32, 32), np.float32)
    r = _renderer(_written(tmp_path, zeros, attribution_style(band=2)))
    assert (r.get("band"), r.get("classificationMax")) == ("2", "1.0")


def test_image_is_false_colour_b08_b04_b03_stretched_from_the_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    refl = rng.uniform(0.0, 0.5, (len(BANDS), 64, 64)).astype(np.float32)
    r = _renderer(_written(tmp_path, refl, image_style(), descriptions=list(BANDS)))
    assert r.get("type") == "multibandcolor"
    bands = [int(r.get(f"{c}Band")) for c in ("red", "green", "blue")]
    assert bands == [BANDS.index(b) + 1 for b in ("B08", "B04", "B03")] == [7, 3, 2]
    red = r.find("redContrastEnhancement")
    lo, hi = float(red.find("minValue").text), float(red.find("maxValue").text)
    want = np.percentile(refl[BANDS.index("B08")], [2, 98])
    np.testing.assert_allclose([lo, hi], want, rtol=1e-5)


def test_image_stretch_is_in_reflectance_for_scaled_digital_numbers(tmp_path: Path) -> None:
    dn = np.full((len(BANDS), 32, 32), 2000, np.uint16)
    dn[:, :, 16:] = 4000
    path = tmp_path / "dn.tif"
    with cog_writer(
        path,
        width=32,
        height=32,
        count=len(BANDS),
        dtype="uint16",
        crs=CRS,
        transform=GRID,
        nodata=0,
        descriptions=list(BANDS),
        scales=[1e-4] * len(BANDS),
        offsets=[-0.1] * len(BANDS),
        style=image_style(cut=(0, 100)),
    ) as dst:
        dst.write(dn)
    red = _renderer(path.with_suffix(".qml").read_text()).find("redContrastEnhancement")
    lo, hi = float(red.find("minValue").text), float(red.find("maxValue").text)
    assert (lo, hi) == pytest.approx((0.1, 0.3))  # what QGIS shows: DN × scale + offset


def test_palette_names_every_class_and_hides_some(tmp_path: Path) -> None:
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    style = palette_style({0: "background", 1: "solar"}, colours={1: "#e31a1c"}, hidden=(0,))
    r = _renderer(_written(tmp_path, mask, style))
    entries = {e.get("value"): e for e in r.iter("paletteEntry")}
    assert r.get("type") == "paletted" and set(entries) == {"0", "1"}
    assert entries["0"].get("alpha") == "0" and entries["1"].get("color") == "#e31a1c"
    assert entries["1"].get("label") == "solar"


# --------------------------------------------------------------------------- writing styles


def test_geopackage_carries_its_style_in_layer_styles(tmp_path: Path) -> None:
    path = write_vector(
        _detections(), tmp_path / "p.gpkg", layer="solar", style=detections_style(threshold=0.5)
    )
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT f_table_name, f_geometry_column, styleName, useAsDefault, styleQML,"
            " update_time FROM layer_styles"
        ).fetchall()
        contents = dict(db.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
    ((table, geom, name, default, qml, when),) = rows
    assert (table, geom, name, default) == ("solar", "geom", "solar", 1)
    assert _renderer(qml).get("type") == "graduatedSymbol"
    assert len(when) == 24 and when.endswith("Z")  # GeoPackage DATETIME, with milliseconds
    assert contents == {"solar": "features", "layer_styles": "attributes"}
    assert [str(n) for n, _ in pyogrio.list_layers(path)] == ["solar", "layer_styles"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the data layer, without a warning about two layers
        gdf = read_vector(path)
    assert list(gdf["id"]) == [1, 2, 3] and gdf.crs.to_string() == CRS
    assert len(gpd.read_file(path, layer="solar")) == 3
    assert not list(tmp_path.glob(".*"))  # no temporary left


def test_a_new_default_style_replaces_the_old_default(tmp_path: Path) -> None:
    path = write_vector(_detections(), tmp_path / "p.gpkg", layer="solar")
    write_layer_style(path, "solar", "<qgis/>", name="first")
    write_layer_style(path, "solar", "<qgis/>", name="second")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT styleName, useAsDefault FROM layer_styles ORDER BY id").fetchall()
    assert rows == [("first", 0), ("second", 1)]
    with pytest.raises(InputError, match="no layer 'other'"):
        write_layer_style(path, "other", "<qgis/>")


def test_geojson_gets_a_qml_sidecar(tmp_path: Path) -> None:
    path = write_vector(_detections(), tmp_path / "p.geojson", style=outline_style())
    assert _renderer(path.with_suffix(".qml").read_text()).get("type") == "singleSymbol"
    assert len(gpd.read_file(path)) == 3


def test_a_failing_style_leaves_nothing(tmp_path: Path) -> None:
    def broken(_: object) -> str:
        raise RuntimeError("style failed")

    with pytest.raises(RuntimeError, match="style failed"):
        write_vector(_detections(), tmp_path / "p.gpkg", style=broken)
    with pytest.raises(RuntimeError, match="style failed"):
        write_cog(
            tmp_path / "r.tif", np.zeros((8, 8), np.float32), crs=CRS, transform=GRID, style=broken
        )
    assert list(tmp_path.iterdir()) == []


def test_cog_with_style_stays_a_cog_with_band_metadata(tmp_path: Path) -> None:
    refl = np.full((len(BANDS), 600, 520), 0.1, np.float32)  # big enough for overviews
    path = write_cog(
        tmp_path / "image.tif",
        refl,
        crs=CRS,
        transform=GRID,
        nodata=float("nan"),
        descriptions=list(BANDS),
        band_tags=reflectance_band_tags(BANDS, scene_id="S2B_MSIL2A_20220315T051651"),
        units=["reflectance"] * len(BANDS),
        style=image_style(),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.qml", "image.tif"]
    with rasterio.open(path) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.overviews(1)
        assert ds.units == ("reflectance",) * len(BANDS)
        b08 = ds.tags(BANDS.index("B08") + 1)
    assert b08["WAVELENGTH_NM"] == "832.9" and b08["SPACECRAFT"] == "S2B"
    assert b08["UNITS"] == "reflectance" and b08["WAVELENGTH_NM_S2A"] == "832.8"


def test_band_tags_name_the_spacecraft_and_refuse_unknown_bands() -> None:
    assert spacecraft_of("S2A_MSIL2A_x") == "S2A" and spacecraft_of("LC08_x") is None
    tags = reflectance_band_tags(["B02", "b8a"], scene_id="scene")
    assert [t["BAND"] for t in tags] == ["B02", "B8A"]
    assert tags[1]["WAVELENGTH_NM"] == f"{CENTRAL_WAVELENGTHS_NM['S2A']['B8A']:g}"
    assert "assumed" in tags[0]["SPACECRAFT"]
    assert set(CENTRAL_WAVELENGTHS_NM["S2B"]) == set(BANDS)
    with pytest.raises(KeyError, match="B01"):
        reflectance_band_tags(["B01"])
