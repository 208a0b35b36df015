"""What a demo run records names its final files: no temporary ``.partial`` folder in any JSON,
raster tag, checkpoint metadata or log line, and the records name each other relatively, so
the demo folder can move."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import rasterio

PARTIAL = ".partial"


def _raster_tags(path: Path) -> dict[str, str]:
    with rasterio.open(path) as ds:
        tags = dict(ds.tags())
        for i in ds.indexes:
            tags.update({f"band {i} {k}": v for k, v in ds.tags(i).items()})
            tags[f"band {i} description"] = ds.descriptions[i - 1] or ""
    return tags


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A demo-sized run (a 512 px training region, a few seconds of training) and its log."""
    from solarmap.app.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "demo"
    handler = _ListHandler()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        run_demo(out, size=512, unseen_size=256, minutes=0.05)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return out, "\n".join(handler.lines)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def test_no_record_names_the_temporary_folder(demo: tuple[Path, str]) -> None:
    from safetensors import safe_open

    out, log = demo
    assert "demo" in log and PARTIAL not in log
    jsons = sorted(out.rglob("*.json"))
    tifs = sorted(out.rglob("*.tif"))
    assert {p.name for p in jsons} >= {
        "predict.json",
        "checkpoint.json",
        "config.json",
        "scene.json",
    }
    assert any(p.name == "probability.tif" for p in tifs)
    for path in jsons:
        assert PARTIAL not in path.read_text(), path
    for path in tifs:
        tags = _raster_tags(path)
        assert not {k: v for k, v in tags.items() if PARTIAL in v}, path
    for weights in out.rglob("*.safetensors"):
        with safe_open(str(weights), framework="pt") as f:
            assert PARTIAL not in json.dumps(f.metadata()), weights
    assert not list(out.parent.glob(f".{out.name}.*"))  # nothing left beside it either


def _resolve(record_file: Path, value: str) -> Path:
    return (record_file.parent / value).resolve()


def test_records_name_the_demo_files_relatively_and_survive_a_move(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    from solarmap.model import load_checkpoint

    moved = Path(shutil.copytree(demo[0], tmp_path / "elsewhere"))
    predict: dict[str, Any] = json.loads((moved / "prediction" / "predict.json").read_text())
    config: dict[str, Any] = json.loads((moved / "prepared" / "config.json").read_text())
    ckpt = load_checkpoint(moved / "checkpoint")  # checkpoint.json still matches the weights
    tag = _raster_tags(moved / "prediction" / "probability.tif")["CHECKPOINT"]
    pred = moved / "prediction" / "predict.json"
    assert _resolve(pred, predict["scene"]["source"]) == moved / "unseen-region" / "scene.tif"
    assert _resolve(pred, predict["checkpoint"]["id"]) == moved / "checkpoint"
    assert _resolve(pred, tag) == moved / "checkpoint"
    assert _resolve(moved / "checkpoint" / "x", ckpt.metadata["chips"]) == moved / "prepared"
    cfg = moved / "prepared" / "config.json"
    assert [_resolve(cfg, s) for s in config["scenes"]] == [moved / "train-region" / "scene.tif"]
    assert _resolve(cfg, config["labels"]) == moved / "train-region" / "labels.osm"
    for scene_json in (moved / "prepared" / "scenes").rglob("scene.json"):
        source = json.loads(scene_json.read_text())["source"]
        assert _resolve(scene_json, source) == moved / "train-region" / "scene.tif"


def test_the_demo_writes_its_report(demo: tuple[Path, str]) -> None:
    out, _ = demo
    page = (out / "report.html").read_text()
    assert PARTIAL not in page and "<title>solarmap demo</title>" in page
    for alt in ("false-colour quicklook", "probability map", "detections over the scene",
                "precision-recall curve"):  # fmt: skip
        assert f'alt="{alt}' in page, alt
    assert "Solar Park" in page  # OSM names of the unseen region's labels
    assert "report.html" in (out / "summary.md").read_text()
