"""Bad input to `solarmap survey`."""

from __future__ import annotations

import datetime as dt
import functools
import json
import tempfile
from pathlib import Path

import geopandas as gpd
import pytest
import shapely.geometry

from tests.app.corpus.harness import Case, ids, text_file


@functools.cache
def _catalog() -> tuple[Path, str]:
    """A static catalog of one synthetic acquisition, and a lon/lat box inside it (made once)."""
    from data_prep.synthetic import RegionConfig, generate_region
    from tests.data.make_stac import ItemSpec, write_items, write_static_catalog

    root = Path(tempfile.mkdtemp(prefix="solarmap-corpus-stac-"))
    region = generate_region(root / "region", RegionConfig(seed=2, size=128))
    items = write_items(region.scene, region.scl, root / "files", [ItemSpec(dt.date(2022, 3, 1))])
    w, s, e, n = items[0]["bbox"]
    bbox = f"{w + 0.001:.5f},{s + 0.001:.5f},{e - 0.001:.5f},{n - 0.001:.5f}"
    return write_static_catalog(root / "catalog", items), bbox


def _survey(*extra: str, region: str | None = None, catalog: str | None = None):  # type: ignore[no-untyped-def]
    def argv(i, tmp):  # type: ignore[no-untyped-def]
        static, bbox = _catalog()
        cat = catalog if catalog is not None else str(static)
        opts = {"--region": region if region is not None else bbox, "--dates": "2022",
                "--catalog": cat, "--out": "OUT", "--tile-px": "64"}  # fmt: skip
        given = {a for a in extra if a.startswith("--")}
        base = [x for k, v in opts.items() if k not in given for x in (k, v)]
        return ["-q", "survey", *base, *extra]

    return argv


def _points(i, tmp):  # type: ignore[no-untyped-def]
    gpd.GeoDataFrame(geometry=[shapely.geometry.Point(77, 14)], crs=4326).to_file(
        tmp / "points.geojson"
    )
    return _survey(region=str(tmp / "points.geojson"))(i, tmp)


def _no_crs(i, tmp):  # type: ignore[no-untyped-def]
    text_file(tmp / "area.geojson", json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {},
         "geometry": shapely.geometry.mapping(shapely.geometry.box(7e5, 1.5e6, 7.1e5, 1.51e6))}
    ], "crs": None}))  # fmt: skip
    return _survey(region=str(tmp / "area.geojson"))(i, tmp)


def _not_a_survey(i, tmp):  # type: ignore[no-untyped-def]
    other = tmp / "other"
    other.mkdir()
    text_file(other / "notes.txt")
    return _survey("--out", str(other))(i, tmp)


def _bad_catalog_json(i, tmp):  # type: ignore[no-untyped-def]
    text_file(tmp / "catalog.json", "{ not json")
    return _survey(catalog=str(tmp / "catalog.json"))(i, tmp)


def _units_no_field(i, tmp):  # type: ignore[no-untyped-def]
    gpd.GeoDataFrame({"name": ["a"]}, geometry=[shapely.geometry.box(76, 13, 78, 15)],
                     crs=4326).to_file(tmp / "units.gpkg")  # fmt: skip
    return _survey("--units", str(tmp / "units.gpkg"), "--units-field", "district")(i, tmp)


CASES: list[Case] = [
    Case("survey-empty-region", _survey(region=""), ("--region is empty",)),
    Case("survey-bbox-reversed", _survey(region="78,14,77,15"), ("--region", "west < east")),
    Case("survey-bbox-outside-earth", _survey(region="190,14,191,15"), ("--region", "-180")),
    Case("survey-region-missing", _survey(region="nope.geojson"), ("nope.geojson", "not found")),
    Case("survey-region-points", _points, ("--region", "no polygon")),
    Case("survey-region-no-crs", _no_crs, ("--region", "not degrees", "set the file's real CRS")),
    Case("survey-bad-dates", _survey("--dates", "2022-13"), ("--dates 2022-13",)),
    Case("survey-dates-reversed", _survey("--dates", "2022-05-01/2022-01-01"), ("ends before",)),
    Case("survey-dates-before-s2", _survey("--dates", "2010"), ("2015-06-23",)),
    Case("survey-catalog-missing", _survey(catalog="nope/"), ("--catalog nope/", "no such")),
    Case("survey-catalog-not-stac", _bad_catalog_json, ("catalog.json", "not a readable STAC")),
    Case(
        "survey-catalog-unreachable",
        _survey("--timeout", "1", "--retries", "0", catalog="http://127.0.0.1:9/"),
        ("http://127.0.0.1:9/", "did not answer in 1 s"),
    ),
    Case(
        "survey-scheduler-silent",
        _survey("--scheduler", "tcp://127.0.0.1:9", "--timeout", "2"),
        ("--scheduler tcp://127.0.0.1:9", "no Dask scheduler answered"),
    ),
    Case(
        "survey-search-max-age-negative",
        _survey("--search-max-age", "-1"),
        ("--search-max-age -1", "0 or more hours"),
    ),
    Case("survey-out-not-a-survey", _not_a_survey, ("not a survey folder",)),
    Case("survey-tile-px", _survey("--tile-px", "100"), ("--tile-px 100", "multiple of 32")),
    Case("survey-workers", _survey("--workers", "0"), ("--workers 0",)),
    Case("survey-engine", _survey("--engine", "tpu"), ("tpu",)),
    Case("survey-max-cloud", _survey("--max-cloud", "150"), ("--max-cloud 150",)),
    Case("survey-sign", _survey("--sign", "no_such_module:sign"), ("--sign", "cannot import")),
    Case("survey-units-field-alone", _survey("--units-field", "name"), ("needs --units",)),
    Case("survey-units-field-missing", _units_no_field, ("--units-field district", "name")),
    Case("survey-checkpoint-missing", _survey("--checkpoint", "nope"), ("nope",)),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_survey_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
