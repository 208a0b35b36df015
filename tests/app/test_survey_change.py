"""Change over time: a synthetic five-year series of farms being built (and one taken down),
with construction years in the ``idx,year`` form of the real Indian labels, surveyed per year."""

from __future__ import annotations

import csv
import datetime as dt
import json
import subprocess
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from rasterio.warp import transform_bounds

from data_prep.synthetic import RegionConfig, generate_region
from solarmap.app.change import construction_check, read_construction_labels
from solarmap.app.survey import SurveyConfig, parse_periods, survey
from solarmap.errors import InputError
from tests.data.make_stac import ItemSpec, erase_farms, write_items, write_static_catalog

REAL_LABELS = (
    Path(__file__).resolve().parents[2].parent
    / "shared" / "realdata" / "india" / "construction_year_labels.csv"
)  # fmt: skip
YEARS = tuple(range(2016, 2021))
#: Acquisitions per year: the composite of a year is the median of three dates.
DAYS = ((3, 1), (6, 15), (10, 1))
#: Construction years given to the farms in turn (-1: before the survey, year unknown).
PATTERN = (-1, 2017, 2018, 2019, 2020, -1, 2018, 2016, 2019, 2020)
TAKEN_DOWN = dt.date(2018, 8, 1)  # the first farm (an old one) goes then


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("change")
    # upper-left on whole 5.12 km tiles: the region is one survey tile of 512 px
    cfg = RegionConfig(seed=21, size=512, origin=(716800.0, 1561600.0), cloud_fraction=0.0,
                       nodata_fraction=0.0, n_farms=len(PATTERN))  # fmt: skip
    region = generate_region(root / "region", cfg)
    truth = gpd.read_file(region.truth, layer="farms")
    rng = np.random.default_rng(0)
    built = []
    for k in range(len(truth)):
        year = PATTERN[k % len(PATTERN)]
        day = dt.date(2014, 6, 1) if year < 0 else dt.date(year, 1, 1) + dt.timedelta(
            days=int(rng.integers(0, 365)))  # fmt: skip
        built.append((year, day))
    labels = root / "construction_year_labels.csv"
    with labels.open("w", newline="") as f:  # the published form: idx,year
        w = csv.writer(f)
        w.writerow(["idx", "year"])
        w.writerows([k, y] for k, (y, _) in enumerate(built))
    items: list[dict[str, Any]] = []
    variants: dict[tuple[int, ...], Path] = {}
    for year in YEARS:
        for m, d in DAYS:
            when = dt.date(year, m, d)
            hidden = tuple(k for k, (_, b) in enumerate(built) if b > when)
            if when >= TAKEN_DOWN:
                hidden = (0, *hidden)
            if hidden not in variants:
                variants[hidden] = erase_farms(region.scene, region.truth, list(hidden),
                                               root / f"scene_{len(variants)}.tif")  # fmt: skip
            spec = ItemSpec(when, baseline="02.14", data_offset=0, cloud=0.1)
            items += write_items(variants[hidden], region.scl, root / "files", [spec],
                                 seed=len(items))  # fmt: skip
    static = write_static_catalog(root / "catalog", items)
    b = 100.0
    x0, y1 = cfg.origin  # type: ignore[misc]
    bbox = transform_bounds(truth.crs, "EPSG:4326", x0 + b, y1 - 5120 + b, x0 + 5120 - b, y1 - b)
    region_text = ",".join(f"{v:.6f}" for v in bbox)
    dates = tuple(str(y) for y in YEARS)
    config = SurveyConfig(region=region_text, dates=dates, catalog=str(static), tile_px=512)
    out = root / "out"
    res = survey(config, out)
    assert res.states == {"done": len(YEARS)}
    return {"out": out, "truth": truth, "labels": labels, "built": built}


def test_sites_tables_and_plot_are_written(series: dict[str, Any]) -> None:
    out = series["out"]
    sites = gpd.read_file(out / "sites.gpkg", layer="sites")
    assert set(sites["status"]) <= {"existing", "new", "vanished", "transient"}
    assert {"constructed_after", "constructed_before", "first_seen"} <= set(sites.columns)
    info = subprocess.run(["ogrinfo", "-so", str(out / "sites.gpkg"), "sites"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "constructed_after: Date" in info
    table = pd.read_csv(out / "change.csv", dtype={"period": str})
    assert list(table["period"]) == [str(y) for y in YEARS]
    farms = gpd.read_file(out / "solar_farms.gpkg", layer="solar_farms")
    assert list(table["farms"]) == [int((farms["period"] == str(y)).sum()) for y in YEARS]
    assert table["new_sites"].iloc[0] == 0 and table["new_sites"].iloc[1:].sum() >= 3
    png = (out / "change.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    summary = json.loads((out / "summary.json").read_text())
    assert [p["new_sites"] for p in summary["periods"]] == list(table["new_sites"])


def test_construction_intervals_agree_with_the_known_years(series: dict[str, Any]) -> None:
    """Of the farms with a known year, the survey finds most, and each found one's interval
    holds its year; the first year seen is the year built or the next (the composites are
    medians: a farm built late in a year shows only the year after)."""
    out = series["out"]
    sites = gpd.read_file(out / "sites.gpkg", layer="sites")
    labels = read_construction_labels(series["labels"])
    big = [k for k, a in enumerate(series["truth"].area) if a > 4e4]
    labels = labels[labels["idx"].isin(big)]
    res = construction_check(sites, series["truth"], labels, parse_periods(
        [str(y) for y in YEARS]))  # fmt: skip
    print("construction check:", res)
    assert res["labelled"] >= 4
    assert res["matched"] >= 0.75 * res["labelled"]
    assert res["agree"] >= 0.85 * res["matched"]
    assert res["first_seen_year_or_next"] >= 0.85 * res["matched"]


def test_a_farm_taken_down_is_a_vanished_site(series: dict[str, Any]) -> None:
    truth = series["truth"]
    sites = gpd.read_file(series["out"] / "sites.gpkg", layer="sites").to_crs(truth.crs)
    gone = truth.geometry.iloc[0]
    hit = sites[sites.intersects(gone)]
    assert len(hit) >= 1
    site = hit.iloc[int(np.argmax(hit.intersection(gone).area))]
    assert site["status"] == "vanished"
    assert site["last_seen"] == "2017" or site["last_seen"] == "2018"
    assert str(site["gone_before"])[:4] in ("2018", "2019")


def test_construction_labels_are_read_and_checked(tmp_path: Path) -> None:
    if REAL_LABELS.is_file():  # the published labels read in the same form
        real = read_construction_labels(REAL_LABELS)
        assert len(real) > 900 and set(real["year"]) <= {-1, *range(2016, 2021)}
    for text, words in (("idx,yr\n1,2018\n", "give idx,year"), ("idx,year\n1,x\n", "whole"),
                        ("idx,year\n1,1200\n", "year 1200")):  # fmt: skip
        (tmp_path / "bad.csv").write_text(text)
        with pytest.raises(InputError, match=words):
            read_construction_labels(tmp_path / "bad.csv")


@pytest.mark.timeout(900)
def test_qgis_opens_the_sites_with_their_style(
    series: dict[str, Any], qgis_python: Path, tmp_path: Path
) -> None:
    from tests.test_qgis_styles import assert_drawn_with, open_in_qgis

    layers = {"sites": {"kind": "vector", "path": series["out"] / "sites.gpkg", "layer": "sites"}}
    found = open_in_qgis(qgis_python, layers, tmp_path)
    assert_drawn_with(found, "sites", "categorizedSymbol", tmp_path / "sites.png")
