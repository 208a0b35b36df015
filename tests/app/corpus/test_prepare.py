"""Bad labels and options of `solarmap prepare` (bad scenes: test_scene_inputs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, ids, text_file
from tests.conftest import box_polygon_4326, write_labels

FAR = (300000.0, 1000000.0)  # 640 km from the corpus scene, same UTM zone


def _prepare(*extra: str, labels=None, scene=None):  # type: ignore[no-untyped-def]
    """``prepare`` of the corpus scene; ``labels``/``scene`` build another file from (inputs,
    folder)."""

    def argv(i: Inputs, tmp: Path) -> list[str]:
        lab = labels(i, tmp) if labels else i.labels
        sc = scene(i, tmp) if scene else i.scene
        return ["-q", "prepare", "--scene", str(sc), "--labels", str(lab), "--out", "OUT",
                "--chip-size", "32", "--block-size", "32", *extra]  # fmt: skip

    return argv


def _geojson(path: Path, features: list[dict], **top: object) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features, **top}))
    return path


def _feature(geometry: dict, **properties: object) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def _square(i: Inputs) -> dict:
    """The corpus label polygon as a GeoJSON geometry (lon/lat)."""
    return box_polygon_4326(20, 30, 60, 80).__geo_interface__


def _projected_geojson(i: Inputs, tmp: Path) -> Path:
    """The label polygon in UTM metres, in a GeoJSON without a 'crs' member (so: WGS 84)."""
    import geopandas as gpd

    gdf = gpd.GeoSeries([box_polygon_4326(20, 30, 60, 80)], crs=4326).to_crs(32643)
    return _geojson(tmp / "utm.geojson", [_feature(gdf.iloc[0].__geo_interface__, id=1)])


def _osm(tmp: Path, name: str, tags: dict[str, str]) -> Path:
    """An .osm file with one closed way around the corpus polygon, tagged ``tags``."""
    x0, y0, x1, y1 = box_polygon_4326(20, 30, 60, 80).bounds
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    nodes = "".join(
        f'<node id="{k}" lat="{lat}" lon="{lon}" version="1"/>'
        for k, (lon, lat) in enumerate(corners, 1)
    )
    refs = "".join(f'<nd ref="{k}"/>' for k in (1, 2, 3, 4, 1))
    tag_xml = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())
    path = tmp / name
    path.write_text(
        f'<?xml version="1.0"?><osm version="0.6">{nodes}'
        f'<way id="10" version="1">{refs}{tag_xml}</way></osm>'
    )
    return path


def _png(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path, format="PNG")
    return path


def _taken(i: Inputs, tmp: Path) -> list[str]:
    (tmp / "taken").mkdir()
    (tmp / "taken" / "keep.txt").write_text("mine")
    return ["-q", "prepare", "--scene", str(i.scene), "--labels", str(i.labels),
            "--out", str(tmp / "taken")]  # fmt: skip


def _two_scl(i: Inputs, tmp: Path) -> list[str]:
    return [*_prepare()(i, tmp), "--scl", str(i.scene), "--scl", str(i.scene)]


CASES: list[Case] = [
    # labels
    Case(
        "prepare-labels-missing",
        _prepare(labels=lambda i, t: t / "none.geojson"),
        ("none.geojson", "not found"),
    ),
    Case(
        "prepare-labels-elsewhere",
        _prepare(
            labels=lambda i, t: write_labels(
                t / "far.geojson", [box_polygon_4326(0, 0, 9, 9, origin=FAR)]
            )
        ),
        ("far.geojson", "overlap", "same area"),
    ),
    Case(
        "prepare-labels-empty-collection",
        _prepare(labels=lambda i, t: _geojson(t / "empty.geojson", [])),
        ("empty.geojson", "no features"),
    ),
    Case(
        "prepare-labels-not-vector",
        _prepare(labels=lambda i, t: text_file(t / "bad.geojson")),
        ("bad.geojson", "not a vector file"),
    ),
    Case(
        "prepare-labels-zero-bytes",
        _prepare(labels=lambda i, t: text_file(t / "zero.gpkg", "")),
        ("zero.gpkg", "empty"),
    ),
    Case(
        "prepare-labels-folder",
        _prepare(labels=lambda i, t: (t / "dir.geojson").mkdir() or t / "dir.geojson"),
        ("dir.geojson", "folder"),
    ),
    Case(
        "prepare-labels-png",
        _prepare(labels=lambda i, t: _png(t / "labels.gpkg")),
        ("labels.gpkg", "PNG"),
    ),
    Case(
        "prepare-labels-unknown-type",
        _prepare(labels=lambda i, t: text_file(t / "labels.txt")),
        ("labels.txt", "unknown label file type"),
    ),
    Case(
        "prepare-labels-projected-geojson-without-crs",
        _prepare(labels=_projected_geojson),
        ("utm.geojson", "not longitude/latitude", "real CRS"),
    ),
    Case(
        "prepare-labels-without-solar-tags",
        _prepare(
            labels=lambda i, t: _geojson(
                t / "coal.geojson",
                [_feature(_square(i), power="plant", **{"plant:source": "coal"})],
            )
        ),
        ("coal.geojson", "no solar polygons", "plant:source=solar"),
    ),
    Case(
        "prepare-labels-points-only",
        _prepare(
            labels=lambda i, t: _geojson(
                t / "points.geojson",
                [_feature({"type": "Point", "coordinates": list(_square(i)["coordinates"][0][0])})],
            )
        ),
        ("points.geojson", "no solar polygons"),
    ),
    Case(
        "prepare-labels-osm-malformed",
        _prepare(labels=lambda i, t: text_file(t / "bad.osm", '<osm version="0.6"><node id="1"')),
        ("bad.osm", "not an OSM XML file"),
    ),
    Case(
        "prepare-labels-osm-wind-only",
        _prepare(
            labels=lambda i, t: _osm(
                t, "wind.osm", {"power": "plant", "plant:source": "wind", "name": "Windpark"}
            )
        ),
        ("wind.osm", "no solar polygons"),
    ),
    Case(
        "prepare-labels-osm-no-power",
        _prepare(labels=lambda i, t: _osm(t, "park.osm", {"leisure": "park"})),
        ("park.osm", "no solar features"),
    ),
    # options: checked before any work
    Case("prepare-split-two-shares", _prepare("--split", "0.5,0.5"), ("--split", "0.7,0.15")),
    Case("prepare-split-not-numbers", _prepare("--split", "a,b,c"), ("--split", "three numbers")),
    Case("prepare-split-sum", _prepare("--split", "0.5,0.5,0.5"), ("--split 0.5,0.5,0.5", "1.5")),
    Case("prepare-split-nan", _prepare("--split", "nan,0.5,0.5"), ("--split nan,0.5,0.5",)),
    Case("prepare-split-negative", _prepare("--split", "1.2,-0.1,-0.1"), ("--split",)),
    Case("prepare-split-no-train", _prepare("--split", "0,0.5,0.5"), ("--split", "training")),
    Case(
        "prepare-split-before-scene",
        _prepare("--split", "0.5,0.5,0.5", scene=lambda i, t: t / "nope.tif"),
        ("--split",),
    ),
    Case(
        "prepare-options-before-labels",
        _prepare("--chip-size", "0", labels=lambda i, t: t / "none.geojson"),
        ("--chip-size 0",),
    ),
    Case("prepare-chip-size-zero", _prepare("--chip-size", "0"), ("--chip-size 0", "16")),
    Case("prepare-chip-size-odd", _prepare("--chip-size", "100"), ("--chip-size 100", "16")),
    Case(
        "prepare-chip-size-huge",
        _prepare("--chip-size", "1048576", "--block-size", "1048576"),
        ("--chip-size 1048576", "2048"),
    ),
    Case("prepare-stride-zero", _prepare("--stride", "0"), ("--stride 0",)),
    Case("prepare-stride-above-chip", _prepare("--stride", "64"), ("--stride 64", "32")),
    Case("prepare-block-size-zero", _prepare("--block-size", "0"), ("--block-size 0",)),
    Case(
        "prepare-block-size-below-chip",
        _prepare("--block-size", "16"),
        ("--block-size 16", "chip size"),
    ),
    Case("prepare-negative-ratio-nan", _prepare("--negative-ratio", "nan"), ("--negative-ratio",)),
    Case("prepare-negative-ratio-inf", _prepare("--negative-ratio", "inf"), ("--negative-ratio",)),
    Case(
        "prepare-negative-ratio-negative",
        _prepare("--negative-ratio", "-1"),
        ("--negative-ratio -1",),
    ),
    Case("prepare-boundary-negative", _prepare("--boundary", "-1"), ("--boundary -1",)),
    Case("prepare-boundary-huge", _prepare("--boundary", "100000"), ("--boundary 100000", "64")),
    Case("prepare-seed-negative", _prepare("--seed", "-1"), ("--seed -1",)),
    Case("prepare-scl-count", _two_scl, ("2 --scl", "1 --scene")),
    Case("prepare-out-exists", _taken, ("taken", "--overwrite")),
]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_prepare_bad_input(case: Case, check_case) -> None:  # type: ignore[no-untyped-def]
    check_case(case)
