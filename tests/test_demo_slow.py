"""The full demo, end to end (slow: about 6 minutes on 2 CPU cores; `make test-slow`)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
import rasterio

from solarmap.app.cli import main


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from solarmap.app.demo import load_summary

    out = tmp_path / "demo"
    assert main(["-q", "demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pixel IoU" in printed and str(out / "prediction" / "polygons.gpkg") in printed
    summary = load_summary(out)
    px = summary["metrics"]["pixel"]
    # Quality floors well under the targets measured in benchmarks (IoU >= 0.8 there).
    assert px["iou"] > 0.7, px
    assert summary["metrics"]["object"]["recall"] > 0.8
    with (
        rasterio.open(out / "prediction" / "probability.tif") as p,
        rasterio.open(out / "unseen-region" / "scene.tif") as s,
    ):
        assert p.transform == s.transform and p.crs == s.crs and p.shape == s.shape
    polys = gpd.read_file(out / "prediction" / "polygons.gpkg")
    assert len(polys) > 10 and (polys.area_m2 > 0).all()
    assert (out / "prediction" / "pr_curve.png").stat().st_size > 10_000
