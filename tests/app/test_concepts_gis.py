"""The layers of `solarmap concepts` open in QGIS with their styles and draw."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest


@pytest.mark.timeout(900)
def test_qgis_opens_the_concept_layers_with_their_styles(qgis_python: Path, tmp_path: Path) -> None:
    from attribute.concept_run import concepts_run
    from attribute.concepts import ConceptConfig
    from attribute.targets import Target
    from data_prep.sentinel2 import open_scene
    from data_prep.synthetic import RegionConfig, generate_region
    from tests.attribute.test_concepts import planted_checkpoint
    from tests.test_qgis_styles import assert_drawn_with, open_in_qgis

    region = generate_region(tmp_path / "region", RegionConfig(
        seed=3, size=256, spurious="pad", cloud_fraction=0.0, nodata_fraction=0.0))  # fmt: skip
    farms = gpd.read_file(region.truth, layer="farms").geometry.head(2)
    out = tmp_path / "concepts"
    with open_scene(region.scene) as scene:
        concepts_run([scene], planted_checkpoint(), out,
                     targets=[Target(i, "polygon", g) for i, g in enumerate(farms)],
                     config=ConceptConfig(layer="pool", top_k=3))  # fmt: skip
    layers = {
        "regions": {"kind": "vector", "path": out / "regions.gpkg", "layer": "regions"},
        "detections": {"kind": "vector", "path": out / "detections.gpkg", "layer": "detections"},
    }
    (tmp_path / "qgis").mkdir()
    found = open_in_qgis(qgis_python, layers, tmp_path / "qgis")
    assert_drawn_with(found, "regions", "singleSymbol", tmp_path / "qgis" / "regions.png")
    assert_drawn_with(found, "detections", "singleSymbol", tmp_path / "qgis" / "detections.png")
