"""Bad input to `solarmap evaluate`: truth that cannot be compared, options, outputs."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from affine import Affine

from tests.app.corpus.harness import Case, Inputs, ids, text_file
from tests.conftest import box_polygon_4326, write_labels

FAR = (300000.0, 1000000.0)  # 640 km from the corpus scene, same UTM zone


def _evaluate(*extra: str, truth=None, prediction=None):  # type: ignore[no-untyped-def]
    """``evaluate`` of the corpus prediction, metrics to OUT; ``truth``/``prediction`` build
    another input from (inputs, folder)."""

    def argv(i: Inputs, tmp: Path) -> list[str]:
        t = truth(i, tmp) if truth else i.truth
        p = prediction(i, tmp) if prediction else i.prediction
        return ["-q", "evaluate", "--prediction", str(p), "--truth", str(t), "--out", "OUT",
                *extra]  # fmt: skip

    return argv


def _mask(i: Inputs, path: Path, values: Any, **profile: Any) -> Path:
    """A truth mask on the prediction's grid (or another, through ``profile``)."""
    with rasterio.open(i.prediction / "probability.tif") as src:
        grid = {
            "width": src.width,
            "height": src.height,
            "crs": src.crs,
            "transform": src.transform,
        }
    prof = {"driver": "GTiff", "count": 1, "dtype": "uint8", **grid, **profile}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.broadcast_to(values, (prof["height"], prof["width"])).astype(np.uint8), 1)
    return path


def _copy(i: Inputs, tmp: Path) -> Path:
    return Path(shutil.copytree(i.prediction, tmp / "prediction"))


def _with_metrics(i: Inputs, tmp: Path) -> Path:
    pred = _copy(i, tmp)
    (pred / "metrics.json").write_text("{}")
    return pred


def _nan_threshold(i: Inputs, tmp: Path) -> Path:
    pred = _copy(i, tmp)
    record = json.loads((pred / "predict.json").read_text())
    (pred / "predict.json").write_text(json.dumps({**record, "threshold": float("nan")}))
    return pred


def _truncated_probability(i: Inputs, tmp: Path) -> Path:
    pred = _copy(i, tmp)
    data = (pred / "probability.tif").read_bytes()
    (pred / "probability.tif").write_bytes(data[: len(data) // 2])
    return pred


def _metrics_exist(i: Inputs, tmp: Path) -> list[str]:
    """``evaluate`` with metrics written into the prediction folder by an earlier run."""
    pred = _with_metrics(i, tmp)
    return ["-q", "evaluate", "--prediction", str(pred), "--truth", str(i.truth)]


def _projected_geojson(i: Inputs, tmp: Path) -> Path:
    import geopandas as gpd

    gdf = gpd.GeoDataFrame(
        {"id": [1]}, geometry=[box_polygon_4326(20, 30, 60, 80)], crs=4326
    ).to_crs(32643)
    path = tmp / "utm.geojson"
    doc = json.loads(gdf.to_json())
    doc.pop("crs", None)
    path.write_text(json.dumps(doc))
    return path


def _no_crs(i: Inputs, tmp: Path) -> Path:
    import geopandas as gpd

    path = tmp / "nocrs.gpkg"
    with warnings.catch_warnings():  # that the file gets no CRS: the point of the case
        warnings.simplefilter("ignore", UserWarning)
        gpd.GeoDataFrame({"id": [1]}, geometry=[box_polygon_4326(20, 30, 60, 80)]).to_file(path)
    return path


def _osm(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text(f'<?xml version="1.0"?><osm version="0.6">{body}</osm>')
    return path


CASES: list[Case] = [
    # the prediction folder
    Case(
        "evaluate-prediction-missing",
        _evaluate(prediction=lambda i, t: t / "nowhere"),
        ("nowhere", "predict.json"),
    ),
    Case(
        "evaluate-prediction-empty-folder",
        _evaluate(prediction=lambda i, t: (t / "empty").mkdir() or t / "empty"),
        ("empty", "predict.json"),
    ),
    Case(
        "evaluate-prediction-nan-threshold",
        _evaluate(prediction=_nan_threshold),
        ("predict.json", "threshold"),
    ),
    Case(
        "evaluate-probability-truncated",
        _evaluate(prediction=_truncated_probability),
        ("probability.tif", "damaged or truncated"),
    ),
    # truth polygons
    Case("evaluate-truth-missing", _evaluate(truth=lambda i, t: t / "nope.gpkg"), ("nope.gpkg",)),
    Case(
        "evaluate-truth-folder",
        _evaluate(truth=lambda i, t: (t / "truth").mkdir() or t / "truth"),
        ("truth", "folder"),
    ),
    Case(
        "evaluate-truth-disjoint",
        _evaluate(
            truth=lambda i, t: write_labels(
                t / "far.gpkg", [box_polygon_4326(0, 0, 9, 9, origin=FAR)]
            )
        ),
        ("far.gpkg", "overlaps the prediction", "same area"),
    ),
    Case(
        "evaluate-truth-projected-geojson-without-crs",
        _evaluate(truth=_projected_geojson),
        ("utm.geojson", "not longitude/latitude"),
    ),
    Case("evaluate-truth-no-crs", _evaluate(truth=_no_crs), ("nocrs.gpkg", "no CRS")),
    Case(
        "evaluate-truth-empty-collection",
        _evaluate(
            truth=lambda i, t: text_file(
                t / "none.geojson", '{"type": "FeatureCollection", "features": []}'
            )
        ),
        ("none.geojson", "no truth polygons"),
    ),
    Case(
        "evaluate-truth-not-vector",
        _evaluate(truth=lambda i, t: text_file(t / "truth.gpkg")),
        ("truth.gpkg", "not a vector file"),
    ),
    Case(
        "evaluate-truth-zero-bytes",
        _evaluate(truth=lambda i, t: text_file(t / "truth.geojson", "")),
        ("truth.geojson", "empty"),
    ),
    Case(
        "evaluate-truth-osm-malformed",
        _evaluate(truth=lambda i, t: text_file(t / "bad.osm", '<osm version="0.6"><node id="1"')),
        ("bad.osm", "not an OSM XML file"),
    ),
    Case(
        "evaluate-truth-osm-without-solar",
        _evaluate(truth=lambda i, t: _osm(t, "empty.osm", '<node id="1" lat="14.1" lon="76.8"/>')),
        ("empty.osm", "no solar"),
    ),
    # truth masks
    Case(
        "evaluate-mask-other-grid",
        _evaluate(
            truth=lambda i, t: _mask(
                i, t / "m.tif", 0, transform=Affine(10, 0, 300000.0, 0, -10, 1000000.0)
            )
        ),
        ("m.tif", "grid", "resample"),
    ),
    Case(
        "evaluate-mask-bad-values",
        _evaluate(truth=lambda i, t: _mask(i, t / "m.tif", 7)),
        ("m.tif", "0 background, 1 solar, 255 ignore"),
    ),
    Case(
        "evaluate-mask-all-ignore",
        _evaluate(truth=lambda i, t: _mask(i, t / "m.tif", 255)),
        ("m.tif", "no pixel to compare"),
    ),
    Case(
        "evaluate-mask-text",
        _evaluate(truth=lambda i, t: text_file(t / "m.tif")),
        ("m.tif", "not a raster"),
    ),
    # options and outputs
    Case("evaluate-threshold-one", _evaluate("--threshold", "1"), ("--threshold 1", "0.5")),
    Case("evaluate-threshold-zero", _evaluate("--threshold", "0"), ("--threshold 0",)),
    Case("evaluate-threshold-nan", _evaluate("--threshold", "nan"), ("--threshold nan",)),
    Case("evaluate-threshold-negative", _evaluate("--threshold", "-0.5"), ("--threshold -0.5",)),
    Case(
        "evaluate-threshold-before-work",
        _evaluate("--threshold", "2", truth=lambda i, t: t / "nope.gpkg"),
        ("--threshold 2",),
    ),
    Case(
        "evaluate-out-is-a-file",
        lambda i, t: [*_evaluate()(i, t)[:-2], "--out", str(text_file(t / "metrics.txt"))],
        ("metrics.txt", "folder"),
    ),
    Case("evaluate-metrics-exist", _metrics_exist, ("metrics.json", "--overwrite")),
    Case(
        "evaluate-metrics-exist-in-out",
        lambda i, t: [*_evaluate()(i, t)[:-2], "--out", str(_with_metrics(i, t))],
        ("metrics.json", "--overwrite"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_evaluate_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
