"""The model stage on the real Austrian chips, through the CLI (skips without shared/)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio

from solarmap.cli import main
from tests.conftest import AUSTRIA, needs_realdata


@pytest.mark.realdata
@needs_realdata
def test_prepare_train_predict_evaluate_on_real_chips(tmp_path: Path) -> None:
    scenes = sorted(AUSTRIA.glob("s2_*.tif"))
    argv = [
        "-q",
        "prepare",
        *[a for s in scenes for a in ("--scene", str(s))],
        "--labels",
        str(AUSTRIA / "osm_solar_polygons_austria.geojson"),
        "--out",
        str(tmp_path / "p"),
        "--chip-size",
        "64",
        "--block-size",
        "64",
    ]
    assert main(argv) == 0
    assert (
        main(
            [
                "-q",
                "train",
                "--chips",
                str(tmp_path / "p"),
                "--out",
                str(tmp_path / "c"),
                "--epochs",
                "2",
                "--decoder-channels",
                "16,8,8",
            ]
        )
        == 0
    )
    chips = gpd.read_file(tmp_path / "p" / "chips.gpkg")
    held_out = chips.loc[chips.split == "test", "scene_id"].iloc[0]
    scene = AUSTRIA / f"{held_out}.tif"
    assert (
        main(
            [
                "-q",
                "predict",
                "--scene",
                str(scene),
                "--checkpoint",
                str(tmp_path / "c"),
                "--out",
                str(tmp_path / "pred"),
                "--window",
                "64",
            ]
        )
        == 0
    )
    mask = AUSTRIA / f"mask_{held_out.split('_')[1]}.tif"
    assert (
        main(["-q", "evaluate", "--prediction", str(tmp_path / "pred"), "--truth", str(mask)]) == 0
    )
    with rasterio.open(tmp_path / "pred" / "probability.tif") as p, rasterio.open(scene) as s:
        assert p.crs == s.crs and p.transform == s.transform and p.shape == s.shape
    m = json.loads((tmp_path / "pred" / "metrics.json").read_text())
    assert m["pixel"]["tp"] + m["pixel"]["fn"] > 0  # the held-out site has solar pixels
