"""The model and attribution stages on the real Austrian chips, through the CLI (skips without
shared/)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
import rasterio

from solarmap.app.cli import main
from solarmap.bands import BANDS
from tests.conftest import AUSTRIA, needs_realdata, with_training_stats


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
    with_training_stats(tmp_path / "c", tmp_path / "p")  # the checkpoint's, once train writes them
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

    # The attribution stage on the same real chip: explain the farm at one of its solar pixels.
    import numpy as np

    with rasterio.open(mask) as src:
        rows, cols = np.nonzero(src.read(1) == 1)
        x, y = src.xy(int(rows[len(rows) // 2]), int(cols[len(cols) // 2]))
    out = tmp_path / "explain"
    argv = ["-q", "explain", "--scene", str(scene), "--checkpoint", str(tmp_path / "c"),
            "--target", f"{x},{y}", "--out", str(out),
            "--methods", "saliency,integrated_gradients,occlusion,band_ablation,kernel_shap",
            "--n-segments", "16", "--shap-samples", "64"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "explain.json").read_text())
    (target,) = summary["targets"]
    ig = target["extra"]["integrated_gradients"]
    assert ig["converged"] and ig["completeness_error"] <= 0.01
    with rasterio.open(out / target["folder"] / "attribution.tif") as a, rasterio.open(scene) as s:
        assert a.crs == s.crs
        assert a.transform.a == s.transform.a and a.transform.e == s.transform.e
        col, row = ~a.transform * (x, y)
        assert 0 <= col < a.width and 0 <= row < a.height  # the pixel lies in the window
        assert "occlusion" in a.descriptions and "kernel_shap" in a.descriptions
        sal = a.read(a.descriptions.index("saliency:max_abs") + 1)
        assert np.isfinite(sal).all() and sal.max() > 0
    bands = json.loads((out / target["folder"] / "bands.json").read_text())
    assert {r["band"] for r in bands if r["method"] == "band_ablation"} == set(BANDS)
