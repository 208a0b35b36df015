"""Tests for data_prep.osm: OSM XML, label files, Overpass (local stand-in) and cleaning."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import osmnx as ox
import pytest
import requests
from shapely.geometry import LineString, Point, Polygon, box

from data_prep.osm import (
    clean_labels,
    labels_from_bbox,
    labels_from_file,
    labels_from_polygon,
    labels_from_xml,
    read_labels,
)
from solarmap.errors import InputError, InputFileError, LabelError
from solarmap.geo import write_vector

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # pytest's default import mode puts only tests/data_prep there
    sys.path.insert(0, str(ROOT))

from tests.data import make_osm  # noqa: E402
from tests.data.overpass_standin import OverpassStandin, point_osmnx_at  # noqa: E402

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
AUSTRIA = REALDATA / "austria-s2-2022" / "osm_solar_polygons_austria.geojson"
INDIA = REALDATA / "india" / "solar_farms_india_2021_merged_simplified.geojson"
UTM33 = "EPSG:32633"
LOGGER = "data_prep.osm"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scene() -> make_osm.OsmBuilder:
    return make_osm.solar_scene()


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_osm.write_fixtures(tmp_path_factory.mktemp("osm"))


@pytest.fixture(scope="module")
def cleaned(fixture_files: dict[str, Path]) -> gpd.GeoDataFrame:
    return clean_labels(read_labels(fixture_files["solar"]))


def ring(scene: make_osm.OsmBuilder, way_id: int) -> Polygon:
    return Polygon(scene.rings[way_id])


def row(labels: gpd.GeoDataFrame, osm_id: str) -> gpd.GeoSeries:
    match = labels[labels["osm_id"] == osm_id]
    assert len(match) == 1, f"expected one row for {osm_id}, got {len(match)}"
    return match.iloc[0]


@pytest.fixture
def overpass(monkeypatch: pytest.MonkeyPatch, scene: make_osm.OsmBuilder) -> Iterator:
    """The Overpass stand-in, with osmnx pointed at it through its settings only."""
    with OverpassStandin(scene.sorted_elements()) as server:
        point_osmnx_at(monkeypatch, server)
        yield server


# --------------------------------------------------------------------------- OSM XML


def test_xml_cleaned_to_solar_plants_and_generator_groups(cleaned: gpd.GeoDataFrame) -> None:
    assert list(cleaned.columns) == ["kind", "osm_id", "name", "geometry"]
    assert list(cleaned.index) == list(range(len(cleaned)))
    assert cleaned.crs.to_epsg() == 4326
    plants = set(cleaned.loc[cleaned["kind"] == "plant", "osm_id"])
    assert plants == {"way/100", "relation/500", "way/404"}
    assert (cleaned["kind"] == "generator").sum() == 2
    assert set(cleaned.geom_type) <= {"Polygon", "MultiPolygon"}
    assert cleaned.is_valid.all()
    assert row(cleaned, "way/100")["name"] == "Sonnenfeld"
    assert row(cleaned, "relation/500")["name"] == "Hof"


def test_multipolygon_relation_keeps_its_hole(
    cleaned: gpd.GeoDataFrame, scene: make_osm.OsmBuilder
) -> None:
    geom = row(cleaned, "relation/500").geometry
    assert geom.geom_type == "Polygon"
    assert len(geom.interiors) == 1
    expected = ring(scene, 200).area - ring(scene, 201).area
    assert geom.area == pytest.approx(expected, rel=1e-9)
    assert not geom.contains(ring(scene, 201).centroid)


def test_generators_inside_a_plant_are_dissolved_into_it(
    cleaned: gpd.GeoDataFrame, scene: make_osm.OsmBuilder
) -> None:
    geom = row(cleaned, "way/100").geometry
    plant, inside, straddling = ring(scene, 100), ring(scene, 101), ring(scene, 102)
    assert geom.area == pytest.approx(plant.union(straddling).area, rel=1e-9)
    assert geom.area > plant.area  # the straddling generator added its outside part
    assert geom.covers(inside) and geom.covers(straddling)
    assert not {"way/101", "way/102"} & set(cleaned["osm_id"])


def test_orphan_generators_close_together_become_one_polygon(
    cleaned: gpd.GeoDataFrame, scene: make_osm.OsmBuilder
) -> None:
    gens = cleaned[cleaned["kind"] == "generator"].to_crs(UTM33)
    members = gpd.GeoSeries([ring(scene, i) for i in (300, 301, 302)], crs=4326).to_crs(UTM33)
    group = gens[gens.intersects(members.union_all())]
    assert len(group) == 1
    geom = group.geometry.iloc[0]
    assert geom.geom_type == "Polygon"  # the 5 m gaps are closed
    assert all(geom.buffer(0.01).covers(m) for m in members)
    assert geom.area == pytest.approx(70 * 40, rel=0.01)  # 3 rows of 20 m + 2 gaps of 5 m
    far = gens[~gens.index.isin(group.index)]
    assert far.iloc[0]["osm_id"] == "way/303"
    assert far.area.iloc[0] == pytest.approx(20 * 40, rel=0.01)  # shape kept as mapped


def test_non_solar_points_and_lines_are_dropped_and_counted(
    fixture_files: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    raw = labels_from_xml(fixture_files["solar"])
    assert {("way", 400), ("way", 403), ("node", 900)} <= set(raw.index)  # osmnx read them
    caplog.set_level(logging.INFO, logger=LOGGER)
    labels = clean_labels(raw)
    assert not {"way/400", "way/401", "way/403", "node/900"} & set(labels["osm_id"])
    assert "dropped 1 point and 1 line features" in caplog.text
    assert "dropped 2 power features that are not solar" in caplog.text


def test_bowtie_from_xml_comes_back_as_two_triangles(cleaned: gpd.GeoDataFrame) -> None:
    # osmnx already applies make_valid to what it reads, so the bow-tie arrives repaired
    geom = gpd.GeoSeries([row(cleaned, "way/404").geometry], crs=4326).to_crs(UTM33).iloc[0]
    assert geom.geom_type == "MultiPolygon"
    assert len(geom.geoms) == 2
    assert geom.area == pytest.approx(100 * 100 / 2, rel=0.01)


def test_invalid_geometry_is_repaired_with_a_warning(
    scene: make_osm.OsmBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    bowtie = Polygon(scene.rings[404])
    assert not bowtie.is_valid
    raw = gpd.GeoDataFrame(
        {"power": ["plant", "plant"], "plant:source": ["solar", "solar"]},
        geometry=[bowtie, ring(scene, 100)],
        crs=4326,
    )
    caplog.set_level(logging.INFO, logger=LOGGER)
    labels = clean_labels(raw, crs=UTM33)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("repaired 1 invalid" in r.getMessage() for r in warnings)
    assert len(labels) == 2 and labels.is_valid.all()
    assert labels.geometry.iloc[0].area == pytest.approx(5000, rel=0.01)
    assert labels["osm_id"].isna().all()  # no OSM ids in a plain frame


def test_reprojection_gives_areas_in_square_metres(fixture_files: dict[str, Path]) -> None:
    labels = clean_labels(read_labels(fixture_files["solar"]), crs=UTM33)
    assert labels.crs.to_epsg() == 32633
    area = labels.set_index("osm_id").area
    assert area["way/100"] == pytest.approx(200 * 150 + 30 * 20, rel=0.01)
    assert area["relation/500"] == pytest.approx(200 * 200 - 50 * 50, rel=0.01)


def test_clip_keeps_only_features_touching_it(fixture_files: dict[str, Path]) -> None:
    raw = read_labels(fixture_files["solar"])
    plant = clean_labels(raw, crs=UTM33).set_index("osm_id").geometry["way/100"]
    clipped = clean_labels(raw, crs=UTM33, clip=plant.buffer(5))
    assert list(clipped["osm_id"]) == ["way/100"]
    far = box(*plant.buffer(5000).bounds).difference(plant.buffer(4000))
    with pytest.raises(LabelError, match="no solar polygons after cleaning"):
        clean_labels(raw, crs=UTM33, clip=far)


def test_only_non_solar_features_raise_label_error(tmp_path: Path) -> None:
    b = make_osm.OsmBuilder()
    b.way(400, make_osm.rect(0, 0, 100, 100), {"power": "plant", "plant:source": "coal"})
    path = make_osm.write_osm_xml(tmp_path / "coal.osm", b.sorted_elements())
    with pytest.raises(LabelError, match=r"no solar polygons after cleaning \(1 features read\)"):
        clean_labels(read_labels(path))


def test_xml_without_power_features_raises_label_error(fixture_files: dict[str, Path]) -> None:
    with pytest.raises(LabelError, match="no solar features in"):
        read_labels(fixture_files["road_only"])


def test_missing_and_broken_files_raise_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        read_labels(tmp_path / "missing.osm")
    with pytest.raises(InputFileError, match="not found"):
        read_labels(tmp_path / "missing.geojson")
    broken = tmp_path / "broken.osm"
    broken.write_text("<osm version='0.6'><node id='1' lat='48.2'")
    with pytest.raises(InputFileError, match="not an OSM XML file"):
        read_labels(broken)
    with pytest.raises(InputError, match="unknown label file type"):
        read_labels(tmp_path / "labels.csv")


def test_clean_labels_needs_a_crs(scene: make_osm.OsmBuilder) -> None:
    raw = gpd.GeoDataFrame(geometry=[ring(scene, 100)])
    with pytest.raises(LabelError, match="no CRS"):
        clean_labels(raw)


@pytest.mark.filterwarnings("ignore:'crs' was not provided")  # written so on purpose
def test_geojson_with_projected_coordinates_and_no_crs_member_is_refused(tmp_path: Path) -> None:
    """GeoJSON is WGS 84 by definition: UTM metres written without a crs arrive mislabelled."""
    from shapely.geometry import box

    path = tmp_path / "utm.geojson"
    gpd.GeoDataFrame(geometry=[box(700_000, 5_300_000, 700_100, 5_300_100)]).to_file(path)
    with pytest.raises(LabelError, match=r"utm\.geojson: coordinates .* not longitude/latitude"):
        read_labels(path)


# --------------------------------------------------------------------------- label files


def test_plain_label_file_counts_every_polygon_as_solar(
    tmp_path: Path, scene: make_osm.OsmBuilder
) -> None:
    gdf = gpd.GeoDataFrame(
        {"id": [0, 1, 2]},
        geometry=[ring(scene, 100), ring(scene, 303), Point(scene.rings[100][0])],
        crs=4326,
    )
    path = write_vector(gdf, tmp_path / "labels.geojson")
    labels = clean_labels(read_labels(path), crs=UTM33)
    assert len(labels) == 2
    assert (labels["kind"] == "plant").all()
    assert labels["osm_id"].isna().all() and labels["name"].isna().all()
    # plants are not dissolved: the far generator-sized polygon stays its own row
    assert sorted(labels.area) == pytest.approx([20 * 40, 200 * 150], rel=0.01)


def test_label_file_with_osm_tags_is_filtered_like_osm(
    tmp_path: Path, scene: make_osm.OsmBuilder
) -> None:
    gdf = gpd.GeoDataFrame(
        {
            "element": ["way", "way", "way"],
            "id": [100, 400, 403],
            "power": ["plant", "plant", "plant"],
            "plant:source": ["solar", "coal", "solar;wind"],
            "name": ["Sonnenfeld", None, None],
        },
        geometry=[ring(scene, 100), ring(scene, 400), LineString(scene.rings[403])],
        crs=4326,
    )
    path = write_vector(gdf, tmp_path / "labels.gpkg")
    labels = clean_labels(labels_from_file(path))
    assert list(labels["osm_id"]) == ["way/100"]
    assert list(labels["name"]) == ["Sonnenfeld"]


@pytest.mark.realdata
@pytest.mark.skipif(not AUSTRIA.exists(), reason="real data not available")
def test_real_austria_polygons_survive_cleaning() -> None:
    raw = read_labels(AUSTRIA)
    labels = clean_labels(raw, crs=UTM33)
    assert len(labels) == len(raw) == 2130
    assert (labels["kind"] == "plant").all()
    assert set(labels.geom_type) == {"Polygon"}
    assert labels.area.sum() == pytest.approx(raw.to_crs(UTM33).area.sum(), rel=1e-6)


@pytest.mark.realdata
@pytest.mark.skipif(not INDIA.exists(), reason="real data not available")
def test_real_india_multipolygons_survive_cleaning(caplog: pytest.LogCaptureFixture) -> None:
    raw = read_labels(INDIA)
    caplog.set_level(logging.INFO, logger=LOGGER)
    labels = clean_labels(raw)
    assert len(labels) == len(raw) == 1363
    assert labels.is_valid.all()
    multi_in = int((raw.geometry.count_geometries() > 1).sum())
    multi_out = int((labels.geometry.count_geometries() > 1).sum())
    assert multi_in > 0 and multi_out >= multi_in  # multipart farms are kept multipart
    n_invalid = int((~raw.is_valid).sum())
    assert f"repaired {n_invalid} invalid" in caplog.text
    utm = labels.estimate_utm_crs()
    assert labels.to_crs(utm).area.sum() == pytest.approx(
        raw.make_valid().to_crs(utm).area.sum(), rel=1e-3
    )


# --------------------------------------------------------------------------- Overpass


def test_labels_from_polygon_through_osmnx_and_the_standin(overpass: OverpassStandin) -> None:
    area = box(16.29, 48.19, 16.33, 48.22)
    raw = labels_from_polygon(area)
    assert overpass.requests[-1] == ("POST", "/api/interpreter")
    assert len(overpass.queries) >= 1
    assert all('"power"="plant"' in q.replace("'", '"') for q in overpass.queries)
    assert all("[out:json]" in q for q in overpass.queries)
    labels = clean_labels(raw)
    assert {"way/100", "relation/500", "way/404"} <= set(labels["osm_id"])
    assert len(row(labels, "relation/500").geometry.interiors) == 1


def test_labels_from_bbox_filters_to_the_box(
    overpass: OverpassStandin, scene: make_osm.OsmBuilder
) -> None:
    # the stand-in returns the whole scene; osmnx keeps what intersects the box: plant 100 only
    west, south = make_osm.lonlat(-10, -10)
    east, north = make_osm.lonlat(150, 100)
    labels = clean_labels(labels_from_bbox((west, south, east, north)))
    assert any("power" in q for q in overpass.queries)
    assert list(labels["osm_id"]) == ["way/100"]
    # the generators in the box are dissolved into it; the straddling one is outside the box
    assert labels.geometry.iloc[0].area == pytest.approx(ring(scene, 100).area, rel=1e-9)


def test_empty_overpass_answer_raises_label_error(overpass: OverpassStandin) -> None:
    overpass.elements = []
    with pytest.raises(LabelError, match=r"no solar features in .*power=plant"):
        labels_from_polygon(box(16.29, 48.19, 16.33, 48.22))
    assert overpass.queries  # the query did reach the stand-in


def test_standin_speaks_overpass_status_and_get(
    overpass: OverpassStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from osmnx import _overpass

    monkeypatch.setattr(ox.settings, "overpass_rate_limit", True)
    assert _overpass._get_overpass_pause(overpass.url) == 0  # osmnx parses our /status
    answer = requests.get(
        overpass.url + "/interpreter", params={"data": "[out:json];node(1);out;"}, timeout=10
    )
    assert answer.ok and answer.json()["elements"] == overpass.elements
    assert ("GET", "/api/status") in overpass.requests
    assert overpass.queries == ["[out:json];node(1);out;"]


def test_query_area_is_checked_before_any_request() -> None:
    with pytest.raises(InputError, match="west < east"):
        labels_from_bbox((16.33, 48.19, 16.29, 48.22))
    with pytest.raises(InputError, match="not lon/lat degrees"):
        labels_from_polygon(box(590_000, 5_330_000, 600_000, 5_340_000))
    with pytest.raises(InputError, match="Polygon"):
        labels_from_polygon(Point(16.3, 48.2))
