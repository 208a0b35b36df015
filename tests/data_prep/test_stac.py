"""STAC search and compositing: per-item encodings, real HTTP to a local STAC API, the cache."""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import rasterio.warp

from data_prep.stac import (
    CatalogError,
    ItemError,
    StacSource,
    TileGrid,
    composite_tile,
    item_encoding,
    nanmedian_first_axis,
    search_items,
)
from data_prep.synthetic import RegionConfig, generate_region
from solarmap.bands import BANDS
from tests.data.make_stac import ItemSpec, write_items, write_static_catalog
from tests.data.stac_standin import StacStandin

DEC, FEB = dt.date(2021, 12, 1), dt.date(2022, 2, 28)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = RegionConfig(seed=5, size=256, cloud_fraction=0.0, nodata_fraction=0.0)
    return generate_region(tmp_path_factory.mktemp("stac_region"), cfg)


@pytest.fixture(scope="module")
def truth(region: Any) -> np.ndarray:
    """The region's reflectance (``float32[10, H, W]``), from its L2A digital numbers."""
    with rasterio.open(region.scene) as src:
        dn = src.read().astype(np.float32)
        offset = float(src.tags()["BOA_ADD_OFFSET"])
    return (dn + offset) / 10000


def _grid(region: Any) -> TileGrid:
    with rasterio.open(region.scene) as src:
        b = src.bounds
        return TileGrid(src.crs.to_string(), b.left, b.top, (src.height, src.width))


#: Both sides of the 25 January 2022 change: baseline 03.01 without the offset in the data,
#: 04.00 with it, and an Earth Search-style item stating -0.1 whose data have it applied.
SPECS = [
    ItemSpec(dt.date(2021, 12, 10), baseline="03.01", data_offset=0),
    ItemSpec(dt.date(2021, 12, 20), baseline="03.01", data_offset=0, style="earth-search",
             stated_offset=0.0),
    ItemSpec(dt.date(2021, 12, 30), baseline="03.01", data_offset=0),
    ItemSpec(dt.date(2022, 2, 5), baseline="04.00", data_offset=1000),
    ItemSpec(dt.date(2022, 2, 15), baseline="04.00", data_offset=0, style="earth-search",
             stated_offset=-0.1),
    ItemSpec(dt.date(2022, 2, 25), baseline="04.00", data_offset=1000, style="earth-search",
             stated_offset=-0.1),
]  # fmt: skip


@pytest.fixture(scope="module")
def served(region: Any, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    files = tmp_path_factory.mktemp("stac_files")
    with StacStandin([], files=files) as server:
        server.items = write_items(region.scene, region.scl, files, SPECS,
                                   href_base=server.files_url)  # fmt: skip
        yield server


def _item(**props: Any) -> dict[str, Any]:
    assets = {b: {"href": f"{b}.tif"} for b in (*BANDS, "SCL")}
    return {"id": "x", "properties": props, "assets": assets}


# --- the encoding of one item ------------------------------------------------------------------


def test_encoding_follows_the_processing_baseline_not_the_date() -> None:
    new = item_encoding(_item(**{"s2:processing_baseline": "04.00", "datetime": "2021-06-01"}))
    assert new.dn_offset == pytest.approx(-1000)
    old = item_encoding(_item(**{"s2:processing_baseline": "02.14", "datetime": "2023-06-01"}))
    assert old.offset == 0
    named = item_encoding(_item(**{"s2:product_uri": "S2A_MSIL2A_20220301T0_N0400_R1_T1.SAFE"}))
    assert named.dn_offset == pytest.approx(-1000)


def test_an_item_without_baseline_or_with_disagreeing_baselines_is_refused() -> None:
    with pytest.raises(ItemError, match="date alone"):
        item_encoding(_item(datetime="2023-01-01T00:00:00Z"))
    with pytest.raises(ItemError, match="disagree"):
        item_encoding(_item(**{"s2:processing_baseline": "04.00",
                               "s2:product_uri": "S2A_MSIL2A_2021_N0301_R1_T1.SAFE"}))  # fmt: skip


def test_stated_raster_offset_is_used_and_a_contradiction_is_left_to_the_pixels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    item = _item(**{"s2:processing_baseline": "04.00"})
    for a in item["assets"].values():
        a["raster:bands"] = [{"scale": 0.0001, "offset": -0.1}]
    assert item_encoding(item).dn_offset == pytest.approx(-1000)
    old = copy.deepcopy(item)
    old["properties"]["s2:processing_baseline"] = "03.01"
    with caplog.at_level(logging.WARNING, logger="data_prep.stac"):
        enc = item_encoding(old)
    assert enc.dn_offset == pytest.approx(-1000) and "disagree" in enc.why
    assert "the pixels decide" in caplog.text


def test_missing_band_asset_is_refused() -> None:
    item = _item(**{"s2:processing_baseline": "04.00"})
    del item["assets"]["B8A"]
    with pytest.raises(ItemError, match="B8A"):
        item_encoding(item)


# --- over HTTP ----------------------------------------------------------------------------------


def test_search_over_http_filters_by_date_and_matches_the_static_catalog(
    served: StacStandin, region: Any, tmp_path: Path
) -> None:
    src = StacSource(served.url, timeout_s=10)
    bbox = served.items[0]["bbox"]
    found = search_items(src, bbox, DEC, dt.date(2021, 12, 31))
    assert [d["id"] for d in found] == [d["id"] for d in served.items[:3]]
    assert ("GET", "/search") in served.requests or ("POST", "/search") in served.requests
    static = write_static_catalog(tmp_path / "cat", served.items)
    local = search_items(StacSource(str(static)), bbox, DEC, dt.date(2021, 12, 31))
    assert [d["id"] for d in local] == [d["id"] for d in found]
    far = search_items(src, [0.0, 0.0, 0.1, 0.1], DEC, FEB)
    assert far == []


def test_composites_across_the_january_2022_change_show_no_jump(
    served: StacStandin, region: Any, truth: np.ndarray
) -> None:
    """Items on both sides of baseline 04.00 (one with a wrongly stated offset) composite to
    the same reflectance: the medians agree within noise and match the region's truth."""
    src = StacSource(served.url, timeout_s=10)
    grid = _grid(region)
    before = composite_tile(served.items[:3], grid, source=src)
    after = composite_tile(served.items[3:], grid, source=src)
    assert "not applied" in after.items[served.items[4]["id"]]  # the pixels overruled -0.1
    assert "not applied" not in after.items[served.items[5]["id"]]
    both = np.isfinite(before.reflectance).all(0) & np.isfinite(after.reflectance).all(0)
    assert both.mean() > 0.9
    jump = np.median(after.reflectance[:, both] - before.reflectance[:, both], axis=1)
    assert np.all(np.abs(jump) < 0.003), jump  # the offset is 0.1: a jump would be 100x that
    err = np.median(np.abs(before.reflectance[:, both] - truth[:, both]), axis=1)
    assert np.all(err < 0.003), err
    # clouds (SCL 9) are masked, not averaged in: no pixel is as bright as the cloud tops
    assert np.nanmax(before.reflectance[0]) < 0.5 and before.clear.max() == 3


def test_item_without_baseline_is_skipped_with_its_reason(served: StacStandin, region: Any) -> None:
    undecided = copy.deepcopy(served.items[3])
    undecided["id"] = "no-baseline"
    del undecided["properties"]["s2:processing_baseline"]
    del undecided["properties"]["s2:product_uri"]
    comp = composite_tile([served.items[3], undecided], _grid(region),
                          source=StacSource(served.url))  # fmt: skip
    assert list(comp.items) == [served.items[3]["id"]]
    assert "date alone" in comp.skipped["no-baseline"]
    with pytest.raises(ItemError, match="no usable imagery"):
        composite_tile([undecided], _grid(region), source=StacSource(served.url))


def test_cache_reads_nothing_twice(served: StacStandin, region: Any, tmp_path: Path) -> None:
    src = StacSource(served.url, timeout_s=10)
    bbox = served.items[0]["bbox"]
    items = search_items(src, bbox, DEC, FEB, cache=tmp_path)
    first = composite_tile(items[:2], _grid(region), source=src, cache=tmp_path)
    n = len(served.requests)
    assert served.asset_requests() > 0
    again = search_items(src, bbox, DEC, FEB, cache=tmp_path)
    second = composite_tile(again[:2], _grid(region), source=src, cache=tmp_path)
    assert len(served.requests) == n  # neither the search nor any asset was asked for again
    np.testing.assert_array_equal(first.reflectance, second.reflectance)
    assert first.items == second.items
    threaded = composite_tile(items[:2], _grid(region), source=src, threads=2)  # no cache
    np.testing.assert_array_equal(threaded.reflectance, first.reflectance)


def _searches(served: StacStandin) -> int:
    return sum(1 for _, p in served.requests if p == "/search")


def test_a_cached_api_search_expires_and_a_local_one_follows_its_files(
    served: StacStandin, region: Any, tmp_path: Path
) -> None:
    import os

    bbox = served.items[0]["bbox"]
    fresh = StacSource(served.url, timeout_s=10)
    first = search_items(fresh, bbox, DEC, FEB, cache=tmp_path)
    n = _searches(served)
    assert search_items(fresh, bbox, DEC, FEB, cache=tmp_path) == first
    assert _searches(served) == n  # younger than a day: read from the cache
    (cached,) = (tmp_path / "search").glob("*.json")
    old = cached.stat().st_mtime - 25 * 3600
    os.utime(cached, (old, old))  # a day and an hour old
    assert search_items(fresh, bbox, DEC, FEB, cache=tmp_path) == first
    assert _searches(served) > n  # asked again
    n = _searches(served)
    always = StacSource(served.url, timeout_s=10, search_max_age_h=0)
    search_items(always, bbox, DEC, FEB, cache=tmp_path)
    assert _searches(served) > n

    static = write_static_catalog(tmp_path / "cat", served.items[:2])
    local = StacSource(str(static))
    assert len(search_items(local, bbox, DEC, FEB, cache=tmp_path)) == 2
    write_static_catalog(tmp_path / "cat", served.items[:4])  # items added to the catalog
    assert len(search_items(local, bbox, DEC, FEB, cache=tmp_path)) == 4


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_fails_within_the_timeout(served: StacStandin) -> None:
    with StacStandin([], mode="hang") as server:
        src = StacSource(server.url, timeout_s=1, retries=0)
        with pytest.raises(CatalogError, match="did not answer in 1 s"):
            search_items(src, [0, 0, 1, 1], DEC, FEB)


def test_busy_answers_are_retried(served: StacStandin) -> None:
    bbox = served.items[0]["bbox"]
    served.busy = 2
    try:
        found = search_items(StacSource(served.url, retries=2), bbox, DEC, FEB)
        assert len(found) == len(served.items) and served.busy == 0
        served.busy = 1
        with pytest.raises(CatalogError, match="0 retries"):
            search_items(StacSource(served.url, retries=0), bbox, DEC, FEB)
    finally:
        served.busy = 0


def test_a_server_that_is_not_stac_is_refused() -> None:
    with (
        StacStandin([], mode="garbage") as server,
        pytest.raises(CatalogError, match="not a STAC API"),
    ):
        search_items(StacSource(server.url, timeout_s=5, retries=0), [0, 0, 1, 1], DEC, FEB)


def test_corrupt_assets_raise_catalog_error(served: StacStandin, region: Any) -> None:
    # a server of its own: GDAL keeps what it read of a URL for the process
    with StacStandin([], files=served.files, mode="broken-assets") as broken:
        item = json.loads(json.dumps(served.items[0]).replace(served.url, broken.url))
        with pytest.raises(CatalogError, match="unreadable"):
            composite_tile([item], _grid(region), source=StacSource(broken.url, retries=0))
        assert broken.asset_requests() > 0


@pytest.mark.timeout(60)
def test_assets_that_never_come_fail_within_the_timeout_on_every_read_thread(
    served: StacStandin, region: Any
) -> None:
    with StacStandin([], files=served.files, mode="hang") as silent:
        item = json.loads(json.dumps(served.items[1]).replace(served.url, silent.url))
        source = StacSource(silent.url, timeout_s=1, retries=0)
        with pytest.raises(CatalogError, match="unreadable"):
            composite_tile([item], _grid(region), source=source, threads=2)


def test_source_options_are_checked() -> None:
    with pytest.raises(ItemError.__mro__[1], match="--max-cloud"):
        StacSource("x", max_cloud=120)
    with pytest.raises(ValueError, match="--sign"):
        StacSource("x", sign="no_such_module:fn")
    with pytest.raises(ValueError, match="no such file"):
        search_items(StacSource("/nonexistent/catalog.json"), [0, 0, 1, 1], DEC, FEB)


def test_median_of_the_clear_observations_equals_numpy_nanmedian() -> None:
    rng = np.random.default_rng(3)
    for t in (1, 2, 3, 4, 6):
        x = rng.random((t, 40, 50)).astype(np.float32)
        x[rng.random(x.shape) < 0.4] = np.nan
        with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
            want = np.nanmedian(x, axis=0)
        got = nanmedian_first_axis(x)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


def test_a_folder_of_scenes_is_searched_and_composited_through_the_same_interface(
    region: Any, truth: np.ndarray, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "scenes"
    folder.mkdir()
    shutil.copy(region.scene, folder / "scene.tif")
    shutil.copy(region.scl, folder / "scene_SCL.tif")
    src = StacSource(str(folder))
    with rasterio.open(region.scene) as ds:
        bbox = rasterio.warp.transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    found = search_items(src, bbox, dt.date(2022, 1, 1), dt.date(2022, 12, 31))
    assert len(found) == 1 and "scene reader" not in found[0]["properties"]
    assert search_items(src, bbox, dt.date(2020, 1, 1), dt.date(2020, 12, 31)) == []
    comp = composite_tile(found, _grid(region), source=src)
    assert "scene reader" in next(iter(comp.items.values()))
    ok = np.isfinite(comp.reflectance).all(0)
    assert ok.mean() > 0.9
    np.testing.assert_allclose(comp.reflectance[:, ok], truth[:, ok], atol=1e-4)
    # on a grid half a pixel off the scene's, reprojected: close to the truth
    g = _grid(region)
    shifted = TileGrid(g.crs, g.left + 5, g.top - 5, (g.shape[0] - 2, g.shape[1] - 2))
    moved = composite_tile(found, shifted, source=src)
    assert np.isfinite(moved.reflectance).all(0).mean() > 0.85
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no scene"):
        search_items(StacSource(str(tmp_path / "empty")), bbox, DEC, FEB)
