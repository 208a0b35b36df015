"""Valid inputs for the bad-input corpus, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.app.corpus.harness import Case, Inputs, run_case
from tests.conftest import box_polygon_4326, write_float_scene, write_labels


@pytest.fixture(scope="session")
def inputs(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Inputs:
    from data_prep.prepare import PrepareConfig, prepare
    from data_prep.sentinel2 import open_scene
    from solarmap.model import load_checkpoint
    from solarmap.predict import predict_scene

    root = tmp_path_factory.mktemp("corpus")
    scene = write_float_scene(root / "scene.tif")
    labels = write_labels(root / "labels.geojson", [box_polygon_4326(20, 30, 60, 80)])
    truth = write_labels(root / "truth.gpkg", [box_polygon_4326(20, 30, 60, 80)])
    prepare(
        [scene],
        labels,
        root / "chips",
        config=PrepareConfig(chip_size=32, stride=32, block_size=32, seed=0),
    )
    with open_scene(scene) as src:
        predict_scene(src, load_checkpoint(tiny_checkpoint), root / "prediction")
    return Inputs(scene, labels, tiny_checkpoint, root / "chips", root / "prediction", truth)


@pytest.fixture
def check_case(inputs: Inputs, tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``check_case(case)`` runs one corpus case and returns its error line."""

    def check(case: Case) -> str:
        return run_case(case, inputs, tmp_path, capsys)

    return check
