"""`solarmap survey`: regions, tiles, a survey on Dask, seams, resume, faults and its outputs."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely.geometry
from geopandas.testing import assert_geodataframe_equal
from rasterio.warp import transform_bounds

from data_prep.synthetic import RegionConfig, generate_region
from solarmap.app.survey import (
    FARMS_FILE,
    FARMS_LAYER,
    MANIFEST_FILE,
    SurveyConfig,
    parse_period,
    parse_periods,
    parse_region,
    region_tiles,
    survey,
    utm_parts,
)
from solarmap.errors import InputError, SolarmapError
from tests.data.loopback import LoopbackServer
from tests.data.make_stac import ItemSpec, write_items, write_static_catalog
from tests.data.stac_standin import StacStandin

REALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "realdata"
TILE_PX = 256
SPECS = [ItemSpec(dt.date(2022, 2, 10)), ItemSpec(dt.date(2022, 3, 12)),
         ItemSpec(dt.date(2022, 4, 11))]  # fmt: skip


# --- periods, regions, tiles --------------------------------------------------------------------


def test_periods() -> None:
    assert parse_period("2022") == parse_period("2022-01-01/2022-12-31").__class__(
        "2022", dt.date(2022, 1, 1), dt.date(2022, 12, 31)
    )
    q = parse_period("2023-q4")
    assert (q.name, q.start, q.end) == ("2023-Q4", dt.date(2023, 10, 1), dt.date(2023, 12, 31))
    assert parse_period("2024-02").end == dt.date(2024, 2, 29)
    assert [p.name for p in parse_periods(["2023", "2021"])] == ["2021", "2023"]
    for bad in ("2022-13", "22", "2022-05-01/2022-04-01", "soon"):
        with pytest.raises(InputError, match="--dates"):
            parse_period(bad)
    with pytest.raises(InputError, match="twice"):
        parse_periods(["2022", "2022"])
    with pytest.raises(InputError, match="2015-06-23"):
        parse_periods(["2010"])


def test_regions_from_a_bbox_and_a_file(tmp_path: Path) -> None:
    r = parse_region("77.0,14.0,77.1,14.1")
    assert r.geometry.bounds == (77.0, 14.0, 77.1, 14.1)
    for bad in ("77.1,14.0,77.0,14.1", "200,0,201,1"):
        with pytest.raises(InputError, match="--region"):
            parse_region(bad)
    with pytest.raises(SolarmapError, match="region file not found"):
        parse_region(str(tmp_path / "nope.geojson"))
    pts = gpd.GeoDataFrame(geometry=[shapely.geometry.Point(77, 14)], crs=4326)
    pts.to_file(tmp_path / "points.geojson")
    with pytest.raises(InputError, match="no polygon"):
        parse_region(str(tmp_path / "points.geojson"))
    with pytest.raises(InputError, match="empty"):
        parse_region("  ")


def test_tiles_cover_the_region_and_a_zone_boundary_splits_it() -> None:
    region = parse_region("77.9,14.0,78.1,14.1")  # across the 43N/44N boundary at 78°E
    assert [epsg for epsg, _ in utm_parts(region.geometry)] == [32643, 32644]
    tiles = region_tiles(region, TILE_PX)
    assert {t.epsg for t in tiles} == {32643, 32644}
    for t in tiles:  # every tile meets the region, and its grid starts on whole tile multiples
        g = t.grid(0)
        assert g.left % (TILE_PX * 10) == 0 and g.top % (TILE_PX * 10) == 0
        assert shapely.geometry.box(*g.lonlat_bounds()).intersects(region.geometry)
    covered = shapely.union_all([shapely.geometry.box(*t.grid(0).lonlat_bounds()) for t in tiles])
    assert covered.buffer(1e-6).contains(region.geometry)


@pytest.mark.realdata
def test_karnataka_study_area_splits_into_two_zones_of_tiles() -> None:
    path = REALDATA / "india" / "karnataka_study_area.geojson"
    if not path.is_file():
        pytest.skip("../shared/realdata is absent")
    region = parse_region(str(path))
    tiles = region_tiles(region)
    zones = {t.epsg for t in tiles}
    assert zones == {32643, 32644}
    area_km2 = gpd.GeoSeries([region.geometry], crs=4326).to_crs("ESRI:54009").area[0] / 1e6
    per_tile = 10.24**2
    assert area_km2 / per_tile < len(tiles) < 1.3 * area_km2 / per_tile


# --- a survey -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A synthetic region of 512 px as three acquisitions in a static catalog."""
    root = tmp_path_factory.mktemp("survey_catalog")
    cfg = RegionConfig(seed=11, size=512, cloud_fraction=0.0, nodata_fraction=0.0, n_farms=14)
    region = generate_region(root / "region", cfg)
    items = write_items(region.scene, region.scl, root / "files", SPECS)
    static = write_static_catalog(root / "catalog", items)
    with rasterio.open(region.scene) as src:
        b, crs = src.bounds, src.crs
    inset = 200.0  # the region: the scene less a margin, so every tile has imagery
    lonlat = transform_bounds(crs, "EPSG:4326", b.left + inset, b.bottom + inset,
                              b.right - inset, b.top - inset)  # fmt: skip
    w, s, e, n = lonlat  # admin units: the west and the east half
    units = gpd.GeoDataFrame(
        {"district": ["West", "East"]},
        geometry=[shapely.geometry.box(w - 1, s - 1, (w + e) / 2, n + 1),
                  shapely.geometry.box((w + e) / 2, s - 1, e + 1, n + 1)],
        crs=4326,
    )  # fmt: skip
    units.to_file(root / "units.gpkg", layer="units")
    return {"root": root, "region": region, "items": items, "static": static,
            "bbox": ",".join(f"{v:.6f}" for v in lonlat), "crs": crs,
            "units": root / "units.gpkg"}  # fmt: skip


def _config(cat: dict[str, Any], **kw: Any) -> SurveyConfig:
    base: dict[str, Any] = {"region": cat["bbox"], "dates": ("2022",), "tile_px": TILE_PX,
                            "catalog": str(cat["static"]),
                            "labels": str(cat["region"].osm), "units": str(cat["units"]),
                            "units_field": "district"}  # fmt: skip
    return SurveyConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def surveyed(catalog: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("survey") / "out"
    res = survey(_config(catalog), out)
    assert res.states == {"done": 9} and not res.failed
    return out


def _farms(out: Path) -> gpd.GeoDataFrame:
    return gpd.read_file(out / FARMS_FILE, layer=FARMS_LAYER)


def test_survey_writes_valid_gis_layers(surveyed: Path, catalog: dict[str, Any]) -> None:
    from rio_cogeo.cogeo import cog_validate

    manifest = json.loads((surveyed / MANIFEST_FILE).read_text())["tiles"]
    assert len(manifest) == 9 and {r["state"] for r in manifest.values()} == {"done"}
    tiles = sorted((surveyed / "tiles" / "2022").iterdir())
    for t in tiles:
        valid, errors, _ = cog_validate(str(t / "probability.tif"), quiet=True)
        assert valid, (t, errors)
    vrt = next((surveyed / "mosaic").glob("*.vrt"))
    info = json.loads(subprocess.run(["gdalinfo", "-json", str(vrt)], capture_output=True,
                                     text=True, check=True).stdout)  # fmt: skip
    assert info["size"] == [3 * TILE_PX, 3 * TILE_PX] and len(info["files"]) == 10
    assert vrt.with_suffix(".qml").is_file()
    with rasterio.open(vrt) as ds:  # the mosaic reads as the tiles it is made of
        mosaic = ds.read(1)
    with rasterio.open(tiles[0] / "probability.tif") as t0, rasterio.open(vrt) as ds:
        r, c = ds.index(t0.bounds.left + 5, t0.bounds.top - 5)
        np.testing.assert_array_equal(mosaic[r : r + TILE_PX, c : c + TILE_PX], t0.read(1))
    ogr = subprocess.run(["ogrinfo", "-so", str(surveyed / FARMS_FILE), FARMS_LAYER],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    farms = _farms(surveyed)
    assert f"Feature Count: {len(farms)}" in ogr and len(farms) > 5
    assert {"area_m2", "mean_prob", "max_prob", "tiles", "period"} <= set(farms.columns)
    import sqlite3

    with sqlite3.connect(surveyed / FARMS_FILE) as db:
        styles = db.execute("SELECT f_table_name FROM layer_styles").fetchall()
    assert (FARMS_LAYER,) in styles
    summary = json.loads((surveyed / "summary.json").read_text())
    assert summary["periods"][0]["farms"] == len(farms)
    by_unit = summary["periods"][0]["by_unit"]
    assert set(by_unit) <= {"West", "East"} and len(by_unit) == 2
    assert sum(u["farms"] for u in by_unit.values()) == len(farms)
    w, _, e, _ = (float(v) for v in catalog["bbox"].split(","))
    west = farms["centroid_lon"] < (w + e) / 2
    assert by_unit["West"]["farms"] == int(west.sum())
    labels = summary["periods"][0]["labels"]  # the region's OSM plants: most found, some not
    assert labels["plants"] >= 5 and labels["recall"] > 0.6
    assert labels["farms_not_in_labels"] == int((~farms["in_osm"]).sum()) > 0
    assert summary["periods"][0]["area_ha"] == pytest.approx(farms["area_m2"].sum() / 1e4)


def test_survey_stac_catalog_describes_every_output(surveyed: Path) -> None:
    import pystac

    cat = pystac.read_file(str(surveyed / "stac" / "collection.json"))
    items = list(cat.get_items(recursive=True))  # type: ignore[attr-defined]
    assert len(items) == 9
    hrefs = [a.get_absolute_href() for i in items for a in i.assets.values()]
    hrefs += [a.get_absolute_href() for a in cat.assets.values()]  # type: ignore[attr-defined]
    for child in cat.get_children():
        hrefs += [a.get_absolute_href() for a in child.assets.values()]  # type: ignore[attr-defined]
    assert len(hrefs) == 9 * 2 + 2 + 1
    for h in hrefs:
        assert h is not None and Path(h).is_file(), h


def test_a_farm_across_a_tile_seam_is_one_polygon(surveyed: Path, catalog: dict[str, Any]) -> None:
    truth = gpd.read_file(catalog["region"].truth).to_crs(catalog["crs"])
    size = TILE_PX * 10.0
    x0, y0, x1, y1 = truth.total_bounds
    xs = np.arange(np.floor(x0 / size), np.ceil(x1 / size)) * size
    ys = np.arange(np.floor(y0 / size), np.ceil(y1 / size)) * size
    seams = shapely.union_all(
        [shapely.geometry.LineString([(x, y0 - size), (x, y1 + size)]) for x in xs]
        + [shapely.geometry.LineString([(x0 - size, y), (x1 + size, y)]) for y in ys]
    )
    farms = _farms(surveyed).to_crs(catalog["crs"])
    crossing = truth[truth.intersects(seams) & (truth.area > 2e4)]
    checked = 0
    for geom in crossing.geometry:
        hits = farms[farms.intersects(geom)]
        big = hits[hits.intersection(geom).area > 0.3 * geom.area]
        if big.empty:
            continue  # a farm the model misses says nothing about seams
        checked += 1
        assert len(big) == 1, big[["tiles", "area_m2"]]
        assert "," in big.iloc[0]["tiles"]  # it spans several tiles, merged into one
    assert checked >= 1


def test_survey_pixels_match_one_prediction_of_the_whole_composite(
    surveyed: Path, catalog: dict[str, Any]
) -> None:
    """The tiles (each with its halo) give the probabilities one run over the region gives."""
    from data_prep.stac import CompositeScene, StacSource, TileGrid, composite_tile
    from solarmap.model import load_checkpoint, shipped_checkpoint
    from solarmap.predict import predict_scene

    vrt = next((surveyed / "mosaic").glob("*.vrt"))
    with rasterio.open(vrt) as ds:
        mosaic, tf = ds.read(1), ds.transform
    halo = 64
    grid = TileGrid(catalog["crs"].to_string(), tf.c - halo * 10, tf.f + halo * 10,
                    (mosaic.shape[0] + 2 * halo, mosaic.shape[1] + 2 * halo))  # fmt: skip
    comp = composite_tile(catalog["items"], grid, source=StacSource(str(catalog["static"])))
    scene = CompositeScene(comp, grid, scene_id="whole", date=None)
    res = predict_scene(scene, load_checkpoint(shipped_checkpoint()), surveyed.parent / "whole")
    with rasterio.open(res.probability) as ds:
        whole = ds.read(1)[halo:-halo, halo:-halo]
    t = 0.5
    a, b = mosaic >= t, whole >= t
    iou = (a & b).sum() / max(1, (a | b).sum())
    assert iou > 0.97, iou
    assert np.nanmean(np.abs(mosaic - whole)) < 0.01


def test_rerun_resumes_and_recomputes_only_missing_tiles(
    surveyed: Path, catalog: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(surveyed, out)
    before = _farms(out)
    res = survey(_config(catalog), out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())["tiles"]
    assert all(r.get("resumed") for r in manifest.values())
    assert res.states == {"done": 9}
    lost = sorted((out / "tiles" / "2022").iterdir())[4]
    shutil.rmtree(lost)
    survey(_config(catalog), out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())["tiles"]
    rerun = [k for k, r in manifest.items() if not r.get("resumed")]
    assert rerun == [f"2022/{lost.name}"]
    after = _farms(out)
    assert_geodataframe_equal(before, after, check_less_precise=True)
    with pytest.raises(InputError, match="other settings"):
        survey(_config(catalog, tile_px=128), out)


def test_no_imagery_is_reported_per_tile_and_corrupt_assets_fail_their_tile(
    catalog: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tiles beyond the imagery are 'no-imagery'; with assets broken every tile fails with
    its reason, the survey still finishes (the command exits 1, saying so in its last line),
    and a rerun with the assets fixed retries them."""
    from solarmap.app.cli import main

    w, s, e, n = (float(v) for v in catalog["bbox"].split(","))
    wider = f"{w},{s},{e + 0.05},{n}"  # eastwards past the scene
    files = catalog["root"] / "files"
    with StacStandin([], files=files, mode="broken-assets") as server:
        server.items = json.loads(
            json.dumps(catalog["items"]).replace(str(files.resolve()), server.files_url)
        )
        for d in server.items:  # a new version of each item: the composite cache misses
            d["properties"]["updated"] = "2024-01-01T00:00:00Z"
        cfg = _config(catalog, region=wider, catalog=server.url, retries=0, timeout_s=5)
        out = tmp_path / "out"
        argv = ["-q", "survey", "--region", wider, "--dates", "2022", "--catalog", server.url,
                "--retries", "0", "--timeout", "5", "--tile-px", str(TILE_PX), "--out", str(out),
                "--labels", str(catalog["region"].osm), "--units", str(catalog["units"]),
                "--units-field", "district"]  # fmt: skip
        capsys.readouterr()
        assert main(argv) == 1
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert "9 tile(s) failed" in last and "unreadable" in last and "rerun" in last
        manifest = json.loads((out / MANIFEST_FILE).read_text())["tiles"]
        failed = [r for r in manifest.values() if r["state"] == "failed"]
        assert len(failed) == 9 and all("unreadable" in r["reason"] for r in failed)
        assert sum(r["state"] == "no-imagery" for r in manifest.values()) >= 3
        server.mode = "ok"
        res = survey(cfg, out)
    assert res.states.get("done") == 9 and not res.failed
    manifest = json.loads((out / MANIFEST_FILE).read_text())["tiles"]
    empty = [r for r in manifest.values() if r["state"] == "no-imagery"]
    assert empty and all(r["reason"].startswith("no items") for r in empty)


# --- a real Dask scheduler and two workers ------------------------------------------------------


def _dask(*args: str, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(exe), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


@pytest.mark.timeout(300)
def test_survey_on_a_dask_scheduler_with_two_workers(
    surveyed: Path, catalog: dict[str, Any], tmp_path: Path
) -> None:
    sched_file = tmp_path / "scheduler.json"
    args = ["--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file"]
    procs = [_dask("scheduler", *args, str(sched_file), log=tmp_path / "scheduler.log")]
    try:
        for _ in range(300):  # bounded: 60 s
            if sched_file.is_file() and sched_file.stat().st_size:
                break
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for k in range(2):
            procs.append(_dask("worker", address, "--nthreads", "1", "--nworkers", "1",
                               "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{k}",
                               log=tmp_path / f"worker{k}.log"))  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "out"
        res = survey(_config(catalog, scheduler=address), out)
        assert res.states == {"done": 9}
        manifest = json.loads((out / MANIFEST_FILE).read_text())["tiles"]
        assert len({r["worker"] for r in manifest.values()}) == 2
        assert_geodataframe_equal(_farms(surveyed), _farms(out),
                                              check_less_precise=True)  # fmt: skip
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=20)


def test_a_scheduler_that_does_not_answer_fails_before_anything_is_written(
    catalog: dict[str, Any], tmp_path: Path
) -> None:
    cfg = _config(catalog, scheduler="tcp://127.0.0.1:9", timeout_s=2)
    with pytest.raises(InputError, match="no Dask scheduler answered"):
        survey(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- killed and resumed -------------------------------------------------------------------------


def _survey_cli(catalog: dict[str, Any], out: Path) -> list[str]:
    return [sys.executable, "-m", "solarmap", "-q", "survey", "--region", catalog["bbox"],
            "--dates", "2022", "--catalog", str(catalog["static"]), "--out", str(out),
            "--tile-px", str(TILE_PX), "--workers", "1",
            "--labels", str(catalog["region"].osm), "--units", str(catalog["units"]),
            "--units-field", "district"]  # fmt: skip


def _done_tiles(out: Path) -> int:
    try:
        tiles = json.loads((out / MANIFEST_FILE).read_text())["tiles"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(r["state"] == "done" for r in tiles.values())


@pytest.mark.timeout(400)
def test_survey_killed_at_several_points_resumes_to_the_same_outputs(
    surveyed: Path, catalog: dict[str, Any], tmp_path: Path
) -> None:
    """SIGKILL the survey (the command and its workers) as it starts, after 3 tiles, and
    when every tile is done but the merged outputs may be half-written; each rerun goes on,
    and the last one's pixels and polygon rows equal an uninterrupted run's."""
    out = tmp_path / "out"
    points = [
        ("started", lambda: (out / "survey.json").is_file()),
        ("3 tiles", lambda: _done_tiles(out) >= 3),
        ("9 tiles", lambda: _done_tiles(out) == 9),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for name, reached in points:
        proc = subprocess.Popen(_survey_cli(catalog, out), env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        for _ in range(1200):  # bounded: 120 s
            if reached() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, (name, proc.stderr.read() if proc.stderr else "")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    done = subprocess.run(_survey_cli(catalog, out), env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    for tile in sorted((surveyed / "tiles" / "2022").iterdir()):
        resumed = out / "tiles" / "2022" / tile.name / "probability.tif"
        with rasterio.open(tile / "probability.tif") as a, rasterio.open(resumed) as b:
            np.testing.assert_array_equal(a.read(), b.read())
    assert_geodataframe_equal(_farms(surveyed), _farms(out), check_less_precise=True)
    leftovers = [p for p in out.rglob(".*") if p.name != ".survey.pid"]
    assert leftovers == [] and not (out / ".survey.pid").exists()


# --- place names, periods without imagery -------------------------------------------------------


class _Nominatim(LoopbackServer):
    """A Nominatim stand-in on 127.0.0.1: one known place, nothing else."""

    def __init__(self, known: str, geometry: dict[str, Any]) -> None:
        self.known, self.geometry = known, geometry
        super().__init__()

    @property
    def url(self) -> str:
        return self.base_url + "/"

    def answer(self, q: str) -> list[dict[str, Any]]:
        if q.lower() != self.known.lower():
            return []
        w, s, e, n = shapely.geometry.shape(self.geometry).bounds
        place = {"place_id": 1, "osm_type": "relation", "osm_id": 1, "lat": str((s + n) / 2),
                 "lon": str((w + e) / 2), "display_name": self.known, "class": "boundary",
                 "type": "administrative", "importance": 0.9, "geojson": self.geometry,
                 "boundingbox": [str(s), str(n), str(w), str(e)]}  # fmt: skip
        return [place]

    def _handler_class(self) -> type[Any]:
        from http.server import BaseHTTPRequestHandler
        from urllib.parse import parse_qs, urlsplit

        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                q = parse_qs(urlsplit(self.path).query).get("q", [""])[0]
                body = json.dumps(standin.answer(q)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def test_a_place_name_is_geocoded_and_an_unknown_one_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import osmnx as ox

    area = shapely.geometry.box(77.0, 14.0, 77.2, 14.1)
    with _Nominatim("Somewhere District", shapely.geometry.mapping(area)) as nominatim:
        monkeypatch.setattr(ox.settings, "nominatim_url", nominatim.url)
        monkeypatch.setattr(ox.settings, "use_cache", False)
        region = parse_region("Somewhere District")
        assert region.geometry.equals(area)
        with pytest.raises(InputError, match="no place of that name"):
            parse_region("Atlantis Nowhere")


def test_a_period_without_imagery_is_reported_per_tile(
    catalog: dict[str, Any], tmp_path: Path
) -> None:
    res = survey(_config(catalog, dates=("2019",)), tmp_path / "out")
    assert res.states == {"no-imagery": 9} and res.farms == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["periods"][0]["tiles"]["no-imagery"] == 9
    assert all("no items from 2019-01-01" in why for why in summary["no_imagery"].values())
    assert len(_farms(tmp_path / "out")) == 0


def test_labels_from_overpass_are_fetched_once_and_kept(
    catalog: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from tests.data import make_osm
    from tests.data.overpass_standin import OverpassStandin, point_osmnx_at

    with OverpassStandin(make_osm.solar_scene().sorted_elements()) as server:
        point_osmnx_at(monkeypatch, server)
        cfg = _config(catalog, dates=("2019",), labels="overpass")
        survey(cfg, tmp_path / "out")
        assert any("power" in q for q in server.queries)
        n = len(server.queries)
        survey(cfg, tmp_path / "out")  # the rerun reads the labels it kept
        assert len(server.queries) == n
    kept = gpd.read_file(tmp_path / "out" / "labels.gpkg", layer="labels")
    assert len(kept) == 0  # the stand-in's plants lie elsewhere: none in the region
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["periods"][0]["labels"]["plants"] == 0


@pytest.mark.timeout(900)
def test_qgis_opens_the_survey_layers_with_their_styles(
    surveyed: Path, qgis_python: Path, tmp_path: Path
) -> None:
    from tests.test_qgis_styles import assert_drawn_with, open_in_qgis

    vrt = next((surveyed / "mosaic").glob("*.vrt"))
    layers = {
        "farms": {"kind": "vector", "path": surveyed / FARMS_FILE, "layer": FARMS_LAYER},
        "mosaic": {"kind": "raster", "path": vrt},  # in place: its tiles are named relative
    }
    found = open_in_qgis(qgis_python, layers, tmp_path)
    assert_drawn_with(found, "farms", "graduatedSymbol", tmp_path / "farms.png")
    assert_drawn_with(found, "mosaic", "singlebandpseudocolor", tmp_path / "mosaic.png")
